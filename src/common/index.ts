/** What every area shares: the error base and the state dir's default. Depends on nothing. */
export { BatonError } from './errors.js';
export { DEFAULT_STATE_DIR, stateDirFromEnv } from './state-dir.js';
