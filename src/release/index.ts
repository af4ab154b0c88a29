/**
 * Releases: building tarballs (full and beam-only), fetching them from the store,
 * `file://` or `https://` with sha256 verification, extracting them safely under
 * limits, inspecting what they contain, choosing hot or blue-green, and publishing.
 */
export { changedModules, decideMode, type ModeDecision, type UpgradeMode } from './auto.js';
export { type BeamInfo, readBeam } from './beam.js';
export { consult, propGet } from './consult.js';
export {
  defaultPathLimits,
  entryComponents,
  hardlinkDestination,
  type PathLimits,
  symlinkDestination,
} from './entry-rules.js';
export {
  ArchiveCorruptError,
  type ArchiveLimit,
  ArchiveLimitError,
  ChecksumMismatchError,
  FetchError,
  ReleaseError,
  ReleaseLayoutError,
  SizeMismatchError,
  TermSyntaxError,
  UnsafeEntryError,
  type UnsafeEntryKind,
} from './errors.js';
export {
  defaultExtractLimits,
  type ExtractLimits,
  type ExtractOptions,
  type ExtractResult,
  extractTarball,
} from './extract.js';
export {
  type FetchedRelease,
  type FetchOptions,
  fetchLayer,
  fetchRelease,
  type OpenedTarball,
  openTarball,
} from './fetch.js';
export {
  type AppInfo,
  checkRelease,
  detectKind,
  inspectRelease,
  type ReleaseInfo,
  type ReleaseKind,
} from './inspect.js';
export { type PublishOptions, type PublishResult, publish } from './publish.js';
export { type BuiltTarball, buildBeamTarball, buildFullTarball } from './tarball.js';
