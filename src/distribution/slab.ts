/**
 * Socket reads into baton's own memory: consecutive regions of a large slab, so that
 * consecutive reads lie next to each other and a frame that arrived in several reads
 * is still one contiguous range (FrameReader joins such chunks and hands the frame out
 * as a view, without the copy that reassembles it from separate read buffers).
 *
 * Two slabs take turns: when the current one is used up, reading starts again at the
 * beginning of the previous one, provided nothing still points into it. Decoding copies
 * binaries shorter than `COPY_BELOW` (see `decodeOptions`) and reports the views it
 * made of longer ones; a slab that such a view points into is `pin`ned and never
 * written again (it is dropped, and the GC frees it once the binary is gone), and one
 * that still holds bytes of an incomplete frame (`inUse`) is not reused either. In both
 * cases a fresh slab takes its place.
 *
 * Why not simply a fresh slab every time, as Node allocates a fresh buffer for every
 * read: measured with 64 concurrent erpc callers, moving to a new slab every 1 MiB made
 * each of V8's young-generation collections keep ~1.2 MB alive (and then promote it)
 * instead of ~50 KB, which cost ~2 µs of CPU per call, about 15% of baton's share. With
 * the two slabs reused it does not happen.
 */
import { connect, type Socket, type TcpNetConnectOpts } from 'node:net';
import type { DecodeOptions } from '../etf/index.js';

/**
 * Size of each slab. A large binary decoded from a read keeps that read's whole slab
 * alive: such a binary can pin up to this much. 256 KiB slabs measured up to 18% slower
 * on the 64 KiB echo.
 */
const SLAB_BYTES = 1024 * 1024;
/** A slab is left when less than this is free in it. */
const MIN_READ_BYTES = 64 * 1024;
/**
 * Binaries shorter than this are copied out of the slab when decoded, so that they do
 * not pin it: Node serves allocations below 4 KiB from its shared pool, so such a copy
 * costs a short memcpy. Longer binaries stay views (no copy of a large payload).
 */
const COPY_BELOW = 4096;

export class SlabReads {
  private current: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private previous: Buffer | undefined;
  private used = 0;
  private currentPinned = false;
  private previousPinned = false;
  /** Whether bytes of `buf` are still waiting to be read as a frame; until told, assume so. */
  private inUse: (buf: ArrayBufferLike) => boolean = () => true;

  /** Decode options that copy what would otherwise pin a slab for little gain. */
  static readonly decodeOptions: DecodeOptions = Object.freeze({ copyBelow: COPY_BELOW });

  /** Tells the slab how to ask whether a slab still holds part of an incomplete frame. */
  track(inUse: (buf: ArrayBufferLike) => boolean): void {
    this.inUse = inUse;
  }

  /** A decoded term holds a view into `buf`: if it is one of the slabs, it is never written again. */
  pin(buf: ArrayBufferLike): void {
    if (buf === this.current.buffer) this.currentPinned = true;
    else if (buf === this.previous?.buffer) this.previousPinned = true;
  }

  /** The region the next read goes into: the rest of the current slab. */
  readonly next = (): Buffer => {
    if (this.current.length - this.used < MIN_READ_BYTES) this.turn();
    return this.current.subarray(this.used);
  };

  /** The `n` bytes a read put at the start of `region` (the last one `next` gave). */
  filled(n: number, region: Uint8Array): Buffer {
    this.used += n;
    return Buffer.from(region.buffer, region.byteOffset, n);
  }

  private turn(): void {
    const reuse = this.previous !== undefined && !this.previousPinned && !this.inUse(this.previous.buffer);
    const next = reuse ? this.previous! : Buffer.allocUnsafeSlow(SLAB_BYTES);
    this.previous = this.current;
    this.previousPinned = this.currentPinned;
    this.current = next;
    this.currentPinned = false;
    this.used = 0;
  }
}

const slabs = new WeakMap<Socket, SlabReads>();

/** The slab a socket from `connectSlab` reads into. */
export function slabOf(socket: Socket): SlabReads | undefined {
  return slabs.get(socket);
}

/**
 * `net.connect`, reading into a slab. Data is still delivered as `'data'` events, and
 * `pause()`/`resume()` stop and restart reading as usual.
 */
export function connectSlab(options: Omit<TcpNetConnectOpts, 'onread'>): Socket {
  const slab = new SlabReads();
  const socket: Socket = connect({
    ...options,
    onread: {
      buffer: slab.next,
      callback: (n, region) => {
        if (n > 0) socket.emit('data', slab.filled(n, region));
        return true;
      },
    },
  });
  slabs.set(socket, slab);
  return socket;
}
