import { BatonError } from '../common/index.js';

/** Thrown for any input the decoder refuses; `offset` is where in the input it stopped. */
export class EtfDecodeError extends BatonError {
  readonly code = 'ETF_DECODE';
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`cannot decode external term format at byte ${offset}: ${reason}`);
  }
}

/** Thrown when a JS value has no faithful Erlang term; `path` locates it inside the term. */
export class EtfEncodeError extends BatonError {
  readonly code = 'ETF_ENCODE';
  constructor(
    readonly reason: string,
    readonly path: string = '',
  ) {
    super(`cannot encode term${path ? ` at ${shortened(path)}` : ''}: ${reason}`);
  }

  /** The same error, located one level further out (built as the error bubbles up). */
  within(segment: string): EtfEncodeError {
    return new EtfEncodeError(this.reason, segment + this.path);
  }
}

/** A path into a very deep term is shown by its two ends (the `path` property keeps it whole). */
function shortened(path: string): string {
  return path.length <= 240 ? path : `${path.slice(0, 120)}…${path.slice(-120)}`;
}
