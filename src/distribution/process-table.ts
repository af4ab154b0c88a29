/**
 * The node's processes: pids and references, registered names, aliases, and the routing
 * of messages and signals (links, monitors, exits) between processes, here or on other
 * nodes. It is the `ProcessHost` every `Process` talks to; signals for other nodes leave
 * through a `Transport` (the connection registry), and signals that arrive from other
 * nodes come in through `onControl`.
 */
import { randomInt } from 'node:crypto';
import { Atom, atom, Pid, Reference, type Term, Tuple } from '../etf/index.js';
import type { Connection } from './connection.js';
import type { Control } from './control.js';
import { DistributionError } from './errors.js';
import { DFLAG, hasFlag } from './flags.js';
import {
  type Destination,
  Process,
  type ProcessHost,
  refKey,
  type Signal,
  type SpawnOptions,
  toAtom,
} from './process.js';

/** How signals reach other nodes. */
export interface Transport {
  /** The established connection to `node`, if any. */
  connected(node: string): Connection | undefined;
  /** Runs `action` on the connection to `node`, dialing first if there is none (as `!` does). */
  withConnection(node: string, action: (c: Connection) => void, onFail?: (err: Error) => void): void;
}

const NOPROC = atom('noproc');
const NOCONNECTION = atom('noconnection');

export class ProcessTable implements ProcessHost {
  private creation = 0;
  private ready = false;
  private nextPid = 1;
  private refCounter = 0;
  /** The last word of every reference we make, so `callKey` can tell ours from a peer's. */
  private readonly refSalt = randomInt(0, 0xffffffff);
  private readonly processes = new Map<number, Process>();
  private readonly registry = new Map<Atom, Process>();
  private readonly aliasTable = new Map<string, Process>();
  private unlinkIds = 0;

  constructor(
    readonly nodeAtom: Atom,
    private readonly transport: Transport,
  ) {}

  /** Pids carry the node's creation, so none is handed out before it is known. */
  start(creation: number): void {
    this.creation = creation;
    this.ready = true;
  }

  get started(): boolean {
    return this.ready;
  }

  get size(): number {
    return this.processes.size;
  }

  get aliasCount(): number {
    return this.aliasTable.size;
  }

  allocPid(): Pid {
    return new Pid(this.nodeAtom, this.nextPid++, 0, this.creation);
  }

  makeRef(): Reference {
    const n = ++this.refCounter;
    return new Reference(this.nodeAtom, this.creation, [n & 0x3ffff, Math.floor(n / 0x40000) >>> 0, this.refSalt]);
  }

  /** A number unique to one of our own references (as made by `makeRef`), or -1 for any other. */
  callKey(ref: Reference): number {
    if (
      ref.node !== this.nodeAtom ||
      ref.creation !== this.creation ||
      ref.ids.length !== 3 ||
      ref.ids[2] !== this.refSalt
    )
      return -1;
    return ref.ids[0]! + ref.ids[1]! * 0x40000;
  }

  spawn(options: SpawnOptions = {}): Process {
    const p = new Process(this, this.allocPid(), options);
    this.processes.set(p.pid.id, p);
    return p;
  }

  whereis(name: Atom): Process | undefined {
    return this.registry.get(name);
  }

  /** Ends every process (the node is closing). */
  exitAll(reason: Term): void {
    for (const p of [...this.processes.values()]) p.exit(reason);
  }

  /** The connection to `node` closed: every process drops what depended on it. */
  nodeDown(node: Atom): void {
    for (const p of [...this.processes.values()]) p.nodeDown(node);
  }

  private local(pid: Pid): Process | undefined {
    if (pid.node !== this.nodeAtom || pid.creation !== this.creation) return undefined;
    return this.processes.get(pid.id);
  }

  private localTarget(target: Pid | Atom): Process | undefined {
    return target instanceof Pid ? this.local(target) : this.registry.get(target);
  }

  // ---------------------------------------------------------------- ProcessHost

  registerName(name: Atom, p: Process): void {
    const holder = this.registry.get(name);
    if (holder !== undefined && holder !== p && holder.isAlive)
      throw new DistributionError(`name ${name.name} is already registered`);
    this.registry.set(name, p);
  }

  unregisterName(name: Atom): void {
    this.registry.delete(name);
  }

  addAlias(ref: Reference, p: Process): void {
    this.aliasTable.set(refKey(ref), p);
  }

  removeAlias(ref: Reference): void {
    this.aliasTable.delete(refKey(ref));
  }

  exited(p: Process): void {
    this.processes.delete(p.pid.id);
  }

  watchNode(node: Atom, p: Process): void {
    this.transport.withConnection(
      node.name,
      () => {},
      () => p.nodeUnreachable(node),
    );
  }

  send(from: Pid, to: Destination, message: Term): void {
    if (to instanceof Pid) {
      if (to.node === this.nodeAtom) this.local(to)?.deliver(message);
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

  signal(s: Signal): void {
    const node = 'node' in s ? s.node : s.to.node;
    if (node === this.nodeAtom) {
      this.arrive(s);
      return;
    }
    switch (s.kind) {
      case 'link':
        this.sendTo(node, s, () => this.arrive({ kind: 'exit', from: s.to, to: s.from, reason: NOCONNECTION }));
        return;
      case 'unlink':
        this.transport.withConnection(node.name, (c) => {
          if (hasFlag(c.flags, DFLAG.UNLINK_ID))
            c.send({ kind: 'unlink_id', id: ++this.unlinkIds, from: s.from, to: s.to });
          else c.send(s);
        });
        return;
      case 'exit':
        // A link exit to a node we are not connected to has nowhere to go (the link is already gone there).
        this.transport.connected(node.name)?.send(s);
        return;
      case 'exit2':
        this.sendTo(node, s);
        return;
      case 'monitor':
        this.sendTo(node, { kind: 'monitor', from: s.from, target: s.target, ref: s.ref }, () =>
          this.arrive({ kind: 'monitor_exit', from: s.target, to: s.from, ref: s.ref, reason: NOCONNECTION }),
        );
        return;
      case 'demonitor':
        this.transport.connected(node.name)?.send({ kind: 'demonitor', from: s.from, target: s.target, ref: s.ref });
        return;
      case 'monitor_exit':
        this.transport.connected(node.name)?.send(s);
        return;
    }
  }

  private sendTo(node: Atom, msg: Control, onFail?: (err: Error) => void): void {
    this.transport.withConnection(node.name, (c) => c.send(msg), onFail);
  }

  /**
   * A signal for a process of ours. One whose target is gone is answered as the BEAM
   * answers it, a link by an exit `noproc` and a monitor by a `noproc` monitor exit: on
   * the connection it came by (`via`), or wherever its sender is.
   */
  private arrive(s: Signal, via?: Connection): void {
    switch (s.kind) {
      case 'link': {
        const p = this.local(s.to);
        if (p?.isAlive) p.onSignal(s);
        else this.answer({ kind: 'exit', from: s.to, to: s.from, reason: NOPROC }, via);
        return;
      }
      case 'monitor': {
        const p = this.localTarget(s.target);
        if (p?.isAlive) p.onSignal(s);
        else this.answer({ kind: 'monitor_exit', from: s.target, to: s.from, ref: s.ref, reason: NOPROC }, via);
        return;
      }
      case 'demonitor':
        this.localTarget(s.target)?.onSignal(s);
        return;
      default:
        this.local(s.to)?.onSignal(s);
    }
  }

  private answer(s: Extract<Signal, { kind: 'exit' | 'monitor_exit' }>, via: Connection | undefined): void {
    if (via === undefined) this.signal(s);
    else via.send(s);
  }

  // ---------------------------------------------------------------- from other nodes

  /** A control message from `conn` for our processes (erpc's own are taken before). */
  onControl(msg: Control, conn: Connection): void {
    switch (msg.kind) {
      case 'send':
        if (msg.to.node === this.nodeAtom) this.local(msg.to)?.deliver(msg.message);
        return;
      case 'reg_send':
        this.registry.get(msg.name)?.deliver(msg.message);
        return;
      case 'alias_send':
        this.aliasTable.get(refKey(msg.alias))?.deliver(msg.message);
        return;
      case 'link':
      case 'unlink':
      case 'exit':
      case 'exit2':
      case 'monitor_exit':
        this.arrive(msg, conn);
        return;
      case 'unlink_id':
        // OTP 26 waits for this acknowledgement before it forgets the unlink.
        this.arrive({ kind: 'unlink', from: msg.from, to: msg.to });
        conn.send({ kind: 'unlink_id_ack', id: msg.id, from: msg.to, to: msg.from });
        return;
      case 'monitor':
      case 'demonitor':
        // The target is ours whatever it names: a peer cannot make us relay a signal.
        this.arrive({ ...msg, node: this.nodeAtom }, conn);
        return;
      case 'unlink_id_ack':
      case 'spawn_request':
      case 'spawn_reply':
      case 'group_leader':
      case 'node_link':
        return;
    }
  }
}
