/**
 * A hidden Erlang node in TypeScript: EPMD registration, a listener for peers that
 * dial us, one connection per peer, TS processes, erpc/rpc/eval, and the io server
 * that is the group leader of everything baton runs remotely.
 */

import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { Atom, asList, atom, charlist, Pid, Reference, type Term, Tuple, tuple } from '../etf/index.js';
import { BusyPoll, defaultBusyPollMs } from './busy-poll.js';
import { Connection } from './connection.js';
import type { Control } from './control.js';
import { SPAWN_REPLY_LINK, SPAWN_REPLY_MONITOR } from './control.js';
import {
  defaultEpmdPort,
  epmdNames,
  epmdPortPlease,
  epmdRegister,
  type NamesResponse,
  type Registration,
  startEpmdDaemon,
} from './epmd.js';
import { ErpcCalls, erpcMfa, spawnOptions } from './erpc.js';
import {
  BadRpcError,
  DistributionError,
  EpmdError,
  ErpcError,
  EvalSyntaxError,
  NodeDownError,
  ProcessExitError,
  TimeoutError,
} from './errors.js';
import { DFLAG, hasFlag, OUR_FLAGS } from './flags.js';
import {
  type Admission,
  AlreadyConnected,
  ClientHandshake,
  type HandshakeIdentity,
  ServerHandshake,
  SimultaneousConnectLost,
} from './handshake.js';
import { type Handshaken, runHandshake } from './handshake-io.js';
import { chardataToString } from './io-server.js';
import { type Destination, type Name, Process, pidKey, refKey, type SpawnOptions, toAtom } from './process.js';
import { connectSlab } from './slab.js';
import {
  type ExposedFunction,
  LineBuffer,
  netKernelHandler,
  rexHandler,
  runIoServer,
  serveGenCalls,
} from './system.js';

export interface NodeOptions {
  /** `name` or `name@host`; a bare name gets this machine's short host name. */
  name: string;
  cookie: string;
  /** Always true: baton never publishes itself into the peer's `nodes()`. */
  hidden?: true;
  /** EPMD port (default `ERL_EPMD_PORT` or 4369) and host for our own registration. */
  epmdPort?: number;
  epmdHost?: string;
  /** Start `epmd -daemon` on `epmdPort` when none answers (as `erl` does). Default false. */
  startEpmd?: boolean;
  /** Accept incoming connections and register with EPMD (default true). */
  listen?: boolean;
  /** Listening port (default: any free port) and address (default `::` dual stack, else `0.0.0.0`). */
  port?: number;
  listenHost?: string;
  /** `net_ticktime` in seconds, as the kernel parameter (default 60). */
  netTicktime?: number;
  /** Handshake deadline (default 7000 ms, `net_setuptime`). */
  handshakeTimeoutMs?: number;
  /** Largest frame accepted from a peer (default 128 MiB). */
  maxFrameBytes?: number;
  /** Most bytes queued for a peer that does not read before its connection is dropped (default 256 MiB). */
  maxSendQueueBytes?: number;
  /** Most handshakes in flight at once; more are dropped (default 64). */
  maxPendingHandshakes?: number;
  /**
   * Distribution flags to offer instead of the default set (tests and interop
   * experiments only; the handshake still insists on OTP 25's mandatory flags).
   */
  distFlags?: bigint;
  /**
   * Keep the event loop polling (rather than sleeping in epoll_wait) for this many ms
   * after each erpc request while replies are awaited, as BEAM schedulers busy-wait.
   * Trades CPU for latency; 0 turns it off. Default 0.2 with two CPUs or more, else 0
   * (`defaultBusyPollMs`).
   */
  busyPollMs?: number;
  /** Where output of remote code (`io:format` via our group leader) goes. Default: stdout, prefixed. */
  log?: (line: string, from: string) => void;
}

export interface ErpcOptions {
  timeoutMs?: number;
}

export interface NodeMonitor {
  /** Resolves with the reason when the connection to the node goes down (or cannot be made). */
  readonly down: Promise<{ node: string; reason: string }>;
  cancel(): void;
}

const NORMAL = atom('normal');
const NOPROC = atom('noproc');
const NOTSUP = atom('notsup');
const UNDEF = atom('undef');
const ERROR = atom('error');
const OK = atom('ok');
/** erpc's spawn options, shared by every call (encoding never mutates a term). */
const MONITOR_OPTION: Term = [atom('monitor')];

export function shortHostname(): string {
  return hostname().split('.')[0]!;
}

export class Node extends EventEmitter {
  readonly name: string;
  readonly nodeAtom: Atom;
  readonly host: string;
  /** A true private field: `console.log(node)` must not print the cookie. */
  readonly #cookie: string;
  private readonly opts: Required<
    Pick<
      NodeOptions,
      | 'epmdPort'
      | 'epmdHost'
      | 'startEpmd'
      | 'listen'
      | 'netTicktime'
      | 'handshakeTimeoutMs'
      | 'maxFrameBytes'
      | 'maxSendQueueBytes'
      | 'maxPendingHandshakes'
    >
  > &
    Pick<NodeOptions, 'port' | 'log' | 'distFlags' | 'listenHost'>;
  private readonly busyPoll: BusyPoll;
  /** Control messages received, so busy polling can tell a turn that brought something. */
  private controlsIn = 0;
  creation = 0;
  private started: Promise<void> | undefined;
  private ready = false;
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

  private nextPid = 1;
  private refCounter = 0;
  private readonly refSalt = randomInt(0, 0xffffffff);
  private readonly processes = new Map<number, Process>();
  private readonly registry = new Map<Atom, Process>();
  private readonly aliasTable = new Map<string, Process>();
  private readonly nodeWatchers = new Map<Atom, Set<Process>>();
  private readonly nodeMonitors = new Map<string, Set<(reason: string) => void>>();
  private readonly calls = new ErpcCalls(
    () => this.rpcPid,
    (ref) => this.callKey(ref),
  );
  private readonly exposed = new Map<string, ExposedFunction>();
  /** Pid that SPAWN_REQUESTs of erpc calls come from; replies are dispatched by request id. */
  private rpcPid!: Pid;
  private ioServer!: Process;

  constructor(options: NodeOptions) {
    super();
    if (options.hidden !== undefined && options.hidden !== true) throw new TypeError('baton is always a hidden node');
    const [base, host] = options.name.includes('@') ? options.name.split('@', 2) : [options.name, shortHostname()];
    if (!base || !host) throw new TypeError(`invalid node name ${JSON.stringify(options.name)}`);
    this.name = `${base}@${host}`;
    this.host = host;
    this.nodeAtom = atom(this.name);
    this.#cookie = options.cookie;
    this.opts = {
      epmdPort: options.epmdPort ?? defaultEpmdPort(),
      epmdHost: options.epmdHost ?? '127.0.0.1',
      startEpmd: options.startEpmd ?? false,
      listen: options.listen ?? true,
      listenHost: options.listenHost,
      netTicktime: options.netTicktime ?? 60,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 7000,
      maxFrameBytes: options.maxFrameBytes ?? 128 * 1024 * 1024,
      maxSendQueueBytes: options.maxSendQueueBytes ?? 256 * 1024 * 1024,
      maxPendingHandshakes: options.maxPendingHandshakes ?? 64,
      port: options.port,
      log: options.log,
      distFlags: options.distFlags,
    };
    this.busyPoll = new BusyPoll(
      options.busyPollMs ?? defaultBusyPollMs(),
      () => this.calls.size,
      () => this.controlsIn,
    );
  }

  /** Listens, registers with EPMD (that gives our creation), and starts the io server. Idempotent. */
  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    if (this.opts.listen) {
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
        const alive = { name: this.name.split('@')[0]!, port: this.listenPort };
        const reg = await epmdRegister(epmd, alive).catch(async (err: unknown) => {
          if (!(this.opts.startEpmd && err instanceof EpmdError && err.reason === 'unreachable')) throw err;
          await startEpmdDaemon(epmd);
          return epmdRegister(epmd, alive);
        });
        this.registration = reg;
        this.creation = reg.creation;
        reg.socket.on('close', () => {
          if (!this.closed) this.emit('epmdLost');
        });
      } catch (err) {
        server.close();
        this.server = undefined;
        this.started = undefined;
        throw err;
      }
    } else {
      // Not reachable from outside, so no EPMD creation; a random one keeps pids of
      // successive incarnations distinct.
      this.creation = randomInt(1, 0x7fffffff);
    }
    this.ready = true;
    this.rpcPid = this.allocPid();
    this.ioServer = this.spawnInternal();
    const lines = new LineBuffer((line, from) => {
      this.emit('output', { node: from, line });
      if (this.opts.log) this.opts.log(line, from);
      else process.stdout.write(`[${from}] ${line}\n`);
    });
    runIoServer(this.ioServer, {
      apply: (node, m, f, a) => this.erpc(node, m, f, a, { timeoutMs: 30_000 }),
      output: (text, from) => lines.push(text, from),
      onError: (err) => this.emit('ioError', err),
    });
    serveGenCalls(
      this.spawnInternal({ name: 'rex' }),
      rexHandler((m, f) => this.exposed.get(`${m.name}:${f.name}`)),
    );
    serveGenCalls(this.spawnInternal({ name: 'net_kernel' }), netKernelHandler);
  }

  /** The port peers reach us on (0 when not listening). */
  get port(): number {
    return this.listenPort;
  }

  /** The io server's pid: the group leader of everything baton runs on peers. */
  get groupLeader(): Pid {
    return this.ioServer.pid;
  }

  /** Counters for tests and metrics. */
  stats(): {
    connections: number;
    pendingHandshakes: number;
    processes: number;
    pendingCalls: number;
    aliases: number;
  } {
    return {
      connections: this.connections.size,
      pendingHandshakes: this.pendingHandshakes,
      processes: this.processes.size,
      pendingCalls: this.calls.size,
      aliases: this.aliasTable.size,
    };
  }

  /** Names of the nodes we are connected to. */
  connectedNodes(): string[] {
    return [...this.connections.keys()];
  }

  isConnected(node: Atom | string): boolean {
    return this.connections.has(typeof node === 'string' ? node : node.name);
  }

  // ---------------------------------------------------------------- connecting

  /** Connects to `peer` (`name@host`) unless connected; concurrent callers share one attempt. */
  async connect(peer: string): Promise<void> {
    await this.connection(peer);
  }

  private async connection(peer: string): Promise<Connection> {
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

  private async dial(peer: string): Promise<Connection> {
    await this.start();
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
    return { name: this.name, cookie: this.#cookie, flags: this.opts.distFlags ?? OUR_FLAGS, creation: this.creation };
  }

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
        this.emit('handshakeError', err, socket.remoteAddress);
      })
      .finally(() => {
        this.pendingHandshakes--;
        this.handshakeSockets.delete(socket);
        if (admitted !== undefined) this.incomingPending.delete(admitted);
      });
  }

  /** As net_kernel decides: one connection per node; of two simultaneous dials the greater name's wins. */
  private admit(peer: string): Admission {
    if (peer === this.name) return 'not_allowed';
    if (this.incomingPending.has(peer)) return 'nok';
    if (this.connections.has(peer)) return 'alive';
    if (this.dialing.has(peer)) return this.name > peer ? 'nok' : 'ok_simultaneous';
    return 'ok';
  }

  private established(
    socket: Socket,
    hs: { peerName: string; peerFlags: bigint; peerCreation: number; flags: bigint },
    incoming: boolean,
    leftover: Buffer,
  ): Connection {
    const conn = new Connection(socket, hs, incoming, leftover, {
      tickTimeMs: this.opts.netTicktime * 1000,
      maxFrameBytes: this.opts.maxFrameBytes,
      maxSendQueueBytes: this.opts.maxSendQueueBytes,
      onMessage: (msg, c) => this.onControl(msg, c),
      onClose: (reason, c) => this.onConnectionClosed(reason, c),
    });
    this.connections.set(conn.peerName, conn);
    const waiters = this.upWaiters.get(conn.peerName);
    if (waiters) {
      this.upWaiters.delete(conn.peerName);
      for (const w of waiters) w(conn);
    }
    this.emit('nodeup', conn.peerName, { incoming });
    return conn;
  }

  private onConnectionClosed(reason: string, conn: Connection): void {
    const peer = conn.peerName;
    if (this.connections.get(peer) === conn) this.connections.delete(peer);
    this.calls.connectionClosed(conn, reason);
    const nodeAtom = atom(peer);
    for (const p of [...this.processes.values()]) p.nodeDown(nodeAtom);
    const mons = this.nodeMonitors.get(peer);
    if (mons) {
      this.nodeMonitors.delete(peer);
      for (const m of mons) m(reason);
    }
    this.emit('nodedown', peer, reason);
  }

  /** Connection to `peer`, or undefined (signals to an unconnected node start a connection, like `!`). */
  private withConnection(node: Atom, action: (c: Connection) => void, onFail?: (err: Error) => void): void {
    const c = this.connections.get(node.name);
    if (c !== undefined) {
      action(c);
      return;
    }
    this.connection(node.name).then(action, (err: Error) => onFail?.(err));
  }

  private sendTo(node: Atom, msg: Control, onFail?: (err: Error) => void): void {
    this.withConnection(node, (c) => c.send(msg), onFail);
  }

  // ---------------------------------------------------------------- processes

  private allocPid(): Pid {
    return new Pid(this.nodeAtom, this.nextPid++, 0, this.creation);
  }

  /** The key of one of our own references (as made by `makeRef`), or -1 for any other. */
  private callKey(ref: Reference): number {
    if (
      ref.node !== this.nodeAtom ||
      ref.creation !== this.creation ||
      ref.ids.length !== 3 ||
      ref.ids[2] !== this.refSalt
    )
      return -1;
    return ref.ids[0]! + ref.ids[1]! * 0x40000;
  }

  makeRef(): Reference {
    const n = ++this.refCounter;
    return new Reference(this.nodeAtom, this.creation, [n & 0x3ffff, Math.floor(n / 0x40000) >>> 0, this.refSalt]);
  }

  private spawnInternal(options: SpawnOptions = {}): Process {
    const p = new Process(this, this.allocPid(), options);
    this.processes.set(p.pid.id, p);
    return p;
  }

  /** A new TS process. The node must be started (connect/start) first. */
  spawn(options: SpawnOptions = {}): Process {
    // Pids carry the creation EPMD gives us, so none can exist before start() has finished.
    if (!this.ready) throw new DistributionError('await node.start() (or connect) before spawning processes');
    return this.spawnInternal(options);
  }

  /** Registered TS process by name. */
  whereis(name: Name): Process | undefined {
    return this.registry.get(toAtom(name));
  }

  /** @internal ProcessHost plumbing for `Process`. */
  localProcess(pid: Pid): Process | undefined {
    if (pid.node !== this.nodeAtom || pid.creation !== this.creation) return undefined;
    return this.processes.get(pid.id);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  localByName(name: Atom): Process | undefined {
    return this.registry.get(name);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  registerName(name: Atom, p: Process): void {
    const holder = this.registry.get(name);
    if (holder !== undefined && holder !== p && holder.isAlive)
      throw new DistributionError(`name ${name.name} is already registered`);
    this.registry.set(name, p);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  unregisterName(name: Atom): void {
    this.registry.delete(name);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  addAlias(ref: Reference, p: Process): void {
    this.aliasTable.set(refKey(ref), p);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  removeAlias(ref: Reference): void {
    this.aliasTable.delete(refKey(ref));
  }

  /** @internal ProcessHost plumbing for `Process`. */
  processExited(p: Process): void {
    this.processes.delete(p.pid.id);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  watchNode(node: Atom, p: Process): void {
    let set = this.nodeWatchers.get(node);
    if (!set) {
      set = new Set();
      this.nodeWatchers.set(node, set);
    }
    set.add(p);
    if (!this.connections.has(node.name)) {
      this.connection(node.name).catch(() => {
        if (p.watchedNodes.delete(node)) p.deliver(tuple(atom('nodedown'), node));
      });
    }
  }

  /** @internal ProcessHost plumbing for `Process`. */
  unwatchNode(node: Atom, p: Process): void {
    this.nodeWatchers.get(node)?.delete(p);
  }

  /** @internal ProcessHost plumbing for `Process`. */
  route(from: Pid, to: Destination, message: Term): void {
    if (to instanceof Pid) {
      if (to.node === this.nodeAtom) this.localProcess(to)?.deliver(message);
      else this.sendTo(to.node, { kind: 'send', from, to, message });
      return;
    }
    if (to instanceof Reference) {
      if (to.node === this.nodeAtom) this.aliasTable.get(refKey(to))?.deliver(message);
      else this.sendTo(to.node, { kind: 'alias_send', from, alias: to, message });
      return;
    }
    let name: Atom;
    let node: Atom;
    if (Array.isArray(to)) {
      name = toAtom(to[0]);
      node = toAtom(to[1]);
    } else if (to instanceof Tuple) {
      const [n, nd] = to.elements;
      if (!(n instanceof Atom) || !(nd instanceof Atom)) throw new TypeError('destination tuple must be {Name, Node}');
      name = n;
      node = nd;
    } else {
      name = toAtom(to);
      node = this.nodeAtom;
    }
    if (node === this.nodeAtom) this.registry.get(name)?.deliver(message);
    else this.sendTo(node, { kind: 'reg_send', from, name, message });
  }

  /** @internal ProcessHost plumbing for `Process`. */
  remoteLink(from: Pid, to: Pid): void {
    this.sendTo(to.node, { kind: 'link', from, to }, () =>
      this.localProcess(from)?.exitSignal(to, atom('noconnection'), 'link'),
    );
  }

  private unlinkIds = 0;

  /** @internal ProcessHost plumbing for `Process`. */
  remoteUnlink(from: Pid, to: Pid): void {
    this.withConnection(to.node, (c) => {
      if (hasFlag(c.flags, DFLAG.UNLINK_ID)) c.send({ kind: 'unlink_id', id: ++this.unlinkIds, from, to });
      else c.send({ kind: 'unlink', from, to });
    });
  }

  /** @internal ProcessHost plumbing for `Process`. */
  remoteExit(from: Pid, to: Pid, reason: Term, kind: 'exit' | 'exit2'): void {
    const c = this.connections.get(to.node.name);
    // A link exit to a node we are not connected to has nowhere to go (the link is already gone there).
    if (c !== undefined) c.send({ kind, from, to, reason });
    else if (kind === 'exit2') this.sendTo(to.node, { kind, from, to, reason });
  }

  /** @internal ProcessHost plumbing for `Process`. */
  remoteMonitor(from: Pid, target: Pid | Atom, node: Atom, ref: Reference): void {
    this.sendTo(node, { kind: 'monitor', from, target, ref }, () =>
      this.localProcess(from)?.down(ref, atom('noconnection')),
    );
  }

  /** @internal ProcessHost plumbing for `Process`. */
  remoteDemonitor(from: Pid, target: Pid | Atom, node: Atom, ref: Reference): void {
    this.connections.get(node.name)?.send({ kind: 'demonitor', from, target, ref });
  }

  /** @internal ProcessHost plumbing for `Process`. */
  remoteMonitorExit(from: Pid | Atom, to: Pid, ref: Reference, reason: Term): void {
    this.connections.get(to.node.name)?.send({ kind: 'monitor_exit', from, to, ref, reason });
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
      this.connection(peer).catch((err: Error) => {
        if (this.nodeMonitors.get(peer)?.delete(fire)) fire(err.message);
      });
    }
    return { down, cancel: () => void this.nodeMonitors.get(peer)?.delete(fire) };
  }

  // ---------------------------------------------------------------- incoming control messages

  private onControl(msg: Control, conn: Connection): void {
    this.controlsIn++;
    switch (msg.kind) {
      case 'send':
        if (msg.to.node === this.nodeAtom) this.localProcess(msg.to)?.deliver(msg.message);
        return;
      case 'reg_send':
        this.registry.get(msg.name)?.deliver(msg.message);
        return;
      case 'alias_send':
        this.aliasTable.get(refKey(msg.alias))?.deliver(msg.message);
        return;
      case 'link': {
        const p = this.localProcess(msg.to);
        if (p === undefined || !p.isAlive) conn.send({ kind: 'exit', from: msg.to, to: msg.from, reason: NOPROC });
        else p.links.set(pidKey(msg.from), msg.from);
        return;
      }
      case 'unlink':
        this.localProcess(msg.to)?.links.delete(pidKey(msg.from));
        return;
      case 'unlink_id':
        // OTP 26 waits for this acknowledgement before it forgets the unlink.
        this.localProcess(msg.to)?.links.delete(pidKey(msg.from));
        conn.send({ kind: 'unlink_id_ack', id: msg.id, from: msg.to, to: msg.from });
        return;
      case 'unlink_id_ack':
        return;
      case 'exit':
        this.localProcess(msg.to)?.exitSignal(msg.from, msg.reason, 'link');
        return;
      case 'exit2':
        this.localProcess(msg.to)?.exitSignal(msg.from, msg.reason, 'exit2');
        return;
      case 'monitor': {
        const target = msg.target instanceof Pid ? this.localProcess(msg.target) : this.registry.get(msg.target);
        if (target === undefined || !target.isAlive) {
          conn.send({ kind: 'monitor_exit', from: msg.target, to: msg.from, ref: msg.ref, reason: NOPROC });
        } else {
          target.monitoredBy.set(refKey(msg.ref), {
            ref: msg.ref,
            watcher: msg.from,
            ...(msg.target instanceof Atom ? { name: msg.target } : {}),
          });
        }
        return;
      }
      case 'demonitor': {
        const target = msg.target instanceof Pid ? this.localProcess(msg.target) : this.registry.get(msg.target);
        target?.monitoredBy.delete(refKey(msg.ref));
        return;
      }
      case 'monitor_exit':
        if (!this.calls.onMonitorExit(msg, conn)) this.localProcess(msg.to)?.down(msg.ref, msg.reason);
        return;
      case 'spawn_reply':
        this.calls.onSpawnReply(msg, conn);
        return;
      case 'spawn_request':
        this.onSpawnRequest(msg, conn);
        return;
      case 'group_leader':
      case 'node_link':
        return;
    }
  }

  /** Expose a TS function to peers as `erpc:call(baton@host, Module, Function, Args)`. */
  expose(module: string, fun: string, handler: ExposedFunction): void {
    this.exposed.set(`${module}:${fun}`, handler);
  }

  private onSpawnRequest(msg: Extract<Control, { kind: 'spawn_request' }>, conn: Connection): void {
    const isErpc = msg.module === erpcMfa.module && msg.fun === erpcMfa.fun && msg.arity === 4;
    const args = asList(msg.args);
    // Without SPAWN negotiated the peer has no business spawning here (as the BEAM would refuse).
    if (!isErpc || !hasFlag(conn.flags, DFLAG.SPAWN) || args === undefined || args.length !== 4) {
      conn.send({ kind: 'spawn_reply', reqId: msg.reqId, to: msg.from, flags: 0, result: NOTSUP });
      return;
    }
    const [res, m, f, rawArgs] = args as [Term, Term, Term, Term];
    const a = asList(rawArgs);
    const opts = spawnOptions(msg.options);
    const p = this.spawnInternal();
    if (opts.link) p.links.set(pidKey(msg.from), msg.from);
    if (opts.monitor) p.monitoredBy.set(refKey(msg.reqId), { ref: msg.reqId, watcher: msg.from });
    conn.send({
      kind: 'spawn_reply',
      reqId: msg.reqId,
      to: msg.from,
      flags: (opts.link ? SPAWN_REPLY_LINK : 0) | (opts.monitor ? SPAWN_REPLY_MONITOR : 0),
      result: p.pid,
    });
    const handler = m instanceof Atom && f instanceof Atom ? this.exposed.get(`${m.name}:${f.name}`) : undefined;
    if (handler === undefined || a === undefined) {
      const arity = a?.length ?? 0;
      p.exit(tuple(res, ERROR, UNDEF, [tuple(m, f, arity, [])]));
      return;
    }
    Promise.resolve()
      .then(() => handler(a, msg.from))
      .then(
        (value) => p.exit(tuple(res, atom('return'), value)),
        (err: unknown) => {
          const reason =
            err instanceof ErpcError
              ? err.reason
              : tuple(atom('baton_exception'), Buffer.from(String((err as Error)?.message ?? err)));
          p.exit(tuple(res, ERROR, reason, [tuple(m, f, a.length, [])]));
        },
      );
  }

  // ---------------------------------------------------------------- erpc, rpc, eval

  /**
   * `erpc:call(Peer, Module, Function, Args, Timeout)`. Resolves with the return value;
   * rejects with `ErpcError` (throw/exit/error with the remote stack), `NodeDownError`
   * as soon as the connection drops, `TimeoutError` (the remote process is killed).
   */
  erpc(peer: string, module: Name, fun: Name, args: Term[], options: ErpcOptions = {}): Promise<Term> {
    // No await on the hot path: an established connection is used in the same tick.
    const conn = this.connections.get(peer);
    if (conn === undefined) return this.connection(peer).then(() => this.erpc(peer, module, fun, args, options));
    // A peer without SPAWN cannot run erpc; rex can (errors then come as BadRpcError).
    if (!conn.canSpawn) return this.rpc(peer, module, fun, args, options);
    const reqId = this.makeRef();
    const res = this.makeRef();
    const m = toAtom(module);
    const f = toAtom(fun);
    const spawn: Control = {
      kind: 'spawn_request',
      reqId,
      from: this.rpcPid,
      groupLeader: this.ioServer.pid,
      module: erpcMfa.module,
      fun: erpcMfa.fun,
      arity: 4,
      options: MONITOR_OPTION,
      args: [res, m, f, args],
    };
    const answer = this.calls.call(
      conn,
      reqId,
      res,
      spawn,
      options.timeoutMs,
      () => `erpc ${peer} ${m.name}:${f.name}/${args.length}`,
    );
    this.busyPoll.arm();
    return answer;
  }

  /** `erpc:cast/4`: fire and forget. */
  async cast(peer: string, module: Name, fun: Name, args: Term[]): Promise<void> {
    const conn = await this.connection(peer);
    conn.send({
      kind: 'spawn_request',
      reqId: this.makeRef(),
      from: this.rpcPid,
      groupLeader: this.ioServer.pid,
      module: atom('erpc'),
      fun: atom('execute_cast'),
      arity: 3,
      options: [],
      args: [toAtom(module), toAtom(fun), args],
    });
  }

  /**
   * `rpc:call/5` through the peer's `rex` server (for peers or situations where erpc
   * is unavailable). `{badrpc, Reason}` becomes a `BadRpcError`.
   */
  async rpc(peer: string, module: Name, fun: Name, args: Term[], options: ErpcOptions = {}): Promise<Term> {
    await this.connection(peer);
    const p = this.spawnInternal();
    try {
      const reply = await p.call(
        [atom('rex'), atom(peer)],
        tuple(atom('call'), toAtom(module), toAtom(fun), args, this.ioServer.pid),
        options.timeoutMs ?? 60_000,
      );
      if (reply instanceof Tuple && reply.length === 2 && reply.elements[0] === atom('badrpc')) {
        const reason = reply.elements[1]!;
        if (reason === atom('nodedown')) throw new NodeDownError(peer, 'nodedown');
        throw new BadRpcError(reason, peer);
      }
      return reply;
    } catch (err) {
      if (err instanceof TimeoutError)
        throw new TimeoutError(`rpc ${peer} ${toAtom(module).name}:${toAtom(fun).name}`, err.timeoutMs);
      if (err instanceof ProcessExitError && !this.connections.has(peer)) {
        throw new NodeDownError(peer, 'connection lost during rpc');
      }
      throw err;
    } finally {
      p.exit(NORMAL);
    }
  }

  /**
   * Evaluates an Erlang expression sequence (`"X = 1, X + 1."`) on `peer` with
   * `erl_scan`, `erl_parse` and `erl_eval` there, and returns its value.
   */
  async eval(peer: string, text: string, options: ErpcOptions = {}): Promise<Term> {
    const source = /\.\s*$/.test(text) ? text : `${text}.`;
    const scanned = await this.erpc(peer, 'erl_scan', 'string', [charlist(source)], options);
    if (!(scanned instanceof Tuple) || scanned.elements[0] !== OK) throw await this.syntaxError(peer, scanned, text);
    const parsed = await this.erpc(peer, 'erl_parse', 'parse_exprs', [scanned.elements[1]!], options);
    if (!(parsed instanceof Tuple) || parsed.elements[0] !== OK) throw await this.syntaxError(peer, parsed, text);
    const value = await this.erpc(peer, 'erl_eval', 'exprs', [parsed.elements[1]!, []], options);
    if (value instanceof Tuple && value.elements[0] === atom('value')) return value.elements[1]!;
    throw new ErpcError('error', value, [], peer);
  }

  /** `{error, {Location, Module, Descriptor}, ...}` worded by the peer's `Module:format_error/1`. */
  private async syntaxError(peer: string, result: Term, text: string): Promise<EvalSyntaxError> {
    const info = result instanceof Tuple ? result.elements[1] : undefined;
    if (info instanceof Tuple && info.length === 3 && info.elements[1] instanceof Atom) {
      const [loc, mod, desc] = info.elements as [Term, Atom, Term];
      try {
        const words = chardataToString(await this.erpc(peer, mod, 'format_error', [desc], { timeoutMs: 5000 }));
        const where =
          typeof loc === 'number'
            ? `line ${loc}`
            : loc instanceof Tuple
              ? `line ${String(loc.elements[0])}, column ${String(loc.elements[1])}`
              : undefined;
        if (words !== undefined) return new EvalSyntaxError(result, text, where ? `${where}: ${words}` : words);
      } catch {
        // The raw term still says what went wrong.
      }
    }
    return new EvalSyntaxError(result, text);
  }

  /** Lists the names registered with EPMD on `host` (ours by default). */
  names(host = this.opts.epmdHost): Promise<NamesResponse> {
    return epmdNames({ host, port: this.opts.epmdPort });
  }

  // ---------------------------------------------------------------- shutdown

  /** Closes every connection, unregisters from EPMD, stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.connections.values()]) c.close('local node closed');
    for (const s of this.handshakeSockets) s.destroy();
    for (const p of [...this.processes.values()]) p.exit(atom('shutdown'));
    this.registration?.close();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
