/**
 * The state store: where a fleet learns which layers to run (current.json), keeps
 * release tarballs, and reports per-machine results. `file://` and `s3://` backends.
 */
export { type Backend, checkKey, checkSegment, type GetResult, type ObjectInfo, type PutCondition } from './backend.js';
export {
  type CurrentDoc,
  currentKey,
  emptyDoc,
  type Layer,
  type LogEntry,
  type LogKind,
  parseDoc,
  SCHEMA_VERSION,
  serializeDoc,
} from './current.js';
export {
  CurrentDocumentError,
  ObjectNotFoundError,
  PreconditionFailedError,
  StoreConfigError,
  StoreContentionError,
  StoreError,
  StoreUnreachableError,
  VersionConflictError,
} from './errors.js';
export { FileBackend } from './file-backend.js';
export { type FleetOutcome, fleetOutcome, type WaitOptions, waitForFleet } from './fleet.js';
export { applyOp, type CurrentOp, isApplied, LOG_LIMIT, layersFor, previousUpgrade } from './layers.js';
export { type MachineResult, type ResultState, resultsPrefix } from './results.js';
export { chooseForDeletion, DEFAULT_KEEP, PRUNE_GRACE_MS } from './retention.js';
export { defaultRetry, type RetryPolicy, withRetry } from './retry.js';
export { S3Backend, type S3Options, s3OptionsFromUrl } from './s3-backend.js';
export { openStore, type PollResult, type ReleaseObject, Store, type StoreOptions, storeUrlFromEnv } from './store.js';
export { INTENT_TTL_MS, type ReadDoc, readCurrent, updateCurrent } from './update.js';
