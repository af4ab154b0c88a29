/**
 * Encoder for the external term format.
 *
 * The choice of tag for each term follows `term_to_binary/2` exactly, so bytes decoded
 * from the BEAM re-encode identically: integers take the smallest of SMALL_INTEGER,
 * INTEGER and SMALL/LARGE_BIG; a proper list of at most 65535 bytes-sized integers is a
 * STRING_EXT; ports use V4_PORT_EXT once the id passes the 28 bits of pre-OTP 24 ports
 * (as OTP 25 does). `minorVersion` mirrors the option of the same name: 2 (the default,
 * and what OTP 26+ and the distribution use) writes every atom as UTF-8; 1 (OTP ≤ 25's
 * default) writes atoms that fit in Latin-1 as ATOM_EXT.
 *
 * The first SHALLOW_DEPTH levels of a term are written by recursion, which is what
 * keeps small terms fast; a container deeper than that goes to `writeDeep`
 * (encode-stack.ts), which walks it with an explicit stack, so no term is too deep.
 */
import { deflateSync } from 'node:zlib';
import { writeDeep } from './encode-stack.js';
import { EtfEncodeError } from './errors.js';
import * as T from './tags.js';
import { Atom, Charlist, ImproperList, type Term, Tuple } from './terms.js';
import { isByteString, NOT_LATIN1, Writer, writeAtom, writeByteString, writeOther, writeScalar } from './writer.js';

export interface EncodeOptions {
  /** 1 or 2, as `term_to_binary(T, [{minor_version, N}])`. Default 2. */
  minorVersion?: 1 | 2;
  /** Compress as `term_to_binary(T, [compressed])` (true = level 6), kept only when smaller. */
  compressed?: boolean | number;
}

/** `term_to_binary(Term)`: the version byte followed by the term. */
export function encode(term: Term, options: EncodeOptions = {}): Buffer {
  const w = new Writer(options.minorVersion === 1, exactSize(term));
  w.u8(T.VERSION);
  writeTerm(w, term, 0);
  const plain = w.take();
  if (!options.compressed) return plain;
  return compress(plain, options.compressed === true ? 6 : options.compressed);
}

/** The term without the version byte in front. */
export function encodeWithoutVersion(term: Term, options: Omit<EncodeOptions, 'compressed'> = {}): Buffer {
  const w = new Writer(options.minorVersion === 1);
  writeTerm(w, term, 0);
  return w.take();
}

/**
 * Several terms, each with its version byte, back to back in one buffer after `headroom`
 * bytes that the caller fills in (a distribution frame's length and type byte): one
 * allocation and one copy for the lot instead of one per term plus a concatenation.
 * The headroom bytes are left uninitialised.
 */
export function encodeSequence(terms: readonly Term[], headroom = 0): Buffer {
  const w = new Writer(false);
  w.ensure(headroom);
  w.pos = headroom;
  for (let i = 0; i < terms.length; i++) {
    w.u8(T.VERSION);
    writeTerm(w, terms[i]!, 0);
  }
  return w.take();
}

/** The encoded size (version byte included) of a large flat term, known without walking it. */
function exactSize(term: Term): number | undefined {
  if (term instanceof Uint8Array) return 6 + term.length;
  if (term instanceof Charlist) {
    const bytes = term.latin1Bytes();
    if (bytes !== undefined) return 4 + bytes.length;
    if (term.text.length <= 0xffff && !NOT_LATIN1.test(term.text)) return 4 + term.text.length;
  }
  return undefined;
}

function compress(plain: Buffer, level: number): Buffer {
  const body = plain.subarray(1);
  const deflated = deflateSync(body, { level });
  if (deflated.length + 5 >= body.length) return plain;
  const out = Buffer.allocUnsafe(6 + deflated.length);
  out[0] = T.VERSION;
  out[1] = T.COMPRESSED;
  out.writeUInt32BE(body.length, 2);
  deflated.copy(out, 6);
  return out;
}

/** Containers nested deeper than this are written by `writeDeep` rather than by recursion. */
const SHALLOW_DEPTH = 64;

function writeTerm(w: Writer, term: Term, depth: number): void {
  if (typeof term !== 'object') return writeScalar(w, term);
  if (Array.isArray(term)) return writeList(w, term, depth);
  if (term instanceof Atom) return writeAtom(w, term);
  if (term instanceof Tuple) return writeTuple(w, term, depth);
  if (term instanceof Uint8Array) {
    w.tagU32(T.BINARY_EXT, term.length);
    w.bytes(term);
    return;
  }
  if (term instanceof Map) return writeMap(w, term, depth);
  if (term instanceof ImproperList) return writeImproper(w, term, depth);
  writeOther(w, term);
}

function writeTuple(w: Writer, tuple: Tuple, depth: number): void {
  if (depth === SHALLOW_DEPTH) return writeDeep(w, tuple);
  const elements = tuple.elements;
  const n = elements.length;
  if (n <= 255) w.tagU8(T.SMALL_TUPLE_EXT, n);
  else w.tagU32(T.LARGE_TUPLE_EXT, n);
  let i = 0;
  try {
    for (; i < n; i++) writeTerm(w, elements[i]!, depth + 1);
  } catch (err) {
    throw err instanceof EtfEncodeError ? err.within(`{${i}}`) : err;
  }
}

function writeList(w: Writer, list: Term[], depth: number): void {
  const n = list.length;
  if (n === 0 || isByteString(list)) return writeByteString(w, list);
  if (depth === SHALLOW_DEPTH) return writeDeep(w, list);
  w.tagU32(T.LIST_EXT, n);
  writeElements(w, list, depth + 1);
  w.u8(T.NIL_EXT);
}

function writeElements(w: Writer, list: Term[], depth: number): void {
  let i = 0;
  try {
    for (; i < list.length; i++) writeTerm(w, list[i]!, depth);
  } catch (err) {
    throw err instanceof EtfEncodeError ? err.within(`[${i}]`) : err;
  }
}

function writeImproper(w: Writer, list: ImproperList, depth: number): void {
  if (list.elements.length === 0) throw new EtfEncodeError('an improper list needs at least one element');
  if (Array.isArray(list.tail) || list.tail instanceof ImproperList) {
    throw new EtfEncodeError('the tail of an improper list must not be a list');
  }
  if (depth === SHALLOW_DEPTH) return writeDeep(w, list);
  w.tagU32(T.LIST_EXT, list.elements.length);
  writeElements(w, list.elements, depth + 1);
  try {
    writeTerm(w, list.tail, depth + 1);
  } catch (err) {
    throw err instanceof EtfEncodeError ? err.within('[|tail]') : err;
  }
}

function writeMap(w: Writer, map: Map<Term, Term>, depth: number): void {
  if (depth === SHALLOW_DEPTH) return writeDeep(w, map);
  w.tagU32(T.MAP_EXT, map.size);
  let key: Term | undefined;
  let atValue = false;
  try {
    for (const [k, v] of map) {
      key = k;
      atValue = false;
      writeTerm(w, k, depth + 1);
      atValue = true;
      writeTerm(w, v, depth + 1);
    }
  } catch (err) {
    if (!(err instanceof EtfEncodeError)) throw err;
    const shown = key instanceof Atom || typeof key === 'number' ? String(key) : '…';
    throw err.within(atValue ? `#{${shown} =>}` : `#{key ${shown}}`);
  }
}
