/**
 * Tarballs that cross the extractor's default limits, written to a file as a stream:
 * none is ever whole in memory, and the biggest inflate to more than 4 GiB from ~90 MB.
 *
 * The gzip stream is assembled from raw deflate segments, each compressed once with a
 * full flush (byte-aligned, no back-references into an earlier segment), so a segment
 * can be repeated as often as needed: the inflated stream repeats the segment's bytes.
 * The CRC-32 of the whole inflated stream comes from the segments' CRCs combined
 * arithmetically, never by reading gigabytes, so the result is a valid .tar.gz that
 * `tar xzf` accepts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, deflateRawSync } from 'node:zlib';
import { Header, Pax } from 'tar';
import { type CraftEntry, tarBytes } from './craft.js';

export interface GeneratedTarball {
  file: string;
  /** Compressed bytes. */
  size: number;
  sha256: string;
  /** Bytes once inflated (the tar stream). */
  inflated: number;
}

// ---- CRC-32 (the gzip trailer) --------------------------------------------------

const POLY = 0xedb88320;
const TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  return c >>> 0;
});

export function crc32(buf: Buffer, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** a(x) * b(x) modulo the CRC polynomial (bit-reflected, as zlib's multmodp). */
function mulModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(8 * bytes) modulo the polynomial: the operator that shifts a CRC past `bytes` zero bytes. */
function shiftBytes(bytes: number): number {
  let result = 0x80000000; // x^0
  let power = 0x00800000; // x^8: one byte
  for (let n = bytes; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = mulModP(power, result);
    power = mulModP(power, power);
  }
  return result;
}

/** CRC of A followed by B, from crc(A), crc(B) and B's length (zlib's crc32_combine). */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (mulModP(shiftBytes(lengthB), crcA) ^ crcB) >>> 0;
}

// ---- gzip from repeatable segments ---------------------------------------------

/** Raw deflate bytes for `data`, ending on a byte boundary with no final block. */
function segment(data: Buffer): Buffer {
  return deflateRawSync(data, { level: 6, finishFlush: constants.Z_FULL_FLUSH });
}

interface Part {
  data: Buffer;
  times: number;
}

/**
 * Writes gzip(concat(part.data repeated part.times)) to `file` as a stream and returns
 * its size, sha256 and inflated size.
 */
async function writeGzip(file: string, parts: Part[]): Promise<{ size: number; sha256: string; inflated: number }> {
  let crc = 0;
  let inflated = 0;
  for (const p of parts) {
    // The CRC of data repeated `times`, by doubling: c(2k) = combine(c(k), c(k), k * len).
    let unit = crc32(p.data);
    let unitLen = p.data.length;
    let acc = 0;
    let accLen = 0;
    for (let n = p.times; n > 0; n = Math.floor(n / 2)) {
      if (n % 2 === 1) {
        acc = crc32Combine(acc, unit, unitLen);
        accLen += unitLen;
      }
      unit = crc32Combine(unit, unit, unitLen);
      unitLen *= 2;
    }
    crc = crc32Combine(crc, acc, accLen);
    inflated += accLen;
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc, 0);
  trailer.writeUInt32LE(inflated % 2 ** 32, 4);
  // Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
  const gzipHeader = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
  const finalBlock = deflateRawSync(Buffer.alloc(0)); // an empty final block

  const hash = createHash('sha256');
  let size = 0;
  const counted = (chunk: Buffer): Buffer => {
    hash.update(chunk);
    size += chunk.length;
    return chunk;
  };
  async function* bytes(): AsyncGenerator<Buffer> {
    yield counted(gzipHeader);
    for (const p of parts) {
      const s = segment(p.data);
      // Batches of ~1 MiB keep the writes few without holding much.
      const perBatch = Math.max(1, Math.floor((1 << 20) / s.length));
      for (let done = 0; done < p.times; done += perBatch) {
        yield counted(Buffer.concat(Array.from({ length: Math.min(perBatch, p.times - done) }, () => s)));
      }
    }
    yield counted(finalBlock);
    yield counted(trailer);
  }
  await pipeline(Readable.from(bytes()), createWriteStream(file));
  return { size, sha256: hash.digest('hex'), inflated };
}

// ---- tar pieces ---------------------------------------------------------------

/** The layout a blue-green release needs, so the only thing wrong is the limit crossed. */
export const releaseLayout: CraftEntry[] = [
  { path: 'lib/tiny-0.1.0/ebin/', type: 'Directory' },
  { path: 'releases/0.1.0/sys.config', body: '[].\n' },
  { path: 'releases/start_erl.data', body: '13.1.5 0.1.0\n' },
];

function header(path: string, type: 'File' | 'Directory', size: number, mtime = new Date(0)): Buffer {
  const block = Buffer.alloc(512);
  new Header({ path, type, size, mode: type === 'Directory' ? 0o755 : 0o644, mtime, uid: 0, gid: 0 }).encode(block, 0);
  return block;
}

/** A file entry whose path may be longer than a tar header holds (a pax `path` record first). */
export function longPathEntry(path: string, body: string): Buffer {
  const pax = new Pax({ path }).encode();
  const data = Buffer.from(body);
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return Buffer.concat([pax, header(path.slice(-99), 'File', data.length), padded]);
}

/** A path of exactly `bytes` bytes under lib/tiny-0.1.0/priv/, no component longer than `component`. */
export function pathOf(bytes: number, component = 255): string {
  let path = 'lib/tiny-0.1.0/priv';
  for (;;) {
    // Each component costs its length plus a slash.
    const left = bytes - Buffer.byteLength(path);
    if (left === 0) return path;
    if (left < 2) throw new Error(`no path of ${bytes} bytes starts with ${path}`);
    let len = Math.min(component, left - 1);
    // Never leave a single byte over: no component fits in it.
    if (left - 1 - len === 1) len -= 1;
    path += `/${'p'.repeat(len)}`;
  }
}

// ---- the generators -------------------------------------------------------------

/** A release plus `extra` as the last entries, gzip'd (small: built in memory). */
export async function tarballWith(file: string, extra: Buffer): Promise<GeneratedTarball> {
  const body = Buffer.concat([tarBytes(releaseLayout, { endMarker: false }), extra, Buffer.alloc(1024)]);
  return { file, ...(await writeGzip(file, [{ data: body, times: 1 }])) };
}

/**
 * A release with `files` empty files, then root (`./`) entries up to `entries` in all:
 * the archive's root again, which the extractor creates nothing for (it exists), so the
 * count is what costs. Their mtimes differ so the headers do not compress like a bomb.
 */
export async function tarballWithEntries(file: string, entries: number, files = 1000): Promise<GeneratedTarball> {
  const head = [
    tarBytes(releaseLayout, { endMarker: false }),
    ...Array.from({ length: files }, (_, i) => header(`lib/tiny-0.1.0/priv/many/f${i}`, 'File', 0)),
  ];
  const roots = entries - releaseLayout.length - files;
  if (roots < 0) throw new Error(`${entries} entries cannot hold the release and ${files} files`);
  const perUnit = 1000;
  const unit = Buffer.concat(
    Array.from({ length: perUnit }, (_, i) =>
      header('./', 'Directory', 0, new Date((1_700_000_000 + i * 7919) * 1000)),
    ),
  );
  const rest = roots % perUnit;
  const r = await writeGzip(file, [
    { data: Buffer.concat(head), times: 1 },
    { data: unit, times: Math.floor(roots / perUnit) },
    { data: unit.subarray(0, rest * 512), times: 1 },
    { data: Buffer.alloc(1024), times: 1 },
  ]);
  return { file, ...r };
}

/**
 * A release whose one file, `lib/tiny-0.1.0/priv/blob`, is written again and again
 * (appended archives repeat paths; each copy replaces the last, so the disk holds one)
 * until the tar stream passes `inflatedBytes`. Each 64 KiB of the body starts with
 * `randomPerBlock` fresh random bytes and is zeros after: the default compresses about
 * 45x, under the 100x ratio limit; 400 compresses about 140x.
 */
export async function tarballInflatingTo(
  file: string,
  inflatedBytes: number,
  randomPerBlock = 1300,
): Promise<GeneratedTarball> {
  const bodySize = 1 << 20;
  const body = Buffer.alloc(bodySize);
  for (let off = 0; off < bodySize; off += 64 * 1024) randomBytes(randomPerBlock).copy(body, off);
  const unit = Buffer.concat([header('lib/tiny-0.1.0/priv/blob', 'File', bodySize), body]);
  const head = tarBytes(releaseLayout, { endMarker: false });
  const times = Math.ceil((inflatedBytes - head.length) / unit.length);
  const r = await writeGzip(file, [
    { data: head, times: 1 },
    { data: unit, times },
    { data: Buffer.alloc(1024), times: 1 },
  ]);
  return { file, ...r };
}
