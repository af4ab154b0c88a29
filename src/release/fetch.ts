/**
 * Getting a tarball's bytes from where a layer says they are — a key in the store,
 * a `file://` path or an `https://` URL — and extracting them with verification.
 * Nothing is buffered whole: the bytes stream into `extractTarball`.
 */
import { createReadStream, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { get as httpGetPlain } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type Layer, ObjectNotFoundError, type Store, StoreError } from '../store/index.js';
import { FetchError, ReleaseError, SizeMismatchError } from './errors.js';
import { type ExtractLimits, type ExtractResult, extractTarball } from './extract.js';
import { checkRelease, type ReleaseInfo, type ReleaseKind } from './inspect.js';

export interface OpenedTarball {
  stream: Readable;
  size: number | undefined;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** `file://`, `https://` (plain `http://` only on loopback), or a store key such as `releases/app/1.0.tar.gz`. */
export async function openTarball(source: string, store?: Store, ca?: string | Buffer): Promise<OpenedTarball> {
  if (source.startsWith('file://')) {
    const path = fileURLToPath(source);
    try {
      const size = (await stat(path)).size;
      return { stream: createReadStream(path, { highWaterMark: 256 * 1024 }), size };
    } catch (err) {
      throw new FetchError(source, (err as Error).message);
    }
  }
  if (source.startsWith('https://') || source.startsWith('http://')) {
    const url = new URL(source);
    if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname))
      throw new FetchError(source, 'plain http is only allowed on loopback; use https');
    return httpGet(url, source, ca);
  }
  if (store === undefined) throw new FetchError(source, 'not a file:// or https:// URL, and no store to look it up in');
  try {
    return await store.openTarball(source);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new FetchError(source, err.message);
    throw err;
  }
}

/** node:https rather than fetch(): the response is a Node stream, and a private CA can be given. */
function httpGet(url: URL, source: string, ca: string | Buffer | undefined, redirects = 5): Promise<OpenedTarball> {
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? httpsGet : httpGetPlain;
    const req = get(url, ca === undefined ? {} : { ca }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location !== undefined && redirects > 0) {
        res.resume();
        const next = new URL(res.headers.location, url);
        if (next.protocol !== url.protocol) {
          reject(new FetchError(source, `redirect to ${next.protocol} refused`));
          return;
        }
        resolve(httpGet(next, source, ca, redirects - 1));
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new FetchError(source, `HTTP ${status}`));
        return;
      }
      const len = Number(res.headers['content-length']);
      resolve({ stream: res, size: Number.isFinite(len) && len > 0 ? len : undefined });
    });
    req.setTimeout(30_000, () => req.destroy(new Error('no response within 30 s')));
    req.on('error', (err) => reject(new FetchError(source, err.message)));
  });
}

export interface FetchOptions {
  /** Extra CA certificate(s) for https sources (PEM). */
  ca?: string | Buffer;
  sha256?: string;
  /** The size recorded for the tarball (a layer's `size`): other bytes are refused. */
  size?: number;
  /** What the tarball must be: `full` for blue-green layers. */
  expect?: ReleaseKind | 'any';
  store?: Store;
  limits?: Partial<ExtractLimits>;
  onProgress?: (bytes: number, total: number | undefined) => void;
}

export interface FetchedRelease extends ExtractResult {
  info: ReleaseInfo;
}

/** Fetches, verifies and extracts into `dest` (which must not exist), then checks the layout. */
export async function fetchRelease(source: string, dest: string, opts: FetchOptions = {}): Promise<FetchedRelease> {
  const { stream, size } = await openTarball(source, opts.store, opts.ca);
  if (opts.size !== undefined && size !== undefined && size !== opts.size) {
    // The store says how big the object is before a byte is read: no use reading it.
    stream.destroy();
    throw new SizeMismatchError(opts.size, size, source);
  }
  const expectedSize = opts.size ?? size;
  const extractOpts: Parameters<typeof extractTarball>[2] = { source };
  if (opts.sha256 !== undefined) extractOpts.sha256 = opts.sha256;
  if (expectedSize !== undefined) extractOpts.expectedSize = expectedSize;
  if (opts.limits !== undefined) extractOpts.limits = opts.limits;
  if (opts.onProgress !== undefined) {
    const cb = opts.onProgress;
    extractOpts.onProgress = (n) => cb(n, size);
  }
  let result: ExtractResult;
  try {
    result = await extractTarball(stream, dest, extractOpts);
  } catch (err) {
    // The archive's own faults and the store's keep their types; a connection dropping
    // mid-download is a failed fetch.
    if (err instanceof ReleaseError || err instanceof StoreError) throw err;
    throw new FetchError(source, `download interrupted: ${(err as Error).message}`);
  }
  try {
    return { ...result, info: checkRelease(dest, opts.expect ?? 'any') };
  } catch (err) {
    rmSync(dest, { recursive: true, force: true });
    throw err;
  }
}

/** A layer of current.json: its tarball from the store, held to its recorded sha256 and size. */
export function fetchLayer(
  store: Store,
  layer: Layer,
  dest: string,
  kind: 'hot' | 'blue-green',
  opts: Omit<FetchOptions, 'store' | 'sha256' | 'size' | 'expect'> = {},
): Promise<FetchedRelease> {
  return fetchRelease(layer.tarball, dest, {
    ...opts,
    store,
    sha256: layer.sha256,
    size: layer.size,
    expect: kind === 'blue-green' ? 'full' : 'any',
  });
}
