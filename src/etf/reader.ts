/**
 * The decoder's byte cursor over untrusted input, and every term that holds no other
 * term: numbers, atoms, binaries, bitstrings, pids, ports, references, external funs,
 * STRING_EXT charlists, and a fun up to its free variables. Containers (tuples, lists,
 * maps, funs' free variables) are decoder.ts's, which reads them without recursion.
 *
 * Every length is checked against the bytes that remain before anything is allocated
 * for it; anything refused is an `EtfDecodeError` with the offset where decoding stopped.
 */
import { EtfDecodeError } from './errors.js';
import * as T from './tags.js';
import { Atom, BitString, Charlist, ExportFun, Float, Fun, Pid, Port, Reference, type Term } from './terms.js';

const MAX_ATOM_CHARS = 255;
const MAX_REF_WORDS = 5;

// ignoreBOM: without it a leading U+FEFF is taken for a byte-order mark and dropped, and
// the atom '\x{FEFF}a' would decode as 'a'. In a term it is a character like any other.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class Reader {
  pos: number;
  /** Views into `buf` handed out so far. */
  views = 0;
  /**
   * Terms that containers may still declare. Every term takes at least its tag byte and
   * belongs to one container, so all the elements declared in an input never outnumber
   * its bytes: checked as each container opens, this bounds what decoding allocates for
   * elements by the input's size, however the containers nest.
   */
  budget: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    /** Deepest nesting of containers accepted. */
    readonly maxDepth: number,
    /** Binary data shorter than this is copied rather than viewed (Infinity: always copied). */
    readonly copyBelow: number,
  ) {
    this.pos = start;
    this.budget = buf.length - start;
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

  /**
   * Checks a container about to open at `at`, `depth` containers deep in the whole term,
   * with `terms` elements (a map: keys and values; a list: its tail too) against
   * `maxDepth` and `budget`.
   */
  container(depth: number, terms: number, at: number): void {
    if (depth >= this.maxDepth) this.fail(`terms nested deeper than ${this.maxDepth}`, at);
    this.budget -= terms;
    if (this.budget < 0) this.fail('the containers declare more elements than the input has bytes', at);
  }

  /** The `n` bytes of a binary's data: a copy below `copyBelow`, otherwise a view (counted). */
  data(n: number, what: string): Buffer {
    const view = this.bytes(n, what);
    if (n < this.copyBelow) return Buffer.from(view);
    this.views++;
    return view;
  }
}

/**
 * The term of `tag` (already read, at offset `at`), which must be one that holds no
 * other term; a container's tag is refused here (the decoder handles those itself).
 */
export function readLeaf(r: Reader, tag: number, at: number): Term {
  switch (tag) {
    case T.SMALL_INTEGER_EXT:
      return r.u8();
    case T.INTEGER_EXT: {
      r.need(4, 'INTEGER_EXT');
      const v = r.buf.readInt32BE(r.pos);
      r.pos += 4;
      return v;
    }
    case T.ATOM_EXT:
    case T.SMALL_ATOM_EXT:
    case T.ATOM_UTF8_EXT:
    case T.SMALL_ATOM_UTF8_EXT:
      return atomBody(r, tag, at);
    case T.NIL_EXT:
      return [];
    case T.STRING_EXT: {
      const len = r.u16();
      if (len === 0) return [];
      return Charlist.fromLatin1(r.data(len, 'STRING_EXT'));
    }
    case T.BINARY_EXT:
      return r.data(r.u32(), 'BINARY_EXT');
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
    case T.NEW_PID_EXT:
    case T.PID_EXT: {
      const node = atomTerm(r);
      r.need(tag === T.NEW_PID_EXT ? 12 : 9, 'a pid');
      const id = r.u32();
      const serial = r.u32();
      const creation = tag === T.NEW_PID_EXT ? r.u32() : r.u8();
      return new Pid(node, id, serial, creation);
    }
    case T.NEW_PORT_EXT:
    case T.PORT_EXT: {
      const node = atomTerm(r);
      const id = r.u32();
      const creation = tag === T.NEW_PORT_EXT ? r.u32() : r.u8();
      return new Port(node, BigInt(id), creation);
    }
    case T.V4_PORT_EXT: {
      const node = atomTerm(r);
      r.need(12, 'V4_PORT_EXT');
      const id = r.buf.readBigUInt64BE(r.pos);
      r.pos += 8;
      return new Port(node, id, r.u32());
    }
    case T.NEWER_REFERENCE_EXT:
    case T.NEW_REFERENCE_EXT: {
      const words = r.u16();
      if (words < 1 || words > MAX_REF_WORDS) r.fail(`reference with ${words} id words (1 to ${MAX_REF_WORDS})`, at);
      const node = atomTerm(r);
      const creation = tag === T.NEWER_REFERENCE_EXT ? r.u32() : r.u8();
      r.need(words * 4, 'reference ids');
      const ids: number[] = [];
      for (let i = 0; i < words; i++) ids.push(r.u32());
      return new Reference(node, creation, ids);
    }
    case T.REFERENCE_EXT: {
      const node = atomTerm(r);
      const id = r.u32();
      return new Reference(node, r.u8(), [id]);
    }
    case T.EXPORT_EXT: {
      const module = atomTerm(r);
      const fn = atomTerm(r);
      if (r.u8() !== T.SMALL_INTEGER_EXT) r.fail('EXPORT_EXT arity is not a small integer', at);
      return new ExportFun(module, fn, r.u8());
    }
    case T.SMALL_TUPLE_EXT:
    case T.LARGE_TUPLE_EXT:
    case T.LIST_EXT:
    case T.MAP_EXT:
    case T.NEW_FUN_EXT:
      return r.fail(`expected a term without elements, found tag ${tag}`, at);
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

/** The atom of an atom tag (already read, at offset `at`). */
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

/** An atom, tag included (a node name, a module or function name). */
export function atomTerm(r: Reader): Atom {
  const at = r.pos;
  const tag = r.u8();
  if (tag === T.ATOM_EXT || tag === T.SMALL_ATOM_EXT || tag === T.ATOM_UTF8_EXT || tag === T.SMALL_ATOM_UTF8_EXT) {
    return atomBody(r, tag, at);
  }
  return r.fail(`expected an atom, found tag ${tag}`, at);
}

/** readLeaf, with the commonest leaves read here: small enough to be inlined where it is called. */
export function leafOf(r: Reader, tag: number, at: number): Term {
  switch (tag) {
    case T.SMALL_INTEGER_EXT:
      return r.u8();
    case T.INTEGER_EXT:
      if (r.pos + 4 > r.buf.length) break;
      r.pos += 4;
      return r.buf.readInt32BE(r.pos - 4);
    case T.SMALL_ATOM_UTF8_EXT:
    case T.ATOM_EXT:
    case T.SMALL_ATOM_EXT:
    case T.ATOM_UTF8_EXT:
      return atomBody(r, tag, at);
    case T.BINARY_EXT:
      return r.data(r.u32(), 'BINARY_EXT');
    case T.NIL_EXT:
      return [];
    case T.STRING_EXT: {
      const len = r.u16();
      return len === 0 ? [] : Charlist.fromLatin1(r.data(len, 'STRING_EXT'));
    }
  }
  return readLeaf(r, tag, at);
}

function leaf(r: Reader): Term {
  const at = r.pos;
  return readLeaf(r, r.u8(), at);
}

/** What a NEW_FUN_EXT frame needs to finish the fun once its free variables are read. */
export interface FunParts {
  end: number;
  module: Atom;
  arity: number;
}

/** A NEW_FUN_EXT up to its free variables (`at`: its tag). */
export function funHead(r: Reader, at: number): { parts: FunParts; free: number } {
  const size = r.u32();
  // size counts itself; the fixed fields before the module atom take 25 more bytes.
  if (size < 29) r.fail(`NEW_FUN_EXT size ${size} is too small`, at);
  r.need(size - 4, 'NEW_FUN_EXT');
  const end = at + 1 + size;
  const arity = r.u8();
  r.pos += 16 + 4; // uniq (md5), index
  const free = r.u32();
  if (free > end - r.pos) r.fail(`NEW_FUN_EXT claims ${free} free variables`, at);
  const module = atomTerm(r);
  const oldIndex = leaf(r);
  const oldUniq = leaf(r);
  if (typeof oldIndex !== 'number' || typeof oldUniq !== 'number')
    r.fail('NEW_FUN_EXT old index/uniq are not integers', at);
  if (!(leaf(r) instanceof Pid)) r.fail('NEW_FUN_EXT has no pid', at);
  return { parts: { end, module, arity }, free };
}

export function funEnd(r: Reader, f: FunParts, at: number): Fun {
  if (r.pos !== f.end) {
    r.fail(`NEW_FUN_EXT size ${f.end - at - 1} does not match its contents (${r.pos - at - 1} bytes)`, at);
  }
  return new Fun(f.module, f.arity, Buffer.from(r.buf.subarray(at + 1, f.end)));
}

/** A duplicate map key, for the error: atoms and numbers as themselves, other terms by kind. */
export function shown(key: Term): string {
  if (typeof key === 'number' || typeof key === 'bigint' || key instanceof Atom) return String(key);
  if (Array.isArray(key)) return '(a list)';
  if (key instanceof Uint8Array) return '(a binary)';
  return `(a ${key.constructor.name})`;
}
