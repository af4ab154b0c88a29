/**
 * Control messages of the distribution protocol: typed values to and from the
 * `{Op, ...}` tuples, plus the payload term some of them carry. The frames that carry
 * them are control-frames.ts's.
 */
import { Atom, atom, Pid, Reference, type Term, Tuple, tuple } from '../etf/index.js';
import { ProtocolError } from './errors.js';
import { DFLAG, hasFlag } from './flags.js';

export const OP = {
  LINK: 1,
  SEND: 2,
  EXIT: 3,
  UNLINK: 4,
  NODE_LINK: 5,
  REG_SEND: 6,
  GROUP_LEADER: 7,
  EXIT2: 8,
  SEND_TT: 12,
  EXIT_TT: 13,
  REG_SEND_TT: 16,
  EXIT2_TT: 18,
  MONITOR_P: 19,
  DEMONITOR_P: 20,
  MONITOR_P_EXIT: 21,
  SEND_SENDER: 22,
  SEND_SENDER_TT: 23,
  PAYLOAD_EXIT: 24,
  PAYLOAD_EXIT_TT: 25,
  PAYLOAD_EXIT2: 26,
  PAYLOAD_EXIT2_TT: 27,
  PAYLOAD_MONITOR_P_EXIT: 28,
  SPAWN_REQUEST: 29,
  SPAWN_REQUEST_TT: 30,
  SPAWN_REPLY: 31,
  SPAWN_REPLY_TT: 32,
  ALIAS_SEND: 33,
  ALIAS_SEND_TT: 34,
  UNLINK_ID: 35,
  UNLINK_ID_ACK: 36,
} as const;

/** Ops whose message (or exit reason, or spawn arguments) follows the control tuple. */
const WITH_PAYLOAD = new Set<number>([
  OP.SEND,
  OP.REG_SEND,
  OP.SEND_TT,
  OP.REG_SEND_TT,
  OP.SEND_SENDER,
  OP.SEND_SENDER_TT,
  OP.PAYLOAD_EXIT,
  OP.PAYLOAD_EXIT_TT,
  OP.PAYLOAD_EXIT2,
  OP.PAYLOAD_EXIT2_TT,
  OP.PAYLOAD_MONITOR_P_EXIT,
  OP.SPAWN_REQUEST,
  OP.SPAWN_REQUEST_TT,
  OP.ALIAS_SEND,
  OP.ALIAS_SEND_TT,
]);

export const SPAWN_REPLY_LINK = 1;
export const SPAWN_REPLY_MONITOR = 2;

export type Control =
  | { kind: 'link'; from: Pid; to: Pid }
  | { kind: 'unlink'; from: Pid; to: Pid }
  | { kind: 'unlink_id'; id: number | bigint; from: Pid; to: Pid }
  | { kind: 'unlink_id_ack'; id: number | bigint; from: Pid; to: Pid }
  | { kind: 'send'; to: Pid; from?: Pid; message: Term }
  | { kind: 'reg_send'; from: Pid; name: Atom; message: Term }
  | { kind: 'alias_send'; from: Pid; alias: Reference; message: Term }
  | { kind: 'exit'; from: Pid; to: Pid; reason: Term }
  | { kind: 'exit2'; from: Pid; to: Pid; reason: Term }
  | { kind: 'group_leader'; from: Pid; to: Pid }
  | { kind: 'monitor'; from: Pid; target: Pid | Atom; ref: Reference }
  | { kind: 'demonitor'; from: Pid; target: Pid | Atom; ref: Reference }
  | { kind: 'monitor_exit'; from: Pid | Atom; to: Pid; ref: Reference; reason: Term }
  | {
      kind: 'spawn_request';
      reqId: Reference;
      from: Pid;
      groupLeader: Pid;
      module: Atom;
      fun: Atom;
      arity: number;
      options: Term;
      args: Term;
    }
  | { kind: 'spawn_reply'; reqId: Reference; to: Pid; flags: number; result: Pid | Atom }
  | { kind: 'node_link' };

function bad(what: string): never {
  throw new ProtocolError(`malformed control message: ${what}`);
}

function pid(t: Term | undefined, what: string): Pid {
  return t instanceof Pid ? t : bad(`${what} is not a pid`);
}
function ref(t: Term | undefined, what: string): Reference {
  return t instanceof Reference ? t : bad(`${what} is not a reference`);
}
function atm(t: Term | undefined, what: string): Atom {
  return t instanceof Atom ? t : bad(`${what} is not an atom`);
}
function pidOrAtom(t: Term | undefined, what: string): Pid | Atom {
  return t instanceof Pid || t instanceof Atom ? t : bad(`${what} is neither pid nor atom`);
}
function int(t: Term | undefined, what: string): number | bigint {
  return typeof t === 'bigint' || (typeof t === 'number' && Number.isInteger(t)) ? t : bad(`${what} is not an integer`);
}

// Not a closure inside decodeControl: that would be allocated for every incoming frame.
function checkArity(op: number, e: Term[], n: number): void {
  if (e.length !== n) bad(`op ${op} with ${e.length} elements`);
}

/** The typed control message for a decoded `ctl` tuple and its payload (if any). */
export function decodeControl(ctl: Term, payload: Term | undefined): Control {
  if (!(ctl instanceof Tuple) || ctl.length < 1) bad('not a tuple');
  const e = ctl.elements;
  const op = e[0];
  if (typeof op !== 'number') bad('operation is not an integer');
  const wantsPayload = WITH_PAYLOAD.has(op);
  if (wantsPayload !== (payload !== undefined)) bad(`op ${op} ${wantsPayload ? 'needs' : 'takes no'} payload`);
  switch (op) {
    case OP.LINK:
      checkArity(op, e, 3);
      return { kind: 'link', from: pid(e[1], 'from'), to: pid(e[2], 'to') };
    case OP.UNLINK:
      checkArity(op, e, 3);
      return { kind: 'unlink', from: pid(e[1], 'from'), to: pid(e[2], 'to') };
    case OP.UNLINK_ID:
    case OP.UNLINK_ID_ACK:
      checkArity(op, e, 4);
      return {
        kind: op === OP.UNLINK_ID ? 'unlink_id' : 'unlink_id_ack',
        id: int(e[1], 'id'),
        from: pid(e[2], 'from'),
        to: pid(e[3], 'to'),
      };
    case OP.SEND:
      checkArity(op, e, 3);
      return { kind: 'send', to: pid(e[2], 'to'), message: payload! };
    case OP.SEND_TT:
      checkArity(op, e, 4);
      return { kind: 'send', to: pid(e[2], 'to'), message: payload! };
    case OP.SEND_SENDER:
      checkArity(op, e, 3);
      return { kind: 'send', from: pid(e[1], 'from'), to: pid(e[2], 'to'), message: payload! };
    case OP.SEND_SENDER_TT:
      checkArity(op, e, 4);
      return { kind: 'send', from: pid(e[1], 'from'), to: pid(e[2], 'to'), message: payload! };
    case OP.REG_SEND:
      checkArity(op, e, 4);
      return { kind: 'reg_send', from: pid(e[1], 'from'), name: atm(e[3], 'name'), message: payload! };
    case OP.REG_SEND_TT:
      checkArity(op, e, 5);
      return { kind: 'reg_send', from: pid(e[1], 'from'), name: atm(e[3], 'name'), message: payload! };
    case OP.ALIAS_SEND:
      checkArity(op, e, 3);
      return { kind: 'alias_send', from: pid(e[1], 'from'), alias: ref(e[2], 'alias'), message: payload! };
    case OP.ALIAS_SEND_TT:
      checkArity(op, e, 4);
      return { kind: 'alias_send', from: pid(e[1], 'from'), alias: ref(e[2], 'alias'), message: payload! };
    case OP.EXIT:
    case OP.EXIT2:
      checkArity(op, e, 4);
      return { kind: op === OP.EXIT ? 'exit' : 'exit2', from: pid(e[1], 'from'), to: pid(e[2], 'to'), reason: e[3]! };
    case OP.EXIT_TT:
    case OP.EXIT2_TT:
      checkArity(op, e, 5);
      return {
        kind: op === OP.EXIT_TT ? 'exit' : 'exit2',
        from: pid(e[1], 'from'),
        to: pid(e[2], 'to'),
        reason: e[4]!,
      };
    case OP.PAYLOAD_EXIT:
    case OP.PAYLOAD_EXIT2:
      checkArity(op, e, 3);
      return {
        kind: op === OP.PAYLOAD_EXIT ? 'exit' : 'exit2',
        from: pid(e[1], 'from'),
        to: pid(e[2], 'to'),
        reason: payload!,
      };
    case OP.PAYLOAD_EXIT_TT:
    case OP.PAYLOAD_EXIT2_TT:
      checkArity(op, e, 4);
      return {
        kind: op === OP.PAYLOAD_EXIT_TT ? 'exit' : 'exit2',
        from: pid(e[1], 'from'),
        to: pid(e[2], 'to'),
        reason: payload!,
      };
    case OP.GROUP_LEADER:
      checkArity(op, e, 3);
      return { kind: 'group_leader', from: pid(e[1], 'from'), to: pid(e[2], 'to') };
    case OP.MONITOR_P:
    case OP.DEMONITOR_P:
      checkArity(op, e, 4);
      return {
        kind: op === OP.MONITOR_P ? 'monitor' : 'demonitor',
        from: pid(e[1], 'from'),
        target: pidOrAtom(e[2], 'target'),
        ref: ref(e[3], 'ref'),
      };
    case OP.MONITOR_P_EXIT:
      checkArity(op, e, 5);
      return {
        kind: 'monitor_exit',
        from: pidOrAtom(e[1], 'from'),
        to: pid(e[2], 'to'),
        ref: ref(e[3], 'ref'),
        reason: e[4]!,
      };
    case OP.PAYLOAD_MONITOR_P_EXIT:
      checkArity(op, e, 4);
      return {
        kind: 'monitor_exit',
        from: pidOrAtom(e[1], 'from'),
        to: pid(e[2], 'to'),
        ref: ref(e[3], 'ref'),
        reason: payload!,
      };
    case OP.SPAWN_REQUEST:
    case OP.SPAWN_REQUEST_TT: {
      checkArity(op, e, op === OP.SPAWN_REQUEST ? 6 : 7);
      const mfa = e[4];
      if (!(mfa instanceof Tuple) || mfa.length !== 3) bad('spawn MFA');
      const arityN = mfa.elements[2];
      if (typeof arityN !== 'number') bad('spawn arity');
      return {
        kind: 'spawn_request',
        reqId: ref(e[1], 'reqId'),
        from: pid(e[2], 'from'),
        groupLeader: pid(e[3], 'group leader'),
        module: atm(mfa.elements[0], 'module'),
        fun: atm(mfa.elements[1], 'function'),
        arity: arityN,
        options: e[5]!,
        args: payload!,
      };
    }
    case OP.SPAWN_REPLY:
    case OP.SPAWN_REPLY_TT: {
      checkArity(op, e, op === OP.SPAWN_REPLY ? 5 : 6);
      const flags = e[3];
      if (typeof flags !== 'number') bad('spawn reply flags');
      return {
        kind: 'spawn_reply',
        reqId: ref(e[1], 'reqId'),
        to: pid(e[2], 'to'),
        flags,
        result: pidOrAtom(e[4], 'result'),
      };
    }
    case OP.NODE_LINK:
      return { kind: 'node_link' };
    default:
      return bad(`unknown operation ${op}`);
  }
}

const EMPTY = atom('');

/**
 * The control tuple and payload for a message, in the form the peer's flags allow
 * (exit reasons as payload when both sides have EXIT_PAYLOAD).
 */
export function encodeControl(msg: Control, flags: bigint): { ctl: Tuple; payload?: Term } {
  // Flags are tested per message kind, not up front: bigint arithmetic allocates, and
  // the erpc hot path (spawn_request) needs none.
  switch (msg.kind) {
    case 'link':
      return { ctl: tuple(OP.LINK, msg.from, msg.to) };
    case 'unlink':
      return { ctl: tuple(OP.UNLINK, msg.from, msg.to) };
    case 'unlink_id':
      return { ctl: tuple(OP.UNLINK_ID, msg.id, msg.from, msg.to) };
    case 'unlink_id_ack':
      return { ctl: tuple(OP.UNLINK_ID_ACK, msg.id, msg.from, msg.to) };
    case 'send':
      return msg.from !== undefined && hasFlag(flags, DFLAG.SEND_SENDER)
        ? { ctl: tuple(OP.SEND_SENDER, msg.from, msg.to), payload: msg.message }
        : { ctl: tuple(OP.SEND, EMPTY, msg.to), payload: msg.message };
    case 'reg_send':
      return { ctl: tuple(OP.REG_SEND, msg.from, EMPTY, msg.name), payload: msg.message };
    case 'alias_send':
      return { ctl: tuple(OP.ALIAS_SEND, msg.from, msg.alias), payload: msg.message };
    case 'exit':
      return hasFlag(flags, DFLAG.EXIT_PAYLOAD)
        ? { ctl: tuple(OP.PAYLOAD_EXIT, msg.from, msg.to), payload: msg.reason }
        : { ctl: tuple(OP.EXIT, msg.from, msg.to, msg.reason) };
    case 'exit2':
      return hasFlag(flags, DFLAG.EXIT_PAYLOAD)
        ? { ctl: tuple(OP.PAYLOAD_EXIT2, msg.from, msg.to), payload: msg.reason }
        : { ctl: tuple(OP.EXIT2, msg.from, msg.to, msg.reason) };
    case 'group_leader':
      return { ctl: tuple(OP.GROUP_LEADER, msg.from, msg.to) };
    case 'monitor':
      return { ctl: tuple(OP.MONITOR_P, msg.from, msg.target, msg.ref) };
    case 'demonitor':
      return { ctl: tuple(OP.DEMONITOR_P, msg.from, msg.target, msg.ref) };
    case 'monitor_exit':
      return hasFlag(flags, DFLAG.EXIT_PAYLOAD)
        ? { ctl: tuple(OP.PAYLOAD_MONITOR_P_EXIT, msg.from, msg.to, msg.ref), payload: msg.reason }
        : { ctl: tuple(OP.MONITOR_P_EXIT, msg.from, msg.to, msg.ref, msg.reason) };
    case 'spawn_request':
      return {
        ctl: tuple(
          OP.SPAWN_REQUEST,
          msg.reqId,
          msg.from,
          msg.groupLeader,
          tuple(msg.module, msg.fun, msg.arity),
          msg.options,
        ),
        payload: msg.args,
      };
    case 'spawn_reply':
      return { ctl: tuple(OP.SPAWN_REPLY, msg.reqId, msg.to, msg.flags, msg.result) };
    case 'node_link':
      return { ctl: tuple(OP.NODE_LINK) };
  }
}
