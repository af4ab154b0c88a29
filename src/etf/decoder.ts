/**
 * Decoder for the external term format.
 *
 * Input is untrusted (it comes off a socket or out of a file): every length is checked
 * against the bytes that remain before anything is allocated for it (reader.ts), a
 * compressed term may not inflate past `maxDecompressedSize`, and anything refused is an
 * `EtfDecodeError` carrying the offset where decoding stopped.
 *
 * The BEAM writes and reads terms nested as deep as memory allows (a list 100,000 deep
 * is a few hundred KB), so depth is limited by nothing but the input unless the caller
 * sets `maxDepth`. The first SHALLOW_DEPTH levels of a term are read by recursion, which
 * is what keeps small terms fast; a container deeper than that goes to `readDeep`
 * (decode-stack.ts), which reads it with an explicit stack, so no input overflows the
 * JS stack. Either way the elements all containers declare may not outnumber the
 * input's bytes (Reader.budget), which bounds what hostile nesting makes the decoder
 * allocate by the input's size.
 *
 * Binaries are views into the input (no copy) unless `copyBinaries` is set, or they are
 * shorter than `copyBelow`; `decodeFrom` says how many views its term holds, so a caller
 * that reuses its input buffers knows when it must not.
 */
import { inflateSync } from 'node:zlib';
import { readDeep } from './decode-stack.js';
import { EtfDecodeError } from './errors.js';
import { funEnd, funHead, leafOf, Reader, shown } from './reader.js';
import * as T from './tags.js';
import { ImproperList, type Term, Tuple } from './terms.js';

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

/** Containers nested deeper than this are read by `readDeep` rather than by recursion. */
const SHALLOW_DEPTH = 64;

/** One term, its first `depth` containers read by recursion, any deeper by `readDeep`. */
function readTerm(r: Reader, depth = 0): Term {
  const at = r.pos;
  const tag = r.u8();
  switch (tag) {
    case T.SMALL_TUPLE_EXT:
    case T.LARGE_TUPLE_EXT: {
      if (depth === SHALLOW_DEPTH) return deeper(r, at, depth);
      const n = tag === T.SMALL_TUPLE_EXT ? r.u8() : r.u32();
      if (n === 0) return new Tuple([]);
      // Every element takes at least one byte: a larger arity cannot be real.
      if (n > r.buf.length - r.pos) r.need(n, `a tuple of ${n} elements`);
      r.container(depth, n, at);
      const items = new Array<Term>(n);
      for (let i = 0; i < n; i++) items[i] = readTerm(r, depth + 1);
      return new Tuple(items);
    }
    case T.LIST_EXT:
      return depth === SHALLOW_DEPTH ? deeper(r, at, depth) : listBody(r, at, depth);
    case T.MAP_EXT: {
      if (depth === SHALLOW_DEPTH) return deeper(r, at, depth);
      const n = r.u32();
      if (n * 2 > r.buf.length - r.pos) r.need(n * 2, `a map of ${n} pairs`);
      const map = new Map<Term, Term>();
      if (n === 0) return map;
      r.container(depth, n * 2, at);
      for (let i = 0; i < n; i++) {
        const key = readTerm(r, depth + 1);
        const value = readTerm(r, depth + 1);
        if (map.has(key)) r.fail(`map has the key ${shown(key)} twice`, at);
        map.set(key, value);
      }
      return map;
    }
    case T.NEW_FUN_EXT: {
      if (depth === SHALLOW_DEPTH) return deeper(r, at, depth);
      const { parts, free } = funHead(r, at);
      if (free > 0) {
        r.container(depth, free, at);
        // Read and dropped: the fun keeps its encoding.
        for (let i = 0; i < free; i++) readTerm(r, depth + 1);
      }
      return funEnd(r, parts, at);
    }
    default:
      return leafOf(r, tag, at);
  }
}

/** The container at `at` (its tag already read), `depth` deep, read by `readDeep`. */
function deeper(r: Reader, at: number, depth: number): Term {
  r.pos = at;
  return readDeep(r, depth);
}

/**
 * A list (LIST_EXT at `at`, its tag read). A tail that is itself a list goes on with the
 * same array (`[a | [b]]` is `[a, b]`: the BEAM never writes it so, but it is the same
 * term), so such tails cost neither depth nor copying.
 */
function listBody(r: Reader, at: number, depth: number): Term[] | ImproperList {
  let n = r.u32();
  if (n >= r.buf.length - r.pos) r.need(n + 1, `a list of ${n} elements`);
  r.container(depth, n + 1, at);
  const items = new Array<Term>(n);
  let i = 0;
  // The latest LIST_EXT, and whether it had no elements (then its tail must be a list).
  let segment = at;
  let empty = n === 0;
  for (;;) {
    for (; i < n; i++) items[i] = readTerm(r, depth + 1);
    const tag = r.buf[r.pos];
    if (tag === T.NIL_EXT) {
      r.pos++;
      return items;
    }
    if (tag === T.STRING_EXT) {
      r.pos++;
      const len = r.u16();
      const chars = r.bytes(len, 'STRING_EXT');
      for (let k = 0; k < len; k++) items.push(chars[k]!);
      return items;
    }
    if (tag !== T.LIST_EXT) {
      if (empty) r.fail('LIST_EXT of zero elements with a non-list tail', segment);
      return new ImproperList(items, readTerm(r, depth + 1));
    }
    segment = r.pos++;
    const more = r.u32();
    if (more >= r.buf.length - r.pos) r.need(more + 1, `a list of ${more} elements`);
    r.container(0, more + 1, segment);
    n += more;
    empty = more === 0;
  }
}
