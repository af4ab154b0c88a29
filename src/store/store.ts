/**
 * The state store a fleet shares: current.json (layers), tarballs, per-machine results.
 * Backend-neutral; `openStore` picks `file://` or `s3://` from `BATON_STORE`.
 */
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { stateDirFromEnv } from '../common/index.js';
import { type Backend, checkKey, checkSegment, type ObjectInfo } from './backend.js';
import { type CurrentDoc, currentKey, type Layer, parseDoc } from './current.js';
import { CurrentDocumentError, StoreConfigError, VersionConflictError } from './errors.js';
import { FileBackend } from './file-backend.js';
import { type CurrentOp, layersFor } from './layers.js';
import { type MachineResult, parseResult, resultsPrefix } from './results.js';
import { chooseForDeletion, DEFAULT_KEEP } from './retention.js';
import type { RetryPolicy } from './retry.js';
import { S3Backend, type S3Options, s3OptionsFromUrl } from './s3-backend.js';
import { type ReadDoc, readCurrent, updateCurrent } from './update.js';

export interface StoreOptions {
  warn?: (message: string) => void;
  retry?: RetryPolicy;
  /** Overrides for what `s3://` URLs and the environment give (tests, explicit credentials). */
  s3?: Partial<S3Options>;
  env?: NodeJS.ProcessEnv;
}

export type PollResult =
  | { status: 'unchanged' }
  | { status: 'missing' }
  | { status: 'changed'; doc: CurrentDoc; etag: string };

export interface ReleaseObject {
  app: string;
  version: string;
  key: string;
  size: number;
  lastModified: Date;
  /** Which layers of current.json point at it. */
  inUse: ('blue-green' | 'hot')[];
}

/** `BATON_STORE`, defaulting to `<state dir>/store`. */
export function storeUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.BATON_STORE || `file://${join(stateDirFromEnv(env), 'store')}`;
}

export function openStore(url: string, opts: StoreOptions = {}): Store {
  if (url.startsWith('file://')) {
    const root = decodeURIComponent(url.slice('file://'.length));
    if (!root.startsWith('/')) throw new StoreConfigError(`'${url}' must be file:///absolute/path`);
    return new Store(new FileBackend(root), opts);
  }
  if (url.startsWith('s3://')) {
    const s3 = { ...s3OptionsFromUrl(url, opts.env), ...opts.s3 };
    if (opts.retry !== undefined) s3.retry = opts.retry;
    return new Store(new S3Backend(s3), opts);
  }
  throw new StoreConfigError(`BATON_STORE '${url}' is neither file:///path nor s3://bucket/prefix`);
}

export class Store {
  constructor(
    readonly backend: Backend,
    private readonly opts: StoreOptions = {},
  ) {}

  get url(): string {
    return this.backend.url;
  }

  readCurrent(app: string): Promise<ReadDoc> {
    return readCurrent(this.backend, checkSegment('app', app));
  }

  /** A conditional GET: `unchanged` costs no download when `etag` is still current. */
  async pollCurrent(app: string, etag?: string): Promise<PollResult> {
    const key = currentKey(checkSegment('app', app));
    const r = await this.backend.get(key, etag === undefined ? {} : { ifNoneMatch: etag });
    if (r.status !== 'ok') return r;
    try {
      return { status: 'changed', doc: parseDoc(r.body, key), etag: r.etag };
    } catch (err) {
      // Maybe a torn read of a write in progress: the full read settles it.
      if (!(err instanceof CurrentDocumentError)) throw err;
      const { doc, etag: now } = await readCurrent(this.backend, app);
      return doc === undefined || now === undefined ? { status: 'missing' } : { status: 'changed', doc, etag: now };
    }
  }

  update(app: string, op: CurrentOp): Promise<CurrentDoc> {
    const o: { warn?: (m: string) => void } = {};
    if (this.opts.warn !== undefined) o.warn = this.opts.warn;
    return updateCurrent(this.backend, checkSegment('app', app), op, o);
  }

  /**
   * What a machine booted from `imageRef` runs: its baked release plus these layers.
   * A different image than the recorded one is a cold deploy: both layers are reset
   * in the store (compare-and-swap, like any write) and none is returned.
   */
  async startupLayers(
    app: string,
    imageRef: string | undefined,
    machineId: string,
  ): Promise<{ blueGreen: Layer | null; hot: Layer | null; coldDeploy: boolean; doc: CurrentDoc | undefined }> {
    let { doc } = await this.readCurrent(app);
    const seen = layersFor(doc, imageRef);
    if (imageRef !== undefined && doc?.image_ref !== imageRef) {
      doc = await this.update(app, {
        kind: 'cold-deploy',
        id: `cold-${checkSegment('machine id', machineId)}-${Date.now()}`,
        image_ref: imageRef,
      });
    }
    return { ...seen, doc };
  }

  tarballKey(app: string, version: string): string {
    return `releases/${checkSegment('app', app)}/${checkSegment('version', version)}.tar.gz`;
  }

  /**
   * Uploads a tarball under its version. The same bytes again are a no-op; other bytes
   * under a published version are refused (machines may have them cached under that name).
   */
  async putTarball(
    app: string,
    version: string,
    file: string,
    sha256: string,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<{ key: string; uploaded: boolean }> {
    const key = this.tarballKey(app, version);
    const sumKey = `${key}.sha256`;
    const existing = await this.backend.get(sumKey);
    if (existing.status === 'ok') {
      const prev = existing.body.toString().trim();
      if (prev === sha256 && (await this.backend.head(key)) !== undefined) return { key, uploaded: false };
      if (prev !== sha256) throw new VersionConflictError(key, prev);
    }
    await this.backend.putFile(key, file, onProgress);
    await this.backend.put(sumKey, Buffer.from(`${sha256}\n`));
    return { key, uploaded: true };
  }

  openTarball(key: string): Promise<{ stream: Readable; size: number }> {
    return this.backend.open(checkKey(key));
  }

  /** Published tarballs, of one app or of all, with what current.json uses. */
  async listReleases(app?: string): Promise<ReleaseObject[]> {
    const objects = await this.backend.list(app === undefined ? 'releases/' : `releases/${checkSegment('app', app)}/`);
    const out: ReleaseObject[] = [];
    const docs = new Map<string, CurrentDoc | undefined>();
    for (const o of objects) {
      const m = /^releases\/([^/]+)\/(.+)\.tar\.gz$/.exec(o.key);
      if (!m?.[1] || !m[2]) continue;
      const a = m[1];
      if (!docs.has(a)) docs.set(a, (await this.readCurrent(a).catch(() => ({ doc: undefined }))).doc);
      const doc = docs.get(a);
      const inUse: ReleaseObject['inUse'] = [];
      if (doc?.blue_green_upgrade?.tarball === o.key) inUse.push('blue-green');
      if (doc?.hot_upgrade?.tarball === o.key) inUse.push('hot');
      out.push({ app: a, version: m[2], key: o.key, size: o.size, lastModified: o.lastModified, inUse });
    }
    return out;
  }

  async writeResult(app: string, result: MachineResult): Promise<void> {
    checkSegment('machine id', result.machine_id);
    checkSegment('upgrade id', result.upgrade_id);
    await this.backend.put(
      `${resultsPrefix(checkSegment('app', app), result.upgrade_id)}${result.machine_id}.json`,
      Buffer.from(JSON.stringify(result)),
    );
  }

  /** Results of one upgrade by machine id (unreadable ones are skipped). */
  async readResults(app: string, upgradeId: string): Promise<Map<string, MachineResult>> {
    const out = new Map<string, MachineResult>();
    for (const o of await this.backend.list(
      resultsPrefix(checkSegment('app', app), checkSegment('upgrade id', upgradeId)),
    )) {
      const r = await this.backend.get(o.key);
      if (r.status !== 'ok') continue;
      const res = parseResult(r.body);
      if (res !== undefined) out.set(res.machine_id, res);
    }
    return out;
  }

  /**
   * Deletes all but the newest `keep` tarballs of `app`, never one current.json
   * references (read just before deleting) nor one uploaded in the last
   * `PRUNE_GRACE_MS` before `now`. Returns the deleted keys.
   */
  async prune(app: string, keep: number = DEFAULT_KEEP, now: Date = new Date()): Promise<string[]> {
    const tarballs = (await this.backend.list(`releases/${checkSegment('app', app)}/`)).filter((o) =>
      o.key.endsWith('.tar.gz'),
    );
    const { doc } = await this.readCurrent(app);
    const referenced = new Set<string>();
    for (const l of [doc?.blue_green_upgrade, doc?.hot_upgrade]) if (l) referenced.add(l.tarball);
    const doomed: ObjectInfo[] = chooseForDeletion(tarballs, referenced, keep, now);
    for (const t of doomed) {
      await this.backend.delete(t.key);
      await this.backend.delete(`${t.key}.sha256`);
    }
    return doomed.map((t) => t.key);
  }
}

export type { Layer };
