/**
 * The state store: where a fleet learns which layers to run (current.json), keeps
 * release tarballs, and reports per-machine results. `file://` and `s3://` backends.
 */
export { checkKey, checkSegment, type Backend, type GetResult, type ObjectInfo, type PutCondition } from './backend.js';
export { SCHEMA_VERSION, currentKey, emptyDoc, parseDoc, serializeDoc, type CurrentDoc, type Layer, type LogEntry, type LogKind } from './current.js';
export {
  CurrentDocumentError,
  ObjectNotFoundError,
  PreconditionFailedError,
  StoreConfigError,
  StoreContentionError,
  StoreUnreachableError,
  VersionConflictError,
} from './errors.js';
export { FileBackend } from './file-backend.js';
export { LOG_LIMIT, applyOp, isApplied, layersFor, previousUpgrade, type CurrentOp } from './layers.js';
export { resultsPrefix, type MachineResult, type ResultState } from './results.js';
export { DEFAULT_KEEP, chooseForDeletion } from './retention.js';
export { defaultRetry, withRetry, type RetryPolicy } from './retry.js';
export { S3Backend, s3OptionsFromUrl, type S3Options } from './s3-backend.js';
export { Store, openStore, storeUrlFromEnv, type PollResult, type ReleaseObject, type StoreOptions } from './store.js';
export { INTENT_TTL_MS, readCurrent, updateCurrent, type ReadDoc } from './update.js';
export { fleetOutcome, waitForFleet, type FleetOutcome, type WaitOptions } from './fleet.js';
