/**
 * Everything a tarball or a release can be refused for. Each class has a stable `code`
 * and a message naming the cause, so the CLI and the API can show it as is.
 */
import { BatonError } from '../common/index.js';

/** Any refusal of a tarball or a release. */
export abstract class ReleaseError extends BatonError {}

/** The bytes are not a well-formed gzip'd tar: corrupt compression, truncation, bad headers. */
export class ArchiveCorruptError extends ReleaseError {
  readonly code = 'ARCHIVE_CORRUPT';
  constructor(
    readonly reason: string,
    readonly source = '',
  ) {
    super(`corrupt release tarball${source ? ` ${source}` : ''}: ${reason}`);
  }
}

export type UnsafeEntryKind =
  | 'parent-path'
  | 'absolute-path'
  | 'symlink-outside'
  | 'hardlink-outside'
  | 'special-file'
  | 'path-too-long'
  | 'through-symlink'
  | 'duplicate-entry'
  | 'unsupported-type';

/** An entry that would write outside the extraction directory, or something that is not a file. */
export class UnsafeEntryError extends ReleaseError {
  readonly code = 'UNSAFE_ENTRY';
  constructor(
    readonly kind: UnsafeEntryKind,
    readonly entry: string,
    readonly detail: string,
  ) {
    super(`refusing tarball entry '${entry}': ${detail}`);
  }
}

export type ArchiveLimit = 'bytes' | 'entries' | 'ratio';

/** The archive grew past a configured limit (a decompression bomb, or just too big). */
export class ArchiveLimitError extends ReleaseError {
  readonly code = 'ARCHIVE_LIMIT';
  constructor(
    readonly limit: ArchiveLimit,
    readonly detail: string,
  ) {
    super(`release tarball exceeds the ${limit} limit: ${detail}`);
  }
}

/** The bytes read do not hash to what the store says they should. */
export class ChecksumMismatchError extends ReleaseError {
  readonly code = 'SHA256_MISMATCH';
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly source = '',
  ) {
    super(`sha256 mismatch${source ? ` for ${source}` : ''}: expected ${expected}, got ${actual}`);
  }
}

/** The bytes read are not as many as the store says the tarball has. */
export class SizeMismatchError extends ReleaseError {
  readonly code = 'SIZE_MISMATCH';
  constructor(
    readonly expected: number,
    /** Bytes counted when refused: more than `expected` means the read was stopped there. */
    readonly actual: number,
    readonly source = '',
  ) {
    super(
      `size mismatch${source ? ` for ${source}` : ''}: expected ${expected} bytes, got ${actual > expected ? `more (refused at ${actual})` : actual}`,
    );
  }
}

/** The tarball unpacked fine but is not the kind of release it claims to be. */
export class ReleaseLayoutError extends ReleaseError {
  readonly code = 'RELEASE_LAYOUT';
  constructor(
    readonly reason: string,
    readonly path = '',
  ) {
    super(`invalid release${path ? ` at ${path}` : ''}: ${reason}`);
  }
}

/** A tarball could not be read from where it was said to be. */
export class FetchError extends ReleaseError {
  readonly code = 'FETCH_FAILED';
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot fetch ${url}: ${reason}`);
  }
}

/** Malformed Erlang term text in a `.app`, `sys.config` or `start_erl.data` file. */
export class TermSyntaxError extends ReleaseError {
  readonly code = 'TERM_SYNTAX';
  constructor(
    readonly reason: string,
    readonly offset: number,
    readonly file = '',
  ) {
    super(`cannot read Erlang terms${file ? ` in ${file}` : ''} at offset ${offset}: ${reason}`);
  }
}
