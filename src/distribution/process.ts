/**
 * TS processes: a pid, a mailbox with selective receive, links, monitors, exit
 * signals and aliases, with Erlang's semantics. Signals that leave the node go through
 * the `ProcessHost` (the node), which owns connections and the pid/name tables.
 */
import { Atom, atom, improperList, Pid, Reference, type Term, Tuple, termEquals, tuple } from '../etf/index.js';
import { ProcessExitError, TimeoutError } from './errors.js';

export type Name = Atom | string;
/** Where a message can go: a pid, an alias, a local registered name, or `[name, node]`. */
export type Destination = Pid | Reference | Name | [Name, Name] | Tuple;

export interface ProcessHost {
  readonly nodeAtom: Atom;
  makeRef(): Reference;
  route(from: Pid, to: Destination, message: Term): void;
  /** Link/unlink/exit/monitor signals to a pid that is not ours. */
  remoteLink(from: Pid, to: Pid): void;
  remoteUnlink(from: Pid, to: Pid): void;
  remoteExit(from: Pid, to: Pid, reason: Term, kind: 'exit' | 'exit2'): void;
  remoteMonitor(from: Pid, target: Pid | Atom, node: Atom, ref: Reference): void;
  remoteDemonitor(from: Pid, target: Pid | Atom, node: Atom, ref: Reference): void;
  remoteMonitorExit(from: Pid | Atom, to: Pid, ref: Reference, reason: Term): void;
  localProcess(pid: Pid): Process | undefined;
  localByName(name: Atom): Process | undefined;
  isConnected(node: Atom): boolean;
  registerName(name: Atom, p: Process): void;
  unregisterName(name: Atom): void;
  addAlias(ref: Reference, p: Process): void;
  removeAlias(ref: Reference): void;
  processExited(p: Process): void;
  watchNode(node: Atom, p: Process): void;
  unwatchNode(node: Atom, p: Process): void;
}

export function refKey(r: Reference): string {
  return `${r.node.name}/${r.creation}/${r.ids.join('.')}`;
}

export function pidKey(p: Pid): string {
  return `${p.node.name}/${p.creation}/${p.id}.${p.serial}`;
}

export function toAtom(n: Name): Atom {
  return typeof n === 'string' ? atom(n) : n;
}

const NORMAL = atom('normal');
const KILL = atom('kill');
const KILLED = atom('killed');
const NOPROC = atom('noproc');
const EXIT = atom('EXIT');
const DOWN = atom('DOWN');
const PROCESS = atom('process');
const GEN_CALL = atom('$gen_call');
const ALIAS = atom('alias');

interface OwnMonitor {
  ref: Reference;
  /** What 'DOWN' names: the pid, or `{Name, Node}`. */
  item: Term;
  target: Pid | Atom;
  node: Atom;
}

interface Waiter {
  match: (m: Term) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export interface SpawnOptions {
  /** Register the process under this name. */
  name?: Name;
  trapExit?: boolean;
}

export class Process {
  readonly pid: Pid;
  trapExit: boolean;
  private readonly mailbox: Term[] = [];
  private waiter: Waiter | undefined;
  /** Linked pids by key. */
  readonly links = new Map<string, Pid>();
  /** Monitors this process holds on others. */
  readonly monitors = new Map<string, OwnMonitor>();
  /** Monitors others hold on this process: ref key → watcher (and the name they used). */
  readonly monitoredBy = new Map<string, { ref: Reference; watcher: Pid; name?: Atom }>();
  readonly names = new Set<Atom>();
  readonly aliases = new Map<string, Reference>();
  readonly watchedNodes = new Set<Atom>();
  private alive = true;
  private exitReason: Term | undefined;
  readonly exited: Promise<Term>;
  private resolveExited!: (reason: Term) => void;

  constructor(
    private readonly host: ProcessHost,
    pid: Pid,
    options: SpawnOptions = {},
  ) {
    this.pid = pid;
    this.trapExit = options.trapExit ?? false;
    this.exited = new Promise((r) => (this.resolveExited = r));
    if (options.name !== undefined) this.register(options.name);
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get reason(): Term | undefined {
    return this.exitReason;
  }

  /** Messages waiting (for tests and introspection). */
  get queueLength(): number {
    return this.mailbox.length;
  }

  register(name: Name): void {
    const a = toAtom(name);
    this.host.registerName(a, this);
    this.names.add(a);
  }

  send(to: Destination, message: Term): void {
    this.host.route(this.pid, to, message);
  }

  /** @internal Called by the node for every message addressed to this process. */
  deliver(message: Term): void {
    if (!this.alive) return;
    const w = this.waiter;
    if (w !== undefined) {
      let v: unknown;
      try {
        v = w.match(message);
      } catch (err) {
        // A throwing matcher is the receiver's bug: it fails that receive, not the connection.
        this.mailbox.push(message);
        this.settle();
        w.reject(err as Error);
        return;
      }
      if (v !== undefined) {
        this.settle();
        w.resolve(v);
        return;
      }
    }
    this.mailbox.push(message);
  }

  /**
   * Selective receive: the first message (oldest first) for which `match` returns
   * something other than `undefined`; that value is the result. Rejects with a
   * `TimeoutError` after `timeoutMs`, and with `ProcessExitError` if the process dies.
   */
  receive<T = Term>(match?: (message: Term) => T | undefined, timeoutMs?: number): Promise<T> {
    const m = (match ?? ((x: Term) => x as unknown as T)) as (message: Term) => T | undefined;
    if (!this.alive) return Promise.reject(new ProcessExitError(this.exitReason ?? NORMAL));
    if (this.waiter !== undefined) return Promise.reject(new Error('a receive is already pending on this process'));
    for (let i = 0; i < this.mailbox.length; i++) {
      const v = m(this.mailbox[i]!);
      if (v !== undefined) {
        this.mailbox.splice(i, 1);
        return Promise.resolve(v);
      }
    }
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { match: m, resolve: resolve as (v: unknown) => void, reject };
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.settle();
          reject(new TimeoutError('receive', timeoutMs));
        }, timeoutMs);
      }
      this.waiter = w;
    });
  }

  private settle(): void {
    if (this.waiter?.timer) clearTimeout(this.waiter.timer);
    this.waiter = undefined;
  }

  link(to: Pid): void {
    this.assertAlive();
    const key = pidKey(to);
    if (this.links.has(key)) return;
    if (to.node === this.host.nodeAtom) {
      const other = this.host.localProcess(to);
      if (other === undefined || !other.isAlive) {
        this.links.set(key, to);
        this.exitSignal(to, NOPROC, 'link');
        return;
      }
      this.links.set(key, to);
      other.links.set(pidKey(this.pid), this.pid);
      return;
    }
    this.links.set(key, to);
    this.host.remoteLink(this.pid, to);
  }

  unlink(to: Pid): void {
    this.assertAlive();
    const key = pidKey(to);
    if (!this.links.delete(key)) return;
    if (to.node === this.host.nodeAtom) this.host.localProcess(to)?.links.delete(pidKey(this.pid));
    else this.host.remoteUnlink(this.pid, to);
  }

  /** `erlang:monitor(process, Target)`: a pid, or a registered name `[name, node]` / local name. */
  monitor(target: Pid | Name | [Name, Name]): Reference {
    this.assertAlive();
    const ref = this.host.makeRef();
    let node: Atom;
    let t: Pid | Atom;
    let item: Term;
    if (target instanceof Pid) {
      node = target.node;
      t = target;
      item = target;
    } else if (Array.isArray(target)) {
      node = toAtom(target[1]);
      t = toAtom(target[0]);
      item = tuple(t, node);
    } else {
      node = this.host.nodeAtom;
      t = toAtom(target);
      item = tuple(t, node);
    }
    this.monitors.set(refKey(ref), { ref, item, target: t, node });
    if (node === this.host.nodeAtom) {
      const other = t instanceof Pid ? this.host.localProcess(t) : this.host.localByName(t);
      if (other === undefined || !other.isAlive) this.down(ref, NOPROC);
      else other.monitoredBy.set(refKey(ref), { ref, watcher: this.pid, ...(t instanceof Atom ? { name: t } : {}) });
    } else {
      this.host.remoteMonitor(this.pid, t, node, ref);
    }
    return ref;
  }

  /** `erlang:demonitor(Ref, [flush])`. */
  demonitor(ref: Reference): void {
    const key = refKey(ref);
    const m = this.monitors.get(key);
    if (m !== undefined) {
      this.monitors.delete(key);
      if (m.node === this.host.nodeAtom) {
        const other = m.target instanceof Pid ? this.host.localProcess(m.target) : this.host.localByName(m.target);
        other?.monitoredBy.delete(key);
      } else this.host.remoteDemonitor(this.pid, m.target, m.node, ref);
    }
    this.flush(
      (msg) =>
        msg instanceof Tuple &&
        msg.elements[0] === DOWN &&
        msg.elements[1] instanceof Reference &&
        refKey(msg.elements[1]) === key,
    );
  }

  /** `erlang:monitor_node(Node, true)`: `{nodedown, Node}` arrives when the connection goes. */
  monitorNode(node: Name): void {
    const a = toAtom(node);
    this.watchedNodes.add(a);
    this.host.watchNode(a, this);
  }

  /** A new alias: messages sent to it (ALIAS_SEND) reach this process until `unalias`. */
  alias(): Reference {
    const ref = this.host.makeRef();
    this.aliases.set(refKey(ref), ref);
    this.host.addAlias(ref, this);
    return ref;
  }

  unalias(ref: Reference): void {
    if (this.aliases.delete(refKey(ref))) this.host.removeAlias(ref);
  }

  /**
   * `gen_server:call/3` as OTP 25+ makes it: a monitor that is also an alias, the tag
   * `[alias | Mref]`, so the reply may come by ALIAS_SEND.
   */
  async call(server: Pid | Name | [Name, Name], request: Term, timeoutMs = 5000): Promise<Term> {
    const mref = this.monitor(server);
    const key = refKey(mref);
    this.aliases.set(key, mref);
    this.host.addAlias(mref, this);
    const tag = improperList([ALIAS], mref);
    this.send(server, tuple(GEN_CALL, tuple(this.pid, tag), request));
    try {
      const got = await this.receive<{ reply: Term } | { down: Term }>((m) => {
        if (!(m instanceof Tuple)) return undefined;
        const e = m.elements;
        if (e.length === 2 && termEquals(e[0]!, tag)) return { reply: e[1]! };
        if (e.length === 5 && e[0] === DOWN && e[1] instanceof Reference && refKey(e[1]) === key)
          return { down: e[4]! };
        return undefined;
      }, timeoutMs);
      if ('down' in got) throw new ProcessExitError(got.down, 'gen_server call failed, server down');
      return got.reply;
    } finally {
      this.unalias(mref);
      if (this.alive) this.demonitor(mref);
    }
  }

  /** `exit(To, Reason)`: an exit signal to another process. */
  exitOther(to: Pid, reason: Term): void {
    if (to.node === this.host.nodeAtom) this.host.localProcess(to)?.exitSignal(this.pid, reason, 'exit2');
    else this.host.remoteExit(this.pid, to, reason, 'exit2');
  }

  /** This process ends with `reason` (default `normal`): links and monitors fire. */
  exit(reason: Term = NORMAL): void {
    this.terminate(reason);
  }

  /** @internal An exit signal arriving at this process, by link (`link`) or `exit/2` (`exit2`). */
  exitSignal(from: Pid, reason: Term, via: 'link' | 'exit2'): void {
    if (!this.alive) return;
    if (via === 'link') {
      // Not (or no longer) linked: a stale signal, e.g. one that crossed our unlink.
      if (!this.links.delete(pidKey(from))) return;
    } else if (reason === KILL) {
      this.terminate(KILLED);
      return;
    }
    if (this.trapExit) {
      this.deliver(tuple(EXIT, from, reason));
      return;
    }
    if (reason === NORMAL) return;
    this.terminate(reason);
  }

  /** @internal A monitor this process holds fired. */
  down(ref: Reference, reason: Term): void {
    const key = refKey(ref);
    const m = this.monitors.get(key);
    if (m === undefined) return;
    this.monitors.delete(key);
    this.deliver(tuple(DOWN, ref, PROCESS, m.item, reason));
  }

  /** @internal Everything that depended on `node` is gone (the connection closed). */
  nodeDown(node: Atom): void {
    if (!this.alive) return;
    for (const [key, m] of [...this.monitoredBy]) if (m.watcher.node === node) this.monitoredBy.delete(key);
    for (const m of [...this.monitors.values()]) if (m.node === node) this.down(m.ref, atom('noconnection'));
    if (this.watchedNodes.delete(node)) this.deliver(tuple(atom('nodedown'), node));
    for (const pid of [...this.links.values()])
      if (pid.node === node) this.exitSignal(pid, atom('noconnection'), 'link');
  }

  private flush(pred: (m: Term) => boolean): void {
    for (let i = this.mailbox.length - 1; i >= 0; i--) if (pred(this.mailbox[i]!)) this.mailbox.splice(i, 1);
  }

  private assertAlive(): void {
    if (!this.alive) throw new ProcessExitError(this.exitReason ?? NORMAL, 'process is not alive');
  }

  private terminate(reason: Term): void {
    if (!this.alive) return;
    this.alive = false;
    this.exitReason = reason;
    const w = this.waiter;
    this.settle();
    this.mailbox.length = 0;
    for (const a of this.names) this.host.unregisterName(a);
    this.names.clear();
    for (const r of this.aliases.values()) this.host.removeAlias(r);
    this.aliases.clear();
    for (const n of this.watchedNodes) this.host.unwatchNode(n, this);
    for (const pid of this.links.values()) {
      if (pid.node === this.host.nodeAtom) this.host.localProcess(pid)?.exitSignal(this.pid, reason, 'link');
      else this.host.remoteExit(this.pid, pid, reason, 'exit');
    }
    this.links.clear();
    for (const m of this.monitoredBy.values()) {
      if (m.watcher.node === this.host.nodeAtom) this.host.localProcess(m.watcher)?.down(m.ref, reason);
      else this.host.remoteMonitorExit(m.name ?? this.pid, m.watcher, m.ref, reason);
    }
    this.monitoredBy.clear();
    for (const m of this.monitors.values()) {
      if (m.node !== this.host.nodeAtom) this.host.remoteDemonitor(this.pid, m.target, m.node, m.ref);
      else {
        const other = m.target instanceof Pid ? this.host.localProcess(m.target) : this.host.localByName(m.target);
        other?.monitoredBy.delete(refKey(m.ref));
      }
    }
    this.monitors.clear();
    this.host.processExited(this);
    this.resolveExited(reason);
    w?.reject(new ProcessExitError(reason));
  }
}
