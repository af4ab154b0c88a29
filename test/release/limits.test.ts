/**
 * The extractor's documented default limits, each crossed by a generated tarball and
 * refused with a typed error naming the limit — when publishing it and when a machine
 * fetches it from the store, on both backends — with the store unchanged and no
 * staging directory left behind. Nothing here lowers a limit.
 *
 * The tarballs are written as streams (helpers/big-tarball.ts): the one inflating past
 * 4 GiB is ~97 MB on disk and compresses ~45x, under the 100x ratio limit, so the size
 * limit is what trips; the ratio case compresses ~125x, not the ~1000x of zeros
 * (bad-input.test.ts's bomb), so a limit set much higher than 100 would let it through.
 * A size mismatch exists only on the fetching side: a publish measures the tarball it
 * is given.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { defaultExtractLimits, extractTarball, fetchLayer, publish } from '../../src/release/index.js';
import { type Layer, openStore, type Store } from '../../src/store/index.js';
import { type S3Fixture, startS3 } from '../store/helpers/s3.js';
import {
  type GeneratedTarball,
  longPathEntry,
  pathOf,
  tarballInflatingTo,
  tarballWith,
  tarballWithEntries,
} from './helpers/big-tarball.js';
import { buildTinyRelease } from './helpers/fixture.js';

let work: string;
let s3: S3Fixture;
let rel: string;

interface Backend {
  store: Store;
  goodLayer: Layer;
  /** Every object (file store: every file, temp and lock files included) with its size and content. */
  snapshot: () => Promise<Record<string, string>>;
}
const backends = new Map<string, Backend>();

const SMALL = 1024 * 1024;
const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function dirSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out[relative(dir, p)] = `${s.size}:${s.size < SMALL ? digest(readFileSync(p)) : s.mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

async function objectSnapshot(store: Store): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await store.backend.list('')) {
    const r = o.size < SMALL ? await store.backend.get(o.key) : undefined;
    out[o.key] =
      `${o.size}:${r === undefined ? o.lastModified.getTime() : r.status === 'ok' ? digest(r.body) : r.status}`;
  }
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-limits-'));
  mkdirSync(join(work, 'tarballs'));
  s3 = await startS3();
  rel = buildTinyRelease(work, 'rel');
  const storeRoot = join(work, 'store');
  const fileStore = openStore(`file://${storeRoot}`);
  const s3Store = s3.open('limits');
  for (const [name, store, snapshot] of [
    ['file', fileStore, async () => dirSnapshot(storeRoot)],
    ['s3', s3Store, () => objectSnapshot(s3Store)],
  ] as const) {
    const r = await publish({ store, app: 'tiny', input: rel, mode: 'blue-green' });
    backends.set(name, { store, goodLayer: r.layer, snapshot });
  }
});

afterAll(async () => {
  await s3?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Each tarball is generated once per run, on first use (its bytes never change). */
const generated = new Map<string, Promise<GeneratedTarball>>();
function tarball(name: string, make: (file: string) => Promise<GeneratedTarball>): Promise<GeneratedTarball> {
  let t = generated.get(name);
  if (t === undefined) {
    t = make(join(work, 'tarballs', `${name}.tar.gz`));
    generated.set(name, t);
  }
  return t;
}

/** A temp dir of the test's own for what publish stages, checked empty afterwards. */
function ownTmpdir(): string {
  const dir = mkdtempSync(join(work, 'tmp-'));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  onTestFinished(() => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  });
  return dir;
}

interface Case {
  name: string;
  make: (file: string) => Promise<GeneratedTarball>;
  expected: Record<string, unknown>;
  message: RegExp;
  timeoutMs?: number;
}

const GiB = 1024 ** 3;

const cases: Case[] = [
  {
    name: 'a path over 1024 bytes',
    make: (file) => tarballWith(file, longPathEntry(pathOf(1025), 'x')),
    expected: { code: 'UNSAFE_ENTRY', kind: 'path-too-long', entry: pathOf(1025) },
    message: /path is 1025 bytes, the limit is 1024$/,
  },
  {
    name: 'a path component over 255 bytes',
    make: (file) => tarballWith(file, longPathEntry(`lib/tiny-0.1.0/priv/${'c'.repeat(256)}`, 'x')),
    expected: { code: 'UNSAFE_ENTRY', kind: 'path-too-long' },
    message: /component 'c{40}…' is longer than 255 bytes$/,
  },
  {
    name: 'more than 200 000 entries',
    make: (file) => tarballWithEntries(file, 200_001),
    expected: { code: 'ARCHIVE_LIMIT', limit: 'entries' },
    message: /exceeds the entries limit: more than 200000 entries$/,
  },
  {
    name: 'more than 4 GiB inflated',
    make: async (file) => {
      const t = await tarballInflatingTo(file, 4 * GiB + SMALL);
      // Under the ratio limit by a wide margin, so it cannot be what trips.
      expect(t.inflated / t.size).toBeLessThan(60);
      return t;
    },
    expected: { code: 'ARCHIVE_LIMIT', limit: 'bytes' },
    message: /exceeds the bytes limit: more than 4294967296 bytes once decompressed$/,
    timeoutMs: 180_000,
  },
  {
    name: 'a compression ratio over 100x',
    make: async (file) => {
      const t = await tarballInflatingTo(file, GiB, 400);
      const ratio = t.inflated / t.size;
      expect(ratio).toBeGreaterThan(110);
      expect(ratio).toBeLessThan(140);
      return t;
    },
    expected: { code: 'ARCHIVE_LIMIT', limit: 'ratio' },
    message: /exceeds the ratio limit: \d+ bytes inflated from \d+ \(more than 100x: a decompression bomb\?\)$/,
    timeoutMs: 120_000,
  },
];

it('the limits asserted here are the defaults', () => {
  expect(defaultExtractLimits).toMatchObject({
    maxPathBytes: 1024,
    maxComponentBytes: 255,
    maxEntries: 200_000,
    maxBytes: 4 * GiB,
    maxRatio: 100,
  });
});

describe.each(['file', 's3'])('default limits, %s store', (backendName) => {
  for (const c of cases) {
    it(
      `publish refuses ${c.name}, uploading nothing`,
      async () => {
        const { store, snapshot } = backends.get(backendName)!;
        const t = await tarball(c.name, c.make);
        const tmp = ownTmpdir();
        const before = await snapshot();
        const err = await publish({ store, app: 'tiny', input: t.file, mode: 'blue-green' }).catch((e: unknown) => e);
        expect(err).toMatchObject(c.expected);
        expect((err as Error).message).toMatch(c.message);
        expect(await snapshot()).toEqual(before);
        // The candidate was extracted under publish's temp dir: all of it is gone.
        expect(readdirSync(tmp)).toEqual([]);
      },
      c.timeoutMs,
    );

    it(
      `a machine's fetch from the store refuses ${c.name}, extracting nothing`,
      async () => {
        const { store, goodLayer, snapshot } = backends.get(backendName)!;
        const t = await tarball(c.name, c.make);
        const key = `releases/tiny/limit-${c.name.replace(/[^a-z0-9]+/gi, '-')}.tar.gz`;
        await store.backend.putFile(key, t.file);
        onTestFinished(() => store.backend.delete(key));
        const layer: Layer = { ...goodLayer, tarball: key, sha256: t.sha256, size: t.size };
        const before = await snapshot();
        const machine = mkdtempSync(join(work, 'machine-'));
        let staging: string[] = [];
        const err = await fetchLayer(store, layer, join(machine, 'release'), 'blue-green', {
          onProgress: () => {
            if (staging.length === 0) staging = readdirSync(machine);
          },
        }).catch((e: unknown) => e);
        expect(err).toMatchObject(c.expected);
        expect((err as Error).message).toMatch(c.message);
        // Extraction went to a staging directory beside the destination, removed on refusal.
        expect(staging).toEqual([expect.stringMatching(/^release\.partial-[0-9a-f]{12}$/)]);
        expect(readdirSync(machine)).toEqual([]);
        expect(await snapshot()).toEqual(before);
      },
      c.timeoutMs,
    );
  }

  // A release directory is packed by publish itself: what it uploads must be what machines accept.
  for (const [what, add, expected] of [
    [
      'a path over 1024 bytes',
      (dir: string) => {
        const path = join(dir, pathOf(1025));
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, 'x');
      },
      { code: 'UNSAFE_ENTRY', kind: 'path-too-long' },
    ],
    [
      'a symlink leading outside it',
      (dir: string) => symlinkSync('/etc', join(dir, 'lib/tiny-0.1.0/priv')),
      { code: 'UNSAFE_ENTRY', kind: 'symlink-outside', entry: 'lib/tiny-0.1.0/priv' },
    ],
  ] as const) {
    it(`publish of a release directory holding ${what} refuses it, uploading nothing`, async () => {
      const { store, snapshot } = backends.get(backendName)!;
      const dir = join(mkdtempSync(join(work, 'reldir-')), 'tiny');
      cpSync(rel, dir, { recursive: true, verbatimSymlinks: true });
      add(dir);
      const tmp = ownTmpdir();
      const before = await snapshot();
      const version = `dir-${what.replace(/[^a-z0-9]+/gi, '-')}`;
      const err = await publish({ store, app: 'tiny', input: dir, mode: 'blue-green', version }).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject(expected);
      expect(await snapshot()).toEqual(before);
      expect(readdirSync(tmp)).toEqual([]);
    });
  }

  for (const [what, delta] of [
    ['longer', -1],
    ['shorter', 1],
  ] as const) {
    it(`a machine's fetch refuses an object ${what} than its layer's size, before reading it`, async () => {
      const { store, goodLayer, snapshot } = backends.get(backendName)!;
      // The published release, its sha256 right: only the size recorded is off.
      const key = goodLayer.tarball;
      const t = { size: goodLayer.size };
      const layer: Layer = { ...goodLayer, size: t.size + delta };
      const before = await snapshot();
      const machine = mkdtempSync(join(work, 'machine-'));
      let progressed = false;
      const err = await fetchLayer(store, layer, join(machine, 'release'), 'blue-green', {
        onProgress: () => {
          progressed = true;
        },
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'SIZE_MISMATCH', expected: t.size + delta, actual: t.size });
      expect((err as Error).message).toBe(
        `size mismatch for ${key}: expected ${t.size + delta} bytes, got ${delta < 0 ? `more (refused at ${t.size})` : t.size}`,
      );
      expect(progressed).toBe(false);
      expect(readdirSync(machine)).toEqual([]);
      expect(await snapshot()).toEqual(before);
      // Under its true size it is a good release: the size was the only fault.
      const ok = await fetchLayer(store, goodLayer, join(machine, 'release'), 'blue-green');
      expect(ok.info.kind).toBe('full');
    });
  }
});

describe('the generated tarballs', () => {
  it('are valid .tar.gz files: gunzip checks their CRC and length, GNU tar lists every entry', async () => {
    const inflating = await tarballInflatingTo(join(work, 'tarballs', 'small-inflating.tar.gz'), 5 * SMALL);
    const entries = await tarballWithEntries(join(work, 'tarballs', 'small-entries.tar.gz'), 3500, 10);
    for (const t of [inflating, entries]) {
      expect(gunzipSync(readFileSync(t.file)).length).toBe(t.inflated);
      expect(statSync(t.file).size).toBe(t.size);
      expect(digest(readFileSync(t.file))).toBe(t.sha256);
    }
    const list = (f: string): string[] => execFileSync('tar', ['tzf', f]).toString().trim().split('\n');
    expect(list(inflating.file)).toEqual([
      'lib/tiny-0.1.0/ebin/',
      'releases/0.1.0/sys.config',
      'releases/start_erl.data',
      ...Array.from({ length: 5 }, () => 'lib/tiny-0.1.0/priv/blob'),
    ]);
    expect(list(entries.file).length).toBe(3500);
  });
});

describe('at the limit is accepted', () => {
  it('a 1024-byte path whose components are 255 bytes', async () => {
    const path = pathOf(1024);
    expect(Math.max(...path.split('/').map((p) => p.length))).toBe(255);
    const t = await tarballWith(join(work, 'tarballs', 'path-1024.tar.gz'), longPathEntry(path, 'x'));
    const out = mkdtempSync(join(work, 'out-'));
    await extractTarball(createReadStream(t.file), join(out, 'r'), { sha256: t.sha256 });
    expect(readFileSync(join(out, 'r', path), 'utf8')).toBe('x');
  });

  it('exactly 200 000 entries', async () => {
    const t = await tarballWithEntries(join(work, 'tarballs', 'entries-200000.tar.gz'), 200_000);
    const out = mkdtempSync(join(work, 'out-'));
    const r = await extractTarball(createReadStream(t.file), join(out, 'r'), { sha256: t.sha256 });
    expect(r.entries).toBe(200_000);
    expect(readdirSync(join(out, 'r', 'lib/tiny-0.1.0/priv/many')).length).toBe(1000);
  });
});
