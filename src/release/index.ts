/**
 * Releases: building tarballs (full and beam-only), fetching them from the store,
 * `file://` or `https://` with sha256 verification, extracting them safely under
 * limits, inspecting what they contain, choosing hot or blue-green, and publishing.
 */
export { decideMode, changedModules, type ModeDecision, type UpgradeMode } from './auto.js';
export { readBeam, type BeamInfo } from './beam.js';
export { consult, propGet } from './consult.js';
export { defaultPathLimits, entryComponents, hardlinkDestination, symlinkDestination, type PathLimits } from './entry-rules.js';
export {
  ArchiveCorruptError,
  ArchiveLimitError,
  ChecksumMismatchError,
  FetchError,
  ReleaseLayoutError,
  TermSyntaxError,
  UnsafeEntryError,
  type ArchiveLimit,
  type UnsafeEntryKind,
} from './errors.js';
export { defaultExtractLimits, extractTarball, type ExtractLimits, type ExtractOptions, type ExtractResult } from './extract.js';
export { fetchLayer, fetchRelease, openTarball, type FetchOptions, type FetchedRelease, type OpenedTarball } from './fetch.js';
export { checkRelease, detectKind, inspectRelease, type AppInfo, type ReleaseInfo, type ReleaseKind } from './inspect.js';
export { publish, type PublishOptions, type PublishResult } from './publish.js';
export { buildBeamTarball, buildFullTarball, type BuiltTarball } from './tarball.js';
