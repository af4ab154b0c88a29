/** Store failures, each with a stable `code` and a message naming the cause. */

/** The store could not be reached (after retries) or answered with a server error. */
export class StoreUnreachableError extends Error {
  readonly code = 'STORE_UNREACHABLE';
  constructor(
    readonly store: string,
    readonly reason: string,
    readonly attempts: number,
  ) {
    super(`store ${store} unreachable after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`);
    this.name = 'StoreUnreachableError';
  }
}

/** `current.json` exists but is not a document baton can act on. */
export class CurrentDocumentError extends Error {
  readonly code = 'BAD_CURRENT_JSON';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${key} is unusable: ${reason}; fix or remove it before publishing`);
    this.name = 'CurrentDocumentError';
  }
}

/** A conditional write lost to another writer (the caller re-reads and tries again). */
export class PreconditionFailedError extends Error {
  readonly code = 'PRECONDITION_FAILED';
  constructor(readonly key: string) {
    super(`${key} changed since it was read`);
    this.name = 'PreconditionFailedError';
  }
}

/** Compare-and-swap kept losing: too many writers at once. */
export class StoreContentionError extends Error {
  readonly code = 'STORE_CONTENTION';
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`gave up updating ${key} after ${attempts} conflicting attempts`);
    this.name = 'StoreContentionError';
  }
}

/** `BATON_STORE` or an object key that baton refuses. */
export class StoreConfigError extends Error {
  readonly code = 'STORE_CONFIG';
  constructor(readonly reason: string) {
    super(`bad store configuration: ${reason}`);
    this.name = 'StoreConfigError';
  }
}

/** A publish would replace a tarball already published under that version with other bytes. */
export class VersionConflictError extends Error {
  readonly code = 'VERSION_CONFLICT';
  constructor(
    readonly key: string,
    readonly existingSha256: string,
  ) {
    super(
      `${key} is already published with other contents (sha256 ${existingSha256}); publish under another --version`,
    );
    this.name = 'VersionConflictError';
  }
}

/** An object the store was asked for is not there. */
export class ObjectNotFoundError extends Error {
  readonly code = 'OBJECT_NOT_FOUND';
  constructor(
    readonly store: string,
    readonly key: string,
  ) {
    super(`${key} is not in the store ${store}`);
    this.name = 'ObjectNotFoundError';
  }
}
