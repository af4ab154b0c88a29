/**
 * Just enough of the BEAM file format to check a hot tarball and to compare code:
 * the module name (first atom), declared behaviours, and a digest of the chunks
 * that `beam_lib:md5/1` covers (so recompiling with other debug info is no change).
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Atom, decode, type Term, Tuple } from '../etf/index.js';

export interface BeamInfo {
  module: string;
  behaviours: string[];
  /** Hex digest of the code-bearing chunks. */
  codeDigest: string;
}

const CODE_CHUNKS = ['AtU8', 'Atom', 'Code', 'StrT', 'ImpT', 'ExpT', 'FunT', 'LitT'];

/** Parses a `.beam`; returns undefined when the bytes are not one. */
export function readBeam(bytes: Buffer): BeamInfo | undefined {
  let buf = bytes;
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch {
      return undefined;
    }
  }
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'FOR1' || buf.toString('latin1', 8, 12) !== 'BEAM')
    return undefined;
  const chunks = new Map<string, Buffer>();
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('latin1', off, off + 4);
    const size = buf.readUInt32BE(off + 4);
    if (off + 8 + size > buf.length) return undefined;
    chunks.set(id, buf.subarray(off + 8, off + 8 + size));
    off += 8 + Math.ceil(size / 4) * 4;
  }
  const atoms = chunks.get('AtU8') ?? chunks.get('Atom');
  const module = atoms === undefined ? undefined : firstAtom(atoms);
  if (module === undefined) return undefined;
  const hash = createHash('sha256');
  for (const id of CODE_CHUNKS) {
    const c = chunks.get(id);
    if (c !== undefined) hash.update(id).update(c);
  }
  return { module, behaviours: behaviours(chunks.get('Attr')), codeDigest: hash.digest('hex') };
}

function firstAtom(chunk: Buffer): string | undefined {
  if (chunk.length < 5) return undefined;
  const count = chunk.readInt32BE(0);
  if (count === 0) return undefined;
  let len: number;
  let start: number;
  if (count > 0) {
    len = chunk[4] ?? 0;
    start = 5;
  } else {
    // OTP 26+: lengths in the compact term encoding.
    const b = chunk[4] ?? 0;
    if ((b & 0x08) === 0) {
      len = b >> 4;
      start = 5;
    } else {
      len = ((b >> 5) << 8) | (chunk[5] ?? 0);
      start = 6;
    }
  }
  if (start + len > chunk.length) return undefined;
  return chunk.toString('utf8', start, start + len);
}

function behaviours(attr: Buffer | undefined): string[] {
  if (attr === undefined) return [];
  let term: Term;
  try {
    term = decode(attr);
  } catch {
    return [];
  }
  const out: string[] = [];
  if (!Array.isArray(term)) return out;
  for (const item of term) {
    if (!(item instanceof Tuple) || item.length !== 2) continue;
    const key = item.at(0);
    const value = item.at(1);
    if (key instanceof Atom && (key.name === 'behaviour' || key.name === 'behavior') && Array.isArray(value)) {
      for (const b of value) if (b instanceof Atom) out.push(b.name);
    }
  }
  return out;
}
