/**
 * Peers: a release run as baton's child node — launch, boot over erpc, socket handoff,
 * stop with drain, orphan watchdog, re-adoption from the state dir.
 */
export { Peer, killGroup, pidAlive, type LaunchOptions, type PeerExit, type StopOptions, type StopResult } from './peer.js';
export { bindListener, type Listener } from './listener.js';
export {
  describeEndpoints,
  describeStop,
  injectEndpoints,
  stopAccepting,
  type Endpoint,
  type Injection,
  type PeerCall,
  type SocketHandoff,
  type StopAccepting,
} from './endpoints.js';
export { readLayout } from './layout.js';
export {
  envChanges,
  erlPath,
  filterVmArgs,
  nodeBase,
  parseEnv0,
  peerArgs,
  peerEnv,
  peerNodeName,
  protoDistArgs,
  vmArgsName,
  type Handoff,
  type ReleaseLayout,
} from './args.js';
export { clearRecord, logDir, nextGeneration, readRecord, recordPath, writeRecord, type PeerRecord } from './state.js';
export { HELPER_MODULES, defaultHelperEbin, helperEbin, loadHelpers } from './helpers.js';
export {
  ListenerError,
  NoPeerError,
  PeerError,
  PeerLayoutError,
  PeerReadyTimeoutError,
  PeerStartError,
  type PeerStartStage,
} from './errors.js';
export {
  HotUpgradeError,
  beamsIn,
  hotUpgrade,
  upgradeBeams,
  type Beam,
  type HotProc,
  type HotUpgradeOptions,
  type HotUpgradeResult,
} from './hot.js';
