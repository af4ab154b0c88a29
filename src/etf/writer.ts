/**
 * The encoder's output buffer, and the writing of every term that holds no other term:
 * numbers, atoms, binaries, bitstrings, pids, ports, references, funs, charlists.
 * Lists, tuples and maps are encoder.ts's and encode-stack.ts's.
 */
import { EtfEncodeError } from './errors.js';
import * as T from './tags.js';
import { type Atom, BitString, Charlist, ExportFun, Float, Fun, Pid, Port, Reference, type Term } from './terms.js';

const SCRATCH_SIZE = 64 * 1024;
// One scratch buffer serves every small encode (encoding is synchronous, so never
// re-entered); results are copied out of it, larger ones get a buffer of their own.
let scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

const MAX_U32 = 0xffffffff;
// Port ids above this did not exist before V4_PORT_EXT; the BEAM writes them with it.
const MAX_OLD_PORT_ID = (1n << 28n) - 1n;
const TWO_64 = 1n << 64n;

export class Writer {
  buf: Buffer;
  pos = 0;
  constructor(
    readonly latin1Atoms: boolean,
    size?: number,
  ) {
    this.buf = size === undefined || size <= SCRATCH_SIZE / 4 ? scratch : Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  tagU8(tag: number, v: number): void {
    this.ensure(2);
    this.buf[this.pos++] = tag;
    this.buf[this.pos++] = v;
  }

  tagU32(tag: number, v: number): void {
    this.ensure(5);
    this.buf[this.pos++] = tag;
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  /** The written bytes, detached from the scratch buffer. */
  take(): Buffer {
    if (this.buf === scratch && this.pos > SCRATCH_SIZE / 4) {
      // Cheaper to give this scratch away than to copy a large result out of it.
      scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
      return this.buf.subarray(0, this.pos);
    }
    if (this.buf === scratch) {
      const out = Buffer.allocUnsafe(this.pos);
      scratch.copy(out, 0, 0, this.pos);
      return out;
    }
    return this.buf.subarray(0, this.pos);
  }
}

export function refusal(value: unknown): string {
  if (typeof value === 'string') {
    return 'a JS string is ambiguous in Erlang: use atom(s), Buffer.from(s) for a binary, or charlist(s)';
  }
  if (typeof value === 'boolean') return `a JS boolean: use atom('${value}')`;
  if (value === null || value === undefined) return `${value} has no Erlang term: use atom('undefined') or atom('nil')`;
  if (typeof value === 'object') return `an object of class ${value.constructor?.name ?? 'null'} is not a term`;
  return `a JS ${typeof value} is not a term`;
}

export function writeInteger(w: Writer, n: number): void {
  if (n >= 0 && n <= 255) {
    w.tagU8(T.SMALL_INTEGER_EXT, n);
  } else if (n >= -0x80000000 && n <= 0x7fffffff) {
    w.ensure(5);
    w.buf[w.pos++] = T.INTEGER_EXT;
    w.buf.writeInt32BE(n, w.pos);
    w.pos += 4;
  } else if (Number.isSafeInteger(n)) {
    // Up to 7 bytes: no need for bigint arithmetic.
    let v = Math.abs(n);
    const digits: number[] = [];
    while (v > 0) {
      digits.push(v % 256);
      v = Math.floor(v / 256);
    }
    w.ensure(3 + digits.length);
    w.buf[w.pos++] = T.SMALL_BIG_EXT;
    w.buf[w.pos++] = digits.length;
    w.buf[w.pos++] = n < 0 ? 1 : 0;
    for (const d of digits) w.buf[w.pos++] = d;
  } else {
    writeBigint(w, BigInt(n));
  }
}

export function writeBigint(w: Writer, n: bigint): void {
  if (n >= -0x80000000n && n <= 0x7fffffffn) return writeInteger(w, Number(n));
  const negative = n < 0n;
  let hex = (negative ? -n : n).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const len = hex.length / 2;
  if (len <= 255) {
    w.ensure(3 + len);
    w.buf[w.pos++] = T.SMALL_BIG_EXT;
    w.buf[w.pos++] = len;
  } else {
    if (len > MAX_U32) throw new EtfEncodeError('integer too large for LARGE_BIG_EXT');
    w.ensure(6 + len);
    w.tagU32(T.LARGE_BIG_EXT, len);
  }
  w.buf[w.pos++] = negative ? 1 : 0;
  // Little-endian digits: walk the big-endian hex string from its end.
  for (let i = hex.length - 2; i >= 0; i -= 2) w.buf[w.pos++] = parseInt(hex.substring(i, i + 2), 16);
}

export function writeFloat(w: Writer, v: number): void {
  if (!Number.isFinite(v)) throw new EtfEncodeError(`${v} is not an Erlang float`);
  w.ensure(9);
  w.buf[w.pos++] = T.NEW_FLOAT_EXT;
  w.buf.writeDoubleBE(v, w.pos);
  w.pos += 8;
}

export function writeAtom(w: Writer, a: Atom): void {
  const name = a.name;
  const len = name.length;
  if (!w.latin1Atoms && len <= SHORT_ATOM) {
    // Node, module and function names in every control message: copy while checking
    // for ASCII in one pass, and fall through to the general case at the first byte that is not.
    w.ensure(2 + len);
    const buf = w.buf;
    const start = w.pos;
    let pos = start + 2;
    let i = 0;
    for (; i < len; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos++] = c;
    }
    if (i === len) {
      buf[start] = T.SMALL_ATOM_UTF8_EXT;
      buf[start + 1] = len;
      w.pos = pos;
      return;
    }
  }
  let ascii = true;
  let latin1 = true;
  for (let i = 0; i < len; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80) {
      ascii = false;
      if (c > 0xff) {
        latin1 = false;
        break;
      }
    }
  }
  if (w.latin1Atoms && latin1) {
    if (len > 255) throw new EtfEncodeError(`atom of ${len} characters (at most 255)`);
    w.ensure(3 + len);
    w.buf[w.pos++] = T.ATOM_EXT;
    w.buf[w.pos++] = len >> 8;
    w.buf[w.pos++] = len & 0xff;
    w.pos += w.buf.write(name, w.pos, len, 'latin1');
    return;
  }
  const bytes = ascii ? len : Buffer.byteLength(name, 'utf8');
  if (bytes > 255 && [...name].length > 255)
    throw new EtfEncodeError(`atom of ${[...name].length} characters (at most 255)`);
  w.ensure(3 + bytes);
  if (bytes <= 255) {
    w.buf[w.pos++] = T.SMALL_ATOM_UTF8_EXT;
    w.buf[w.pos++] = bytes;
  } else {
    w.buf[w.pos++] = T.ATOM_UTF8_EXT;
    w.buf[w.pos++] = bytes >> 8;
    w.buf[w.pos++] = bytes & 0xff;
  }
  w.pos += ascii ? w.buf.write(name, w.pos, len, 'latin1') : w.buf.write(name, w.pos, bytes, 'utf8');
}

/** Atoms up to this length are copied by a JS loop: cheaper than a call into Buffer.write. */
const SHORT_ATOM = 64;

/** Writes a number or a bigint; refuses any other value that is not an object. */
export function writeScalar(w: Writer, term: Term): void {
  if (typeof term === 'number') return writeNumber(w, term);
  if (typeof term === 'bigint') return writeBigint(w, term);
  throw new EtfEncodeError(refusal(term));
}

/**
 * Writes an object term that holds no other term and is not an atom or a binary (which
 * the callers write first, being the commonest); refuses an object that is not a term.
 * Lists, tuples, maps and improper lists are the encoder's.
 */
export function writeOther(w: Writer, term: object): void {
  if (term instanceof Pid) return writePid(w, term);
  if (term instanceof Reference) return writeReference(w, term);
  if (term instanceof Charlist) return writeCharlist(w, term);
  if (term instanceof Float) return writeFloat(w, term.value);
  if (term instanceof BitString) return writeBitString(w, term);
  if (term instanceof Port) return writePort(w, term);
  if (term instanceof ExportFun) {
    w.u8(T.EXPORT_EXT);
    writeAtom(w, term.module);
    writeAtom(w, term.fun);
    return w.tagU8(T.SMALL_INTEGER_EXT, term.arity);
  }
  if (term instanceof Fun) {
    w.u8(T.NEW_FUN_EXT);
    return w.bytes(term.raw);
  }
  throw new EtfEncodeError(refusal(term));
}

export function writeNumber(w: Writer, n: number): void {
  if (Number.isInteger(n)) writeInteger(w, n);
  else writeFloat(w, n);
}

/** Whether `term_to_binary` writes this list as STRING_EXT: at most 65535 integers 0–255. */
export function isByteString(list: Term[]): boolean {
  if (list.length > 0xffff) return false;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (typeof c !== 'number' || !(c >= 0 && c <= 255) || (c | 0) !== c) return false;
  }
  return true;
}

/** A list that `isByteString`, as STRING_EXT (or NIL_EXT when empty). */
export function writeByteString(w: Writer, list: Term[]): void {
  const n = list.length;
  if (n === 0) return w.u8(T.NIL_EXT);
  w.ensure(3 + n);
  w.buf[w.pos++] = T.STRING_EXT;
  w.buf[w.pos++] = n >> 8;
  w.buf[w.pos++] = n & 0xff;
  for (let i = 0; i < n; i++) w.buf[w.pos++] = list[i] as number;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is Latin-1, control characters included.
export const NOT_LATIN1 = /[^\x00-\xff]/;

function writeCharlist(w: Writer, list: Charlist): void {
  const bytes = list.latin1Bytes();
  if (bytes !== undefined) {
    // Decoded from STRING_EXT: written back as it came, without building the text.
    w.ensure(3 + bytes.length);
    w.buf[w.pos++] = T.STRING_EXT;
    w.buf[w.pos++] = bytes.length >> 8;
    w.buf[w.pos++] = bytes.length & 0xff;
    w.bytes(bytes);
    return;
  }
  const text = list.text;
  // A regex rather than a charCodeAt loop: V8 answers it at once for one-byte strings.
  if (text.length > 0xffff || NOT_LATIN1.test(text)) {
    const points = list.codePoints();
    if (isByteString(points)) return writeByteString(w, points);
    w.tagU32(T.LIST_EXT, points.length);
    for (let i = 0; i < points.length; i++) writeInteger(w, points[i]!);
    return w.u8(T.NIL_EXT);
  }
  if (text.length === 0) return w.u8(T.NIL_EXT);
  w.ensure(3 + text.length);
  w.buf[w.pos++] = T.STRING_EXT;
  w.buf[w.pos++] = text.length >> 8;
  w.buf[w.pos++] = text.length & 0xff;
  w.pos += w.buf.write(text, w.pos, text.length, 'latin1');
}

function writeBitString(w: Writer, b: BitString): void {
  if (!(b.bits >= 1 && b.bits <= 7) || b.data.length === 0) {
    throw new EtfEncodeError(`BitString needs data and 1 to 7 bits in its last byte, got ${b.bits}`);
  }
  w.tagU32(T.BIT_BINARY_EXT, b.data.length);
  w.u8(b.bits);
  w.bytes(b.data);
}

function writePid(w: Writer, p: Pid): void {
  w.u8(T.NEW_PID_EXT);
  writeAtom(w, p.node);
  w.u32(p.id);
  w.u32(p.serial);
  w.u32(p.creation);
}

function writePort(w: Writer, p: Port): void {
  if (p.id < 0n || p.id >= TWO_64) throw new EtfEncodeError(`port id ${p.id} does not fit 64 bits`);
  if (p.id <= MAX_OLD_PORT_ID) {
    w.u8(T.NEW_PORT_EXT);
    writeAtom(w, p.node);
    w.u32(Number(p.id));
  } else {
    w.u8(T.V4_PORT_EXT);
    writeAtom(w, p.node);
    w.ensure(8);
    w.buf.writeBigUInt64BE(p.id, w.pos);
    w.pos += 8;
  }
  w.u32(p.creation);
}

function writeReference(w: Writer, r: Reference): void {
  const n = r.ids.length;
  if (n < 1 || n > 5) throw new EtfEncodeError(`reference with ${n} id words (1 to 5)`);
  w.ensure(3);
  w.buf[w.pos++] = T.NEWER_REFERENCE_EXT;
  w.buf[w.pos++] = n >> 8;
  w.buf[w.pos++] = n & 0xff;
  writeAtom(w, r.node);
  w.u32(r.creation);
  for (const id of r.ids) w.u32(id);
}
