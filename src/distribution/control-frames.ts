/**
 * The 'p' pass-through frames that carry control messages (no atom cache, no
 * fragments): one buffer for the usual frame, large binaries written as they are, and
 * a SPAWN_REQUEST template patched per erpc call.
 */
import {
  type Atom,
  type DecodeOptions,
  decodeFrom,
  encodeSequence,
  encodeWithoutVersion,
  type Term,
  Tuple,
  tags,
} from '../etf/index.js';
import { type Control, encodeControl } from './control.js';
import { ProtocolError } from './errors.js';

const PASS_THROUGH = 112; // 'p'

/** Binaries at least this large are written to the socket as they are, never copied into an encoding. */
const ZERO_COPY_BINARY = 16 * 1024;

/** Whether a large binary sits in the top levels of `term` (erpc args, a message tuple). */
function hasLargeBinary(term: Term, depth: number): boolean {
  if (term instanceof Uint8Array) return term.length >= ZERO_COPY_BINARY;
  if (depth === 0) return false;
  const elements = Array.isArray(term) ? term : term instanceof Tuple ? term.elements : undefined;
  if (elements === undefined) return false;
  // A loop rather than `some` with a closure: this runs for every frame sent.
  for (let i = 0; i < elements.length; i++) if (hasLargeBinary(elements[i]!, depth - 1)) return true;
  return false;
}

/**
 * The external format of `term` (no version byte) as a list of buffers in which large
 * binaries appear as themselves. Lists and tuples on the way to them are written by
 * hand (tags.LIST_EXT, never STRING_EXT: a list holding a binary is not a string); every
 * other term is `encodeWithoutVersion`'s.
 */
function encodeChunks(term: Term, out: Buffer[], depth: number): void {
  if (!hasLargeBinary(term, depth)) {
    out.push(encodeWithoutVersion(term));
    return;
  }
  if (term instanceof Uint8Array) {
    const head = Buffer.allocUnsafe(5);
    head[0] = tags.BINARY_EXT;
    head.writeUInt32BE(term.length, 1);
    out.push(head, Buffer.isBuffer(term) ? term : Buffer.from(term.buffer, term.byteOffset, term.byteLength));
    return;
  }
  const elements = Array.isArray(term) ? term : (term as Tuple).elements;
  if (Array.isArray(term)) {
    const head = Buffer.allocUnsafe(5);
    head[0] = tags.LIST_EXT;
    head.writeUInt32BE(elements.length, 1);
    out.push(head);
  } else if (elements.length < 256) {
    out.push(Buffer.from([tags.SMALL_TUPLE_EXT, elements.length]));
  } else {
    const head = Buffer.allocUnsafe(5);
    head[0] = tags.LARGE_TUPLE_EXT;
    head.writeUInt32BE(elements.length, 1);
    out.push(head);
  }
  for (const e of elements) encodeChunks(e, out, depth - 1);
  if (Array.isArray(term)) out.push(Buffer.from([tags.NIL_EXT]));
}

const VERSION_BYTE = Buffer.from([tags.VERSION]);

/**
 * The bytes of one frame, length header included, as a list of buffers to write
 * together (large binaries in the payload are not copied at all).
 */
export function encodeFrame(ctl: Term, payload?: Term): Buffer[] {
  if (payload === undefined || !hasLargeBinary(payload, 3)) {
    // The usual frame: length, type, control and payload in a single buffer (one write).
    const frame = encodeSequence(payload === undefined ? [ctl] : [ctl, payload], 5);
    frame.writeUInt32BE(frame.length - 4, 0);
    frame[4] = PASS_THROUGH;
    return [frame];
  }
  return frameWithControl(encodeSequence([ctl]), payload);
}

type SpawnRequest = Extract<Control, { kind: 'spawn_request' }>;

/**
 * SPAWN_REQUEST frames for the erpc calls of one connection. Every call's control
 * tuple is the same bytes (caller, group leader, MFA, options) but for the request id's
 * words, so it is encoded once and patched with each id: encoding the tuple was a third
 * of the JS time of a tiny erpc call. A request that differs in anything but the id
 * re-encodes the template.
 */
export class SpawnRequestFrames {
  /** What the template was made from (not the message itself: its arguments may be large). */
  private made:
    | (Omit<SpawnRequest, 'kind' | 'reqId' | 'args'> & { node: Atom; creation: number; words: number })
    | undefined;
  private template: Buffer = Buffer.alloc(0);
  /** Where the request id's words start in `template`. */
  private idsAt = 0;

  frame(msg: SpawnRequest): Buffer[] {
    if (!this.fits(msg)) this.prepare(msg);
    const ids = msg.reqId.ids;
    const ctl = this.template;
    for (let i = 0; i < ids.length; i++) ctl.writeUInt32BE(ids[i]!, this.idsAt + 4 * i);
    return frameWithControl(ctl, msg.args);
  }

  private fits(msg: SpawnRequest): boolean {
    const t = this.made;
    return (
      t !== undefined &&
      msg.from === t.from &&
      msg.groupLeader === t.groupLeader &&
      msg.module === t.module &&
      msg.fun === t.fun &&
      msg.arity === t.arity &&
      msg.options === t.options &&
      msg.reqId.node === t.node &&
      msg.reqId.creation === t.creation &&
      msg.reqId.ids.length === t.words
    );
  }

  private prepare(msg: SpawnRequest): void {
    const { ctl } = encodeControl(msg, 0n);
    this.template = encodeSequence([ctl]);
    // Version byte, tags.SMALL_TUPLE_EXT and arity, SMALL_INTEGER_EXT and the operation, then
    // the request id, whose id words are its last bytes.
    this.idsAt = 5 + encodeWithoutVersion(msg.reqId).length - 4 * msg.reqId.ids.length;
    const { from, groupLeader, module, fun, arity, options, reqId } = msg;
    this.made = {
      from,
      groupLeader,
      module,
      fun,
      arity,
      options,
      node: reqId.node,
      creation: reqId.creation,
      words: reqId.ids.length,
    };
  }
}

/** A frame of already encoded control bytes (version byte included) and a payload term. */
function frameWithControl(ctl: Buffer, payload: Term): Buffer[] {
  if (!hasLargeBinary(payload, 3)) {
    const frame = encodeSequence([payload], 5 + ctl.length);
    ctl.copy(frame, 5);
    frame.writeUInt32BE(frame.length - 4, 0);
    frame[4] = PASS_THROUGH;
    return [frame];
  }
  const head = Buffer.allocUnsafe(5 + ctl.length);
  head[4] = PASS_THROUGH;
  ctl.copy(head, 5);
  const parts: Buffer[] = [head, VERSION_BYTE];
  encodeChunks(payload, parts, 3);
  let size = head.length - 4;
  for (let i = 1; i < parts.length; i++) size += parts[i]!.length;
  head.writeUInt32BE(size, 0);
  return parts;
}

/** Splits a frame body (after the length) into control term and payload. */
export function decodeFrame(frame: Buffer, options?: DecodeOptions): { ctl: Term; payload?: Term; views: number } {
  if (frame[0] !== PASS_THROUGH) {
    throw new ProtocolError(`unexpected frame type ${frame[0]} (atom cache headers were not negotiated)`);
  }
  const first = decodeFrom(frame, 1, options);
  if (first.offset === frame.length) return { ctl: first.term, views: first.views };
  const second = decodeFrom(frame, first.offset, options);
  if (second.offset !== frame.length)
    throw new ProtocolError(`${frame.length - second.offset} trailing bytes in frame`);
  return { ctl: first.term, payload: second.term, views: first.views + second.views };
}
