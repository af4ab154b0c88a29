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
      const header = this.take(this.headerBytes);
      const length = this.headerBytes === 2 ? header.readUInt16BE(0) : header.readUInt32BE(0);
      if (length > this.maxFrame) throw new FrameTooLargeError(length, this.maxFrame);
      this.expected = length;
    }
    if (this.buffered < this.expected) return undefined;
    const body = this.take(this.expected);
    this.expected = -1;
    return body;
  }

  /** Everything not yet consumed (used when the handshake hands the socket over). */
  remainder(): Buffer {
    const rest = this.take(this.buffered);
    this.expected = -1;
    return rest;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.head++;
      else this.chunks[this.head] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[this.head]!;
        const want = n - filled;
        if (c.length <= want) {
          c.copy(out, filled);
          filled += c.length;
          this.head++;
        } else {
          c.copy(out, filled, 0, want);
          this.chunks[this.head] = c.subarray(want);
          filled += want;
        }
      }
    }
    this.buffered -= n;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
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
