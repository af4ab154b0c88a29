/**
 * `npm run bench -- release [MiB]`: fetch + verify + extract of a ~50 MiB release
 * tarball from the file store, against `tar xzf` of the same file in the same run
 * (target: at most 1.2x), and the extraction's peak RSS (it streams: far below the
 * tarball's size).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/index.js';
import { buildTinyRelease } from '../release/helpers/fixture.js';

const here = fileURLToPath(new URL('.', import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Files of beam-like sizes, a third random (incompressible) and the rest text, so gzip gets ~3x like a real release. */
function addFiller(rel: string, targetCompressedMiB: number): void {
  const dir = join(rel, 'lib/filler-1.0.0/priv');
  mkdirSync(dir, { recursive: true });
  const text = Buffer.from('defmodule Filler do\n  def hello(name), do: "hello #{name}"\nend\n'.repeat(1000));
  const perFile = 64 * 1024;
  const files = Math.ceil((0.88 * targetCompressedMiB * 1024 * 1024) / (perFile / 3));
  for (let i = 0; i < files; i++) {
    const buf = Buffer.concat([randomBytes(perFile / 3), text.subarray(0, perFile - perFile / 3)]);
    mkdirSync(join(dir, `d${i % 64}`), { recursive: true });
    writeFileSync(join(dir, `d${i % 64}`, `f${i}.bin`), buf);
  }
}

export async function run(args: string[]): Promise<void> {
  const targetMiB = Number(args[0] ?? 50);
  const runs = 5;
  const work = mkdtempSync(join(tmpdir(), 'baton-bench-release-'));
  try {
    const rel = buildTinyRelease(work, 'rel');
    addFiller(rel, targetMiB);
    const file = join(work, 'release.tar.gz');
    execFileSync('tar', ['czf', file, '-C', rel, '.']);
    const size = statSync(file).size;
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    const storeUrl = `file://${join(work, 'store')}`;
    const store = openStore(storeUrl);
    const { key } = await store.putTarball('bench', '1.0.0', file, sha256);
    console.log(
      `tarball: ${(size / 1024 / 1024).toFixed(1)} MiB compressed, ${execFileSync('du', ['-sm', rel]).toString().split('\t')[0]} MiB extracted`,
    );

    const batonMs: number[] = [];
    const tarMs: number[] = [];
    const rss: number[] = [];
    let rssBefore = 0;
    const viaTar = (i: number): void => {
      const tarDest = join(work, `tar-${i}`);
      mkdirSync(tarDest);
      const t0 = process.hrtime.bigint();
      execFileSync('tar', ['xzf', file, '-C', tarDest]);
      tarMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      rmSync(tarDest, { recursive: true, force: true });
    };
    const viaBaton = (i: number): void => {
      const dest = join(work, `baton-${i}`);
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(here, '_release-child.ts'), storeUrl, key, sha256, dest],
        { encoding: 'utf8' },
      );
      if (child.status !== 0) throw new Error(`extraction child failed: ${child.stderr}`);
      const r = JSON.parse(child.stdout) as { ms: number; maxRssKiB: number; rssBeforeKiB: number };
      batonMs.push(r.ms);
      rss.push(r.maxRssKiB);
      rssBefore = r.rssBeforeKiB;
      rmSync(dest, { recursive: true, force: true });
    };
    for (let i = 0; i < runs; i++) {
      // Alternate which goes first, so drift on a shared machine (and the page cache
      // the first one warms) hits both alike.
      const order = i % 2 === 0 ? [viaTar, viaBaton] : [viaBaton, viaTar];
      for (const step of order) step(i);
    }
    const b = median(batonMs);
    const t = median(tarMs);
    console.log(
      `baton fetch+verify+extract (file store): median ${b.toFixed(0)} ms  [${batonMs.map((x) => x.toFixed(0)).join(', ')}]`,
    );
    console.log(
      `tar xzf:                                 median ${t.toFixed(0)} ms  [${tarMs.map((x) => x.toFixed(0)).join(', ')}]`,
    );
    console.log(`ratio: ${(b / t).toFixed(2)}x (target <= 1.2x)`);
    console.log(
      `peak RSS of the extracting process: ${(median(rss) / 1024).toFixed(0)} MiB (${(rssBefore / 1024).toFixed(0)} MiB before extracting; tarball ${(size / 1024 / 1024).toFixed(0)} MiB)`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
