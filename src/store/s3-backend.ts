/**
 * `s3://bucket/prefix` store on AWS S3, Tigris, MinIO or anything speaking the S3 API.
 *
 * - Checksums only when an operation requires them: the SDK's default CRC32 headers
 *   are refused by several S3-compatible servers.
 * - Path-style addressing when a custom endpoint is set (`AWS_ENDPOINT_URL_S3`),
 *   unless `BATON_S3_PATH_STYLE` says otherwise.
 * - Reads of `*-current.json` carry `X-Tigris-Consistent: true`, so on Tigris a machine
 *   never acts on an older document than the one just written (fly_deploy 0.2.3).
 * - The SDK's own retries are off: network failures and 5xx are retried here with
 *   backoff, then reported as `StoreUnreachableError` naming the endpoint.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  type Backend,
  checkKey,
  type GetResult,
  type ObjectInfo,
  type PutCondition,
  progressCounter,
} from './backend.js';
import { ObjectNotFoundError, PreconditionFailedError, StoreConfigError, StoreUnreachableError } from './errors.js';
import { defaultRetry, type RetryPolicy, withRetry } from './retry.js';

/** Whether each endpoint + bucket honours conditional writes, probed once per process. */
const probes = new Map<string, Promise<boolean>>();

export interface S3Options {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  retry?: RetryPolicy;
  /** Per-request timeout, so a store that accepts but never answers is an error too. */
  requestTimeoutMs?: number;
}

/** `s3://bucket/prefix` plus the usual AWS variables. */
export function s3OptionsFromUrl(url: string, env: NodeJS.ProcessEnv = process.env): S3Options {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m?.[1]) throw new StoreConfigError(`'${url}' is not s3://bucket[/prefix]`);
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const flag = env.BATON_S3_PATH_STYLE?.toLowerCase();
  const forcePathStyle =
    flag === undefined || flag === '' ? endpoint !== undefined : ['1', 'true', 'yes', 'on'].includes(flag);
  return {
    bucket: m[1],
    prefix: (m[2] ?? '').replace(/\/+$/, ''),
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint !== undefined ? 'auto' : 'us-east-1'),
    forcePathStyle,
  };
}

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  message?: string;
}

function status(err: unknown): number | undefined {
  return (err as SdkError).$metadata?.httpStatusCode;
}

/** Network failures, timeouts, throttling and server errors; not 4xx answers, nor what they were mapped to. */
function retryable(err: unknown): boolean {
  if (err instanceof PreconditionFailedError || err instanceof ObjectNotFoundError) return false;
  const s = status(err);
  if (s !== undefined) return s >= 500 || s === 429;
  return err instanceof Error;
}

export class S3Backend implements Backend {
  readonly url: string;
  readonly client: S3Client;
  private readonly retryPolicy: RetryPolicy;

  constructor(private readonly opts: S3Options) {
    this.url = `s3://${opts.bucket}${opts.prefix ? `/${opts.prefix}` : ''}${opts.endpoint ? ` (${opts.endpoint})` : ''}`;
    this.retryPolicy = opts.retry ?? defaultRetry;
    const config: S3ClientConfig = {
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: opts.requestTimeoutMs ?? 30_000,
        connectionTimeout: 5_000,
        throwOnRequestTimeout: true,
      },
    };
    if (opts.endpoint !== undefined) config.endpoint = opts.endpoint;
    if (opts.credentials !== undefined) config.credentials = opts.credentials;
    this.client = new S3Client(config);
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: string };
        const req = args.request as { headers?: Record<string, string> };
        if (context.commandName === 'GetObjectCommand' && input.Key?.endsWith('-current.json') && req.headers) {
          req.headers['x-tigris-consistent'] = 'true';
        }
        return next(args);
      },
      { step: 'build', name: 'batonTigrisConsistentReads' },
    );
  }

  private key(key: string): string {
    checkKey(key);
    return this.opts.prefix ? `${this.opts.prefix}/${key}` : key;
  }

  private call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(this.retryPolicy, fn, retryable, (err, attempts) => {
      const e = err as SdkError;
      const s = status(err);
      const reason = `${what}: ${s !== undefined ? `HTTP ${s} ` : ''}${e.code ?? e.name ?? 'Error'}${e.message ? ` (${e.message})` : ''}`;
      return new StoreUnreachableError(this.url, reason, attempts);
    });
  }

  async get(key: string, opts: { ifNoneMatch?: string } = {}): Promise<GetResult> {
    return this.call(`GET ${key}`, async () => {
      try {
        const r = await this.client.send(
          new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key), IfNoneMatch: opts.ifNoneMatch }),
        );
        const body = Buffer.from(await r.Body!.transformToByteArray());
        return { status: 'ok', body, etag: r.ETag ?? '' };
      } catch (err) {
        const s = status(err);
        if (s === 304) return { status: 'unchanged' };
        if (s === 404) return { status: 'missing' };
        throw err;
      }
    });
  }

  async put(key: string, body: Buffer, cond: PutCondition = {}): Promise<{ etag: string }> {
    return this.call(`PUT ${key}`, async () => {
      try {
        const r = await this.client.send(
          new PutObjectCommand({
            Bucket: this.opts.bucket,
            Key: this.key(key),
            Body: body,
            ContentType: key.endsWith('.json') ? 'application/json' : 'application/octet-stream',
            IfMatch: cond.ifMatch,
            IfNoneMatch: cond.ifNoneMatch,
          }),
        );
        return { etag: r.ETag ?? '' };
      } catch (err) {
        // 409 is S3's answer to two conditional writes racing each other, and 404 to an
        // If-Match on a key deleted since it was read: either way, read again.
        const s = status(err);
        if (s === 412 || s === 409 || (s === 404 && cond.ifMatch !== undefined)) throw new PreconditionFailedError(key);
        throw err;
      }
    });
  }

  async putFile(key: string, file: string, onProgress?: (sent: number, total: number) => void): Promise<void> {
    const total = (await stat(file)).size;
    await this.call(`PUT ${key}`, async () => {
      const progress = progressCounter(total, onProgress);
      const body = createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(progress);
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: this.key(key),
          Body: body,
          ContentLength: total,
          ContentType: 'application/gzip',
        }),
      );
    });
  }

  async open(key: string): Promise<{ stream: Readable; size: number }> {
    return this.call(`GET ${key}`, async () => {
      try {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
        return { stream: r.Body as Readable, size: r.ContentLength ?? 0 };
      } catch (err) {
        if (status(err) === 404) throw new ObjectNotFoundError(this.url, key);
        throw err;
      }
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return this.call(`HEAD ${key}`, async () => {
      try {
        const r = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
        return { key, size: r.ContentLength ?? 0, lastModified: r.LastModified ?? new Date(0) };
      } catch (err) {
        if (status(err) === 404) return undefined;
        throw err;
      }
    });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const strip = this.opts.prefix ? this.opts.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      const r = await this.call(`LIST ${prefix}`, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.opts.bucket,
            Prefix: (this.opts.prefix ? `${this.opts.prefix}/` : '') + prefix,
            ContinuationToken: token,
          }),
        ),
      );
      for (const o of r.Contents ?? []) {
        if (o.Key === undefined) continue;
        out.push({ key: o.Key.slice(strip), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async delete(key: string): Promise<void> {
    await this.call(`DELETE ${key}`, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) })),
    );
  }

  /**
   * Creates a probe object twice with `If-None-Match: *`: a server that honours the
   * condition refuses the second write. Asked once per process for each endpoint and
   * bucket, however many backends are opened on it: probes running side by side gain
   * nothing, and on s3rver one probe's delete removes the directory under another's
   * write.
   */
  conditionsHonoured(): Promise<boolean> {
    const key = `${this.opts.endpoint ?? 'aws'}|${this.opts.bucket}`;
    const known = probes.get(key);
    if (known !== undefined) return known;
    const probing = (async () => {
      const probe = `.baton/cas-probe-${randomBytes(8).toString('hex')}`;
      await this.put(probe, Buffer.from('1'), { ifNoneMatch: '*' });
      try {
        await this.put(probe, Buffer.from('2'), { ifNoneMatch: '*' });
        return false;
      } catch (err) {
        if (err instanceof PreconditionFailedError) return true;
        throw err;
      } finally {
        await this.delete(probe).catch(() => undefined);
      }
    })().catch((err: unknown) => {
      probes.delete(key);
      throw err;
    });
    probes.set(key, probing);
    return probing;
  }
}
