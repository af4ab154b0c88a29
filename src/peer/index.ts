/**
 * Peers: a release run as baton's child node — launch, boot over erpc, socket handoff,
 * stop with drain, orphan watchdog, re-adoption from the state dir.
 */

export {
  envChanges,
  erlPath,
  filterVmArgs,
  type Handoff,
  nodeBase,
  parseEnv0,
  peerArgs,
  peerEnv,
  peerNodeName,
  protoDistArgs,
  type ReleaseLayout,
  vmArgsName,
} from './args.js';
export {
  describeEndpoints,
  describeStop,
  type Endpoint,
  type Injection,
  injectEndpoints,
  type PeerCall,
  type SocketHandoff,
  type StopAccepting,
  stopAccepting,
} from './endpoints.js';
export {
  type LaunchStage,
  ListenerError,
  NoPeerError,
  PeerError,
  PeerLayoutError,
  PeerReadyTimeoutError,
  PeerStartError,
  type PeerStartStage,
} from './errors.js';
export { defaultHelperEbin, HELPER_MODULES, helperEbin, loadHelpers } from './helpers.js';
export {
  type Beam,
  beamsIn,
  type HotProc,
  HotUpgradeError,
  type HotUpgradeOptions,
  type HotUpgradeResult,
  hotUpgrade,
  upgradeBeams,
} from './hot.js';
export {
  type AppEnv,
  type Environment,
  type EnvironmentInput,
  environment,
  envShInput,
  isLongHost,
  LISTEN_FD,
  type NamingInput,
  naming,
  type SpawnPlan,
} from './launch.js';
export { readLayout } from './layout.js';
export { bindListener, type Listener } from './listener.js';
export { followLog, lastBytes, logSize, readFrom, waitQuiet } from './log-tail.js';
export { killGroup, type ProcessExit, pidAlive, watchPid } from './os-process.js';
export { type LaunchOptions, Peer, type PeerExit, type StopOptions, type StopResult } from './peer.js';
export { clearRecord, logDir, nextGeneration, type PeerRecord, readRecord, recordPath, writeRecord } from './state.js';
