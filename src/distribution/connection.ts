/**
 * One established distribution connection: 4-byte frames in, control messages out,
 * ticks both ways. Any protocol violation closes it (as the BEAM does); the node
 * above learns of it through `onClose` and fails whatever depended on it.
 */
import type { Socket } from 'node:net';
import type { Term } from '../etf/index.js';
import { type Control, decodeControl, encodeControl } from './control.js';
import { decodeFrame, encodeFrame, SpawnRequestFrames } from './control-frames.js';
import { DFLAG, hasFlag } from './flags.js';
import { FrameReader, TICK } from './framing.js';
import type { HandshakeResult } from './handshake.js';
import { SlabReads, slabOf } from './slab.js';

/**
 * Queued frames up to this many bytes are copied into one buffer rather than handed to
 * writev (cheaper than Node's per-chunk bookkeeping for many small frames); above it,
 * large binaries, which encodeFrame leaves uncopied from 16 KiB, go to writev as they are.
 */
const COALESCE_BYTES = 16 * 1024;

export interface ConnectionOptions {
  /** `net_ticktime` in ms: silence for this long means the peer is gone. */
  tickTimeMs: number;
  maxFrameBytes: number;
  /** Bytes we may have queued for a peer that does not read before the connection is dropped. */
  maxSendQueueBytes: number;
  onMessage(msg: Control, conn: Connection): void;
  onClose(reason: string, conn: Connection): void;
}

export class Connection {
  readonly peerName: string;
  readonly peerCreation: number;
  /** Negotiated flags. */
  readonly flags: bigint;
  readonly incoming: boolean;
  /** DFLAG_SPAWN, tested once here rather than with bigint arithmetic on every erpc call. */
  readonly canSpawn: boolean;
  private readonly reader: FrameReader;
  /** The slab an outgoing connection reads into (see slab.ts); undefined for Node's own reads. */
  private readonly slab: SlabReads | undefined;
  private readonly ticker: NodeJS.Timeout;
  private silentTicks = 0;
  private wroteSinceTick = false;
  private closed = false;
  closeReason = '';

  constructor(
    readonly socket: Socket,
    hs: HandshakeResult,
    incoming: boolean,
    leftover: Buffer,
    private readonly opts: ConnectionOptions,
  ) {
    this.peerName = hs.peerName;
    this.peerCreation = hs.peerCreation;
    this.flags = hs.flags;
    this.incoming = incoming;
    this.canSpawn = hasFlag(hs.flags, DFLAG.SPAWN);
    this.reader = new FrameReader(4, opts.maxFrameBytes);
    this.slab = slabOf(socket);
    this.slab?.track((buf) => this.reader.holds(buf));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.close('connection closed'));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    // As net_kernel: a tick every ticktime/4 when we sent nothing; four silent intervals and the peer is gone.
    this.ticker = setInterval(() => this.tick(), Math.max(1, Math.floor(opts.tickTimeMs / 4)));
    this.ticker.unref();
    // Frames that came with the handshake's last read go first, then the socket (paused
    // since the handshake) flows again; both after the node has registered us.
    this.reader.push(leftover);
    queueMicrotask(() => {
      if (this.closed) return;
      this.drain();
      if (!this.closed) socket.resume();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private readonly spawnFrames = new SpawnRequestFrames();

  send(msg: Control): boolean {
    if (this.closed) return false;
    if (msg.kind === 'spawn_request') return this.queue(this.spawnFrames.frame(msg));
    const { ctl, payload } = encodeControl(msg, this.flags);
    return this.queue(encodeFrame(ctl, payload));
  }

  sendRaw(ctl: Term, payload?: Term): boolean {
    if (this.closed) return false;
    return this.queue(encodeFrame(ctl, payload));
  }

  private queue(bufs: Buffer[]): boolean {
    // Everything sent until the current tick's microtasks have run (all the callers
    // woken by one read, say) leaves in one write, without waiting a loop phase.
    if (this.queued.length === 0) process.nextTick(this.flush);
    for (const b of bufs) {
      this.queued.push(b);
      this.queuedBytes += b.length;
    }
    this.wroteSinceTick = true;
    if (this.socket.writableLength + this.queuedBytes > this.opts.maxSendQueueBytes) {
      // The peer has stopped reading; holding more would only grow our memory until the tick timeout.
      this.close(`send queue over ${this.opts.maxSendQueueBytes} bytes (peer not reading)`);
      return false;
    }
    return true;
  }

  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private readonly flush = (): void => {
    const q = this.queued;
    const bytes = this.queuedBytes;
    this.queued = [];
    this.queuedBytes = 0;
    if (this.closed || q.length === 0) return;
    if (q.length === 1) this.socket.write(q[0]!);
    else if (bytes <= COALESCE_BYTES) this.socket.write(Buffer.concat(q, bytes));
    else {
      // Large binaries go as they are (no copy): one writev.
      this.socket.cork();
      for (const b of q) this.socket.write(b);
      this.socket.uncork();
    }
  };

  private tick(): void {
    if (this.closed) return;
    if (++this.silentTicks >= 4) {
      this.close('net_tick_timeout');
      return;
    }
    if (!this.wroteSinceTick) this.socket.write(TICK);
    this.wroteSinceTick = false;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.silentTicks = 0;
    this.reader.push(chunk);
    this.drain();
  }

  private drain(): void {
    try {
      for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) {
        if (f.length === 0) continue; // tick
        const { ctl, payload, views } = decodeFrame(f, this.slab === undefined ? undefined : SlabReads.decodeOptions);
        // A binary that is a view into a slab must never see it overwritten.
        if (views > 0) this.slab?.pin(f.buffer);
        this.opts.onMessage(decodeControl(ctl, payload), this);
        if (this.closed) return;
      }
    } catch (err) {
      this.close(`protocol error: ${(err as Error).message}`);
    }
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.queued = [];
    this.queuedBytes = 0;
    clearInterval(this.ticker);
    this.socket.destroy();
    this.opts.onClose(reason, this);
  }
}
