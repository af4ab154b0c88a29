/**
 * baton's node as its users see it: a hidden Erlang node in TypeScript. It wires three
 * parts together and adds nothing of its own: the connections (EPMD, dialing,
 * accepting, handshakes, node up/down), the process table (TS processes and the
 * signals between them), and rpc (erpc/cast/rpc/eval both ways, and the system
 * processes, among them the io server that is the group leader of everything baton
 * runs remotely).
 */

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type Atom, atom, type Pid, type Reference, type Term } from '../etf/index.js';
import { defaultBusyPollMs } from './busy-poll.js';
import type { Connection } from './connection.js';
import { Connections, type NodeMonitor } from './connections.js';
import type { Control } from './control.js';
import { defaultEpmdPort, epmdNames, type NamesResponse } from './epmd.js';
import { DistributionError } from './errors.js';
import { type Name, type Process, type SpawnOptions, toAtom } from './process.js';
import { ProcessTable } from './process-table.js';
import { type ErpcOptions, Rpc } from './rpc.js';
import { type ExposedFunction, LineBuffer } from './system.js';

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

export function shortHostname(): string {
  return hostname().split('.')[0]!;
}

export class Node extends EventEmitter {
  readonly name: string;
  readonly nodeAtom: Atom;
  readonly host: string;
  private readonly connections: Connections;
  private readonly processes: ProcessTable;
  private readonly rpcs: Rpc;
  private readonly log: NodeOptions['log'];
  private readonly epmd: { host: string; port: number };
  private started: Promise<void> | undefined;

  constructor(options: NodeOptions) {
    super();
    if (options.hidden !== undefined && options.hidden !== true) throw new TypeError('baton is always a hidden node');
    const [base, host] = options.name.includes('@') ? options.name.split('@', 2) : [options.name, shortHostname()];
    if (!base || !host) throw new TypeError(`invalid node name ${JSON.stringify(options.name)}`);
    this.name = `${base}@${host}`;
    this.host = host;
    this.nodeAtom = atom(this.name);
    this.log = options.log;
    this.epmd = { host: options.epmdHost ?? '127.0.0.1', port: options.epmdPort ?? defaultEpmdPort() };
    this.connections = new Connections(
      {
        name: this.name,
        epmdPort: this.epmd.port,
        epmdHost: this.epmd.host,
        startEpmd: options.startEpmd ?? false,
        listen: options.listen ?? true,
        port: options.port,
        listenHost: options.listenHost,
        netTicktime: options.netTicktime ?? 60,
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? 7000,
        maxFrameBytes: options.maxFrameBytes ?? 128 * 1024 * 1024,
        maxSendQueueBytes: options.maxSendQueueBytes ?? 256 * 1024 * 1024,
        maxPendingHandshakes: options.maxPendingHandshakes ?? 64,
        distFlags: options.distFlags,
      },
      options.cookie,
      {
        started: () => this.start(),
        onControl: (msg, conn) => this.onControl(msg, conn),
        onLost: (conn, reason) => this.onLost(conn, reason),
        emitter: this,
      },
    );
    this.processes = new ProcessTable(this.nodeAtom, this.connections);
    this.rpcs = new Rpc(this.processes, this.connections, options.busyPollMs ?? defaultBusyPollMs());
  }

  /** Listens, registers with EPMD (that gives our creation), and starts the io server. Idempotent. */
  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    try {
      await this.connections.start();
    } catch (err) {
      this.started = undefined;
      throw err;
    }
    this.processes.start(this.connections.creation);
    const lines = new LineBuffer((line, from) => {
      this.emit('output', { node: from, line });
      if (this.log) this.log(line, from);
      else process.stdout.write(`[${from}] ${line}\n`);
    });
    this.rpcs.startSystemProcesses(
      (text, from) => lines.push(text, from),
      (err) => this.emit('ioError', err),
    );
  }

  private onControl(msg: Control, conn: Connection): void {
    if (!this.rpcs.onControl(msg, conn)) this.processes.onControl(msg, conn);
  }

  private onLost(conn: Connection, reason: string): void {
    this.rpcs.connectionClosed(conn, reason);
    this.processes.nodeDown(atom(conn.peerName));
  }

  /** The creation EPMD gave this incarnation (0 before `start`). */
  get creation(): number {
    return this.connections.creation;
  }

  /** The port peers reach us on (0 when not listening). */
  get port(): number {
    return this.connections.port;
  }

  /** The io server's pid: the group leader of everything baton runs on peers. */
  get groupLeader(): Pid {
    return this.rpcs.groupLeader;
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
      ...this.connections.stats(),
      processes: this.processes.size,
      pendingCalls: this.rpcs.pendingCalls,
      aliases: this.processes.aliasCount,
    };
  }

  /** Names of the nodes we are connected to. */
  connectedNodes(): string[] {
    return this.connections.names();
  }

  isConnected(node: Atom | string): boolean {
    return this.connections.connected(typeof node === 'string' ? node : node.name) !== undefined;
  }

  /** Connects to `peer` (`name@host`) unless connected; concurrent callers share one attempt. */
  async connect(peer: string): Promise<void> {
    await this.connections.connect(peer);
  }

  /** `monitor_node(Node, true)` for TS code: resolves when the node goes down. */
  monitorNode(peer: string): NodeMonitor {
    return this.connections.monitorNode(peer);
  }

  /** A new TS process. The node must be started (connect/start) first. */
  spawn(options: SpawnOptions = {}): Process {
    // Pids carry the creation EPMD gives us, so none can exist before start() has finished.
    if (!this.processes.started)
      throw new DistributionError('await node.start() (or connect) before spawning processes');
    return this.processes.spawn(options);
  }

  /** Registered TS process by name. */
  whereis(name: Name): Process | undefined {
    return this.processes.whereis(toAtom(name));
  }

  makeRef(): Reference {
    return this.processes.makeRef();
  }

  /** Expose a TS function to peers as `erpc:call(baton@host, Module, Function, Args)`. */
  expose(module: string, fun: string, handler: ExposedFunction): void {
    this.rpcs.expose(module, fun, handler);
  }

  /**
   * `erpc:call(Peer, Module, Function, Args, Timeout)`. Resolves with the return value;
   * rejects with `ErpcError` (throw/exit/error with the remote stack), `NodeDownError`
   * as soon as the connection drops, `TimeoutError` (the remote process is killed).
   */
  erpc(peer: string, module: Name, fun: Name, args: Term[], options?: ErpcOptions): Promise<Term> {
    return this.rpcs.erpc(peer, module, fun, args, options);
  }

  /** `erpc:cast/4`: fire and forget. */
  cast(peer: string, module: Name, fun: Name, args: Term[]): Promise<void> {
    return this.rpcs.cast(peer, module, fun, args);
  }

  /**
   * `rpc:call/5` through the peer's `rex` server (for peers or situations where erpc
   * is unavailable). `{badrpc, Reason}` becomes a `BadRpcError`.
   */
  rpc(peer: string, module: Name, fun: Name, args: Term[], options?: ErpcOptions): Promise<Term> {
    return this.rpcs.rpc(peer, module, fun, args, options);
  }

  /**
   * Evaluates an Erlang expression sequence (`"X = 1, X + 1."`) on `peer` with
   * `erl_scan`, `erl_parse` and `erl_eval` there, and returns its value.
   */
  eval(peer: string, text: string, options?: ErpcOptions): Promise<Term> {
    return this.rpcs.eval(peer, text, options);
  }

  /** Lists the names registered with EPMD on `host` (ours by default). */
  names(host = this.epmd.host): Promise<NamesResponse> {
    return epmdNames({ host, port: this.epmd.port });
  }

  /** Closes every connection, ends every process, unregisters from EPMD, stops listening. */
  async close(): Promise<void> {
    if (this.connections.isClosed) return;
    const closing = this.connections.close();
    this.processes.exitAll(atom('shutdown'));
    await closing;
  }
}
