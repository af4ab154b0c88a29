/**
 * Builds the test fixtures (test/fixtures/demo_erl with rebar3, test/fixtures/demo_ex
 * with mix, and the Erlang modules in erlang/ and test/erl/ with erlc) offline, once:
 * each build goes into a cache directory named by a hash of its inputs, and a lock
 * directory makes parallel test files (vitest forks) wait for one builder instead of
 * racing it. A build is staged beside the cache and renamed into place, so a half
 * build is never seen, even after a crash.
 *
 * Use `await fixtures()` from a test, or register `setup` as a vitest globalSetup to
 * build before any test file starts.
 */

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheRoot = process.env['BATON_FIXTURE_CACHE'] ?? join(repoRoot, 'node_modules', '.cache', 'baton-fixtures');

/** Bumped when the recipe below changes in a way the hashed inputs do not show. */
const RECIPE = 3;

export type DemoErlVersion = '1.0.0' | '1.0.1' | '2.0.0';

export interface Fixtures {
  /** Release roots (bin/demo_erl, lib/, releases/) built without ERTS. */
  demoErl: Record<DemoErlVersion, string>;
  /** demo_erl 1.0.0 with ERTS included (an erts-VSN directory in the release root). */
  demoErlWithErts: string;
  /** A directory holding a 1.0.1 demo_erl_counter.beam whose code_change/3 crashes. */
  brokenCounterDir: string;
  /** The demo_ex 0.1.0 `mix release` root (ERTS included, as mix does by default). */
  demoEx: string;
  /** demo_ex 0.1.1: hot-compatible, its consolidated protocol has one more implementation. */
  demoExNext: string;
  /**
   * demo_phx 0.1.0, the Phoenix-shaped app, once per adapter its config names:
   * `bandit` (Bandit.PhoenixAdapter over a ThousandIsland-shaped server) and `cowboy`
   * (Phoenix.Endpoint.Cowboy2Adapter over a ranch-shaped listener).
   */
  demoPhx: Record<'bandit' | 'cowboy', string>;
  /** demo_bad 0.1.0: DEMO_BAD=crash crashes in start/2, DEMO_BAD=nobind never listens. */
  demoBad: string;
  /** baton's erlang/ modules and the tests' test/erl/ modules, compiled for OTP 25. */
  erlEbin: string;
}

let pending: Promise<Fixtures> | undefined;

export function fixtures(): Promise<Fixtures> {
  pending ??= buildAll();
  return pending;
}

/** vitest globalSetup entry: builds everything before the test files start. */
export async function setup(): Promise<void> {
  await fixtures();
}

async function buildAll(): Promise<Fixtures> {
  const toolchain = toolchainId();
  const fixtureDir = await cached('fixtures', [join(repoRoot, 'test', 'fixtures')], toolchain, buildReleases);
  const erlEbin = await cached(
    'erl',
    [join(repoRoot, 'erlang'), join(repoRoot, 'test', 'erl')],
    toolchain,
    buildErlModules,
  );
  return {
    demoErl: {
      '1.0.0': join(fixtureDir, 'demo_erl-1.0.0'),
      '1.0.1': join(fixtureDir, 'demo_erl-1.0.1'),
      '2.0.0': join(fixtureDir, 'demo_erl-2.0.0'),
    },
    demoErlWithErts: join(fixtureDir, 'demo_erl-1.0.0-erts'),
    brokenCounterDir: join(fixtureDir, 'broken-counter'),
    demoEx: join(fixtureDir, 'demo_ex'),
    demoBad: join(fixtureDir, 'demo_bad'),
    demoExNext: join(fixtureDir, 'demo_ex-0.1.1'),
    demoPhx: { bandit: join(fixtureDir, 'demo_phx-bandit'), cowboy: join(fixtureDir, 'demo_phx-cowboy') },
    erlEbin,
  };
}

/** Which erl/elixir build the outputs: a different toolchain is a different cache entry. */
function toolchainId(): string {
  const which = (name: string): string => {
    for (const dir of (process.env['PATH'] ?? '').split(':')) {
      const p = join(dir, name);
      if (existsSync(p)) return realpathSync(p);
    }
    return `no-${name}`;
  };
  return ['erl', 'erlc', 'rebar3', 'mix', 'elixir'].map(which).join('\n');
}

async function hashInputs(dirs: string[], extra: string): Promise<string> {
  const h = createHash('sha256');
  h.update(`recipe ${RECIPE}\n${extra}\n`);
  for (const dir of dirs) {
    for (const file of await listFiles(dir)) {
      h.update(`${relative(repoRoot, file)}\0`);
      h.update(await readFile(file));
      h.update('\0');
    }
  }
  return h.digest('hex').slice(0, 16);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name === '_build' || entry.name === 'deps' || entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/**
 * Returns `<cacheRoot>/<name>-<hash>`, building it with `build(stageDir)` unless it
 * exists. The lock is a directory (mkdir is atomic) holding the builder's pid; a lock
 * whose pid is gone is stale and taken over.
 */
async function cached(
  name: string,
  inputs: string[],
  extra: string,
  build: (stage: string) => Promise<void>,
): Promise<string> {
  const key = `${name}-${await hashInputs(inputs, extra)}`;
  const dest = join(cacheRoot, key);
  const lock = `${dest}.lock`;
  await mkdir(cacheRoot, { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    if (existsSync(join(dest, '.complete'))) return markUsed(dest);
    try {
      await mkdir(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await lockIsStale(lock)) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      await writeFile(join(lock, 'pid'), String(process.pid));
      if (existsSync(join(dest, '.complete'))) return markUsed(dest);
      const stage = `${dest}.stage-${process.pid}`;
      await rm(stage, { recursive: true, force: true });
      await mkdir(stage, { recursive: true });
      const started = Date.now();
      try {
        await build(stage);
      } catch (err) {
        await rm(stage, { recursive: true, force: true });
        throw err;
      }
      await writeFile(join(stage, '.complete'), `built in ${Date.now() - started} ms\n`);
      await rm(dest, { recursive: true, force: true });
      await rename(stage, dest);
      await pruneOthers(name, key);
      return markUsed(dest);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
}

/** A build unused this long is removed when another build of its name is made. */
const UNUSED_MS = 3 * 24 * 3600_000;

/** Records that a run uses `dest` (its `.used` file's mtime), so no other checkout prunes it meanwhile. */
async function markUsed(dest: string): Promise<string> {
  await writeFile(join(dest, '.used'), '');
  return dest;
}

/**
 * Builds of `name` from other sources that no run has used for UNUSED_MS: complete ones
 * only, never a live stage or lock. A cache shared by checkouts whose sources differ (git
 * worktrees, branches) keeps each one's build while it is in use, instead of each
 * deleting the other's under its running tests and rebuilding its own in turn.
 */
async function pruneOthers(name: string, key: string): Promise<void> {
  for (const entry of await readdir(cacheRoot)) {
    if (!entry.startsWith(`${name}-`) || entry === key || entry.includes('.')) continue;
    const dir = join(cacheRoot, entry);
    let used = 0;
    for (const f of ['.used', '.complete']) {
      used = Math.max(
        used,
        await stat(join(dir, f)).then(
          (st) => st.mtimeMs,
          () => 0,
        ),
      );
    }
    if (Date.now() - used > UNUSED_MS) await rm(dir, { recursive: true, force: true });
  }
}

async function lockIsStale(lock: string): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(await readFile(join(lock, 'pid'), 'utf8'));
  } catch {
    // No pid yet: the builder may be between mkdir and writeFile; judge by age.
    try {
      return Date.now() - (await stat(lock)).mtimeMs > 30_000;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

async function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<void> {
  try {
    await run(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

const profiles: Array<{ vsn: DemoErlVersion; profile: string; out: string }> = [
  { vsn: '1.0.0', profile: 'v1_0_0', out: 'demo_erl-1.0.0' },
  { vsn: '1.0.0', profile: 'v1_0_0,erts', out: 'demo_erl-1.0.0-erts' },
  { vsn: '1.0.1', profile: 'v1_0_1', out: 'demo_erl-1.0.1' },
  { vsn: '2.0.0', profile: 'v2_0_0', out: 'demo_erl-2.0.0' },
];

async function buildReleases(stage: string): Promise<void> {
  // Built from copies, so nothing (_build, rebar.lock) is written into the repository.
  const src = join(stage, 'src');
  await cp(join(repoRoot, 'test', 'fixtures'), src, { recursive: true });
  const erlSrc = join(src, 'demo_erl');
  for (const { vsn, profile, out } of profiles) {
    await sh('rebar3', ['as', profile, 'release'], erlSrc, { DEMO_VSN: vsn, REBAR_BASE_DIR: join(stage, '_build') });
    const dirName = profile.replace(',', '+');
    await rename(join(stage, '_build', dirName, 'rel', 'demo_erl'), join(stage, out));
  }
  await sh('rebar3', ['as', 'bad', 'release'], erlSrc, { DEMO_VSN: '0.1.0', REBAR_BASE_DIR: join(stage, '_build') });
  await rename(join(stage, '_build', 'bad', 'rel', 'demo_bad'), join(stage, 'demo_bad'));
  const broken = join(stage, 'broken-counter');
  await mkdir(broken);
  await sh(
    'erlc',
    [
      '-Werror',
      '-DCOUNTER_MAP',
      '-DBROKEN_CODE_CHANGE',
      '-o',
      broken,
      join(erlSrc, 'apps', 'demo_erl', 'src', 'demo_erl_counter.erl'),
    ],
    stage,
  );
  // Each version from a copy of its own: mix would otherwise keep the other's build.
  for (const [vsn, out] of [
    ['0.1.0', 'demo_ex'],
    ['0.1.1', 'demo_ex-0.1.1'],
  ] as const) {
    const exSrc = join(src, `demo_ex-${vsn}`);
    await cp(join(src, 'demo_ex'), exSrc, { recursive: true });
    await sh('mix', ['release', '--quiet', '--overwrite'], exSrc, { MIX_ENV: 'prod', DEMO_EX_VSN: vsn });
    await rename(join(exSrc, '_build', 'prod', 'rel', 'demo_ex'), join(stage, out));
  }
  for (const adapter of ['bandit', 'cowboy'] as const) {
    const phxSrc = join(src, `demo_phx-${adapter}`);
    await cp(join(src, 'demo_phx'), phxSrc, { recursive: true });
    await sh('mix', ['release', '--quiet', '--overwrite'], phxSrc, { MIX_ENV: 'prod', DEMO_PHX_ADAPTER: adapter });
    await rename(join(phxSrc, '_build', 'prod', 'rel', 'demo_phx'), join(stage, `demo_phx-${adapter}`));
  }
  await rm(src, { recursive: true, force: true });
  await rm(join(stage, '_build'), { recursive: true, force: true });
}

async function buildErlModules(stage: string): Promise<void> {
  const files = [
    ...(await listFiles(join(repoRoot, 'erlang'))),
    ...(await listFiles(join(repoRoot, 'test', 'erl'))),
  ].filter((f) => f.endsWith('.erl'));
  // The same options rebar.config gives them.
  await sh('erlc', ['+debug_info', '-Werror', '-o', stage, ...files], repoRoot);
}
