/** The store going away mid-run: a clear error after retries with backoff, nothing overwritten. */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { fetchLayer, publish } from '../../src/release/index.js';
import { openStore, type RetryPolicy } from '../../src/store/index.js';
import { buildTinyRelease } from '../release/helpers/fixture.js';
import { type S3Fixture, startS3 } from './helpers/s3.js';

let work: string;
let rel1: string;
let rel2: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-unreachable-'));
  rel1 = buildTinyRelease(work, 'v1');
  rel2 = buildTinyRelease(work, 'v2', { hello: 'changed' });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** An s3rver of the test's own: the tests stop theirs, which must not leave another test without one. */
async function ownS3(): Promise<S3Fixture> {
  const s3 = await startS3();
  onTestFinished(() => s3.close());
  return s3;
}

/** A progress callback that stops s3rver the first time bytes move, mid-transfer. */
function stopOnFirstProgress(s3: S3Fixture): { onProgress: () => void; stopped: () => boolean } {
  let stopped = false;
  return {
    onProgress: () => {
      if (!stopped) {
        stopped = true;
        void s3.stop();
      }
    },
    stopped: () => stopped,
  };
}

it('s3rver stopped during an upload: retried with backoff, then a StoreUnreachableError; current.json untouched', async () => {
  const s3 = await ownS3();
  const delays: number[] = [];
  const retry: RetryPolicy = { attempts: 4, baseDelayMs: 40, maxDelayMs: 1000, onRetry: (_n, ms) => delays.push(ms) };
  const store = s3.open('app', { retry });
  const first = await publish({ store, app: 'tiny', input: rel1, mode: 'blue-green' });
  const before = await store.backend.get('releases/tiny-current.json');
  const listed = await store.backend.list('');
  if (before.status !== 'ok') throw new Error('no current.json');

  const stopper = stopOnFirstProgress(s3);
  const err = await publish({
    store,
    app: 'tiny',
    input: rel2,
    mode: 'hot',
    version: 'h1',
    onProgress: stopper.onProgress,
  }).catch((e: unknown) => e);
  expect(stopper.stopped()).toBe(true);
  expect(err).toMatchObject({ code: 'STORE_UNREACHABLE', attempts: 4 });
  expect((err as Error).message).toMatch(
    new RegExp(
      `store s3://baton/app \\(${s3.endpoint.replace(/[.:/]/g, '\\$&')}\\) unreachable after 4 attempts: PUT releases/tiny/h1\\.tar\\.gz`,
    ),
  );
  // Three waits between four attempts, each window twice the last.
  expect(delays.length).toBe(3);
  expect(delays[0]).toBeGreaterThanOrEqual(20);
  expect(delays[0]).toBeLessThanOrEqual(40);
  expect(delays[1]).toBeGreaterThanOrEqual(40);
  expect(delays[2]).toBeGreaterThanOrEqual(80);

  // Reading while it is down says the same, naming the cause.
  await expect(store.pollCurrent('tiny')).rejects.toThrow(
    /unreachable after 4 attempts: GET releases\/tiny-current\.json: .*ECONNREFUSED/,
  );

  await s3.restart();
  const after = await store.backend.get('releases/tiny-current.json');
  expect(after.status === 'ok' && after.body.equals(before.body)).toBe(true);
  const { doc } = await store.readCurrent('tiny');
  expect(doc?.blue_green_upgrade?.upgrade_id).toBe(first.upgradeId);
  expect(doc?.hot_upgrade).toBeNull();
  // Nothing that was there is gone or changed.
  const now = await store.backend.list('');
  for (const o of listed) expect(now).toContainEqual(expect.objectContaining({ key: o.key, size: o.size }));
});

it('a store that accepts connections but never answers times out the same way', async () => {
  const { createServer } = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  try {
    const store = openStore('s3://bucket/p', {
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
      s3: {
        endpoint: `http://127.0.0.1:${port}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
        requestTimeoutMs: 300,
      },
    });
    await expect(store.pollCurrent('tiny')).rejects.toMatchObject({ code: 'STORE_UNREACHABLE', attempts: 2 });
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

it('s3rver stopped while a machine downloads a tarball: FETCH_FAILED, nothing extracted', async () => {
  const s3 = await ownS3();
  // Big enough (incompressible) that the transfer is still running when the server goes.
  const big = buildTinyRelease(work, 'big');
  mkdirSync(join(big, 'lib/tiny-0.1.0/priv'), { recursive: true });
  writeFileSync(join(big, 'lib/tiny-0.1.0/priv/blob'), randomBytes(24 * 1024 * 1024));
  const store = s3.open('download', { retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
  const r = await publish({ store, app: 'tiny', input: big, mode: 'blue-green' });
  const machine = join(work, 'machine');
  mkdirSync(machine);
  const stopper = stopOnFirstProgress(s3);
  const err = await fetchLayer(store, r.layer, join(machine, 'release'), 'blue-green', {
    onProgress: stopper.onProgress,
  }).catch((e: unknown) => e);
  expect(stopper.stopped()).toBe(true);
  expect(err).toMatchObject({ code: 'FETCH_FAILED' });
  expect((err as Error).message).toMatch(/cannot fetch releases\/tiny\/0\.1\.0\.tar\.gz: download interrupted/);
  expect(readdirSync(machine)).toEqual([]);
  expect(existsSync(join(machine, 'release'))).toBe(false);
});
