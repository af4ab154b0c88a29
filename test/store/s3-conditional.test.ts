/**
 * Compare-and-swap on an S3 server that honours conditional writes (helpers/s3-server.ts):
 * the probe says so, a 412 makes the writer read again and retry, racing publishes lose
 * nothing, and the intent fallback (what s3rver needs, tested in store.test.ts) is never used.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { fetchLayer, publish } from '../../src/release/index.js';
import {
  applyOp,
  type Backend,
  type CurrentDoc,
  type CurrentOp,
  type Layer,
  PreconditionFailedError,
  Store,
  serializeDoc,
} from '../../src/store/index.js';
import { buildTinyRelease } from '../release/helpers/fixture.js';
import { type ConditionalS3, type SeenRequest, startConditionalS3 } from './helpers/s3-server.js';

let work: string;
let rel1: string;
let rel2: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-s3-cas-'));
  rel1 = buildTinyRelease(work, 'v1');
  rel2 = buildTinyRelease(work, 'v2', { hello: 'hello_again' });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A server of the test's own: the probe's answer is remembered per endpoint, and requests are counted per test. */
async function server(opts: { maxKeys?: number } = {}): Promise<ConditionalS3> {
  const s = await startConditionalS3(opts);
  onTestFinished(() => s.close());
  return s;
}

function layer(id: string): Layer {
  return {
    version: id,
    tarball: `releases/app/${id}.tar.gz`,
    sha256: 'c'.repeat(64),
    size: 1,
    source_image_ref: null,
    published_at: new Date().toISOString(),
    upgrade_id: id,
  };
}

const onCurrent = (app: string, op: SeenRequest['op']) => (o: SeenRequest['op'], key: string) =>
  o === op && key.endsWith(`releases/${app}-current.json`);

/** No intent object was ever read, written or listed: the fallback did not run. */
function expectNoIntents(s: ConditionalS3): void {
  expect(s.requests.filter((r) => r.key.includes('-intents/'))).toEqual([]);
}

describe('the test server answers as S3 documents', () => {
  it('412 PreconditionFailed in S3 error XML, naming the condition; 304 for a matching If-None-Match', async () => {
    const s = await server();
    const url = `${s.endpoint}/${s.bucket}/k`;
    const first = await fetch(url, { method: 'PUT', body: 'one', headers: { 'if-none-match': '*' } });
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag');
    expect(etag).toBe('"f97c5d29941bfb1b2fdab0874906ab82"'); // MD5 of "one", quoted

    const again = await fetch(url, { method: 'PUT', body: 'two', headers: { 'if-none-match': '*' } });
    expect(again.status).toBe(412);
    expect(again.headers.get('content-type')).toBe('application/xml');
    expect(await again.text()).toMatch(
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Error><Code>PreconditionFailed<\/Code><Message>At least one of the pre-conditions you specified did not hold<\/Message><Condition>If-None-Match<\/Condition><RequestId>[0-9A-F]+<\/RequestId><HostId>[^<]+<\/HostId><\/Error>$/,
    );
    const stale = await fetch(url, { method: 'PUT', body: 'two', headers: { 'if-match': '"0123"' } });
    expect(stale.status).toBe(412);
    expect(await stale.text()).toContain('<Condition>If-Match</Condition>');
    const missing = await fetch(`${url}-nope`, { method: 'PUT', body: 'x', headers: { 'if-match': etag! } });
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('<Code>NoSuchKey</Code>');

    const swapped = await fetch(url, { method: 'PUT', body: 'two', headers: { 'if-match': etag! } });
    expect(swapped.status).toBe(200);
    const newEtag = swapped.headers.get('etag')!;
    expect((await fetch(url)).headers.get('etag')).toBe(newEtag);
    const notModified = await fetch(url, { headers: { 'if-none-match': newEtag } });
    expect(notModified.status).toBe(304);
    expect(await notModified.text()).toBe('');
    expect(await (await fetch(url)).text()).toBe('two');
  });

  it('through the S3 backend: conditions become PreconditionFailedError, listings page, HEAD and DELETE', async () => {
    const s = await server({ maxKeys: 2 });
    const b = s.open('pre/fix').backend;
    const { etag } = await b.put('a/1', Buffer.from('1'), { ifNoneMatch: '*' });
    await expect(b.put('a/1', Buffer.from('x'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(b.put('a/1', Buffer.from('x'), { ifMatch: '"stale"' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect(await b.get('a/1', { ifNoneMatch: etag })).toEqual({ status: 'unchanged' });
    for (const k of ['a/2', 'a/3', 'a/4 with space', 'b/1']) await b.put(k, Buffer.from(k));
    // Five keys under a/ on pages of two: the continuation tokens are followed.
    expect((await b.list('a/')).map((o) => [o.key, o.size])).toEqual([
      ['a/1', 1],
      ['a/2', 3],
      ['a/3', 3],
      ['a/4 with space', 14],
    ]);
    expect(s.requests.filter((r) => r.op === 'ListObjectsV2').length).toBe(2);
    expect(await b.head('a/2')).toMatchObject({ key: 'a/2', size: 3 });
    await b.delete('a/2');
    expect(await b.head('a/2')).toBeUndefined();
    expect(await b.get('a/2')).toEqual({ status: 'missing' });
  });
});

describe('compare-and-swap on S3 with conditional writes', () => {
  it('the probe detects that conditional writes are honoured, warns nothing, and leaves no probe behind', async () => {
    const s = await server();
    const warnings: string[] = [];
    const store = s.open('probe', { warn: (m) => warnings.push(m) });
    expect(await store.backend.conditionsHonoured()).toBe(true);
    const probe = s.requests.filter((r) => r.key.includes('.baton/cas-probe-'));
    expect(probe.map((r) => [r.op, r.ifNoneMatch, r.status])).toEqual([
      ['PutObject', '*', 200],
      ['PutObject', '*', 412],
      ['DeleteObject', undefined, 204],
    ]);
    expect(await store.backend.list('')).toEqual([]);
    await store.update('probe', { kind: 'hot', id: 'p-h1', layer: layer('p-h1') });
    expect(warnings).toEqual([]);
    expectNoIntents(s);
  });

  it('a 412 makes the losing writer read again and retry with the new ETag', async () => {
    const s = await server();
    const [a, b] = [s.open('retry'), s.open('retry')];
    await a.update('app', { kind: 'blue-green', id: 'r-b0', layer: layer('r-b0') });
    await a.backend.conditionsHonoured();
    const from = s.requests.length;
    // Both writers have read the same document before either write is served.
    const bothIn = s.hold(2, onCurrent('app', 'PutObject'));
    const [docA, docB] = await Promise.all([
      a.update('app', { kind: 'hot', id: 'r-h1', layer: layer('r-h1') }),
      b.update('app', { kind: 'hot', id: 'r-h2', layer: layer('r-h2') }),
    ]);
    await bothIn;
    const seen = s.requests.slice(from).filter((r) => r.key.endsWith('app-current.json'));
    const puts = seen.filter((r) => r.op === 'PutObject');
    // The two held writes carried the same If-Match; the second served lost.
    expect(puts.slice(0, 2).map((r) => r.status)).toEqual([200, 412]);
    expect(puts[0]!.ifMatch).toBe(puts[1]!.ifMatch);
    // The loser read again and wrote with the winner's ETag.
    const reread = seen.indexOf(puts[1]!) + 1;
    expect(seen[reread]).toMatchObject({ op: 'GetObject', status: 200 });
    expect(puts[2]).toMatchObject({ status: 200 });
    expect(puts[2]!.ifMatch).not.toBe(puts[0]!.ifMatch);
    expect(puts.length).toBe(3);
    const [winner, loser] = docA.log.length === 2 ? [docA, docB] : [docB, docA];
    const { doc } = await a.readCurrent('app');
    expect(doc!.log.map((e) => e.id)).toEqual(['r-b0', winner.log[1]!.id, loser.log[2]!.id]);
    expect(doc!.log.map((e) => e.id).sort()).toEqual(['r-b0', 'r-h1', 'r-h2']);
    expect(doc!.hot_upgrade?.upgrade_id).toBe(loser.log[2]!.id);
    expectNoIntents(s);
  });

  it('current.json removed between a read and the write: the If-Match 404 is a lost race too', async () => {
    const s = await server();
    const real = s.open('gone');
    await real.update('app', { kind: 'blue-green', id: 'g-b0', layer: layer('g-b0') });
    let deleted = false;
    const deleting: Backend = Object.create(real.backend) as Backend;
    deleting.put = async (key, body, cond) => {
      if (key.endsWith('-current.json') && !deleted) {
        deleted = true;
        await real.backend.delete(key);
      }
      return real.backend.put(key, body, cond);
    };
    const doc = await new Store(deleting).update('app', { kind: 'hot', id: 'g-h1', layer: layer('g-h1') });
    const puts = s.requests.filter((r) => r.op === 'PutObject' && r.key.endsWith('app-current.json'));
    expect(puts.slice(-2).map((r) => [r.ifMatch === undefined, r.ifNoneMatch, r.status])).toEqual([
      [false, undefined, 404],
      [true, '*', 200],
    ]);
    // Written afresh from the empty document: only this writer's change is in it.
    expect(doc.log.map((e) => e.id)).toEqual(['g-h1']);
    expect((await real.readCurrent('app')).doc).toEqual(doc);
  });

  it('16 racing publishes of different versions: none lost, the final document is their log replayed', async () => {
    const s = await server();
    const warnings: string[] = [];
    // One store object per publisher, as if each ran on its own machine.
    const open = (): Store => s.open('race', { warn: (m) => warnings.push(m) });
    const base = await publish({ store: open(), app: 'tiny', input: rel1, mode: 'blue-green', version: 'base' });
    const from = s.requests.length;
    const racers = 16;
    // No write of current.json is served until every publisher has sent one: all of them
    // read the same document, so all but one lose the first round.
    const allIn = s.hold(racers, onCurrent('tiny', 'PutObject'));
    const results = await Promise.all(
      Array.from({ length: racers }, (_, i) =>
        i % 2 === 0
          ? publish({ store: open(), app: 'tiny', input: rel1, mode: 'blue-green', version: `bg-${i}` })
          : publish({ store: open(), app: 'tiny', input: rel2, mode: 'hot', version: `hot-${i}` }),
      ),
    );
    await allIn;

    const store = open();
    const { doc } = await store.readCurrent('tiny');
    const ids = doc!.log.map((e) => e.id);
    expect([...ids].sort()).toEqual([base.upgradeId, ...results.map((r) => r.upgradeId)].sort());
    // Each publisher got back a document with its own change in it.
    for (const r of results) expect(r.doc.log.map((e) => e.id)).toContain(r.upgradeId);
    // The final layers are what applying the publishes one by one, in log order, gives.
    const ops = new Map<string, CurrentOp>(
      [base, ...results].map((r) => [r.upgradeId, { kind: r.mode, id: r.upgradeId, layer: r.layer }]),
    );
    let replay: CurrentDoc | undefined;
    for (const id of ids) replay = applyOp(replay, 'tiny', ops.get(id)!) ?? replay;
    expect([doc!.blue_green_upgrade, doc!.hot_upgrade]).toEqual([replay!.blue_green_upgrade, replay!.hot_upgrade]);
    expect(doc!.generation).toBe(racers + 1);

    const writes = s.requests.slice(from).filter((r) => r.op === 'PutObject' && r.key.endsWith('tiny-current.json'));
    expect(writes.every((r) => r.ifMatch !== undefined)).toBe(true);
    expect(writes.filter((r) => r.status === 200).length).toBe(racers);
    expect(writes.filter((r) => r.status === 412).length).toBeGreaterThanOrEqual(racers - 1);
    expect(warnings).toEqual([]);
    expectNoIntents(s);
    // Written as is: no padding, which only the fallback needs.
    const raw = await store.backend.get('releases/tiny-current.json');
    expect(raw.status === 'ok' && raw.body.equals(serializeDoc(doc!))).toBe(true);

    // The layers a machine would now fetch are in the store.
    for (const [l, kind] of [
      [doc!.blue_green_upgrade, 'blue-green'],
      [doc!.hot_upgrade, 'hot'],
    ] as const) {
      if (l === null) continue;
      const got = await fetchLayer(store, l, join(work, `fetched-${l.version}`), kind);
      expect(got.sha256).toBe(l.sha256);
    }
  });
});
