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
export { readLayout } from './layout.js';
export { bindListener, type Listener } from './listener.js';
export {
  killGroup,
  type LaunchOptions,
  Peer,
  type PeerExit,
  pidAlive,
  type StopOptions,
  type StopResult,
} from './peer.js';
export { clearRecord, logDir, nextGeneration, type PeerRecord, readRecord, recordPath, writeRecord } from './state.js';
