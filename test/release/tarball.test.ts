/** The beam-only tarball carries what a hot upgrade needs: changed ebins, priv files, consolidated protocols. */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildBeamTarball,
  buildFullTarball,
  checkRelease,
  extractTarball,
  inspectRelease,
} from '../../src/release/index.js';
import { sha256 } from './helpers/craft.js';
import { buildTinyRelease } from './helpers/fixture.js';

let work: string;
let rel: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-tarball-'));
  rel = buildTinyRelease(work, 'rel');
  // What a mix release adds: consolidated protocols under the release version, priv assets.
  const consolidated = join(rel, 'releases/0.1.0/consolidated');
  mkdirSync(consolidated, { recursive: true });
  writeFileSync(join(work, 'Elixir.Enumerable.erl'), "-module('Elixir.Enumerable').\n-export([x/0]).\nx() -> 1.\n");
  execFileSync('erlc', ['-o', consolidated, join(work, 'Elixir.Enumerable.erl')]);
  mkdirSync(join(rel, 'lib/tiny-0.1.0/priv/static'), { recursive: true });
  writeFileSync(join(rel, 'lib/tiny-0.1.0/priv/static/app-3f2a.css'), 'body{}');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('builds a beam-only tarball of the named apps with priv and consolidated protocols', async () => {
  const t = await buildBeamTarball(rel, join(work, 'beams.tar.gz'), ['tiny']);
  expect(t.sha256).toBe(sha256(readFileSync(t.file)));
  const dest = join(work, 'beams');
  await extractTarball(createReadStream(t.file), dest, { sha256: t.sha256 });
  expect(readdirSync(dest).sort()).toEqual(['consolidated', 'lib']);
  expect(readdirSync(join(dest, 'lib'))).toEqual(['tiny-0.1.0']);
  expect(readFileSync(join(dest, 'lib/tiny-0.1.0/priv/static/app-3f2a.css'), 'utf8')).toBe('body{}');
  const info = checkRelease(dest, 'any');
  expect(info.kind).toBe('beam-only');
  expect([...info.consolidated.keys()]).toEqual(['Elixir.Enumerable']);
  expect([...info.apps[0]!.beams.keys()].sort()).toEqual(['tiny_app', 'tiny_sup', 'tiny_worker']);
});

it('builds a full tarball that extracts to the same release, consolidated protocols found', async () => {
  const t = await buildFullTarball(rel, join(work, 'full.tar.gz'));
  const dest = join(work, 'full');
  await extractTarball(createReadStream(t.file), dest, { sha256: t.sha256 });
  const info = inspectRelease(dest);
  expect(info).toMatchObject({ kind: 'full', version: '0.1.0' });
  expect([...info.consolidated.keys()]).toEqual(['Elixir.Enumerable']);
  const bad = join(work, 'not-a-release');
  cpSync(join(rel, 'lib'), join(bad, 'lib'), { recursive: true });
  await expect(buildFullTarball(bad, join(work, 'x.tar.gz'))).rejects.toMatchObject({ code: 'RELEASE_LAYOUT' });
});
