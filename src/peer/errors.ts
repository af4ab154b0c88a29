/**
 * Typed errors of the peer layer. Each has a stable `code`; messages name the cause,
 * and start failures carry the tail of the peer's own output (its stderr and logger).
 */
import { BatonError } from '../common/index.js';

/** Any failure of this layer; thrown as is where no narrower class fits. */
export class PeerError extends BatonError {
  readonly code: string = 'PEER';
}

/** The release cannot be run as it is laid out (no start_clean boot, no version...). */
export class PeerLayoutError extends PeerError {
  override readonly code = 'PEER_LAYOUT';
  constructor(
    readonly root: string,
    detail: string,
  ) {
    super(`release at ${root} cannot be started: ${detail}`);
  }
}

/**
 * The stages of a launch, in order (launch.ts). `environment` and `naming` run before
 * there is a VM and fail with a PeerError (PeerLayoutError for an unusable release); a
 * failure from `spawn` on is a PeerStartError naming its stage (the `ready` stage timing
 * out: PeerReadyTimeoutError).
 */
export type LaunchStage = 'environment' | 'naming' | PeerStartStage;

/** The launch stages a PeerStartError can name. */
export type PeerStartStage = 'spawn' | 'connect' | 'helpers' | 'config' | 'start' | 'ready';

/** The peer exited or failed before its application was started. */
export class PeerStartError extends PeerError {
  override readonly code = 'PEER_START';
  constructor(
    readonly node: string,
    readonly stage: PeerStartStage,
    /** The application's reason (worded by the peer) or what went wrong. */
    readonly reason: string,
    /** The last part of what the peer wrote to stdout/stderr. */
    readonly output: string,
    options?: { cause?: unknown },
  ) {
    super(
      `peer ${node} failed to start (${stage}): ${reason}${output.trim() === '' ? '' : `\n--- peer output ---\n${output.trimEnd()}`}`,
      options,
    );
  }
}

/** The application started but did not listen on its port in time. */
export class PeerReadyTimeoutError extends PeerError {
  override readonly code = 'PEER_READY_TIMEOUT';
  constructor(
    readonly node: string,
    readonly port: number,
    readonly timeoutMs: number,
    readonly output: string,
  ) {
    super(
      `peer ${node} started its application but did not listen on port ${port} within ${timeoutMs} ms` +
        (output.trim() === '' ? '' : `\n--- peer output ---\n${output.trimEnd()}`),
    );
  }
}

/** The listening socket baton hands to peers could not be bound. */
export class ListenerError extends PeerError {
  override readonly code = 'LISTENER';
}

/** No record of a running peer, or the recorded one is gone. */
export class NoPeerError extends PeerError {
  override readonly code = 'NO_PEER';
}
