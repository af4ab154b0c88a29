/**
 * baton as a hidden Erlang node: EPMD, the version 6 handshake both ways, connections
 * with ticks and frame limits, TS processes, erpc/rpc/eval, and a group-leader io server.
 */
export { Node, type NodeOptions, type ErpcOptions, type NodeMonitor, shortHostname } from './node.js';
export type { ExposedFunction } from './system.js';
export { Process, type Destination, type Name, type SpawnOptions } from './process.js';
export {
  BadRpcError,
  CookieMismatchError,
  DistributionError,
  EpmdError,
  ErpcError,
  EvalSyntaxError,
  HandshakeError,
  NodeDownError,
  ProcessExitError,
  ProtocolError,
  TimeoutError,
  type ErpcClass,
  type EpmdFailure,
} from './errors.js';
export { epmdNames, epmdPortPlease, epmdRegister, defaultEpmdPort, type NamesResponse, type Port2Response } from './epmd.js';
export { DFLAG, OUR_FLAGS } from './flags.js';
export { defaultBusyPollMs } from './busy-poll.js';
