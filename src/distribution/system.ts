/**
 * The processes every node is expected to have, as TS processes: the group leader io
 * server, and stand-ins for `rex` and `net_kernel` so that peers calling them get an
 * answer rather than waiting forever.
 */
import { Atom, asList, atom, ImproperList, Pid, Reference, type Term, Tuple, tuple } from '../etf/index.js';
import { chardataToString, ioAction, ioReply } from './io-server.js';
import type { Process } from './process.js';

const GEN_CALL = atom('$gen_call');
const OK = atom('ok');
const ERROR = atom('error');
const UNDEF = atom('undef');
const BADRPC = atom('badrpc');
const EXIT = atom('EXIT');

export type ExposedFunction = (args: Term[], caller: Pid) => Term | Promise<Term>;

/** gen:reply/2: an `[alias | Ref]` tag is answered through the alias, a plain tag to the caller. */
export function replyDestination(caller: Pid, tag: Term): Pid | Reference {
  return tag instanceof ImproperList && tag.elements[0] === atom('alias') && tag.tail instanceof Reference
    ? tag.tail
    : caller;
}

/** Runs `p` as a gen_server that answers every `'$gen_call'` with `handle`'s value; other messages are dropped. */
export function serveGenCalls(p: Process, handle: (request: Term, caller: Pid) => Term | Promise<Term>): void {
  void (async () => {
    for (;;) {
      let m: Term;
      try {
        m = await p.receive();
      } catch {
        return; // the process was exited (node closed)
      }
      if (!(m instanceof Tuple) || m.elements[0] !== GEN_CALL || m.length !== 3) continue;
      const from = m.elements[1];
      if (!(from instanceof Tuple) || from.length !== 2 || !(from.elements[0] instanceof Pid)) continue;
      const [caller, tag] = from.elements as [Pid, Term];
      p.send(replyDestination(caller, tag), tuple(tag, await handle(m.elements[2]!, caller)));
    }
  })();
}

/**
 * `rex`: `rpc:call(baton@host, M, F, A)` over rex runs an exposed function or answers
 * `{badrpc, {'EXIT', {undef, ...}}}` as rex would for a missing function.
 */
export function rexHandler(lookup: (m: Atom, f: Atom) => ExposedFunction | undefined) {
  return async (req: Term, caller: Pid): Promise<Term> => {
    if (!(req instanceof Tuple) || req.elements[0] !== atom('call') || req.length < 4)
      return tuple(BADRPC, tuple(EXIT, atom('notsup')));
    const [, m, f, rawArgs] = req.elements;
    const a = rawArgs === undefined ? undefined : asList(rawArgs);
    const handler = m instanceof Atom && f instanceof Atom ? lookup(m, f) : undefined;
    if (handler === undefined || a === undefined) {
      return tuple(BADRPC, tuple(EXIT, tuple(UNDEF, [tuple(m ?? UNDEF, f ?? UNDEF, a?.length ?? 0, [])])));
    }
    try {
      return await handler(a, caller);
    } catch (err) {
      return tuple(BADRPC, tuple(EXIT, Buffer.from(String((err as Error)?.message ?? err))));
    }
  };
}

/** `net_kernel`: `net_adm:ping/1` ends with `{is_auth, Node}`; without `yes` a ping is `pang`. */
export function netKernelHandler(req: Term): Term {
  return req instanceof Tuple && req.elements[0] === atom('is_auth')
    ? atom('yes')
    : tuple(ERROR, atom('not_supported'));
}

/** Cuts output into lines per source node (an `io:format` may end mid-line). */
export class LineBuffer {
  private readonly partial = new Map<string, string>();

  constructor(private readonly emitLine: (line: string, from: string) => void) {}

  push(text: string, from: string): void {
    const lines = ((this.partial.get(from) ?? '') + text).split('\n');
    const rest = lines.pop()!;
    if (rest.length > 0) this.partial.set(from, rest);
    else this.partial.delete(from);
    for (const line of lines) this.emitLine(line, from);
  }
}

export interface IoServerDeps {
  /** Runs `apply(M, F, A)` on `node` (how `io:format` text is produced). */
  apply(node: string, module: Atom, fun: Atom, args: Term[]): Promise<Term>;
  output(text: string, from: string): void;
  onError(err: unknown): void;
}

/**
 * The group leader loop. Requests are handled one at a time, so output keeps its order;
 * every request is answered, or the remote code calling `io` would block.
 */
export function runIoServer(p: Process, deps: IoServerDeps): void {
  void (async () => {
    for (;;) {
      let message: Term;
      try {
        message = await p.receive();
      } catch {
        return;
      }
      const actions = ioAction(message);
      const list = Array.isArray(actions) ? actions : [actions];
      for (const action of list) {
        if (action.kind === 'ignore') continue;
        let text: string | undefined;
        let reply: Term = OK;
        if (action.kind === 'reply') {
          text = action.output;
          reply = action.reply;
        } else {
          // io:format arrives as {put_chars, Enc, io_lib, format, [F, A]}: the formatting runs
          // on the requester's node, where the format string's semantics live.
          try {
            text = chardataToString(
              await deps.apply(action.to.node.name, action.module, action.fun, action.args),
              action.encoding,
            );
            if (text === undefined) reply = tuple(ERROR, atom('put_chars'));
          } catch (err) {
            reply = tuple(ERROR, atom('put_chars'));
            deps.onError(err);
          }
        }
        if (text !== undefined && text.length > 0) deps.output(text, action.to.node.name);
        // A {requests, [...]} batch gets one reply, after its last part.
        if (action === list[list.length - 1]) p.send(action.to, ioReply(action.replyAs, reply));
      }
    }
  })();
}
