/**
 * `baton publish`: turn a release directory or a tarball into a layer of current.json.
 * Everything is checked before the store is touched: the tarball, given by hand or
 * packed from a directory, is extracted into a temporary directory under the same
 * limits and rules a machine applies, and a blue-green layer must be a full release. Only then the tarball is uploaded under
 * its version, current.json is updated (compare-and-swap), and old tarballs pruned.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type CurrentDoc, checkSegment, type Layer, type Store } from '../store/index.js';
import { decideMode, type ModeDecision, type UpgradeMode } from './auto.js';
import { FetchError, ReleaseLayoutError } from './errors.js';
import { fetchLayer, fetchRelease } from './fetch.js';
import { checkRelease, type ReleaseInfo } from './inspect.js';
import { type BuiltTarball, buildBeamTarball, buildFullTarball } from './tarball.js';

export interface PublishOptions {
  store: Store;
  app: string;
  /** A release directory (`_build/prod/rel/<app>`) or a `.tar.gz`. */
  input: string;
  mode: UpgradeMode | 'auto';
  version?: string;
  /** Recorded as the layer's `source_image_ref`. */
  imageRef?: string;
  /** Tarballs kept per app (those current.json references, and recent uploads, are always kept). */
  keep?: number;
  onProgress?: (sent: number, total: number) => void;
  log?: (line: string) => void;
  /** The publish time (default now): stamps the layer and the default hot version. */
  now?: Date;
}

export interface PublishResult {
  upgradeId: string;
  mode: UpgradeMode;
  /** Why auto chose blue-green (empty for hot or an explicit mode). */
  reasons: string[];
  layer: Layer;
  doc: CurrentDoc;
  uploaded: boolean;
  pruned: string[];
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
}

export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const { store, app } = opts;
  checkSegment('app', app);
  const log = opts.log ?? (() => undefined);
  const work = mkdtempSync(join(tmpdir(), 'baton-publish-'));
  try {
    const input = resolve(opts.input);
    let isDir: boolean;
    try {
      isDir = statSync(input).isDirectory();
    } catch (err) {
      throw new FetchError(
        opts.input,
        (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message,
      );
    }
    let info: ReleaseInfo;
    let givenSha256 = '';
    if (isDir) {
      info = checkRelease(input, 'full');
    } else {
      const fetched = await fetchRelease(pathToFileURL(input).href, join(work, 'candidate'));
      info = fetched.info;
      givenSha256 = fetched.sha256;
    }

    // A current.json nobody can read stops the publish before anything is uploaded.
    await store.readCurrent(app);

    let mode: UpgradeMode;
    let decision: ModeDecision | undefined;
    const reasons: string[] = [];
    // The published blue-green release: what auto compares with, and what a hot
    // tarball built from a directory needs to carry only the changed applications.
    const baseline = opts.mode === 'blue-green' ? undefined : await publishedBaseline(store, app, work);
    if (opts.mode === 'auto') {
      if (baseline === undefined) {
        mode = info.kind === 'full' ? 'blue-green' : 'hot';
        if (mode === 'blue-green') reasons.push('no blue-green release is published yet to compare with');
      } else {
        decision = decideMode(baseline, info);
        mode = decision.mode;
        reasons.push(...decision.reasons);
      }
      log(`auto: ${mode}${reasons.length > 0 ? `\n  - ${reasons.join('\n  - ')}` : ''}`);
    } else {
      mode = opts.mode;
      if (baseline !== undefined) decision = decideMode(baseline, info);
      if (mode === 'hot' && decision?.mode === 'blue-green') {
        log(`warning: hot requested, but auto would choose blue-green:\n  - ${decision.reasons.join('\n  - ')}`);
      }
    }
    if (mode === 'blue-green' && info.kind !== 'full') {
      throw new ReleaseLayoutError(
        'a blue-green release needs releases/<vsn>/sys.config and this tarball has none',
        opts.input,
      );
    }

    const now = opts.now ?? new Date();
    let tarball: BuiltTarball;
    if (!isDir) {
      tarball = { file: input, sha256: givenSha256, size: statSync(input).size };
    } else if (mode === 'blue-green') {
      tarball = await buildFullTarball(input, join(work, 'full.tar.gz'));
    } else {
      // Against a published release only the changed applications travel; without one, all do.
      const apps = decision !== undefined ? [...decision.changedModules.keys()] : undefined;
      if (apps !== undefined && apps.length === 0) {
        throw new ReleaseLayoutError(
          'no module differs from the published blue-green release: nothing to hot-load',
          opts.input,
        );
      }
      tarball = await buildBeamTarball(input, join(work, 'beams.tar.gz'), apps, info);
    }
    if (isDir) {
      // A directory can hold what no machine accepts (a path over the limit, a link
      // leading out of it): the packed tarball is checked exactly as machines will.
      await fetchRelease(pathToFileURL(tarball.file).href, join(work, 'packed'), {
        sha256: tarball.sha256,
        expect: mode === 'blue-green' ? 'full' : 'any',
      });
    }

    // The content hash keeps two hot publishes of the same second apart (a bare timestamp
    // made the second one a version conflict); the same bytes get the same version.
    const hotVersion = `${info.version ?? 'beams'}-hot-${stamp(now)}-${tarball.sha256.slice(0, 8)}`;
    const version = opts.version ?? (mode === 'hot' ? hotVersion : info.version);
    if (version === undefined)
      throw new ReleaseLayoutError('the release version is unknown: pass --version', opts.input);
    const upgradeId = `${stamp(now)}-${randomBytes(4).toString('hex')}`;
    log(`uploading ${store.tarballKey(app, version)} (${tarball.size} bytes)`);
    const { key, uploaded } = await store.putTarball(app, version, tarball.file, tarball.sha256, opts.onProgress);
    const layer: Layer = {
      version,
      tarball: key,
      sha256: tarball.sha256,
      size: tarball.size,
      source_image_ref: opts.imageRef ?? null,
      published_at: now.toISOString(),
      upgrade_id: upgradeId,
    };
    const doc = await store.update(app, { kind: mode, id: upgradeId, layer });
    const pruned = await store.prune(app, opts.keep, now);
    return { upgradeId, mode, reasons, layer, doc, uploaded, pruned };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The published blue-green release, extracted and inspected, to compare a candidate with. */
async function publishedBaseline(store: Store, app: string, work: string): Promise<ReleaseInfo | undefined> {
  const { doc } = await store.readCurrent(app);
  const layer = doc?.blue_green_upgrade;
  if (!layer) return undefined;
  return (await fetchLayer(store, layer, join(work, 'baseline'), 'blue-green')).info;
}
