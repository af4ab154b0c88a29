/**
 * baton as a hidden Erlang node: EPMD, the version 6 handshake both ways, connections
 * with ticks and frame limits, TS processes, erpc/rpc/eval, and a group-leader io server.
 */

export { defaultBusyPollMs } from './busy-poll.js';
export type { NodeMonitor } from './connections.js';
export {
  defaultEpmdPort,
  epmdNames,
  epmdPortPlease,
  epmdRegister,
  type NamesResponse,
  type Port2Response,
} from './epmd.js';
export {
  BadRpcError,
  CookieMismatchError,
  DistributionError,
  EpmdError,
  type EpmdFailure,
  type ErpcClass,
  ErpcError,
  EvalSyntaxError,
  HandshakeError,
  NodeDownError,
  ProcessExitError,
  ProtocolError,
  TimeoutError,
} from './errors.js';
export { DFLAG, OUR_FLAGS } from './flags.js';
export { Node, type NodeOptions, shortHostname } from './node.js';
export { type Destination, type Name, Process, type SpawnOptions } from './process.js';
export type { ErpcOptions } from './rpc.js';
export type { ExposedFunction } from './system.js';
