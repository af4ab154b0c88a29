/**
 * Length-prefixed frames: 2-byte lengths during the handshake, 4-byte after it.
 *
 * Bytes are kept as the chunks the socket delivered until a frame is complete, so a
 * frame never costs more than its own bytes, and a declared length above `maxFrame`
 * is refused as soon as its header is read, before anything is buffered for it.
 */
import { ProtocolError } from './errors.js';

export class FrameTooLargeError extends ProtocolError {
  constructor(
    readonly declared: number,
    readonly max: number,
  ) {
    super(`frame of ${declared} bytes exceeds the limit of ${max} bytes`);
  }
}

export class FrameReader {
  private chunks: Buffer[] = [];
  /** Index of the first unconsumed chunk (shift() would make tiny chunks quadratic). */
  private head = 0;
  /** Bytes of the head chunk already consumed: kept as an offset rather than re-slicing it. */
  private offset = 0;
  private buffered = 0;
  private expected = -1;

  constructor(
    readonly headerBytes: 2 | 4,
    readonly maxFrame: number,
  ) {}

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const last = this.chunks.length - 1;
    if (last >= this.head) {
      const prev = this.chunks[last]!;
      if (prev.buffer === chunk.buffer && prev.byteOffset + prev.length === chunk.byteOffset) {
        // Reads into one slab (see slab.ts) land next to each other: one chunk, no copy later.
        this.chunks[last] = Buffer.from(prev.buffer, prev.byteOffset, prev.length + chunk.length);
        this.buffered += chunk.length;
        return;
      }
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame body (a zero-length Buffer is a tick), or `undefined`
   * until more bytes arrive. Throws `FrameTooLargeError` for an oversized header.
   */
  next(): Buffer | undefined {
    if (this.expected < 0) {
      if (this.buffered < this.headerBytes) return undefined;
      const length = this.readHeader();
      if (length > this.maxFrame) throw new FrameTooLargeError(length, this.maxFrame);
      this.expected = length;
    }
    if (this.buffered < this.expected) return undefined;
    const body = this.take(this.expected);
    this.expected = -1;
    return body;
  }

  /** Whether a chunk still held (bytes of an incomplete frame) lies in `buf`. */
  holds(buf: ArrayBufferLike): boolean {
    for (let i = this.head; i < this.chunks.length; i++) if (this.chunks[i]!.buffer === buf) return true;
    return false;
  }

  /** Everything not yet consumed (used when the handshake hands the socket over). */
  remainder(): Buffer {
    const rest = this.take(this.buffered);
    this.expected = -1;
    return rest;
  }

  /** The length header, read in place when the head chunk holds all of it (the usual case). */
  private readHeader(): number {
    const first = this.chunks[this.head]!;
    const at = this.offset;
    if (first.length - at >= this.headerBytes) {
      const length = this.headerBytes === 2 ? first.readUInt16BE(at) : first.readUInt32BE(at);
      this.consumed(first, this.headerBytes);
      return length;
    }
    const header = this.take(this.headerBytes);
    return this.headerBytes === 2 ? header.readUInt16BE(0) : header.readUInt32BE(0);
  }

  /** Advances past `n` bytes of the head chunk `first` (which has at least that many left). */
  private consumed(first: Buffer, n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === first.length) this.nextChunk();
  }

  private nextChunk(): void {
    this.head++;
    this.offset = 0;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head]!;
    const at = this.offset;
    if (first.length - at >= n) {
      const out = first.subarray(at, at + n);
      this.consumed(first, n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const from = this.offset;
      const take = Math.min(c.length - from, n - filled);
      c.copy(out, filled, from, from + take);
      filled += take;
      this.consumed(c, take);
    }
    return out;
  }
}

export function frame2(body: Buffer): Buffer {
  if (body.length > 0xffff) throw new RangeError('handshake message too long');
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

export const TICK = Buffer.alloc(4);
