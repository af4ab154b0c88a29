/**
 * Building the two kinds of tarball a publish uploads: a full release (blue-green)
 * and a beam-only one (hot: the changed applications' ebin and priv, plus consolidated
 * protocols). Written through a hash so the sha256 and size come out of the same pass.
 */
import { createHash } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create } from 'tar';
import { ReleaseLayoutError } from './errors.js';
import { inspectRelease, type ReleaseInfo } from './inspect.js';

export interface BuiltTarball {
  file: string;
  sha256: string;
  size: number;
}

async function pack(cwd: string, entries: string[], file: string): Promise<BuiltTarball> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(create({ gzip: { level: 6 }, cwd, portable: true }, entries), tap, createWriteStream(file));
  return { file, sha256: hash.digest('hex'), size };
}

/** The whole release directory (`_build/prod/rel/<app>`), with bin, erts-<vsn>, lib and releases. */
export async function buildFullTarball(releaseDir: string, file: string): Promise<BuiltTarball> {
  if (!existsSync(join(releaseDir, 'releases')))
    throw new ReleaseLayoutError('no releases/ directory: not a built release', releaseDir);
  return pack(releaseDir, readdirSync(releaseDir).sort(), file);
}

/**
 * Beam-only tarball of `apps` (names; all applications when undefined) from a release
 * directory: `lib/<app>-<vsn>/{ebin,priv}` and `consolidated/`.
 */
export async function buildBeamTarball(
  releaseDir: string,
  file: string,
  apps?: Iterable<string>,
  info: ReleaseInfo = inspectRelease(releaseDir),
): Promise<BuiltTarball> {
  const wanted = apps === undefined ? undefined : new Set(apps);
  const stage = mkdtempSync(join(tmpdir(), 'baton-beams-'));
  try {
    for (const app of info.apps) {
      if (wanted !== undefined && !wanted.has(app.name)) continue;
      for (const sub of ['ebin', 'priv']) {
        const from = join(releaseDir, app.dir, sub);
        if (existsSync(from)) cpSync(from, join(stage, app.dir, sub), { recursive: true });
      }
    }
    const consolidated =
      info.version === undefined ? undefined : join(releaseDir, 'releases', info.version, 'consolidated');
    if (consolidated !== undefined && existsSync(consolidated) && statSync(consolidated).isDirectory()) {
      cpSync(consolidated, join(stage, 'consolidated'), { recursive: true });
    }
    const entries = readdirSync(stage).sort();
    if (entries.length === 0)
      throw new ReleaseLayoutError('no changed application to put in a hot tarball', releaseDir);
    return await pack(stage, entries, file);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
