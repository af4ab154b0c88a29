/** Store failures, each with a stable `code` and a message naming the cause. */
import { BatonError } from '../common/index.js';

/** Any failure of the state store. */
export abstract class StoreError extends BatonError {}

/** The store could not be reached (after retries) or answered with a server error. */
export class StoreUnreachableError extends StoreError {
  readonly code = 'STORE_UNREACHABLE';
  constructor(
    readonly store: string,
    readonly reason: string,
    readonly attempts: number,
  ) {
    super(`store ${store} unreachable after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`);
  }
}

/** `current.json` exists but is not a document baton can act on. */
export class CurrentDocumentError extends StoreError {
  readonly code = 'BAD_CURRENT_JSON';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${key} is unusable: ${reason}; fix or remove it before publishing`);
  }
}

/** A conditional write lost to another writer (the caller re-reads and tries again). */
export class PreconditionFailedError extends StoreError {
  readonly code = 'PRECONDITION_FAILED';
  constructor(readonly key: string) {
    super(`${key} changed since it was read`);
  }
}

/** Compare-and-swap kept losing: too many writers at once. */
export class StoreContentionError extends StoreError {
  readonly code = 'STORE_CONTENTION';
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`gave up updating ${key} after ${attempts} conflicting attempts`);
  }
}

/** `BATON_STORE` or an object key that baton refuses. */
export class StoreConfigError extends StoreError {
  readonly code = 'STORE_CONFIG';
  constructor(readonly reason: string) {
    super(`bad store configuration: ${reason}`);
  }
}

/** A publish would replace a tarball already published under that version with other bytes. */
export class VersionConflictError extends StoreError {
  readonly code = 'VERSION_CONFLICT';
  constructor(
    readonly key: string,
    readonly existingSha256: string,
  ) {
    super(
      `${key} is already published with other contents (sha256 ${existingSha256}); publish under another --version`,
    );
  }
}

/** An object the store was asked for is not there. */
export class ObjectNotFoundError extends StoreError {
  readonly code = 'OBJECT_NOT_FOUND';
  constructor(
    readonly store: string,
    readonly key: string,
  ) {
    super(`${key} is not in the store ${store}`);
  }
}
