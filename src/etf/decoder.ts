/**
 * Decoder for the external term format.
 *
 * Input is untrusted (it comes off a socket or out of a file): every length is checked
 * against the bytes that remain before anything is allocated for it, nesting is bounded,
 * and a compressed term may not inflate past `maxDecompressedSize`. Anything refused is
 * an `EtfDecodeError` carrying the offset where decoding stopped.
 *
 * Binaries are views into the input (no copy) unless `copyBinaries` is set, or they are
 * shorter than `copyBelow`; `decodeFrom` says how many views its term holds, so a caller
 * that reuses its input buffers knows when it must not.
 */
import { inflateSync } from 'node:zlib';
import { EtfDecodeError } from './errors.js';
import * as T from './tags.js';
import {
  Atom,
  BitString,
  Charlist,
  ExportFun,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Reference,
  type Term,
  Tuple,
} from './terms.js';

export interface DecodeOptions {
  /** Deepest nesting of containers accepted (the BEAM has no limit; a JS stack does). Default 2000. */
  maxDepth?: number;
  /** Largest size a compressed term may declare and inflate to. Default 64 MiB. */
  maxDecompressedSize?: number;
  /** Copy binaries out of the input instead of returning views into it. Default false. */
  copyBinaries?: boolean;
  /**
   * Copy binaries (and STRING_EXT charlists) shorter than this many bytes even without
   * `copyBinaries`; longer ones stay views. Default 0.
   */
  copyBelow?: number;
}

const DEFAULT_MAX_DEPTH = 2000;
const DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024;
const MAX_ATOM_CHARS = 255;
const MAX_REF_WORDS = 5;

// ignoreBOM: without it a leading U+FEFF is taken for a byte-order mark and dropped, and
// the atom '\x{FEFF}a' would decode as 'a'. In a term it is a character like any other.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Shared default, so a call without options allocates nothing for them.
const NO_OPTIONS: DecodeOptions = Object.freeze({});

class Reader {
  pos: number;
  depth = 0;
  /** Views into `buf` handed out so far. */
  views = 0;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly maxDepth: number,
    /** Binary data shorter than this is copied rather than viewed (Infinity: always copied). */
    readonly copyBelow: number,
  ) {
    this.pos = start;
  }

  fail(reason: string, at = this.pos): never {
    throw new EtfDecodeError(reason, at);
  }

  need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      this.fail(`${what} needs ${n} bytes, ${this.buf.length - this.pos} left`);
    }
  }

  u8(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of input');
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2, 'a 16-bit field');
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'a 32-bit field');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** The `n` bytes of a binary's data: a copy below `copyBelow`, otherwise a view (counted). */
  data(n: number, what: string): Buffer {
    const view = this.bytes(n, what);
    if (n < this.copyBelow) return Buffer.from(view);
    this.views++;
    return view;
  }
}

function toBuffer(input: Uint8Array): Buffer {
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

function readerFor(input: Uint8Array, offset: number, options: DecodeOptions): Reader {
  const copyBelow = options.copyBinaries === true ? Infinity : (options.copyBelow ?? 0);
  return new Reader(toBuffer(input), offset, options.maxDepth ?? DEFAULT_MAX_DEPTH, copyBelow);
}

/** Decodes `input`, which must be exactly one term with its version byte (what `term_to_binary/1` returns). */
export function decode(input: Uint8Array, options: DecodeOptions = NO_OPTIONS): Term {
  const r = readerFor(input, 0, options);
  const term = versioned(r, options);
  if (r.pos !== r.buf.length) r.fail(`${r.buf.length - r.pos} bytes left after the term`);
  return term;
}

/**
 * Decodes one versioned term starting at `offset` and returns where it ended: a
 * distribution frame holds a control message and a payload back to back. `views` is
 * how many binaries in `term` are views into `input` (0: the term holds none of it).
 */
export function decodeFrom(
  input: Uint8Array,
  offset: number,
  options: DecodeOptions = NO_OPTIONS,
): { term: Term; offset: number; views: number } {
  const r = readerFor(input, offset, options);
  const term = versioned(r, options);
  return { term, offset: r.pos, views: r.views };
}

function versioned(r: Reader, options: DecodeOptions): Term {
  const start = r.pos;
  const version = r.u8();
  if (version !== T.VERSION) r.fail(`expected version byte 131, got ${version}`, start);
  if (r.pos < r.buf.length && r.buf[r.pos] === T.COMPRESSED) {
    r.pos++;
    return decompressed(r, options.maxDecompressedSize ?? DEFAULT_MAX_DECOMPRESSED);
  }
  return guarded(r);
}

/** Decodes one term that has no version byte in front of it, starting at `offset`. */
export function decodeWithoutVersion(
  input: Uint8Array,
  offset = 0,
  options: DecodeOptions = NO_OPTIONS,
): { term: Term; offset: number } {
  const r = readerFor(input, offset, options);
  const term = guarded(r);
  return { term, offset: r.pos };
}

function guarded(r: Reader): Term {
  try {
    return readTerm(r);
  } catch (err) {
    // maxDepth should keep us well inside the stack; this is the net under it.
    if (err instanceof RangeError) r.fail(`nesting exhausted the stack (${err.message})`);
    throw err;
  }
}

function decompressed(r: Reader, limit: number): Term {
  const at = r.pos;
  const size = r.u32();
  if (size > limit) r.fail(`compressed term declares ${size} bytes, over the limit of ${limit}`, at);
  let inflated: Buffer;
  let consumed: number;
  try {
    // `info` gives the engine back, whose bytesWritten is how much input zlib read: the
    // compressed term may be followed by more data (another term of a frame).
    const result = inflateSync(r.buf.subarray(r.pos), {
      maxOutputLength: Math.max(size, 1),
      info: true,
    }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    inflated = result.buffer;
    consumed = result.engine.bytesWritten;
  } catch (err) {
    return r.fail(`compressed data is not valid zlib of ${size} bytes (${(err as Error).message})`, r.pos);
  }
  if (inflated.length !== size) r.fail(`compressed term inflates to ${inflated.length} bytes, declared ${size}`, at);
  // Its views are into the inflated copy, not into the input: they are not counted.
  const inner = new Reader(inflated, 0, r.maxDepth, r.copyBelow);
  let term: Term;
  try {
    term = guarded(inner);
  } catch (err) {
    if (err instanceof EtfDecodeError) {
      r.fail(`inside compressed term at byte ${err.offset}: ${err.reason}`, at);
    }
    throw err;
  }
  if (inner.pos !== size) r.fail(`${size - inner.pos} bytes left inside compressed term`, at);
  r.pos += consumed;
  return term;
}

function enter(r: Reader): void {
  if (++r.depth > r.maxDepth) r.fail(`terms nested deeper than ${r.maxDepth}`);
}

function readTerm(r: Reader): Term {
  const at = r.pos;
  const tag = r.u8();
  switch (tag) {
    case T.SMALL_INTEGER_EXT:
      return r.u8();
    case T.INTEGER_EXT: {
      r.need(4, 'INTEGER_EXT');
      const v = r.buf.readInt32BE(r.pos);
      r.pos += 4;
      return v;
    }
    case T.SMALL_BIG_EXT:
      return big(r, r.u8());
    case T.LARGE_BIG_EXT:
      return big(r, r.u32());
    case T.NEW_FLOAT_EXT: {
      r.need(8, 'NEW_FLOAT_EXT');
      const v = r.buf.readDoubleBE(r.pos);
      r.pos += 8;
      if (!Number.isFinite(v)) r.fail('float is not finite', at);
      return Number.isInteger(v) ? new Float(v) : v;
    }
    case T.FLOAT_EXT: {
      const text = r.bytes(31, 'FLOAT_EXT').toString('latin1').replace(/\0+$/, '');
      const v = Number(text.trim());
      if (!/^\s*[-+]?\d/.test(text) || !Number.isFinite(v))
        r.fail(`FLOAT_EXT text ${JSON.stringify(text)} is not a float`, at);
      return Number.isInteger(v) ? new Float(v) : v;
    }
    case T.ATOM_EXT:
    case T.SMALL_ATOM_EXT:
    case T.ATOM_UTF8_EXT:
    case T.SMALL_ATOM_UTF8_EXT:
      return atomBody(r, tag, at);
    case T.SMALL_TUPLE_EXT:
      return tupleBody(r, r.u8());
    case T.LARGE_TUPLE_EXT:
      return tupleBody(r, r.u32());
    case T.NIL_EXT:
      return [];
    case T.STRING_EXT: {
      const len = r.u16();
      if (len === 0) return [];
      return Charlist.fromLatin1(r.data(len, 'STRING_EXT'));
    }
    case T.LIST_EXT:
      return listBody(r);
    case T.BINARY_EXT: {
      const len = r.u32();
      return r.data(len, 'BINARY_EXT');
    }
    case T.BIT_BINARY_EXT: {
      const len = r.u32();
      const bits = r.u8();
      if (bits < 1 || bits > 8) r.fail(`BIT_BINARY_EXT with ${bits} bits in its last byte`, at);
      if (len === 0) r.fail('BIT_BINARY_EXT of zero bytes', at);
      if (bits === 8) return r.data(len, 'BIT_BINARY_EXT');
      // Canonical form: the unused low bits of the last byte are zero, as the BEAM writes them.
      const data = Buffer.from(r.bytes(len, 'BIT_BINARY_EXT'));
      data[len - 1] = data[len - 1]! & ((0xff << (8 - bits)) & 0xff);
      return new BitString(data, bits);
    }
    case T.MAP_EXT:
      return mapBody(r);
    case T.NEW_PID_EXT:
    case T.PID_EXT: {
      const node = nodeAtom(r);
      r.need(tag === T.NEW_PID_EXT ? 12 : 9, 'a pid');
      const id = r.u32();
      const serial = r.u32();
      const creation = tag === T.NEW_PID_EXT ? r.u32() : r.u8();
      return new Pid(node, id, serial, creation);
    }
    case T.NEW_PORT_EXT:
    case T.PORT_EXT: {
      const node = nodeAtom(r);
      const id = r.u32();
      const creation = tag === T.NEW_PORT_EXT ? r.u32() : r.u8();
      return new Port(node, BigInt(id), creation);
    }
    case T.V4_PORT_EXT: {
      const node = nodeAtom(r);
      r.need(12, 'V4_PORT_EXT');
      const id = r.buf.readBigUInt64BE(r.pos);
      r.pos += 8;
      return new Port(node, id, r.u32());
    }
    case T.NEWER_REFERENCE_EXT:
    case T.NEW_REFERENCE_EXT: {
      const words = r.u16();
      if (words < 1 || words > MAX_REF_WORDS) r.fail(`reference with ${words} id words (1 to ${MAX_REF_WORDS})`, at);
      const node = nodeAtom(r);
      const creation = tag === T.NEWER_REFERENCE_EXT ? r.u32() : r.u8();
      r.need(words * 4, 'reference ids');
      const ids: number[] = [];
      for (let i = 0; i < words; i++) ids.push(r.u32());
      return new Reference(node, creation, ids);
    }
    case T.REFERENCE_EXT: {
      const node = nodeAtom(r);
      const id = r.u32();
      return new Reference(node, r.u8(), [id]);
    }
    case T.EXPORT_EXT: {
      const module = atomTerm(r);
      const fn = atomTerm(r);
      if (r.u8() !== T.SMALL_INTEGER_EXT) r.fail('EXPORT_EXT arity is not a small integer', at);
      return new ExportFun(module, fn, r.u8());
    }
    case T.NEW_FUN_EXT:
      return funBody(r, at);
    case T.COMPRESSED:
      return r.fail('a compressed term may only stand right after the version byte', at);
    case T.ATOM_CACHE_REF:
      return r.fail('atom cache reference outside a distribution header', at);
    default:
      return r.fail(`unknown tag ${tag}`, at);
  }
}

function big(r: Reader, n: number): number | bigint {
  const sign = r.u8();
  if (sign > 1) r.fail(`big integer sign byte ${sign}`);
  const digits = r.bytes(n, 'big integer digits');
  if (n <= 6) {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + digits[i]!;
    return sign === 1 && v !== 0 ? -v : v;
  }
  let hex = '';
  for (let i = n - 1; i >= 0; i--) hex += HEX[digits[i]!];
  let v = BigInt(`0x${hex}`);
  if (sign === 1) v = -v;
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

// Short ASCII atoms (module, function and node names, tags of control messages) recur
// in nearly every message: a small direct-mapped cache from their bytes to the atom
// skips building a string and the intern-table lookup. Bounded, so it pins at most
// CACHE_SLOTS atoms.
const CACHE_SLOTS = 1024;
const CACHE_MAX_LEN = 40;
const cacheKeys: (Uint8Array | undefined)[] = new Array(CACHE_SLOTS).fill(undefined);
const cacheAtoms: (Atom | undefined)[] = new Array(CACHE_SLOTS).fill(undefined);

function cachedAsciiAtom(buf: Buffer, pos: number, len: number): Atom | undefined {
  let h = 0x811c9dc5 ^ len;
  for (let i = 0; i < len; i++) {
    const b = buf[pos + i]!;
    if (b >= 0x80) return undefined;
    h = Math.imul(h ^ b, 0x01000193);
  }
  const slot = (h ^ (h >>> 16)) & (CACHE_SLOTS - 1);
  const key = cacheKeys[slot];
  if (key !== undefined && key.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (key[i] !== buf[pos + i]) {
        same = false;
        break;
      }
    }
    if (same) return cacheAtoms[slot];
  }
  const found = Atom.of(buf.toString('latin1', pos, pos + len));
  cacheKeys[slot] = Uint8Array.prototype.slice.call(buf, pos, pos + len);
  cacheAtoms[slot] = found;
  return found;
}

function atomBody(r: Reader, tag: number, at: number): Atom {
  const small = tag === T.SMALL_ATOM_EXT || tag === T.SMALL_ATOM_UTF8_EXT;
  const len = small ? r.u8() : r.u16();
  r.need(len, 'atom text');
  if (len <= CACHE_MAX_LEN) {
    const hit = cachedAsciiAtom(r.buf, r.pos, len);
    if (hit !== undefined) {
      r.pos += len;
      return hit;
    }
  }
  const bytes = r.bytes(len, 'atom text');
  let name: string;
  if (tag === T.ATOM_EXT || tag === T.SMALL_ATOM_EXT) {
    name = bytes.toString('latin1', 0, len);
  } else {
    let ascii = true;
    for (let i = 0; i < len; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      name = bytes.toString('latin1', 0, len);
    } else {
      try {
        name = utf8.decode(bytes);
      } catch {
        return r.fail('atom text is not valid UTF-8', at);
      }
    }
  }
  if (len > MAX_ATOM_CHARS && [...name].length > MAX_ATOM_CHARS) {
    r.fail(`atom longer than ${MAX_ATOM_CHARS} characters`, at);
  }
  return Atom.of(name);
}

function atomTerm(r: Reader): Atom {
  const at = r.pos;
  const tag = r.u8();
  if (tag === T.ATOM_EXT || tag === T.SMALL_ATOM_EXT || tag === T.ATOM_UTF8_EXT || tag === T.SMALL_ATOM_UTF8_EXT) {
    return atomBody(r, tag, at);
  }
  return r.fail(`expected an atom, found tag ${tag}`, at);
}

const nodeAtom = atomTerm;

function tupleBody(r: Reader, arity: number): Tuple {
  // Every element takes at least one byte: a larger arity cannot be real.
  r.need(arity, `a tuple of ${arity} elements`);
  enter(r);
  const elements = new Array<Term>(arity);
  for (let i = 0; i < arity; i++) elements[i] = readTerm(r);
  r.depth--;
  return new Tuple(elements);
}

function listBody(r: Reader): Term[] | ImproperList {
  const at = r.pos - 1;
  const len = r.u32();
  r.need(len + 1, `a list of ${len} elements`);
  enter(r);
  const elements = new Array<Term>(len);
  for (let i = 0; i < len; i++) elements[i] = readTerm(r);
  const tail = readTerm(r);
  r.depth--;
  if (Array.isArray(tail) || tail instanceof Charlist) {
    // [a | [b]] is [a, b]: the BEAM never writes it so, but it is the same term.
    for (const t of Array.isArray(tail) ? tail : tail.codePoints()) elements.push(t);
    return elements;
  }
  if (tail instanceof ImproperList) return new ImproperList(elements.concat(tail.elements), tail.tail);
  if (len === 0) r.fail('LIST_EXT of zero elements with a non-list tail', at);
  return new ImproperList(elements, tail);
}

function mapBody(r: Reader): Map<Term, Term> {
  const at = r.pos - 1;
  const arity = r.u32();
  r.need(arity * 2, `a map of ${arity} pairs`);
  enter(r);
  const map = new Map<Term, Term>();
  for (let i = 0; i < arity; i++) {
    const key = readTerm(r);
    const value = readTerm(r);
    if (map.has(key)) r.fail(`map has the key ${String(key)} twice`, at);
    map.set(key, value);
  }
  r.depth--;
  return map;
}

function funBody(r: Reader, at: number): Fun {
  const size = r.u32();
  // size counts itself; the fixed fields before the module atom take 25 more bytes.
  if (size < 29) r.fail(`NEW_FUN_EXT size ${size} is too small`, at);
  r.need(size - 4, 'NEW_FUN_EXT');
  const end = at + 1 + size;
  const arity = r.u8();
  r.pos += 16 + 4; // uniq (md5), index
  const numFree = r.u32();
  if (numFree > end - r.pos) r.fail(`NEW_FUN_EXT claims ${numFree} free variables`, at);
  const module = atomTerm(r);
  const oldIndex = readTerm(r);
  const oldUniq = readTerm(r);
  if (typeof oldIndex !== 'number' || typeof oldUniq !== 'number')
    r.fail('NEW_FUN_EXT old index/uniq are not integers', at);
  if (!(readTerm(r) instanceof Pid)) r.fail('NEW_FUN_EXT has no pid', at);
  enter(r);
  for (let i = 0; i < numFree; i++) readTerm(r);
  r.depth--;
  if (r.pos !== end) r.fail(`NEW_FUN_EXT size ${size} does not match its contents (${r.pos - at - 1} bytes)`, at);
  return new Fun(module, arity, Buffer.from(r.buf.subarray(at + 1, end)));
}
