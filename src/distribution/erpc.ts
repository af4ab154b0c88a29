/**
 * erpc over SPAWN_REQUEST, the way `erpc:call/5` does it: the peer spawns
 * `erpc:execute_call(Ref, M, F, A)` with a monitor whose reference is the request id;
 * the process exits with `{Ref, return | throw | exit, V}` or `{Ref, error, E, Stack}`,
 * and that exit reason is the answer. These are the pure parts.
 */
import { type Atom, asList, atom, Pid, Reference, type Term, Tuple, tuple } from '../etf/index.js';
import type { Connection } from './connection.js';
import type { Control } from './control.js';
import { ErpcError, NodeDownError, TimeoutError } from './errors.js';

const ERPC = atom('erpc');
const EXECUTE_CALL = atom('execute_call');
const RETURN = atom('return');
const THROW = atom('throw');
const EXIT = atom('exit');
const ERROR = atom('error');
const NOCONNECTION = atom('noconnection');
const SIGNAL = atom('signal');

export const erpcMfa = { module: ERPC, fun: EXECUTE_CALL, arity: 4 } as const;

export type ErpcOutcome = { ok: true; value: Term } | { ok: false; error: Error };

/** termEquals for two references, without its generic dispatch (this runs for every answer). */
function sameRef(a: Reference, b: Reference): boolean {
  if (a.node !== b.node || a.creation !== b.creation || a.ids.length !== b.ids.length) return false;
  for (let i = 0; i < a.ids.length; i++) if (a.ids[i] !== b.ids[i]) return false;
  return true;
}

/** The answer carried by the monitor's exit reason. */
export function erpcOutcome(reason: Term, res: Reference, node: string): ErpcOutcome {
  if (
    reason instanceof Tuple &&
    reason.length >= 3 &&
    reason.elements[0] instanceof Reference &&
    sameRef(reason.elements[0], res)
  ) {
    const [, kind, value, stack] = reason.elements;
    if (kind === RETURN && reason.length === 3) return { ok: true, value: value! };
    if (kind === THROW && reason.length === 3) return { ok: false, error: new ErpcError('throw', value!, [], node) };
    if (kind === EXIT && reason.length === 3) return { ok: false, error: new ErpcError('exit', value!, [], node) };
    if (kind === ERROR && reason.length === 4) {
      return { ok: false, error: new ErpcError('error', value!, asList(stack!) ?? [], node) };
    }
    // {Ref, error, {erpc, Reason}}: erpc found a bad argument before calling.
    if (kind === ERROR && reason.length === 3) return { ok: false, error: new ErpcError('error', value!, [], node) };
  }
  if (reason === NOCONNECTION) return { ok: false, error: new NodeDownError(node, 'noconnection') };
  // The process died some other way (killed, a link): erpc raises exit({signal, Reason}).
  return { ok: false, error: new ErpcError('exit', tuple(SIGNAL, reason), [], node) };
}

/** A SPAWN_REPLY with an atom instead of a pid: `error({erpc, Reason})`. */
export function spawnFailure(reason: Atom, node: string): Error {
  if (reason === NOCONNECTION) return new NodeDownError(node, 'noconnection');
  return new ErpcError('error', tuple(ERPC, reason), [], node);
}

/** Whether a spawn option list asks for a monitor / link (`monitor`, `{monitor, Opts}`, `link`). */
export function spawnOptions(options: Term): { monitor: boolean; link: boolean } {
  const list = asList(options) ?? [];
  const has = (name: string): boolean =>
    list.some((o) => o === atom(name) || (o instanceof Tuple && o.elements[0] === atom(name)));
  return { monitor: has('monitor'), link: has('link') };
}

interface PendingCall {
  conn: Connection;
  reqId: Reference;
  res: Reference;
  pid?: Pid;
  resolve(v: Term): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

const KILL = atom('kill');

/**
 * The erpc calls in flight, keyed by a number derived from the request id (the hot
 * path builds no strings). A call ends with its monitor exit, a spawn failure, its
 * connection closing (at once: `NodeDownError`), or its timeout (the remote process
 * is demonitored and killed, or killed as soon as its spawn reply arrives).
 */
export class ErpcCalls {
  private readonly calls = new Map<number, PendingCall>();
  private readonly abandoned = new Map<number, Connection>();

  constructor(
    /** The pid erpc requests come from; replies are addressed to it. */
    private readonly self: () => Pid,
    /** A number unique among our own references, or -1 for others. */
    private readonly keyOf: (ref: Reference) => number,
  ) {}

  get size(): number {
    return this.calls.size;
  }

  call(
    conn: Connection,
    reqId: Reference,
    res: Reference,
    spawn: Control,
    timeoutMs: number | undefined,
    what: () => string,
  ): Promise<Term> {
    return new Promise<Term>((resolve, reject) => {
      const key = this.keyOf(reqId);
      const call: PendingCall = { conn, reqId, res, resolve, reject };
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        call.timer = setTimeout(() => {
          if (!this.calls.delete(key)) return;
          if (call.pid !== undefined) this.kill(conn, call.pid, reqId);
          else this.abandoned.set(key, conn);
          reject(new TimeoutError(what(), timeoutMs));
        }, timeoutMs);
      }
      this.calls.set(key, call);
      if (!conn.send(spawn))
        this.finish(key, call, new NodeDownError(conn.peerName, conn.closeReason || 'connection closed'));
    });
  }

  /** Handles a SPAWN_REPLY if it answers one of our calls. */
  onSpawnReply(msg: Extract<Control, { kind: 'spawn_reply' }>, conn: Connection): boolean {
    const key = this.keyOf(msg.reqId);
    const call = this.calls.get(key);
    if (call !== undefined) {
      if (msg.result instanceof Pid) call.pid = msg.result;
      else this.finish(key, call, spawnFailure(msg.result, conn.peerName));
      return true;
    }
    if (this.abandoned.delete(key)) {
      if (msg.result instanceof Pid) this.kill(conn, msg.result, msg.reqId);
      return true;
    }
    return false;
  }

  /** Handles a monitor exit if it is the answer to one of our calls. */
  onMonitorExit(msg: Extract<Control, { kind: 'monitor_exit' }>, conn: Connection): boolean {
    const key = this.keyOf(msg.ref);
    const call = this.calls.get(key);
    if (call === undefined) return false;
    const out = erpcOutcome(msg.reason, call.res, conn.peerName);
    this.finish(key, call, out.ok ? undefined : out.error, out.ok ? out.value : undefined);
    return true;
  }

  connectionClosed(conn: Connection, reason: string): void {
    const down = new NodeDownError(conn.peerName, reason);
    for (const [key, call] of this.calls) if (call.conn === conn) this.finish(key, call, down);
    for (const [key, c] of this.abandoned) if (c === conn) this.abandoned.delete(key);
  }

  private finish(key: number, call: PendingCall, error?: Error, value?: Term): void {
    this.calls.delete(key);
    if (call.timer) clearTimeout(call.timer);
    if (error) call.reject(error);
    else call.resolve(value!);
  }

  private kill(conn: Connection, pid: Pid, reqId: Reference): void {
    conn.send({ kind: 'demonitor', from: this.self(), target: pid, ref: reqId });
    conn.send({ kind: 'exit2', from: this.self(), to: pid, reason: KILL });
  }
}
