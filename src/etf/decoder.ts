/**
 * Decoder for the external term format.
 *
 * Input is untrusted (it comes off a socket or out of a file): every length is checked
 * against the bytes that remain before anything is allocated for it (reader.ts), a
 * compressed term may not inflate past `maxDecompressedSize`, and anything refused is an
 * `EtfDecodeError` carrying the offset where decoding stopped.
 *
 * Containers are read with an explicit stack of frames, not by recursion: the BEAM
 * writes and reads terms nested as deep as memory allows (a list 100,000 deep is a few
 * hundred KB), and a recursive decoder would either refuse them or overflow the JS
 * stack. Each level takes at least one input byte and its frame a few dozen bytes, and
 * the elements all containers declare may not outnumber the input's bytes (see
 * Reader.budget), so what hostile nesting makes the decoder allocate stays a small
 * multiple of the input; `maxDepth` caps the depth for a caller that wants to. A list's
 * tail that is itself a list (`[a | [b | [c]]]`, which the BEAM never writes but may be
 * sent) continues the same frame rather than nesting, so it costs neither depth nor
 * quadratic copying.
 *
 * Binaries are views into the input (no copy) unless `copyBinaries` is set, or they are
 * shorter than `copyBelow`; `decodeFrom` says how many views its term holds, so a caller
 * that reuses its input buffers knows when it must not.
 */
import { inflateSync } from 'node:zlib';
import { EtfDecodeError } from './errors.js';
import { type FunParts, funEnd, funHead, leafOf, Reader } from './reader.js';
import * as T from './tags.js';
import { Atom, ImproperList, type Term, Tuple } from './terms.js';

export interface DecodeOptions {
  /** Deepest nesting of containers accepted. Default: no limit but the input's size. */
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

const DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024;
// Shared default, so a call without options allocates nothing for them.
const NO_OPTIONS: DecodeOptions = Object.freeze({});

function toBuffer(input: Uint8Array): Buffer {
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

function readerFor(input: Uint8Array, offset: number, options: DecodeOptions): Reader {
  const copyBelow = options.copyBinaries === true ? Infinity : (options.copyBelow ?? 0);
  return new Reader(toBuffer(input), offset, options.maxDepth ?? Infinity, copyBelow);
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

/** Decodes one term that has no version byte in front of it, starting at `offset`. */
export function decodeWithoutVersion(
  input: Uint8Array,
  offset = 0,
  options: DecodeOptions = NO_OPTIONS,
): { term: Term; offset: number } {
  const r = readerFor(input, offset, options);
  const term = readTerm(r);
  return { term, offset: r.pos };
}

function versioned(r: Reader, options: DecodeOptions): Term {
  const start = r.pos;
  const version = r.u8();
  if (version !== T.VERSION) r.fail(`expected version byte 131, got ${version}`, start);
  if (r.pos < r.buf.length && r.buf[r.pos] === T.COMPRESSED) {
    r.pos++;
    return decompressed(r, options.maxDecompressedSize ?? DEFAULT_MAX_DECOMPRESSED);
  }
  return readTerm(r);
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
    term = readTerm(inner);
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

const TUPLE = 0;
/** A list whose latest LIST_EXT had elements (or the first one). */
const LIST = 1;
/** A list whose latest LIST_EXT had none: its tail may not be a non-list. */
const LIST0 = 2;
const MAP = 3;
const FUN = 4;
const NO_ITEMS: Term[] = [];

/** An open container: one per level of nesting, kept on `frames` instead of the JS stack. */
class Frame {
  kind = TUPLE;
  /** A tuple's or list's elements, a map, or a fun's parts. */
  content: Term[] | Map<Term, Term> | FunParts = NO_ITEMS;
  /** A map's key whose value comes next. */
  key: Term | undefined = undefined;
  /** Elements read so far (a map: pairs), and how many there are. */
  i = 0;
  n = 0;
  /** Where the container starts (a list: its latest LIST_EXT), for errors. */
  at = 0;
}

// Shared by every decode: decoding is synchronous and never re-entered while frames are
// in use (a compressed term is inflated and decoded before its outer reader opens any).
const frames: Frame[] = [];
/** Frames kept between decodes; a deeper term's are let go after it. */
const FRAMES_KEPT = 256;

/** 1 for the tags of terms that hold other terms (opened as frames), 0 for leaves. */
const HAS_ELEMENTS = new Uint8Array(256);
for (const tag of [T.SMALL_TUPLE_EXT, T.LARGE_TUPLE_EXT, T.LIST_EXT, T.MAP_EXT, T.NEW_FUN_EXT]) HAS_ELEMENTS[tag] = 1;

/** Opens a container at `at` of `n` elements on level `sp`; `terms` counts its tail or values too. */
function open(
  r: Reader,
  sp: number,
  kind: number,
  content: Term[] | Map<Term, Term> | FunParts,
  n: number,
  terms: number,
  at: number,
): void {
  if (sp >= r.maxDepth) r.fail(`terms nested deeper than ${r.maxDepth}`, at);
  declare(r, terms, at);
  let f = frames[sp];
  if (f === undefined) {
    f = new Frame();
    frames.push(f);
  }
  f.kind = kind;
  f.content = content;
  f.i = 0;
  f.n = n;
  f.at = at;
}

/** Counts `terms` more elements against the input's size (see Reader.budget). */
function declare(r: Reader, terms: number, at: number): void {
  r.budget -= terms;
  if (r.budget < 0) r.fail('the containers declare more elements than the input has bytes', at);
}

/** Drops what a frame points to, so the pool does not keep a decoded term alive. */
function release(f: Frame): void {
  f.content = NO_ITEMS;
  f.key = undefined;
}

/**
 * One term, containers and all. Each turn of the outer loop reads one term's head: a
 * leaf becomes `value`, a container with elements is opened as a frame and the
 * following turns read its elements. A value is then handed to the innermost open
 * container, closing each container it completes; the outermost one's value is the
 * result.
 */
function readTerm(r: Reader): Term {
  let sp = 0;
  try {
    let value: Term = NO_ITEMS;
    // The innermost container was just opened: no value to hand it, its elements to read.
    let fresh = false;
    outer: for (;;) {
      const at = r.pos;
      const tag = r.u8();
      switch (tag) {
        case T.SMALL_TUPLE_EXT:
        case T.LARGE_TUPLE_EXT: {
          const n = tag === T.SMALL_TUPLE_EXT ? r.u8() : r.u32();
          if (n === 0) {
            value = new Tuple([]);
            break;
          }
          // Every element takes at least one byte: a larger arity cannot be real.
          if (n > r.buf.length - r.pos) r.need(n, `a tuple of ${n} elements`);
          open(r, sp++, TUPLE, new Array<Term>(n), n, n, at);
          fresh = true;
          break;
        }
        case T.LIST_EXT: {
          const n = r.u32();
          if (n >= r.buf.length - r.pos) r.need(n + 1, `a list of ${n} elements`);
          open(r, sp++, n === 0 ? LIST0 : LIST, new Array<Term>(n), n, n + 1, at);
          const f = frames[sp - 1]!;
          if (n > 0 || !listEnds(r, f)) {
            // Elements to read, or (after LIST_EXT of none) a tail that is not a list.
            if (f.i === f.n) continue outer;
            fresh = true;
            break;
          }
          // LIST_EXT of no elements, then a list that ended it.
          sp--;
          value = f.content as Term[];
          release(f);
          break;
        }
        case T.MAP_EXT: {
          const n = r.u32();
          if (n * 2 > r.buf.length - r.pos) r.need(n * 2, `a map of ${n} pairs`);
          if (n === 0) {
            value = new Map<Term, Term>();
            break;
          }
          open(r, sp++, MAP, new Map<Term, Term>(), n, n * 2, at);
          fresh = true;
          break;
        }
        case T.NEW_FUN_EXT: {
          const { parts, free } = funHead(r, at);
          if (free > 0) {
            open(r, sp++, FUN, parts, free, free, at);
            continue outer;
          }
          value = funEnd(r, parts, at);
          break;
        }
        default:
          value = leafOf(r, tag, at);
      }
      while (sp > 0) {
        const f = frames[sp - 1]!;
        const kind = f.kind;
        if (kind === TUPLE || (kind !== MAP && kind !== FUN && f.i < f.n)) {
          const items = f.content as Term[];
          const n = f.n;
          let i = f.i;
          if (fresh) fresh = false;
          else items[i++] = value;
          // Elements that are leaves are read here at once rather than one per turn of
          // the outer loop: most elements are.
          while (i < n) {
            const tag = r.buf[r.pos];
            if (tag === undefined || HAS_ELEMENTS[tag] === 1) break;
            const at = r.pos++;
            items[i++] = leafOf(r, tag, at);
          }
          f.i = i;
          if (i < n) continue outer;
          if (kind === TUPLE) value = new Tuple(items);
          else if (listEnds(r, f)) value = items;
          else continue outer;
        } else if (kind === LIST || kind === LIST0) {
          // The tail, which listEnds left to read because it is not a list.
          if (kind === LIST0) r.fail('LIST_EXT of zero elements with a non-list tail', f.at);
          value = new ImproperList(f.content as Term[], value);
        } else if (kind === MAP) {
          const map = f.content as Map<Term, Term>;
          let key = f.key;
          let v: Term = value;
          let got = !fresh;
          fresh = false;
          for (;;) {
            if (got) {
              if (key === undefined) key = v;
              else {
                if (map.has(key)) r.fail(`map has the key ${shown(key)} twice`, f.at);
                map.set(key, v);
                key = undefined;
                if (++f.i === f.n) break;
              }
            }
            const tag = r.buf[r.pos];
            if (tag === undefined || HAS_ELEMENTS[tag] === 1) break;
            const at = r.pos++;
            v = leafOf(r, tag, at);
            got = true;
          }
          f.key = key;
          if (f.i < f.n) continue outer;
          value = map;
        } else {
          // A fun's free variables are read and dropped: the fun keeps its encoding.
          if (++f.i < f.n) continue outer;
          value = funEnd(r, f.content as FunParts, f.at);
        }
        release(f);
        sp--;
      }
      if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
      return value;
    }
  } catch (err) {
    // `sp` may count a level whose opening failed: it has no frame of its own yet.
    for (let i = 0; i < sp && i < frames.length; i++) release(frames[i]!);
    if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
    throw err;
  }
}

/**
 * Called when a list's elements are all read: reads on as long as what follows goes on
 * with the same list (NIL_EXT ends it, STRING_EXT adds its characters and ends it,
 * LIST_EXT adds elements). True when the list is complete and proper; false when
 * elements or a tail that is not a list remain to be read (elements when `f.i < f.n`).
 */
function listEnds(r: Reader, f: Frame): boolean {
  for (;;) {
    const tag = r.buf[r.pos];
    if (tag === T.NIL_EXT) {
      r.pos++;
      return true;
    }
    if (tag === T.STRING_EXT) {
      // [a | "bc"] is [a, b, c]: the BEAM never writes it so, but it is the same term.
      r.pos++;
      const len = r.u16();
      const chars = r.bytes(len, 'STRING_EXT');
      const items = f.content as Term[];
      for (let k = 0; k < len; k++) items.push(chars[k]!);
      return true;
    }
    if (tag !== T.LIST_EXT) return false;
    const at = r.pos++;
    const n = r.u32();
    if (n >= r.buf.length - r.pos) r.need(n + 1, `a list of ${n} elements`);
    declare(r, n + 1, at);
    f.at = at;
    f.n += n;
    f.kind = n === 0 ? LIST0 : LIST;
    if (n > 0) return false;
  }
}

/** A duplicate map key, for the error: atoms and numbers as themselves, other terms by kind. */
function shown(key: Term): string {
  if (typeof key === 'number' || typeof key === 'bigint' || key instanceof Atom) return String(key);
  if (Array.isArray(key)) return '(a list)';
  if (key instanceof Uint8Array) return '(a binary)';
  return `(a ${key.constructor.name})`;
}
