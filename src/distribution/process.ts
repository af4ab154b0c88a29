/**
 * TS processes: a pid, a mailbox with selective receive, links, monitors, exit
 * signals and aliases, with Erlang's semantics. A process keeps only its own state;
 * every signal to another process, local or remote, goes through its `ProcessHost`
 * (the process table), which also brings it the signals others send.
 */
import { Atom, atom, improperList, Pid, Reference, type Term, Tuple, termEquals, tuple } from '../etf/index.js';
import { ProcessExitError, TimeoutError } from './errors.js';

export type Name = Atom | string;
/** Where a message can go: a pid, an alias, a local registered name, or `[name, node]`. */
export type Destination = Pid | Reference | Name | [Name, Name] | Tuple;

/** A signal between two processes, as the distribution protocol names them. */
export type Signal =
  | { kind: 'link'; from: Pid; to: Pid }
  | { kind: 'unlink'; from: Pid; to: Pid }
  /** A linked process exited. */
  | { kind: 'exit'; from: Pid; to: Pid; reason: Term }
  /** `exit/2`. */
  | { kind: 'exit2'; from: Pid; to: Pid; reason: Term }
  /** `target` is a pid or a name registered on `node`. */
  | { kind: 'monitor'; from: Pid; target: Pid | Atom; node: Atom; ref: Reference }
  | { kind: 'demonitor'; from: Pid; target: Pid | Atom; node: Atom; ref: Reference }
  /** A monitored process (or the name it was monitored by) exited. */
  | { kind: 'monitor_exit'; from: Pid | Atom; to: Pid; ref: Reference; reason: Term };

/** What a process needs from the node it lives on. */
export interface ProcessHost {
  readonly nodeAtom: Atom;
  makeRef(): Reference;
  send(from: Pid, to: Destination, message: Term): void;
  /** Delivers `signal` to its target, on this node or another. */
  signal(signal: Signal): void;
  /** Throws if another live process holds the name. */
  registerName(name: Atom, p: Process): void;
  unregisterName(name: Atom): void;
  addAlias(ref: Reference, p: Process): void;
  removeAlias(ref: Reference): void;
  /** Connects to `node` if need be; `p.nodeUnreachable(node)` if that fails. */
  watchNode(node: Atom, p: Process): void;
  exited(p: Process): void;
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
const NOCONNECTION = atom('noconnection');
const NODEDOWN = atom('nodedown');
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
  private readonly links = new Map<string, Pid>();
  /** Monitors this process holds on others. */
  private readonly monitors = new Map<string, OwnMonitor>();
  /** Monitors others hold on this process: ref key → watcher (and the name they used). */
  private readonly monitoredBy = new Map<string, { ref: Reference; watcher: Pid; name?: Atom }>();
  private readonly names = new Set<Atom>();
  private readonly aliases = new Map<string, Reference>();
  private readonly watchedNodes = new Set<Atom>();
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
    this.host.send(this.pid, to, message);
  }

  /** @internal Called by the process table for every message addressed to this process. */
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
    this.links.set(key, to);
    this.host.signal({ kind: 'link', from: this.pid, to });
  }

  unlink(to: Pid): void {
    this.assertAlive();
    if (this.links.delete(pidKey(to))) this.host.signal({ kind: 'unlink', from: this.pid, to });
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
    this.host.signal({ kind: 'monitor', from: this.pid, target: t, node, ref });
    return ref;
  }

  /** `erlang:demonitor(Ref, [flush])`. */
  demonitor(ref: Reference): void {
    const key = refKey(ref);
    const m = this.monitors.get(key);
    if (m !== undefined) {
      this.monitors.delete(key);
      this.host.signal({ kind: 'demonitor', from: this.pid, target: m.target, node: m.node, ref });
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
    this.host.signal({ kind: 'exit2', from: this.pid, to, reason });
  }

  /** This process ends with `reason` (default `normal`): links and monitors fire. */
  exit(reason: Term = NORMAL): void {
    this.terminate(reason);
  }

  /** @internal A signal from another process, brought by the process table. */
  onSignal(s: Signal): void {
    switch (s.kind) {
      case 'link':
        if (this.alive) this.links.set(pidKey(s.from), s.from);
        return;
      case 'unlink':
        this.links.delete(pidKey(s.from));
        return;
      case 'exit':
        this.exitSignal(s.from, s.reason, true);
        return;
      case 'exit2':
        this.exitSignal(s.from, s.reason, false);
        return;
      case 'monitor':
        if (this.alive)
          this.monitoredBy.set(refKey(s.ref), {
            ref: s.ref,
            watcher: s.from,
            ...(s.target instanceof Atom ? { name: s.target } : {}),
          });
        return;
      case 'demonitor':
        this.monitoredBy.delete(refKey(s.ref));
        return;
      case 'monitor_exit':
        this.down(s.ref, s.reason);
        return;
    }
  }

  /** @internal Everything that depended on `node` is gone (the connection closed). */
  nodeDown(node: Atom): void {
    if (!this.alive) return;
    for (const [key, m] of [...this.monitoredBy]) if (m.watcher.node === node) this.monitoredBy.delete(key);
    for (const m of [...this.monitors.values()]) if (m.node === node) this.down(m.ref, NOCONNECTION);
    if (this.watchedNodes.delete(node)) this.deliver(tuple(NODEDOWN, node));
    for (const pid of [...this.links.values()]) if (pid.node === node) this.exitSignal(pid, NOCONNECTION, true);
  }

  /** @internal A node this process watches could not be connected to. */
  nodeUnreachable(node: Atom): void {
    if (this.watchedNodes.delete(node)) this.deliver(tuple(NODEDOWN, node));
  }

  /** An exit signal arriving, by a link or by `exit/2`. */
  private exitSignal(from: Pid, reason: Term, byLink: boolean): void {
    if (!this.alive) return;
    if (byLink) {
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

  /** A monitor this process holds fired. */
  private down(ref: Reference, reason: Term): void {
    const key = refKey(ref);
    const m = this.monitors.get(key);
    if (m === undefined) return;
    this.monitors.delete(key);
    this.deliver(tuple(DOWN, ref, PROCESS, m.item, reason));
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
    this.watchedNodes.clear();
    for (const to of this.links.values()) this.host.signal({ kind: 'exit', from: this.pid, to, reason });
    this.links.clear();
    for (const m of this.monitoredBy.values())
      this.host.signal({ kind: 'monitor_exit', from: m.name ?? this.pid, to: m.watcher, ref: m.ref, reason });
    this.monitoredBy.clear();
    for (const m of this.monitors.values())
      this.host.signal({ kind: 'demonitor', from: this.pid, target: m.target, node: m.node, ref: m.ref });
    this.monitors.clear();
    this.host.exited(this);
    this.resolveExited(reason);
    w?.reject(new ProcessExitError(reason));
  }
}
