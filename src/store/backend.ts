/** What the two store backends (a directory, an S3 bucket) offer the rest of the store. */
import { type Readable, Transform } from 'node:stream';
import { StoreConfigError } from './errors.js';

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export type GetResult = { status: 'ok'; body: Buffer; etag: string } | { status: 'unchanged' } | { status: 'missing' };

export interface PutCondition {
  /** Write only if the object still has this ETag. */
  ifMatch?: string;
  /** Write only if there is no object yet. */
  ifNoneMatch?: '*';
}

export interface Backend {
  /** `file:///...` or `s3://bucket/prefix`, for messages. */
  readonly url: string;
  /** A conditional GET: `ifNoneMatch` equal to the current ETag answers `unchanged` without the body. */
  get(key: string, opts?: { ifNoneMatch?: string }): Promise<GetResult>;
  /** Throws `PreconditionFailedError` when a condition does not hold (if the backend honours it). */
  put(key: string, body: Buffer, cond?: PutCondition): Promise<{ etag: string }>;
  /** Uploads a local file (a tarball), reporting bytes sent. */
  putFile(key: string, file: string, onProgress?: (sent: number, total: number) => void): Promise<void>;
  /** A stream of the object's bytes. */
  open(key: string): Promise<{ stream: Readable; size: number }>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  /** Whether conditional writes are enforced; probed once, then remembered. */
  conditionsHonoured(): Promise<boolean>;
}

/** Keys are built by baton, but app names and versions come from users: keep them tame. */
export function checkKey(key: string): string {
  if (
    key === '' ||
    key.startsWith('/') ||
    key.split('/').some((p) => p === '' || p === '.' || p === '..') ||
    /[\0\\]/.test(key)
  ) {
    throw new StoreConfigError(`refusing object key '${key}'`);
  }
  return key;
}

/** App names, versions and machine ids become key segments. */
export function checkSegment(what: string, value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(value)) {
    throw new StoreConfigError(`${what} '${value}' must be 1-128 letters, digits, '.', '_', '+' or '-'`);
  }
  return value;
}

/** A pass-through stream that reports how much of an upload of `total` bytes has gone by. */
export function progressCounter(total: number, onProgress?: (sent: number, total: number) => void): Transform {
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, cb) {
      sent += chunk.length;
      onProgress?.(sent, total);
      cb(null, chunk);
    },
  });
}
