/**
 * Both backends, end to end: a directory; S3 as served by s3rver, which ignores
 * conditional writes, so it exercises the fallback protocol and its warning; and S3 as
 * served by a server that honours them (helpers/s3-server.ts: compare-and-swap).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchLayer, inspectRelease, publish } from '../../src/release/index.js';
import {
  applyOp,
  type Backend as BackendApi,
  type CurrentDoc,
  type CurrentOp,
  type Layer,
  openStore,
  PRUNE_GRACE_MS,
  Store,
} from '../../src/store/index.js';
import { buildTinyRelease } from '../release/helpers/fixture.js';
import { type S3Fixture, startS3 } from './helpers/s3.js';
import { type ConditionalS3, startConditionalS3 } from './helpers/s3-server.js';

let work: string;
let s3: S3Fixture;
let casS3: ConditionalS3;
let rel1: string;
let rel2: string;
let rel3: string;
let rel4: string;

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-store-'));
  s3 = await startS3();
  casS3 = await startConditionalS3();
  rel1 = buildTinyRelease(work, 'v1');
  rel2 = buildTinyRelease(work, 'v2', { hello: 'hello_again' });
  rel4 = buildTinyRelease(work, 'v4', { hello: 'hello_once_more' });
  rel3 = buildTinyRelease(work, 'v3', { hello: 'hello_again', greeting: 'bonjour' });
});

afterAll(async () => {
  await s3?.close();
  await casS3?.close();
  rmSync(work, { recursive: true, force: true });
});

let places = 0;
/** A store location no other test uses: each test sets up all it needs, in any order. */
const newPlace = (): string => `s${++places}`;
type Backend = {
  name: string;
  /** Whether the server honours If-Match / If-None-Match (else the intent fallback runs). */
  conditional: boolean;
  open: (place: string, warn?: (m: string) => void) => Store;
};
const backends: Backend[] = [
  {
    name: 'file',
    conditional: true,
    open: (place) => openStore(`file://${join(work, 'file-stores', place)}`),
  },
  {
    name: 's3',
    conditional: false,
    open: (place, warn) => s3.open(place, warn ? { warn } : {}),
  },
  {
    name: 's3 with conditional writes',
    conditional: true,
    open: (place, warn) => casS3.open(place, warn ? { warn } : {}),
  },
];

function layer(id: string): Layer {
  return {
    version: id,
    tarball: `releases/tiny/${id}.tar.gz`,
    sha256: 'b'.repeat(64),
    size: 1,
    source_image_ref: null,
    published_at: new Date().toISOString(),
    upgrade_id: id,
  };
}

describe.each(backends)('$name store', (b) => {
  /** A store of its own; pass `place` to open another handle on the same one (another machine). */
  const fresh = (place = newPlace(), warn?: (m: string) => void): Store => b.open(place, warn);

  it('round-trips a full and a beam-only tarball, and auto picks the mode with reasons', async () => {
    const store = fresh();
    const bg = await publish({ store, app: 'tiny', input: rel1, mode: 'blue-green' });
    expect(bg).toMatchObject({
      mode: 'blue-green',
      uploaded: true,
      layer: { version: '0.1.0', tarball: 'releases/tiny/0.1.0.tar.gz' },
    });
    const dest1 = join(work, `${b.name}-fetched-full`);
    const got = await fetchLayer(store, bg.layer, dest1, 'blue-green');
    expect(got.info.kind).toBe('full');
    expect(tree(dest1)).toEqual(tree(rel1));

    const hot = await publish({ store, app: 'tiny', input: rel2, mode: 'auto' });
    expect(hot.mode).toBe('hot');
    expect(hot.reasons).toEqual([]);
    expect(hot.doc.blue_green_upgrade?.upgrade_id).toBe(bg.upgradeId);
    expect(hot.doc.hot_upgrade?.upgrade_id).toBe(hot.upgradeId);
    const dest2 = join(work, `${b.name}-fetched-hot`);
    const beams = await fetchLayer(store, hot.layer, dest2, 'hot');
    expect(beams.info.kind).toBe('beam-only');
    // Only the changed application travels, with its whole ebin.
    expect(readdirSync(join(dest2, 'lib'))).toEqual(['tiny-0.1.0']);
    const ebin = 'lib/tiny-0.1.0/ebin';
    expect(readFileSync(join(dest2, ebin, 'tiny_worker.beam'))).toEqual(
      readFileSync(join(rel2, ebin, 'tiny_worker.beam')),
    );
    expect(inspectRelease(dest2).apps[0]?.beams.get('tiny_worker')?.codeDigest).not.toBe(
      inspectRelease(rel1)
        .apps.find((a) => a.name === 'tiny')
        ?.beams.get('tiny_worker')?.codeDigest,
    );

    const lines: string[] = [];
    const cfg = await publish({
      store,
      app: 'tiny',
      input: rel3,
      mode: 'auto',
      version: '0.1.0-config',
      log: (l) => lines.push(l),
    });
    expect(cfg.mode).toBe('blue-green');
    expect(cfg.reasons).toEqual(['sys.config changed']);
    expect(lines.join('\n')).toMatch(/auto: blue-green\n {2}- sys\.config changed/);
    expect(cfg.doc.hot_upgrade).toBeNull();

    const gone = await fetchLayer(
      store,
      { ...bg.layer, tarball: 'releases/tiny/0.0.9.tar.gz' },
      join(work, `${b.name}-gone`),
      'blue-green',
    ).catch((e: unknown) => e);
    expect(gone).toMatchObject({ code: 'FETCH_FAILED' });
    expect((gone as Error).message).toMatch(
      /cannot fetch releases\/tiny\/0\.0\.9\.tar\.gz: releases\/tiny\/0\.0\.9\.tar\.gz is not in the store/,
    );

    const listed = await store.listReleases('tiny');
    expect(listed.map((r) => [r.version, r.inUse])).toEqual(
      expect.arrayContaining([
        ['0.1.0', []],
        ['0.1.0-config', ['blue-green']],
        [hot.layer.version, []],
      ]),
    );
  });

  it('two hot publishes of different code in the same second get different default versions', async () => {
    const s = fresh();
    await publish({ store: s, app: 'same-second', input: rel1, mode: 'blue-green' });
    const now = new Date('2026-11-24T11:33:44Z');
    const first = await publish({ store: s, app: 'same-second', input: rel2, mode: 'hot', now });
    const second = await publish({ store: s, app: 'same-second', input: rel4, mode: 'hot', now });
    expect(first.layer.version).toMatch(/^0\.1\.0-hot-20261124T113344-[0-9a-f]{8}$/);
    expect(second.layer.version).not.toBe(first.layer.version);
    expect(second.doc.hot_upgrade?.upgrade_id).toBe(second.upgradeId);
  });

  it('a forced hot publish says what auto would object to, and one without code changes is refused', async () => {
    const store = fresh();
    await publish({ store, app: 'tiny', input: rel3, mode: 'blue-green', version: '0.1.0-config' });
    const lines: string[] = [];
    const forced = await publish({ store, app: 'tiny', input: rel1, mode: 'hot', log: (l) => lines.push(l) });
    expect(forced.mode).toBe('hot');
    expect(lines.join('\n')).toMatch(
      /warning: hot requested, but auto would choose blue-green:\n {2}- sys\.config changed/,
    );
    const before = (await store.backend.list('')).map((o) => o.key);
    const err = await publish({ store, app: 'tiny', input: rel3, mode: 'hot' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RELEASE_LAYOUT' });
    expect((err as Error).message).toMatch(/no module differs from the published blue-green release/);
    expect((await store.backend.list('')).map((o) => o.key)).toEqual(before);
  });

  it('a republish of identical bytes is a no-op; other bytes under a published version are refused', async () => {
    const store = fresh();
    expect((await publish({ store, app: 'tiny', input: rel1, mode: 'blue-green' })).uploaded).toBe(true);
    const again = await publish({ store, app: 'tiny', input: rel1, mode: 'blue-green' });
    expect(again.uploaded).toBe(false);
    const err = await publish({ store, app: 'tiny', input: rel2, mode: 'blue-green' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'VERSION_CONFLICT' });
    expect((err as Error).message).toMatch(/releases\/tiny\/0\.1\.0\.tar\.gz is already published with other contents/);
  });

  it('polls with conditional GETs: unchanged until the document changes', async () => {
    const store = fresh();
    await store.update('tiny', { kind: 'blue-green', id: 'poll-b1', layer: layer('poll-b1') });
    const first = await store.pollCurrent('tiny');
    if (first.status !== 'changed') throw new Error(`expected a document, got ${first.status}`);
    expect(await store.pollCurrent('tiny', first.etag)).toEqual({ status: 'unchanged' });
    await store.update('tiny', { kind: 'hot', id: 'poll-h1', layer: layer('poll-h1') });
    const next = await store.pollCurrent('tiny', first.etag);
    expect(next.status).toBe('changed');
    if (next.status === 'changed') expect(next.doc.hot_upgrade?.upgrade_id).toBe('poll-h1');
    expect(await store.pollCurrent('missing-app')).toEqual({ status: 'missing' });
  });

  it('racing writers of current.json: every operation applied, in some order', async () => {
    const place = newPlace();
    const warnings: string[] = [];
    // One store object per writer, as if each ran on its own machine.
    const writers = Array.from({ length: 6 }, () => fresh(place, (m) => warnings.push(m)));
    const ops: CurrentOp[] = [
      { kind: 'blue-green', id: 'race-b1', layer: layer('race-b1') },
      { kind: 'hot', id: 'race-h1', layer: layer('race-h1') },
      { kind: 'blue-green', id: 'race-b2', layer: layer('race-b2') },
      { kind: 'hot', id: 'race-h2', layer: layer('race-h2') },
      { kind: 'hot', id: 'race-h3', layer: layer('race-h3') },
      { kind: 'blue-green', id: 'race-b3', layer: layer('race-b3') },
    ];
    await Promise.all(ops.map((op, i) => writers[i]!.update('race', op)));
    const { doc } = await writers[0]!.readCurrent('race');
    expect(doc?.log.map((e) => e.id).sort()).toEqual(ops.map((o) => o.id).sort());
    // The final document is what applying the operations serially, in log order, gives.
    let replay: CurrentDoc | undefined;
    for (const e of doc!.log) replay = applyOp(replay, 'race', ops.find((o) => o.id === e.id)!) ?? replay;
    expect([doc!.blue_green_upgrade?.upgrade_id, doc!.hot_upgrade?.upgrade_id ?? null]).toEqual([
      replay!.blue_green_upgrade?.upgrade_id,
      replay!.hot_upgrade?.upgrade_id ?? null,
    ]);
    if (!b.conditional) {
      // s3rver ignores If-Match: each writer detects it once and says so.
      expect(warnings.length).toBe(6);
      expect(warnings[0]).toMatch(/ignores conditional writes \(If-Match\/If-None-Match\)/);
      const again: string[] = [];
      const w = fresh(place, (m) => again.push(m));
      await w.update('race', { kind: 'hot', id: 'race-h4', layer: layer('race-h4') });
      await w.update('race', { kind: 'hot', id: 'race-h5', layer: layer('race-h5') });
      expect(again.length).toBe(1);
    } else {
      expect(warnings).toEqual([]);
    }
  });

  it('a writer that read before another wrote still loses nothing (forced interleaving)', async () => {
    const place = newPlace();
    const a = fresh(place);
    const real = fresh(place);
    // Writer B has read current.json and is about to write it back, then stalls until
    // A has finished a whole update: B's document lacks A's change.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let aboutToWrite!: () => void;
    const bHasRead = new Promise<void>((r) => (aboutToWrite = r));
    let paused = false;
    const stalling: BackendApi = Object.create(real.backend) as BackendApi;
    stalling.put = async (key, body, cond) => {
      if (key.endsWith('-current.json') && !paused) {
        paused = true;
        aboutToWrite();
        await gate;
      }
      return real.backend.put(key, body, cond);
    };
    const b = new Store(stalling);
    await a.update('inter', { kind: 'blue-green', id: 'i-b0', layer: layer('i-b0') });
    const bDone = b.update('inter', { kind: 'hot', id: 'i-h1', layer: layer('i-h1') });
    await bHasRead;
    await a.update('inter', { kind: 'blue-green', id: 'i-b1', layer: layer('i-b1') });
    release();
    await bDone;
    const { doc } = await a.readCurrent('inter');
    const ids = doc!.log.map((e) => e.id);
    expect([...ids].sort()).toEqual(['i-b0', 'i-b1', 'i-h1']);
    // In log order: b1 then h1 keeps both; h1 then b1 (the order the intents were recorded in) clears h1.
    const expected = ids.indexOf('i-b1') < ids.indexOf('i-h1') ? ['i-b1', 'i-h1'] : ['i-b1', null];
    expect([doc!.blue_green_upgrade?.upgrade_id, doc!.hot_upgrade?.upgrade_id ?? null]).toEqual(expected);
  });

  it('two publishes racing on current.json: both applied, in some order', async () => {
    const place = newPlace();
    const [a, c] = [fresh(place), fresh(place)];
    const [bg, hot] = await Promise.all([
      publish({ store: a, app: 'tiny', input: rel1, mode: 'blue-green', version: 'race-bg' }),
      publish({ store: c, app: 'tiny', input: rel2, mode: 'hot', version: 'race-hot' }),
    ]);
    const { doc } = await a.readCurrent('tiny');
    const order = doc!.log.map((e) => e.id);
    expect([...order].sort()).toEqual([bg.upgradeId, hot.upgradeId].sort());
    // Hot after blue-green keeps both; blue-green after hot clears hot.
    const expected = order[0] === bg.upgradeId ? [bg.upgradeId, hot.upgradeId] : [bg.upgradeId, null];
    expect([doc!.blue_green_upgrade?.upgrade_id, doc!.hot_upgrade?.upgrade_id ?? null]).toEqual(expected);
  });

  it('retention keeps the newest N tarballs, every one current.json references, and every recent upload', async () => {
    const s = fresh();
    const bg = await publish({ store: s, app: 'tiny', input: rel1, mode: 'blue-green', version: 'r00' });
    // Publishing as if later than the grace period: the uploads so far count as old.
    const later = new Date(Date.now() + PRUNE_GRACE_MS + 60_000);
    for (let i = 1; i <= 4; i++) {
      const r = await publish({
        store: s,
        app: 'tiny',
        input: i % 2 === 0 ? rel2 : rel3,
        mode: 'hot',
        version: `r0${i}`,
        keep: 2,
        now: later,
      });
      expect(r.doc.blue_green_upgrade?.upgrade_id).toBe(bg.upgradeId);
    }
    const left = (await s.listReleases('tiny')).map((r) => r.version).sort();
    // r00 is the oldest, but the blue-green layer needs it.
    expect(left).toEqual(['r00', 'r03', 'r04']);
    const objects = await s.backend.list('releases/tiny/');
    expect(objects.map((o) => o.key).sort()).toEqual(
      ['r00', 'r03', 'r04'].flatMap((v) => [`releases/tiny/${v}.tar.gz`, `releases/tiny/${v}.tar.gz.sha256`]),
    );
    // At the real time r03 is past the newest two and unreferenced, but a publish racing
    // this one could still be about to reference it: kept.
    const r05 = await publish({ store: s, app: 'tiny', input: rel3, mode: 'hot', version: 'r05', keep: 2 });
    expect(r05.pruned).toEqual([]);
    expect((await s.listReleases('tiny')).map((r) => r.version).sort()).toEqual(['r00', 'r03', 'r04', 'r05']);
  });

  it('startup: same image keeps the layers; another image is a cold deploy that resets both, once', async () => {
    const place = newPlace();
    const s = fresh(place);
    expect(await s.startupLayers('cold', 'img:1', 'm1')).toMatchObject({
      coldDeploy: false,
      blueGreen: null,
      hot: null,
    });
    await s.update('cold', { kind: 'blue-green', id: 'c-b1', layer: layer('c-b1') });
    await s.update('cold', { kind: 'hot', id: 'c-h1', layer: layer('c-h1') });
    expect(await s.startupLayers('cold', 'img:1', 'm1')).toMatchObject({
      coldDeploy: false,
      blueGreen: { upgrade_id: 'c-b1' },
      hot: { upgrade_id: 'c-h1' },
    });
    const [a, c] = await Promise.all([
      fresh(place).startupLayers('cold', 'img:2', 'm1'),
      fresh(place).startupLayers('cold', 'img:2', 'm2'),
    ]);
    expect([a.coldDeploy, c.coldDeploy]).toEqual([true, true]);
    const { doc } = await s.readCurrent('cold');
    expect(doc).toMatchObject({ image_ref: 'img:2', blue_green_upgrade: null, hot_upgrade: null });
    expect(await s.startupLayers('cold', 'img:2', 'm3')).toMatchObject({
      coldDeploy: false,
      blueGreen: null,
      hot: null,
    });
  });

  it('per-machine results', async () => {
    const store = fresh();
    await store.writeResult('tiny', {
      machine_id: 'm1',
      upgrade_id: 'u1',
      state: 'completed',
      timings: { total: 12 },
      updated_at: new Date().toISOString(),
    });
    await store.writeResult('tiny', {
      machine_id: 'm2',
      upgrade_id: 'u1',
      state: 'failed',
      error: 'boom',
      timings: {},
      updated_at: new Date().toISOString(),
    });
    const results = await store.readResults('tiny', 'u1');
    expect([...results.keys()].sort()).toEqual(['m1', 'm2']);
    expect(results.get('m2')).toMatchObject({ state: 'failed', error: 'boom' });
    await expect(
      store.writeResult('tiny', {
        machine_id: '../x',
        upgrade_id: 'u1',
        state: 'pending',
        timings: {},
        updated_at: '',
      }),
    ).rejects.toMatchObject({ code: 'STORE_CONFIG' });
  });

  it('refuses a current.json that is not JSON or has an unknown schema version, and leaves it alone', async () => {
    const s = fresh();
    for (const [bytes, message] of [
      ['{"schema_version": 1, "app": ', /releases\/tiny-current\.json is unusable: not JSON/],
      [JSON.stringify({ schema_version: 2, app: 'tiny' }), /unknown schema version 2 \(this baton reads version 1\)/],
    ] as const) {
      await s.backend.put('releases/tiny-current.json', Buffer.from(bytes));
      const before = (await s.backend.list('')).map((o) => [o.key, o.size]);
      const err = await publish({ store: s, app: 'tiny', input: rel1, mode: 'blue-green' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'BAD_CURRENT_JSON' });
      expect((err as Error).message).toMatch(message);
      await expect(s.pollCurrent('tiny')).rejects.toMatchObject({ code: 'BAD_CURRENT_JSON' });
      await expect(s.update('tiny', { kind: 'hot', id: 'x', layer: layer('x') })).rejects.toMatchObject({
        code: 'BAD_CURRENT_JSON',
      });
      expect((await s.backend.list('')).map((o) => [o.key, o.size])).toEqual(before);
      const raw = await s.backend.get('releases/tiny-current.json');
      expect(raw.status === 'ok' && raw.body.toString()).toBe(bytes);
    }
  });
});
