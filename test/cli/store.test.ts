/** `baton publish | releases | status --fleet` as a user runs them, against a file store. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { buildTinyRelease } from '../release/helpers/fixture.js';
import { startS3 } from '../store/helpers/s3.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let work: string;
let storeUrl: string;
let store: Store;
let rel1: string;
let rel2: string;
let rel3: string;

function baton(
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, BATON_STORE: storeUrl, BATON_POLL_MS: '100', ...extraEnv },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-cli-'));
  storeUrl = `file://${join(work, 'store')}`;
  store = openStore(storeUrl);
  rel1 = buildTinyRelease(work, 'v1');
  rel2 = buildTinyRelease(work, 'v2', { hello: 'again' });
  rel3 = buildTinyRelease(work, 'v3', { hello: 'again3', vmArgsExtra: '+P 100000\n' });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function nextHotUpgrade(previous: string | undefined): Promise<string> {
  for (;;) {
    const { doc } = await store.readCurrent('tiny');
    const id = doc?.hot_upgrade?.upgrade_id;
    if (id !== undefined && id !== previous) return id;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const result = (machine: string, upgrade: string, state: 'completed' | 'failed', error?: string) =>
  store.writeResult('tiny', {
    machine_id: machine,
    upgrade_id: upgrade,
    state,
    timings: { total: 42 },
    updated_at: new Date().toISOString(),
    ...(error ? { error } : {}),
  });

it('publishes with progress, explains auto, lists releases', async () => {
  const p1 = await baton(['publish', rel1, '--app', 'tiny', '--mode', 'blue-green']);
  expect(p1.code).toBe(0);
  expect(p1.out).toMatch(/published tiny 0\.1\.0 as blue-green \(upgrade \S+, sha256 [0-9a-f]{64}\)/);
  expect(p1.err).toMatch(/uploading 100% \(\d+\.\d MiB \/ \d+\.\d MiB\)/);

  const p2 = await baton(['publish', rel3, '--app', 'tiny', '--mode', 'auto', '--version', '0.1.0-b']);
  expect(p2.code).toBe(0);
  expect(p2.out).toMatch(/auto: blue-green\n {2}- vm\.args changed\n/);

  const ls = await baton(['releases']);
  expect(ls.code).toBe(0);
  expect(ls.out).toMatch(/^APP +VERSION +SIZE +PUBLISHED +IN USE\n/);
  expect(ls.out).toMatch(/tiny +0\.1\.0 +\d+\.\d MiB +\d{4}-\d\d-\d\dT\S+\n/);
  expect(ls.out).toMatch(/tiny +0\.1\.0-b +\d+\.\d MiB +\S+ +blue-green\n/);
});

it('--wait returns when every machine of the previous upgrade answered, and fails naming who failed or timed out', async () => {
  const { doc } = await store.readCurrent('tiny');
  const prev = doc!.blue_green_upgrade!.upgrade_id;
  await result('m1', prev, 'completed');
  await result('m2', prev, 'completed');

  // All good.
  const ok = baton(['publish', rel2, '--app', 'tiny', '--mode', 'hot', '--version', 'h1', '--wait', '--timeout', '20']);
  const h1 = await nextHotUpgrade(undefined);
  await result('m1', h1, 'completed');
  await result('m2', h1, 'completed');
  const okRun = await ok;
  expect(okRun.code).toBe(0);
  expect(okRun.out).toMatch(/2 of 2 machines completed/);

  // m2 fails.
  const bad = baton([
    'publish',
    rel2,
    '--app',
    'tiny',
    '--mode',
    'hot',
    '--version',
    'h2',
    '--wait',
    '--timeout',
    '20',
  ]);
  const h2 = await nextHotUpgrade(h1);
  await result('m1', h2, 'completed');
  await result('m2', h2, 'failed', 'beam load failed: badfile');
  const badRun = await bad;
  expect(badRun.code).toBe(1);
  expect(badRun.out).toMatch(/1 of 2 machines completed\nfailed: m2: beam load failed: badfile\n/);

  // m2 never answers.
  const slow = baton([
    'publish',
    rel2,
    '--app',
    'tiny',
    '--mode',
    'hot',
    '--version',
    'h3',
    '--wait',
    '--timeout',
    '1.5',
  ]);
  const h3 = await nextHotUpgrade(h2);
  await result('m1', h3, 'completed');
  const slowRun = await slow;
  expect(slowRun.code).toBe(1);
  expect(slowRun.out).toMatch(/timed out: m2\n/);
  expect(slowRun.out).not.toMatch(/timed out: m1/);

  const st = await baton(['status', '--fleet', '--app', 'tiny']);
  expect(st.code).toBe(0);
  expect(st.out).toMatch(/hot: h3 \(upgrade \S+, published \S+\), 1 machine reported\n {2}m1 {2}completed {2}42 ms\n/);
  expect(st.out).toMatch(/blue-green: 0\.1\.0-b .*2 machines reported/);
}, 120_000);

it('usage errors exit 2, failures exit 1 with the cause', async () => {
  const u = await baton(['publish', rel1, '--mode', 'sideways', '--app', 'tiny']);
  expect(u.code).toBe(2);
  expect(u.err).toMatch(/--mode must be hot, blue-green or auto/);
  const f = await baton(['publish', join(work, 'nope'), '--mode', 'hot', '--app', 'tiny']);
  expect(f.code).toBe(1);
  expect(f.err).toMatch(/baton publish: cannot fetch .*\/nope: no such file or directory/);
  const s = await baton(['status', '--app', 'tiny']);
  expect(s.code).toBe(2);
});

it('reads an s3:// store from the environment (endpoint, credentials, path style) and says when conditions are ignored', async () => {
  const s3 = await startS3('fleet');
  try {
    const env = {
      BATON_STORE: 's3://fleet/cli',
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    };
    const p = await baton(['publish', rel1, '--app', 'tiny', '--mode', 'blue-green'], env);
    expect(p.code).toBe(0);
    expect(p.err).toMatch(
      /baton: warning: store s3:\/\/fleet\/cli \(http:\/\/127\.0\.0\.1:\d+\) ignores conditional writes/,
    );
    const ls = await baton(['releases', '--json'], env);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.out)).toMatchObject([
      { app: 'tiny', version: '0.1.0', key: 'releases/tiny/0.1.0.tar.gz', inUse: ['blue-green'] },
    ]);
  } finally {
    await s3.close();
  }
});
