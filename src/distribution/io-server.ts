/**
 * The group leader baton hands to code it runs on a peer. Every `io:format` in that
 * code is an `io_request` to this process and blocks until it answers, so it answers
 * everything: output requests with `ok` (the text goes to baton's log), input requests
 * with `{error, enotsup}` / `eof`, unknown ones with `{error, request}`.
 */
import { Atom, asList, atom, Charlist, ImproperList, Pid, type Term, Tuple, tuple } from '../etf/index.js';

const IO_REQUEST = atom('io_request');
const IO_REPLY = atom('io_reply');
const OK = atom('ok');
const ERROR = atom('error');
const UNICODE = atom('unicode');
const LATIN1 = atom('latin1');

export type IoAction =
  | { kind: 'reply'; to: Pid; replyAs: Term; reply: Term; output?: string }
  /** Output whose text is `apply(M, F, A)` on the requester's node (how `io:format` arrives). */
  | { kind: 'apply'; to: Pid; replyAs: Term; module: Atom; fun: Atom; args: Term[]; encoding: Atom }
  | { kind: 'ignore' };

/**
 * Flattens chardata / iodata to a string (`unicode:characters_to_list/2` for the
 * encoding). Walked with a stack of pending parts, not by recursion: chardata may nest
 * as deep as the term that carries it.
 */
export function chardataToString(data: Term, encoding: Atom = UNICODE): string | undefined {
  let out = '';
  // Parts still to flatten, the next one last.
  const pending: Term[] = [data];
  while (pending.length > 0) {
    const t = pending.pop()!;
    if (typeof t === 'number') {
      if (!Number.isInteger(t) || t < 0 || t > 0x10ffff) return undefined;
      out += String.fromCodePoint(t);
    } else if (t instanceof Uint8Array) {
      out += Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString(encoding === LATIN1 ? 'latin1' : 'utf8');
    } else if (t instanceof Charlist) {
      out += t.text;
    } else if (Array.isArray(t) || (t instanceof ImproperList && t.tail instanceof Uint8Array)) {
      const elements = Array.isArray(t) ? t : t.elements;
      if (!Array.isArray(t)) pending.push(t.tail);
      for (let i = elements.length - 1; i >= 0; i--) pending.push(elements[i]!);
    } else {
      return undefined;
    }
  }
  return out;
}

function single(to: Pid, replyAs: Term, req: Term): IoAction {
  const reply = (r: Term, output?: string): IoAction => ({
    kind: 'reply',
    to,
    replyAs,
    reply: r,
    ...(output !== undefined ? { output } : {}),
  });
  if (req instanceof Tuple) {
    const [op, a, b, c, d] = req.elements;
    if (op === atom('put_chars')) {
      if (req.length === 3 && a instanceof Atom) {
        const text = chardataToString(b!, a);
        return text === undefined ? reply(tuple(ERROR, atom('put_chars'))) : reply(OK, text);
      }
      if (req.length === 2) {
        const text = chardataToString(a!, LATIN1);
        return text === undefined ? reply(tuple(ERROR, atom('put_chars'))) : reply(OK, text);
      }
      const args5 = d === undefined ? undefined : asList(d);
      if (req.length === 5 && a instanceof Atom && b instanceof Atom && c instanceof Atom && args5 !== undefined) {
        return { kind: 'apply', to, replyAs, module: b, fun: c, args: args5, encoding: a };
      }
      const args4 = c === undefined ? undefined : asList(c);
      if (req.length === 4 && a instanceof Atom && b instanceof Atom && args4 !== undefined) {
        return { kind: 'apply', to, replyAs, module: a, fun: b, args: args4, encoding: LATIN1 };
      }
    }
    if (
      op === atom('get_chars') ||
      op === atom('get_line') ||
      op === atom('get_until') ||
      op === atom('get_password')
    ) {
      return reply(atom('eof'));
    }
    if (op === atom('setopts')) return reply(OK);
    if (op === atom('get_geometry')) return reply(tuple(ERROR, atom('enotsup')));
  }
  if (req === atom('getopts')) return reply([tuple(atom('binary'), atom('false')), tuple(atom('encoding'), UNICODE)]);
  return reply(tuple(ERROR, atom('request')));
}

/** What to do with one message received by the io server. */
export function ioAction(message: Term): IoAction | IoAction[] {
  if (!(message instanceof Tuple) || message.length !== 4 || message.elements[0] !== IO_REQUEST)
    return { kind: 'ignore' };
  const [, from, replyAs, req] = message.elements;
  if (!(from instanceof Pid)) return { kind: 'ignore' };
  const batch = req instanceof Tuple && req.elements[0] === atom('requests') ? asList(req.elements[1]!) : undefined;
  if (batch !== undefined) {
    // A batch: every part runs, one reply (the last part's) answers the whole.
    const parts = batch.map((r) => single(from, replyAs!, r));
    return parts.length > 0 ? parts : { kind: 'reply', to: from, replyAs: replyAs!, reply: OK };
  }
  return single(from, replyAs!, req!);
}

export function ioReply(replyAs: Term, reply: Term): Tuple {
  return tuple(IO_REPLY, replyAs, reply);
}
