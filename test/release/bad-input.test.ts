/**
 * Every bad input of issue 6, one test each: refused with a typed error naming the
 * cause, nothing written outside the extraction directory, the store unchanged —
 * both when publishing it and when a machine fetches it from the store.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchLayer, publish } from '../../src/release/index.js';
import { type Layer, openStore, type Store } from '../../src/store/index.js';
import { type S3Fixture, startS3 } from '../store/helpers/s3.js';
import { type CraftEntry, sha256, tarBytes, tgz } from './helpers/craft.js';
import { buildTinyRelease, compileModule } from './helpers/fixture.js';

let work: string;
let storeRoot: string;
let s3: S3Fixture;
let beamPath: string;

interface Backend {
  name: string;
  store: Store;
  goodLayer: Layer;
  /** Every object and its content hash (for the directory, every file, temp and lock files included). */
  snapshot: () => Promise<Record<string, string>>;
}
const backends: Backend[] = [];

async function objectSnapshot(store: Store): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await store.backend.list('')) {
    const r = await store.backend.get(o.key);
    out[o.key] = r.status === 'ok' ? sha256(r.body) : r.status;
  }
  return out;
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-bad-input-'));
  storeRoot = join(work, 'store');
  s3 = await startS3();
  const rel = buildTinyRelease(work, 'rel');
  beamPath = compileModule(join(work, 'beams'), 'tiny_worker');
  const fileStore = openStore(`file://${storeRoot}`);
  const s3Store = s3.open('bad');
  for (const [name, store, snap] of [
    ['file', fileStore, async () => snapshot(storeRoot)],
    ['s3', s3Store, () => objectSnapshot(s3Store)],
  ] as const) {
    const r = await publish({ store, app: 'tiny', input: rel, mode: 'blue-green' });
    backends.push({ name, store, goodLayer: r.layer, snapshot: snap });
  }
});

afterAll(async () => {
  await s3?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Case {
  name: string;
  bytes: (dir: string) => Buffer;
  /** Publish with this mode (skipped when the case only exists on the fetching side). */
  publishMode?: 'hot' | 'blue-green';
  kind: 'hot' | 'blue-green';
  expected: Record<string, unknown>;
  message: RegExp;
  /** sha256 the machine is told to expect (default: the bytes' own). */
  layerSha?: string;
  /** Paths (under the case dir) that must not exist afterwards. */
  escapes?: string[];
}

const releaseish: CraftEntry[] = [
  { path: 'lib/tiny-0.1.0/ebin/', type: 'Directory' },
  { path: 'releases/0.1.0/sys.config', body: '[].\n' },
  { path: 'releases/start_erl.data', body: '13.1.5 0.1.0\n' },
];

const cases: Case[] = [
  {
    name: 'corrupt gzip',
    bytes: () =>
      Buffer.concat([
        Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]),
        Buffer.from('this is not deflate data at all, not even close'.repeat(20)),
      ]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'ARCHIVE_CORRUPT' },
    message: /gzip/,
  },
  {
    name: 'truncated tar',
    bytes: () => {
      const tar = tarBytes([...releaseish, { path: 'lib/tiny-0.1.0/ebin/big.beam', body: Buffer.alloc(8192, 7) }]);
      return gzipSync(tar.subarray(0, tar.length - 1024 - 4096));
    },
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'ARCHIVE_CORRUPT' },
    message: /[Tt]runcated/,
  },
  {
    name: 'truncated gzip stream',
    bytes: () => {
      const z = tgz([
        ...releaseish,
        {
          path: 'lib/tiny-0.1.0/ebin/big.beam',
          body: createHash('sha512').update('x').digest().toString('hex').repeat(300),
        },
      ]);
      return z.subarray(0, Math.floor(z.length / 2));
    },
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'ARCHIVE_CORRUPT' },
    message: /gzip: unexpected end of file/,
  },
  {
    name: "'../' path",
    bytes: () => tgz([...releaseish, { path: '../../../escaped-parent', body: 'gotcha' }]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'parent-path', entry: '../../../escaped-parent' },
    message: /'\.\.\/\.\.\/\.\.\/escaped-parent'.*'\.\.'/,
    escapes: ['escaped-parent', '../escaped-parent'],
  },
  {
    name: 'absolute path',
    bytes: (dir) => tgz([...releaseish, { path: join(dir, 'escaped-absolute'), body: 'gotcha' }]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'absolute-path' },
    message: /absolute path/,
    escapes: ['escaped-absolute'],
  },
  {
    name: 'symlink pointing outside',
    bytes: () =>
      tgz([
        ...releaseish,
        { path: 'lib/tiny-0.1.0/priv', type: 'SymbolicLink', linkpath: '../../../../..' },
        { path: 'lib/tiny-0.1.0/priv/escaped-symlink', body: 'gotcha' },
      ]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'symlink-outside', entry: 'lib/tiny-0.1.0/priv' },
    message: /symlink target '\.\.\/\.\.\/\.\.\/\.\.\/\.\.' points outside/,
    escapes: ['escaped-symlink', '../escaped-symlink'],
  },
  {
    name: 'symlink with an absolute target',
    bytes: (dir) =>
      tgz([
        ...releaseish,
        { path: 'lib/tiny-0.1.0/priv', type: 'SymbolicLink', linkpath: dir },
        { path: 'lib/tiny-0.1.0/priv/escaped-abs-symlink', body: 'x' },
      ]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'symlink-outside' },
    message: /is absolute/,
    escapes: ['escaped-abs-symlink'],
  },
  {
    name: 'hardlink pointing outside',
    bytes: () =>
      tgz([
        ...releaseish,
        { path: 'lib/tiny-0.1.0/ebin/passwd', type: 'Link', linkpath: '../../../../../../../../etc/passwd' },
      ]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'hardlink-outside', entry: 'lib/tiny-0.1.0/ebin/passwd' },
    message: /hardlink target/,
  },
  {
    name: 'hardlink to an absolute path',
    bytes: () => tgz([...releaseish, { path: 'lib/tiny-0.1.0/ebin/hosts', type: 'Link', linkpath: '/etc/hosts' }]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'hardlink-outside' },
    message: /hardlink target '\/etc\/hosts'/,
  },
  {
    name: 'character device entry',
    bytes: () => tgz([...releaseish, { path: 'lib/tiny-0.1.0/ebin/null', type: 'CharacterDevice' }]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'special-file' },
    message: /CharacterDevice entries are not allowed/,
  },
  {
    name: 'FIFO entry',
    bytes: () => tgz([...releaseish, { path: 'lib/tiny-0.1.0/ebin/pipe', type: 'FIFO' }]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'UNSAFE_ENTRY', kind: 'special-file' },
    message: /FIFO entries are not allowed/,
  },
  {
    name: 'decompression bomb',
    bytes: () => {
      const z = gzipSync(
        tarBytes([...releaseish, { path: 'lib/tiny-0.1.0/priv/zeros', body: Buffer.alloc(24 * 1024 * 1024) }]),
        { level: 9 },
      );
      // "A few KiB": the point of the case.
      expect(z.length).toBeLessThan(64 * 1024);
      return z;
    },
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'ARCHIVE_LIMIT', limit: 'ratio' },
    message: /decompression bomb/,
  },
  {
    name: 'wrong sha256',
    bytes: () => tgz([...releaseish]),
    kind: 'blue-green',
    layerSha: 'f'.repeat(64),
    expected: { code: 'SHA256_MISMATCH', expected: 'f'.repeat(64) },
    message: /sha256 mismatch .* expected f{64}, got [0-9a-f]{64}/,
  },
  {
    name: 'blue-green tarball without sys.config',
    bytes: () =>
      tgz([
        { path: 'lib/tiny-0.1.0/ebin/tiny.app', body: '{application, tiny, [{vsn, "0.1.0"}, {modules, []}]}.\n' },
        { path: 'releases/0.1.0/vm.args', body: '-sname x\n' },
      ]),
    publishMode: 'blue-green',
    kind: 'blue-green',
    expected: { code: 'RELEASE_LAYOUT' },
    message: /blue-green release needs releases\/<vsn>\/sys\.config/,
  },
  {
    name: 'beam-only tarball with a non-beam file in an ebin',
    bytes: () =>
      tgz([
        { path: 'lib/tiny-0.1.0/ebin/tiny_worker.beam', body: readFileSync(beamPath) },
        { path: 'lib/tiny-0.1.0/ebin/notes.txt', body: 'hello' },
      ]),
    publishMode: 'hot',
    kind: 'hot',
    expected: { code: 'RELEASE_LAYOUT' },
    message: /lib\/tiny-0\.1\.0\/ebin\/notes\.txt is not a \.beam file/,
  },
  {
    name: 'beam whose module name does not match its file',
    bytes: () => tgz([{ path: 'lib/tiny-0.1.0/ebin/tiny_impostor.beam', body: readFileSync(beamPath) }]),
    publishMode: 'hot',
    kind: 'hot',
    expected: { code: 'RELEASE_LAYOUT' },
    message: /tiny_impostor\.beam contains module 'tiny_worker', not 'tiny_impostor'/,
  },
];

describe.each(['file', 's3'])('bad tarballs, %s store', (backendName) => {
  for (const c of cases) {
    it(`refuses a ${c.name}`, async () => {
      const { store, goodLayer, snapshot: storeSnapshot } = backends.find((b) => b.name === backendName)!;
      const dir = mkdtempSync(join(work, 'case-'));
      const bytes = c.bytes(dir);
      const file = join(dir, 'input.tar.gz');
      writeFileSync(file, bytes);
      const tmpBefore = readdirSync(tmpdir())
        .filter((n) => n.startsWith('baton-publish-') || n.startsWith('escaped'))
        .sort();

      if (c.publishMode !== undefined) {
        const before = await storeSnapshot();
        const err = await publish({ store, app: 'tiny', input: file, mode: c.publishMode }).catch((e: unknown) => e);
        expect(err).toMatchObject(c.expected);
        expect((err as Error).message).toMatch(c.message);
        expect(await storeSnapshot()).toEqual(before);
      }

      // A tampered object in the store, referenced by a layer: the fetching side.
      const key = `releases/tiny/bad-${c.name.replace(/[^a-z0-9]+/gi, '-')}.tar.gz`;
      await store.backend.putFile(key, file);
      const layer: Layer = { ...goodLayer, tarball: key, sha256: c.layerSha ?? sha256(bytes), size: bytes.length };
      const before = await storeSnapshot();
      const machine = join(dir, 'machine');
      mkdirSync(machine);
      const err = await fetchLayer(store, layer, join(machine, 'release'), c.kind).catch((e: unknown) => e);
      expect(err).toMatchObject(c.expected);
      expect((err as Error).message).toMatch(c.message);
      expect(readdirSync(machine)).toEqual([]);
      expect(await storeSnapshot()).toEqual(before);

      expect(readdirSync(dir).sort()).toEqual(['input.tar.gz', 'machine']);
      for (const e of c.escapes ?? []) expect(existsSync(join(dir, e))).toBe(false);
      const tmpAfter = readdirSync(tmpdir())
        .filter((n) => n.startsWith('baton-publish-') || n.startsWith('escaped'))
        .sort();
      expect(tmpAfter.filter((n) => !tmpBefore.includes(n) && n.startsWith('escaped'))).toEqual([]);
      expect(statSync(join(work)).isDirectory()).toBe(true);
    });
  }
});
