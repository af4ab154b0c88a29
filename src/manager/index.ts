/**
 * The manager: what keeps baton's peer running and (next) upgrades it. Today: supervision
 * (adopt, restart with backoff, stop on signals) and baton's own node; the restart rules
 * are pure. It reports through events and never prints: the CLI words them.
 */
export { startBatonNode } from './baton-node.js';
export {
  backoff,
  DEFAULT_RESTART_POLICY,
  failuresAfterExit,
  givesUp,
  type RestartPolicy,
  restartDelay,
} from './restart-policy.js';
export { stopOnSignals } from './signals.js';
export {
  type PeerLaunch,
  Supervisor,
  type SupervisorEvent,
  type SupervisorOptions,
  type SupervisorOutcome,
} from './supervisor.js';
