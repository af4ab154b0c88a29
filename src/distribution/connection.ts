/**
 * One established distribution connection: 4-byte frames in, control messages out,
 * ticks both ways. Any protocol violation closes it (as the BEAM does); the node
 * above learns of it through `onClose` and fails whatever depended on it.
 */
import type { Socket } from 'node:net';
import type { Term } from '../etf/index.js';
import { decodeControl, decodeFrame, encodeControl, encodeFrame, type Control } from './control.js';
import { FrameReader, TICK } from './framing.js';
import type { HandshakeResult } from './handshake.js';

export interface ConnectionOptions {
  /** `net_ticktime` in ms: silence for this long means the peer is gone. */
  tickTimeMs: number;
  maxFrameBytes: number;
  onMessage(msg: Control, conn: Connection): void;
  onClose(reason: string, conn: Connection): void;
}

export class Connection {
  readonly peerName: string;
  readonly peerCreation: number;
  /** Negotiated flags. */
  readonly flags: bigint;
  readonly incoming: boolean;
  private readonly reader: FrameReader;
  private readonly ticker: NodeJS.Timeout;
  private silentTicks = 0;
  private wroteSinceTick = false;
  private closed = false;
  private outQueue: Buffer[] = [];
  private flushScheduled = false;
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
    this.reader = new FrameReader(4, opts.maxFrameBytes);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.close('connection closed'));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    // As net_kernel: a tick every ticktime/4 when we sent nothing; four silent intervals and the peer is gone.
    this.ticker = setInterval(() => this.tick(), Math.max(1, Math.floor(opts.tickTimeMs / 4)));
    this.ticker.unref();
    if (leftover.length > 0) queueMicrotask(() => this.onData(leftover));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(msg: Control): boolean {
    const { ctl, payload } = encodeControl(msg, this.flags);
    return this.sendRaw(ctl, payload);
  }

  sendRaw(ctl: Term, payload?: Term): boolean {
    if (this.closed) return false;
    for (const b of encodeFrame(ctl, payload)) this.outQueue.push(b);
    this.wroteSinceTick = true;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Frames produced in the same turn of the event loop (all the callers woken by one
      // read, say) go out in one writev; setImmediate runs right after the I/O phase.
      setImmediate(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    const q = this.outQueue;
    this.outQueue = [];
    if (q.length === 1) {
      this.socket.write(q[0]!);
      return;
    }
    this.socket.cork();
    for (const b of q) this.socket.write(b);
    this.socket.uncork();
  }

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
    try {
      for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) {
        if (f.length === 0) continue; // tick
        const { ctl, payload } = decodeFrame(f);
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
    clearInterval(this.ticker);
    this.outQueue = [];
    this.socket.destroy();
    this.opts.onClose(reason, this);
  }
}
