/**
 * Calling peers and being called: erpc over SPAWN_REQUEST (busy polling while answers
 * are awaited), `erpc:cast`, `rpc:call` through rex for peers without SPAWN, eval with
 * the peer's own erl_eval; and, the other way, SPAWN_REQUESTs from peers that run a TS
 * function exposed with `expose`, and the node's system processes (group leader, rex,
 * net_kernel).
 */
import { Atom, asList, atom, charlist, type Pid, type Term, Tuple, tuple } from '../etf/index.js';
import { BusyPoll } from './busy-poll.js';
import type { Connection } from './connection.js';
import { type Control, SPAWN_REPLY_LINK, SPAWN_REPLY_MONITOR } from './control.js';
import { ErpcCalls, erpcMfa, spawnOptions } from './erpc.js';
import { BadRpcError, ErpcError, EvalSyntaxError, NodeDownError, ProcessExitError, TimeoutError } from './errors.js';
import { DFLAG, hasFlag } from './flags.js';
import { chardataToString } from './io-server.js';
import { type Name, type Process, toAtom } from './process.js';
import type { ProcessTable } from './process-table.js';
import { type ExposedFunction, netKernelHandler, rexHandler, runIoServer, serveGenCalls } from './system.js';

export interface ErpcOptions {
  timeoutMs?: number;
}

/** What rpc needs of the connections. */
export interface Dialer {
  connected(peer: string): Connection | undefined;
  connect(peer: string): Promise<Connection>;
  /** Changes whenever a control message arrives (busy polling's sign of progress). */
  readonly controlsIn: number;
}

const NORMAL = atom('normal');
const NOTSUP = atom('notsup');
const UNDEF = atom('undef');
const ERROR = atom('error');
const OK = atom('ok');
/** erpc's spawn options, shared by every call (encoding never mutates a term). */
const MONITOR_OPTION: Term = [atom('monitor')];

export class Rpc {
  private readonly calls: ErpcCalls;
  private readonly busyPoll: BusyPoll;
  private readonly exposed = new Map<string, ExposedFunction>();
  /** Pid that SPAWN_REQUESTs of erpc calls come from; replies are dispatched by request id. */
  private rpcPid!: Pid;
  private ioServer!: Process;

  constructor(
    private readonly processes: ProcessTable,
    private readonly peers: Dialer,
    busyPollMs: number,
  ) {
    this.calls = new ErpcCalls(
      () => this.rpcPid,
      (ref) => processes.callKey(ref),
    );
    this.busyPoll = new BusyPoll(
      busyPollMs,
      () => this.calls.size,
      () => peers.controlsIn,
    );
  }

  get pendingCalls(): number {
    return this.calls.size;
  }

  /** The io server's pid: the group leader of everything run on peers. */
  get groupLeader(): Pid {
    return this.ioServer.pid;
  }

  /** The processes every node has, once the process table is started. */
  startSystemProcesses(output: (text: string, from: string) => void, onError: (err: unknown) => void): void {
    this.rpcPid = this.processes.allocPid();
    this.ioServer = this.processes.spawn();
    runIoServer(this.ioServer, {
      apply: (node, m, f, a) => this.erpc(node, m, f, a, { timeoutMs: 30_000 }),
      output,
      onError,
    });
    serveGenCalls(
      this.processes.spawn({ name: 'rex' }),
      rexHandler((m, f) => this.exposed.get(`${m.name}:${f.name}`)),
    );
    serveGenCalls(this.processes.spawn({ name: 'net_kernel' }), netKernelHandler);
  }

  expose(module: string, fun: string, handler: ExposedFunction): void {
    this.exposed.set(`${module}:${fun}`, handler);
  }

  /** Takes the control messages that belong to erpc (answers, and requests to run an exposed function). */
  onControl(msg: Control, conn: Connection): boolean {
    switch (msg.kind) {
      case 'monitor_exit':
        return this.calls.onMonitorExit(msg, conn);
      case 'spawn_reply':
        this.calls.onSpawnReply(msg, conn);
        return true;
      case 'spawn_request':
        this.onSpawnRequest(msg, conn);
        return true;
      default:
        return false;
    }
  }

  connectionClosed(conn: Connection, reason: string): void {
    this.calls.connectionClosed(conn, reason);
  }

  // ---------------------------------------------------------------- calling peers

  erpc(peer: string, module: Name, fun: Name, args: Term[], options: ErpcOptions = {}): Promise<Term> {
    // No await on the hot path: an established connection is used in the same tick.
    const conn = this.peers.connected(peer);
    if (conn === undefined) return this.peers.connect(peer).then(() => this.erpc(peer, module, fun, args, options));
    // A peer without SPAWN cannot run erpc; rex can (errors then come as BadRpcError).
    if (!conn.canSpawn) return this.rpc(peer, module, fun, args, options);
    const reqId = this.processes.makeRef();
    const res = this.processes.makeRef();
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

  async cast(peer: string, module: Name, fun: Name, args: Term[]): Promise<void> {
    const conn = await this.peers.connect(peer);
    conn.send({
      kind: 'spawn_request',
      reqId: this.processes.makeRef(),
      from: this.rpcPid,
      groupLeader: this.ioServer.pid,
      module: atom('erpc'),
      fun: atom('execute_cast'),
      arity: 3,
      options: [],
      args: [toAtom(module), toAtom(fun), args],
    });
  }

  async rpc(peer: string, module: Name, fun: Name, args: Term[], options: ErpcOptions = {}): Promise<Term> {
    await this.peers.connect(peer);
    const p = this.processes.spawn();
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
      if (err instanceof ProcessExitError && this.peers.connected(peer) === undefined) {
        throw new NodeDownError(peer, 'connection lost during rpc');
      }
      throw err;
    } finally {
      p.exit(NORMAL);
    }
  }

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

  // ---------------------------------------------------------------- being called

  /** `erpc:call(baton@host, M, F, A)` from a peer: a process runs the exposed function and exits with its answer. */
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
    const p = this.processes.spawn();
    if (opts.link) this.processes.signal({ kind: 'link', from: msg.from, to: p.pid });
    if (opts.monitor)
      this.processes.signal({ kind: 'monitor', from: msg.from, target: p.pid, node: p.pid.node, ref: msg.reqId });
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
}
