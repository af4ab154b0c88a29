/**
 * erpc over SPAWN_REQUEST, the way `erpc:call/5` does it: the peer spawns
 * `erpc:execute_call(Ref, M, F, A)` with a monitor whose reference is the request id;
 * the process exits with `{Ref, return | throw | exit, V}` or `{Ref, error, E, Stack}`,
 * and that exit reason is the answer. These are the pure parts.
 */
import { Atom, Reference, Tuple, atom, termEquals, tuple, type Term } from '../etf/index.js';
import { ErpcError, NodeDownError } from './errors.js';

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

/** The answer carried by the monitor's exit reason. */
export function erpcOutcome(reason: Term, res: Reference, node: string): ErpcOutcome {
  if (reason instanceof Tuple && reason.length >= 3 && reason.elements[0] instanceof Reference && termEquals(reason.elements[0], res)) {
    const [, kind, value, stack] = reason.elements;
    if (kind === RETURN && reason.length === 3) return { ok: true, value: value! };
    if (kind === THROW && reason.length === 3) return { ok: false, error: new ErpcError('throw', value!, [], node) };
    if (kind === EXIT && reason.length === 3) return { ok: false, error: new ErpcError('exit', value!, [], node) };
    if (kind === ERROR && reason.length === 4) {
      return { ok: false, error: new ErpcError('error', value!, Array.isArray(stack) ? stack : [], node) };
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
  const list = Array.isArray(options) ? options : [];
  const has = (name: string): boolean =>
    list.some((o) => o === atom(name) || (o instanceof Tuple && o.elements[0] === atom(name)));
  return { monitor: has('monitor'), link: has('link') };
}
