/**
 * The node's connections: listening and EPMD registration, dialing, accepting, the
 * handshakes both ways (one connection per peer, simultaneous dials settled as
 * net_kernel settles them, a limit on handshakes in flight), and node up/down with the
 * node monitors that wait for it. What arrives on a connection goes to `onControl`.
 */
import { randomInt } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Connection } from './connection.js';
import type { Control } from './control.js';
import { epmdPortPlease, epmdRegister, type Registration, startEpmdDaemon } from './epmd.js';
import { EpmdError, NodeDownError } from './errors.js';
import { OUR_FLAGS } from './flags.js';
import {
  type Admission,
  AlreadyConnected,
  ClientHandshake,
  type HandshakeIdentity,
  type HandshakeResult,
  ServerHandshake,
  SimultaneousConnectLost,
} from './handshake.js';
import { type Handshaken, runHandshake } from './handshake-io.js';
import type { Transport } from './process-table.js';
import { connectSlab } from './slab.js';

export interface ConnectionsOptions {
  /** `name@host`. */
  name: string;
  epmdPort: number;
  epmdHost: string;
  startEpmd: boolean;
  listen: boolean;
  port: number | undefined;
  listenHost: string | undefined;
  netTicktime: number;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  maxSendQueueBytes: number;
  maxPendingHandshakes: number;
  distFlags: bigint | undefined;
}

export interface ConnectionEvents {
  /** The node's start: a dial waits for it (the handshake carries our creation). */
  started(): Promise<void>;
  /** Every control message received. */
  onControl(msg: Control, conn: Connection): void;
  /** A connection closed, before node monitors fire and `nodedown` is emitted. */
  onLost(conn: Connection, reason: string): void;
  /** Where `nodeup`, `nodedown`, `handshakeError` and `epmdLost` are emitted. */
  emitter: EventEmitter;
}

export interface NodeMonitor {
  /** Resolves with the reason when the connection to the node goes down (or cannot be made). */
  readonly down: Promise<{ node: string; reason: string }>;
  cancel(): void;
}

export class Connections implements Transport {
  /** A true private field: `console.log(node)` must not print the cookie. */
  readonly #cookie: string;
  private creationValue = 0;
  /** Control messages received, so busy polling can tell a turn that brought something. */
  private received = 0;
  private server: Server | undefined;
  private registration: Registration | undefined;
  private listenPort = 0;
  private closed = false;

  private readonly connections = new Map<string, Connection>();
  private readonly dialing = new Map<string, Promise<Connection>>();
  private readonly incomingPending = new Set<string>();
  private readonly upWaiters = new Map<string, Set<(c: Connection) => void>>();
  private pendingHandshakes = 0;
  private readonly handshakeSockets = new Set<Socket>();
  private readonly nodeMonitors = new Map<string, Set<(reason: string) => void>>();

  constructor(
    private readonly opts: ConnectionsOptions,
    cookie: string,
    private readonly events: ConnectionEvents,
  ) {
    this.#cookie = cookie;
  }

  get creation(): number {
    return this.creationValue;
  }

  get controlsIn(): number {
    return this.received;
  }

  get port(): number {
    return this.listenPort;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): { connections: number; pendingHandshakes: number } {
    return { connections: this.connections.size, pendingHandshakes: this.pendingHandshakes };
  }

  names(): string[] {
    return [...this.connections.keys()];
  }

  connected(peer: string): Connection | undefined {
    return this.connections.get(peer);
  }

  /** Listens and registers with EPMD, which gives our creation (random when not listening). */
  async start(): Promise<void> {
    if (!this.opts.listen) {
      // Not reachable from outside, so no EPMD creation; a random one keeps pids of
      // successive incarnations distinct.
      this.creationValue = randomInt(1, 0x7fffffff);
      return;
    }
    const listen = (host: string): Promise<Server> =>
      new Promise<Server>((resolve, reject) => {
        const server = createServer((s) => this.accept(s));
        server.once('error', reject);
        server.listen(this.opts.port ?? 0, host, () => {
          server.off('error', reject);
          resolve(server);
        });
      });
    let server: Server;
    if (this.opts.listenHost !== undefined) server = await listen(this.opts.listenHost);
    else {
      // Dual stack, so peers on inet6_tcp (Fly's private network) reach us as well as
      // inet_tcp ones; IPv4 alone where the host has no IPv6.
      server = await listen('::').catch(() => listen('0.0.0.0'));
    }
    this.server = server;
    this.listenPort = (server.address() as { port: number }).port;
    try {
      const epmd = { host: this.opts.epmdHost, port: this.opts.epmdPort };
      const alive = { name: this.opts.name.split('@')[0]!, port: this.listenPort };
      const reg = await epmdRegister(epmd, alive).catch(async (err: unknown) => {
        if (!(this.opts.startEpmd && err instanceof EpmdError && err.reason === 'unreachable')) throw err;
        await startEpmdDaemon(epmd);
        return epmdRegister(epmd, alive);
      });
      this.registration = reg;
      this.creationValue = reg.creation;
      reg.socket.on('close', () => {
        if (!this.closed) this.events.emitter.emit('epmdLost');
      });
    } catch (err) {
      server.close();
      this.server = undefined;
      throw err;
    }
  }

  // ---------------------------------------------------------------- dialing

  /** The connection to `peer` (`name@host`), dialed unless there is one; concurrent callers share one attempt. */
  async connect(peer: string): Promise<Connection> {
    if (this.closed) throw new NodeDownError(peer, 'local node closed');
    const existing = this.connections.get(peer);
    if (existing !== undefined) return existing;
    let attempt = this.dialing.get(peer);
    if (attempt === undefined) {
      attempt = this.dial(peer).finally(() => this.dialing.delete(peer));
      this.dialing.set(peer, attempt);
    }
    return attempt;
  }

  withConnection(node: string, action: (c: Connection) => void, onFail?: (err: Error) => void): void {
    const c = this.connections.get(node);
    if (c !== undefined) {
      action(c);
      return;
    }
    this.connect(node).then(action, (err: Error) => onFail?.(err));
  }

  private async dial(peer: string): Promise<Connection> {
    await this.events.started();
    const at = peer.indexOf('@');
    if (at <= 0 || at === peer.length - 1) throw new TypeError(`invalid node name ${JSON.stringify(peer)}`);
    const alive = peer.slice(0, at);
    const host = peer.slice(at + 1);
    const answer = await epmdPortPlease({ host, port: this.opts.epmdPort }, alive);
    if (!answer.found) throw new NodeDownError(peer, `${alive} is not registered with EPMD on ${host}`);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connectSlab({ host, port: answer.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new NodeDownError(peer, `no answer from ${host}:${answer.port} in ${this.opts.handshakeTimeoutMs} ms`));
      }, this.opts.handshakeTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new NodeDownError(peer, `cannot reach ${host}:${answer.port}: ${err.message}`, { cause: err }));
      });
    });
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const machine = new ClientHandshake(
      this.identity(),
      peer,
      undefined,
      () => !this.connections.has(peer) && !this.incomingPending.has(peer),
    );
    let hs: Handshaken;
    try {
      hs = await runHandshake(socket, machine, this.opts.handshakeTimeoutMs);
    } catch (err) {
      // Either way the peer's own dial is (or becomes) the connection.
      if (err instanceof SimultaneousConnectLost || err instanceof AlreadyConnected)
        return this.waitForUp(peer, this.opts.handshakeTimeoutMs);
      throw err;
    }
    if (this.closed) {
      socket.destroy();
      throw new NodeDownError(peer, 'local node closed');
    }
    const raced = this.connections.get(peer);
    if (raced !== undefined) {
      socket.destroy();
      return raced;
    }
    return this.established(socket, hs.result, false, hs.leftover);
  }

  private waitForUp(peer: string, timeoutMs: number): Promise<Connection> {
    const existing = this.connections.get(peer);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      let set = this.upWaiters.get(peer);
      if (!set) {
        set = new Set();
        this.upWaiters.set(peer, set);
      }
      const waiter = (c: Connection): void => {
        clearTimeout(timer);
        resolve(c);
      };
      const timer = setTimeout(() => {
        set!.delete(waiter);
        reject(new NodeDownError(peer, 'simultaneous connection attempt did not complete'));
      }, timeoutMs);
      set.add(waiter);
    });
  }

  private identity(): HandshakeIdentity {
    return {
      name: this.opts.name,
      cookie: this.#cookie,
      flags: this.opts.distFlags ?? OUR_FLAGS,
      creation: this.creationValue,
    };
  }

  // ---------------------------------------------------------------- accepting

  private accept(socket: Socket): void {
    if (this.closed || this.pendingHandshakes >= this.opts.maxPendingHandshakes) {
      socket.destroy();
      return;
    }
    this.pendingHandshakes++;
    this.handshakeSockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    let admitted: string | undefined;
    const machine = new ServerHandshake(
      this.identity(),
      (peer) => {
        const a = this.admit(peer);
        if (a === 'ok' || a === 'ok_simultaneous' || a === 'alive') {
          admitted = peer;
          this.incomingPending.add(peer);
        }
        return a;
      },
      (peer) => this.connections.get(peer)?.close('replaced by a new connection from the same node'),
    );
    runHandshake(socket, machine, this.opts.handshakeTimeoutMs)
      .then(({ result, leftover }) => {
        if (this.closed) {
          socket.destroy();
          return;
        }
        this.established(socket, result, true, leftover);
      })
      .catch((err: Error) => {
        this.events.emitter.emit('handshakeError', err, socket.remoteAddress);
      })
      .finally(() => {
        this.pendingHandshakes--;
        this.handshakeSockets.delete(socket);
        if (admitted !== undefined) this.incomingPending.delete(admitted);
      });
  }

  /** As net_kernel decides: one connection per node; of two simultaneous dials the greater name's wins. */
  private admit(peer: string): Admission {
    if (peer === this.opts.name) return 'not_allowed';
    if (this.incomingPending.has(peer)) return 'nok';
    if (this.connections.has(peer)) return 'alive';
    if (this.dialing.has(peer)) return this.opts.name > peer ? 'nok' : 'ok_simultaneous';
    return 'ok';
  }

  // ---------------------------------------------------------------- up and down

  private established(socket: Socket, hs: HandshakeResult, incoming: boolean, leftover: Buffer): Connection {
    const conn = new Connection(socket, hs, incoming, leftover, {
      tickTimeMs: this.opts.netTicktime * 1000,
      maxFrameBytes: this.opts.maxFrameBytes,
      maxSendQueueBytes: this.opts.maxSendQueueBytes,
      onMessage: (msg, c) => {
        this.received++;
        this.events.onControl(msg, c);
      },
      onClose: (reason, c) => this.onClosed(reason, c),
    });
    this.connections.set(conn.peerName, conn);
    const waiters = this.upWaiters.get(conn.peerName);
    if (waiters) {
      this.upWaiters.delete(conn.peerName);
      for (const w of waiters) w(conn);
    }
    this.events.emitter.emit('nodeup', conn.peerName, { incoming });
    return conn;
  }

  private onClosed(reason: string, conn: Connection): void {
    const peer = conn.peerName;
    if (this.connections.get(peer) === conn) this.connections.delete(peer);
    this.events.onLost(conn, reason);
    const mons = this.nodeMonitors.get(peer);
    if (mons) {
      this.nodeMonitors.delete(peer);
      for (const m of mons) m(reason);
    }
    this.events.emitter.emit('nodedown', peer, reason);
  }

  /** `monitor_node(Node, true)` for TS code: resolves when the node goes down. */
  monitorNode(peer: string): NodeMonitor {
    let resolveDown!: (v: { node: string; reason: string }) => void;
    const down = new Promise<{ node: string; reason: string }>((r) => (resolveDown = r));
    const fire = (reason: string): void => resolveDown({ node: peer, reason });
    let set = this.nodeMonitors.get(peer);
    if (!set) {
      set = new Set();
      this.nodeMonitors.set(peer, set);
    }
    set.add(fire);
    if (!this.connections.has(peer)) {
      this.connect(peer).catch((err: Error) => {
        if (this.nodeMonitors.get(peer)?.delete(fire)) fire(err.message);
      });
    }
    return { down, cancel: () => void this.nodeMonitors.get(peer)?.delete(fire) };
  }

  /** Closes every connection and handshake, unregisters from EPMD, stops listening. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of [...this.connections.values()]) c.close('local node closed');
    for (const s of this.handshakeSockets) s.destroy();
    this.registration?.close();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
