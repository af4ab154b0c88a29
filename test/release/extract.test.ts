/** Extraction of good archives (GNU tar's and ours), and each limit on its own. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryComponents, extractTarball, symlinkDestination } from '../../src/release/index.js';
import { sha256, tgz } from './helpers/craft.js';
import { buildTinyRelease } from './helpers/fixture.js';

let work: string;
let rel: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-extract-'));
  rel = buildTinyRelease(work, 'rel');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const s = lstatSync(p);
      if (s.isDirectory()) walk(p);
      else
        out[relative(dir, p)] = s.isSymbolicLink()
          ? `-> ${readlinkSync(p)}`
          : `${(s.mode & 0o111) !== 0 ? 'x' : '-'}${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

const fromBuffer = (b: Buffer): Readable => Readable.from([b]);
let n = 0;
const dest = (): string => join(work, 'out', `d${n++}`);

describe('extractTarball', () => {
  it("extracts GNU tar's archive of a release exactly, execute bits and long paths included", async () => {
    const long = join(rel, 'lib/tiny-0.1.0/priv', 'a'.repeat(120), 'b'.repeat(120));
    mkdirSync(long, { recursive: true });
    writeFileSync(join(long, 'asset.css'), 'body{}');
    const file = join(work, 'gnu.tar.gz');
    execFileSync('tar', ['czf', file, '-C', rel, '.']);
    const d = dest();
    const r = await extractTarball(Readable.from(readFileSync(file)), d, { sha256: sha256(readFileSync(file)) });
    expect(r.sha256).toBe(sha256(readFileSync(file)));
    expect(r.compressedBytes).toBe(statSync(file).size);
    expect(tree(d)).toEqual(tree(rel));
    expect(statSync(join(d, 'bin/tiny')).mode & 0o111).not.toBe(0);
    expect(readdirSync(join(d, '..')).filter((x) => x.includes('.partial-'))).toEqual([]);
  });

  it('allows symlinks and hardlinks that stay inside', async () => {
    const d = dest();
    await extractTarball(
      fromBuffer(
        tgz([
          { path: 'lib/a/ebin/x.beam', body: 'x' },
          { path: 'lib/current', type: 'SymbolicLink', linkpath: 'a' },
          { path: 'bin/x', type: 'SymbolicLink', linkpath: '../lib/a/ebin/x.beam' },
          { path: 'lib/a/ebin/y.beam', type: 'Link', linkpath: 'lib/a/ebin/x.beam' },
        ]),
      ),
      d,
    );
    expect(readFileSync(join(d, 'bin/x'), 'utf8')).toBe('x');
    expect(readFileSync(join(d, 'lib/current/ebin/x.beam'), 'utf8')).toBe('x');
    expect(statSync(join(d, 'lib/a/ebin/y.beam')).ino).toBe(statSync(join(d, 'lib/a/ebin/x.beam')).ino);
  });

  it('never writes through a symlink, nor lets a link climb after a name', async () => {
    const through = tgz([
      { path: 'lib', type: 'SymbolicLink', linkpath: 'real' },
      { path: 'lib/x', body: 'x' },
    ]);
    await expect(extractTarball(fromBuffer(through), dest())).rejects.toMatchObject({
      code: 'UNSAFE_ENTRY',
      kind: 'through-symlink',
    });
    const climb = tgz([
      { path: 'd', type: 'SymbolicLink', linkpath: '.' },
      { path: 'l', type: 'SymbolicLink', linkpath: 'd/..' },
    ]);
    await expect(extractTarball(fromBuffer(climb), dest())).rejects.toThrow(/'\.\.' after a name/);
    const clash = tgz([
      { path: 'lib/a', type: 'Directory' },
      { path: 'lib/a/x', body: 'x' },
      { path: 'lib/a/x/y', body: 'y' },
    ]);
    await expect(extractTarball(fromBuffer(clash), dest())).rejects.toMatchObject({
      code: 'UNSAFE_ENTRY',
      kind: 'duplicate-entry',
      entry: 'lib/a/x/y',
    });
  });

  it('refuses a path below a symlink at any depth, however the link came to be there', async () => {
    const cases: [string, Parameters<typeof tgz>[0], string][] = [
      [
        'a link deep in a tree of listed directories',
        [
          { path: 'a/b/c/', type: 'Directory' },
          { path: 'a/b/c/x', body: 'x' },
          { path: 'a/b/link', type: 'SymbolicLink', linkpath: 'c' },
          { path: 'a/b/link/d/y', body: 'y' },
        ],
        'a/b/link',
      ],
      [
        'a link beside files, its parent never listed',
        [
          { path: 'p/q/f', body: 'f' },
          { path: 'p/q/link', type: 'SymbolicLink', linkpath: 'f' },
          { path: 'p/q/link/z/', type: 'Directory' },
        ],
        'p/q/link',
      ],
      [
        'a link that replaced a file (an appended archive)',
        [
          { path: 'r/f', body: 'f' },
          { path: 'r/f', type: 'SymbolicLink', linkpath: '.' },
          { path: 'r/f/x', body: 'x' },
        ],
        'r/f',
      ],
      [
        'a directory entry below a link',
        [
          { path: 's/', type: 'Directory' },
          { path: 's/link', type: 'SymbolicLink', linkpath: '.' },
          { path: 's/link/t/', type: 'Directory' },
        ],
        's/link',
      ],
    ];
    for (const [what, entries, link] of cases) {
      const d = dest();
      const err = await extractTarball(fromBuffer(tgz(entries)), d).catch((e: unknown) => e);
      expect(err, what).toMatchObject({ code: 'UNSAFE_ENTRY', kind: 'through-symlink', entry: entries.at(-1)!.path });
      expect((err as Error).message, what).toContain(`'${link}' is a symlink`);
      expect(existsSync(d), what).toBe(false);
    }
  });

  it('never turns a directory into a link or a link into a directory, and repeats of a directory are harmless', async () => {
    for (const [what, entries] of [
      [
        'a directory entry where a link is',
        [
          { path: 'a/link', type: 'SymbolicLink', linkpath: '.' },
          { path: 'a/link/', type: 'Directory' },
        ],
      ],
      [
        'a link where a listed directory is',
        [
          { path: 'a/b/', type: 'Directory' },
          { path: 'a/b', type: 'SymbolicLink', linkpath: '.' },
        ],
      ],
      [
        'a link where an implied directory is',
        [
          { path: 'a/b/c', body: 'c' },
          { path: 'a/b', type: 'SymbolicLink', linkpath: '.' },
        ],
      ],
      [
        'a file where an implied directory is',
        [
          { path: 'a/b/c', body: 'c' },
          { path: 'a/b', body: 'b' },
        ],
      ],
      [
        'a directory where a file is',
        [
          { path: 'a/b', body: 'b' },
          { path: 'a/b/', type: 'Directory' },
        ],
      ],
    ] as const) {
      const d = dest();
      const err = await extractTarball(fromBuffer(tgz([...entries])), d).catch((e: unknown) => e);
      expect(err, what).toMatchObject({ code: 'UNSAFE_ENTRY', kind: 'duplicate-entry', entry: entries[1].path });
      expect(existsSync(d), what).toBe(false);
    }
    const d = dest();
    await extractTarball(
      fromBuffer(
        tgz([
          { path: 'a/b/c/f', body: 'f' },
          { path: 'a/', type: 'Directory' },
          { path: 'a/b/c/', type: 'Directory' },
          { path: 'a/b/c/', type: 'Directory' },
          { path: 'a/b/c/g', body: 'g' },
          { path: 'a/b/c/f', body: 'F' },
        ]),
      ),
      d,
    );
    expect(tree(d)).toEqual({
      'a/b/c/f': `-${createHash('sha256').update('F').digest('hex')}`,
      'a/b/c/g': `-${createHash('sha256').update('g').digest('hex')}`,
    });
  });

  it('refuses past the byte limit, the entry limit, the path length, and the size the store recorded', async () => {
    const big = tgz([{ path: 'f', body: Buffer.alloc(300_000, 1) }]);
    await expect(extractTarball(fromBuffer(big), dest(), { limits: { maxBytes: 100_000 } })).rejects.toMatchObject({
      code: 'ARCHIVE_LIMIT',
      limit: 'bytes',
    });
    const many = tgz(Array.from({ length: 30 }, (_, i) => ({ path: `f${i}`, body: 'x' })));
    await expect(extractTarball(fromBuffer(many), dest(), { limits: { maxEntries: 10 } })).rejects.toThrow(
      /exceeds the entries limit: more than 10 entries/,
    );
    // The parent directories a path implies count too: 3 entries 40 deep would make 120 directories.
    const implying = tgz(Array.from({ length: 3 }, (_, i) => ({ path: `${`p${i}/`.repeat(40)}f`, body: 'x' })));
    const refused = dest();
    await expect(extractTarball(fromBuffer(implying), refused, { limits: { maxEntries: 100 } })).rejects.toThrow(
      /exceeds the entries limit: more than 100 entries \(counting the parent directories its paths imply\)/,
    );
    expect(existsSync(refused)).toBe(false);
    // A release's usual shape (directory entries before what they hold) implies nothing.
    const explicit = tgz([
      { path: 'a/', type: 'Directory' },
      { path: 'a/b/', type: 'Directory' },
      { path: 'a/b/f', body: 'x' },
    ]);
    await extractTarball(fromBuffer(explicit), dest(), { limits: { maxEntries: 3 } });
    const deep = tgz([{ path: `${'d/'.repeat(40)}f`, body: 'x' }]);
    await expect(extractTarball(fromBuffer(deep), dest(), { limits: { maxPathBytes: 50 } })).rejects.toMatchObject({
      code: 'UNSAFE_ENTRY',
      kind: 'path-too-long',
    });
    await expect(extractTarball(fromBuffer(big), dest(), { expectedSize: 100 })).rejects.toMatchObject({
      code: 'SIZE_MISMATCH',
      expected: 100,
      message: expect.stringMatching(/expected 100 bytes, got more/),
    });
    await expect(extractTarball(fromBuffer(big), dest(), { expectedSize: big.length + 1 })).rejects.toMatchObject({
      code: 'SIZE_MISMATCH',
      actual: big.length,
    });
    expect(readdirSync(join(work, 'out')).filter((x) => x.includes('.partial-'))).toEqual([]);
  });

  it('passes a failing source through and leaves nothing behind', async () => {
    const good = tgz([{ path: 'f', body: Buffer.alloc(100_000, 3) }]);
    async function* failing(): AsyncGenerator<Buffer> {
      yield good.subarray(0, 200);
      throw new Error('socket hang up');
    }
    const d = dest();
    await expect(extractTarball(failing(), d)).rejects.toThrow(/socket hang up/);
    expect(existsSync(d)).toBe(false);
    expect(readdirSync(join(work, 'out')).filter((x) => x.includes('.partial-'))).toEqual([]);
  });
});

describe('entry rules', () => {
  it('normalises harmless spellings and refuses the rest', () => {
    expect(entryComponents('./lib//a/')).toEqual(['lib', 'a']);
    expect(() => entryComponents('a/../../b')).toThrow(/'\.\.'/);
    expect(() => entryComponents('C:/x')).toThrow(/absolute/);
    expect(() => entryComponents(`${'x'.repeat(256)}/y`)).toThrow(/longer than 255 bytes/);
    expect(symlinkDestination(['lib', 'a', 'link'], '../../bin/x', 'e')).toEqual(['bin', 'x']);
    expect(() => symlinkDestination(['link'], '../x', 'e')).toThrow(/points outside/);
  });
});
