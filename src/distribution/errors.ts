/**
 * Typed errors of the distribution layer. Each has a stable `code` for callers that
 * branch on it; messages name the cause (never a cookie).
 */

import { BatonError } from '../common/index.js';
import { showTerm, type Term } from '../etf/index.js';

/** Any failure of this layer; thrown as is where no narrower class fits. */
export class DistributionError extends BatonError {
  readonly code: string = 'DISTRIBUTION';
}

export type ErpcClass = 'throw' | 'exit' | 'error';

/** The remote code raised: `class` is how, `reason` the term, `stack` the remote stack (error only). */
export class ErpcError extends DistributionError {
  override readonly code = 'ERPC';
  readonly class: ErpcClass;
  constructor(
    klass: ErpcClass,
    readonly reason: Term,
    /** The remote stack (`Error.stack` stays the JS one). */
    readonly remoteStack: Term[] = [],
    readonly node?: string,
  ) {
    super(`erpc ${klass}${node ? ` on ${node}` : ''}: ${showTerm(reason)}`);
    this.class = klass;
  }
}

/** The connection to `node` is gone (or never came up); `reason` says why. */
export class NodeDownError extends DistributionError {
  override readonly code = 'NODE_DOWN';
  constructor(
    readonly node: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`node ${node} is down: ${reason}`, options);
  }
}

/** The other side did not prove knowledge of our cookie (or refused our proof). */
export class CookieMismatchError extends DistributionError {
  override readonly code = 'COOKIE_MISMATCH';
  constructor(
    readonly node: string,
    readonly direction: 'outgoing' | 'incoming',
  ) {
    super(
      direction === 'outgoing'
        ? `connection to ${node} refused: the cookie was wrong (${node} rejected our challenge reply or sent a wrong ack)`
        : `connection from ${node} rejected: the cookie was wrong (its challenge reply did not match our cookie)`,
    );
  }
}

export class TimeoutError extends DistributionError {
  override readonly code = 'TIMEOUT';
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
  ) {
    super(`${operation} timed out after ${timeoutMs} ms`);
  }
}

export type EpmdFailure = 'unreachable' | 'name_taken' | 'not_registered' | 'protocol';

export class EpmdError extends DistributionError {
  override readonly code = 'EPMD';
  constructor(
    readonly reason: EpmdFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The handshake failed for a reason other than the cookie (refused, malformed, timed out). */
export class HandshakeError extends DistributionError {
  override readonly code = 'HANDSHAKE';
}

/** The peer broke the protocol (bad frame, bad control message); the connection is closed. */
export class ProtocolError extends DistributionError {
  override readonly code = 'DIST_PROTOCOL';
}

/** A TS process was exited (or a call's server went down); `reason` is the exit reason. */
export class ProcessExitError extends DistributionError {
  override readonly code = 'PROCESS_EXIT';
  constructor(
    readonly reason: Term,
    what = 'process exited',
  ) {
    super(`${what}: ${showTerm(reason)}`);
  }
}

/** `rpc:call` via rex answered `{badrpc, Reason}`. */
export class BadRpcError extends DistributionError {
  override readonly code = 'BADRPC';
  constructor(
    readonly reason: Term,
    readonly node: string,
  ) {
    super(`rpc to ${node} failed: {badrpc, ${showTerm(reason)}}`);
  }
}

/** `eval` could not scan or parse the expression. */
export class EvalSyntaxError extends DistributionError {
  override readonly code = 'EVAL_SYNTAX';
  constructor(
    /** `{error, ErrorInfo, ...}` as erl_scan / erl_parse returned it. */
    readonly reason: Term,
    readonly text: string,
    /** The peer's own wording (`Mod:format_error/1`), when it could be had. */
    readonly description?: string,
  ) {
    super(`cannot parse ${JSON.stringify(text)}: ${description ?? showTerm(reason)}`);
  }
}
