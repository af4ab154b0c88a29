/**
 * A real Elixir release (`mix release`, ERTS included, consolidated protocols): inspection,
 * publish and fetch through the store, and auto mode on a code change vs a config change.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fetchLayer, inspectRelease, publish } from '../../src/release/index.js';
import { openStore } from '../../src/store/index.js';

let work: string;
let v1: string;
let v2: string;
let v3: string;

function mixRelease(project: string, out: string): string {
  const env = { ...process.env, MIX_ENV: 'prod' };
  // Mix compares source mtimes at one-second resolution: an edit made in the same second as the
  // previous compile is not seen, so every release here recompiles the project explicitly.
  execFileSync('mix', ['compile', '--force'], { cwd: project, env, stdio: 'pipe' });
  execFileSync('mix', ['release', '--quiet', '--overwrite', '--path', out], { cwd: project, env, stdio: 'pipe' });
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-mix-'));
  execFileSync('mix', ['new', 'demo'], { cwd: work, env: { ...process.env, MIX_ENV: 'prod' }, stdio: 'pipe' });
  const project = join(work, 'demo');
  mkdirSync(join(project, 'config'), { recursive: true });
  writeFileSync(join(project, 'config/config.exs'), 'import Config\nconfig :demo, greeting: "hi"\n');
  v1 = mixRelease(project, join(work, 'rel-v1'));
  writeFileSync(
    join(project, 'lib/demo.ex'),
    readFileSync(join(project, 'lib/demo.ex'), 'utf8').replaceAll(':world', ':mundo'),
  );
  v2 = mixRelease(project, join(work, 'rel-v2'));
  writeFileSync(join(project, 'config/config.exs'), 'import Config\nconfig :demo, greeting: "hola"\n');
  v3 = mixRelease(project, join(work, 'rel-v3'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('inspects a mix release: Elixir .app files, ERTS, consolidated protocols', () => {
  const i = inspectRelease(v1);
  expect(i).toMatchObject({ kind: 'full', version: '0.1.0' });
  expect(i.ertsVersion).toMatch(/^\d+\.\d+/);
  expect(i.apps.map((a) => a.name)).toEqual(expect.arrayContaining(['demo', 'elixir', 'logger', 'kernel', 'stdlib']));
  expect(i.apps.find((a) => a.name === 'demo')?.modules).toEqual(['Elixir.Demo']);
  expect([...i.consolidated.keys()]).toContain('Elixir.Enumerable');
});

it('publishes and fetches it through the store; auto: code change is hot, config change is blue-green', async () => {
  const store = openStore(`file://${join(work, 'store')}`);
  const bg = await publish({ store, app: 'demo', input: v1, mode: 'blue-green' });
  const full = await fetchLayer(store, bg.layer, join(work, 'fetched-full'), 'blue-green');
  expect(full.info.apps.length).toBe(inspectRelease(v1).apps.length);
  expect(readFileSync(join(work, 'fetched-full/bin/demo'))).toEqual(readFileSync(join(v1, 'bin/demo')));

  const hot = await publish({ store, app: 'demo', input: v2, mode: 'auto' });
  expect(hot).toMatchObject({ mode: 'hot', reasons: [] });
  const beams = await fetchLayer(store, hot.layer, join(work, 'fetched-hot'), 'hot');
  expect(beams.info.apps.map((a) => a.name)).toEqual(['demo']);
  expect([...beams.info.consolidated.keys()]).toContain('Elixir.Enumerable');

  const cfg = await publish({ store, app: 'demo', input: v3, mode: 'auto', version: '0.1.0-b' });
  expect(cfg.mode).toBe('blue-green');
  expect(cfg.reasons).toEqual(['sys.config changed']);
});
