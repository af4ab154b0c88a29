/**
 * What the S3 backend puts on the wire, seen by a recording server: path-style URLs,
 * no default CRC32 checksum headers, `X-Tigris-Consistent` on current.json reads,
 * conditional GETs answered 304 without a body.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, s3OptionsFromUrl } from '../../src/store/index.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}
let server: Server;
let endpoint: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: (req.url ?? '').replace(/\?x-id=\w+$/, ''), headers: req.headers });
      if (req.headers['if-match'] === '"stale"') {
        res.writeHead(412).end('<Error><Code>PreconditionFailed</Code></Error>');
      } else if (req.url?.includes('missing')) {
        res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code></Error>');
      } else if (req.url?.includes('flaky')) {
        res.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code></Error>');
      } else if (req.method === 'PUT') {
        res.writeHead(200, { etag: '"e1"' }).end();
      } else if (req.headers['if-none-match'] === '"e1"') {
        res.writeHead(304, { etag: '"e1"' }).end();
      } else {
        const body = JSON.stringify({
          schema_version: 1,
          app: 'a',
          image_ref: null,
          blue_green_upgrade: null,
          hot_upgrade: null,
          generation: 0,
          log: [],
        });
        res
          .writeHead(200, {
            etag: '"e1"',
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          })
          .end(body);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => server?.close());

describe('s3 backend on the wire', () => {
  it('reads current.json path-style, strongly consistent, and conditionally', async () => {
    const store = openStore('s3://bkt/pre/fix', {
      s3: { endpoint, region: 'auto', credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
    });
    seen.length = 0;
    const first = await store.pollCurrent('a');
    expect(first.status).toBe('changed');
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/bkt/pre/fix/releases/a-current.json' });
    expect(seen[0]!.headers['x-tigris-consistent']).toBe('true');
    const again = await store.pollCurrent('a', '"e1"');
    expect(again).toEqual({ status: 'unchanged' });
    expect(seen[1]!.headers['if-none-match']).toBe('"e1"');
  });

  it('writes without checksum headers, with If-Match when asked, and no Tigris header on other objects', async () => {
    const store = openStore('s3://bkt', {
      s3: { endpoint, region: 'auto', credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
    });
    seen.length = 0;
    await store.backend.put('releases/a-current.json', Buffer.from('{}'), { ifMatch: '"e0"' });
    await store.backend.get('releases/a/1.tar.gz.sha256');
    const put = seen[0]!;
    expect(put.url).toBe('/bkt/releases/a-current.json');
    expect(put.headers['if-match']).toBe('"e0"');
    expect(
      Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-sdk-checksum-algorithm'),
    ).toEqual([]);
    expect(seen[1]!.headers['x-tigris-consistent']).toBeUndefined();
  });
});

describe('s3 backend answers', () => {
  const open = () =>
    openStore('s3://bkt', {
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 10 },
      s3: { endpoint, region: 'auto', credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
    });

  it('412 on a conditional write is a lost race, reported at once (not retried)', async () => {
    seen.length = 0;
    await expect(
      open().backend.put('releases/a-current.json', Buffer.from('{}'), { ifMatch: '"stale"' }),
    ).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' });
    expect(seen.length).toBe(1);
  });

  it('404 on a tarball is "not in the store", not retried; 503 is retried, then unreachable', async () => {
    seen.length = 0;
    await expect(open().backend.open('releases/a/missing.tar.gz')).rejects.toMatchObject({ code: 'OBJECT_NOT_FOUND' });
    expect(seen.length).toBe(1);
    seen.length = 0;
    await expect(open().backend.open('releases/a/flaky.tar.gz')).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      attempts: 3,
      message: expect.stringMatching(/HTTP 503 SlowDown/),
    });
    expect(seen.length).toBe(3);
  });
});

describe('s3OptionsFromUrl', () => {
  it('takes bucket and prefix from the URL and endpoint, region, path style from the environment', () => {
    expect(
      s3OptionsFromUrl('s3://b/some/prefix/', {
        AWS_ENDPOINT_URL_S3: 'https://fly.storage.tigris.dev',
        AWS_REGION: 'auto',
      }),
    ).toEqual({
      bucket: 'b',
      prefix: 'some/prefix',
      endpoint: 'https://fly.storage.tigris.dev',
      region: 'auto',
      forcePathStyle: true,
    });
    expect(s3OptionsFromUrl('s3://b', {})).toMatchObject({
      prefix: '',
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: false,
    });
    expect(
      s3OptionsFromUrl('s3://b', { AWS_ENDPOINT_URL_S3: 'http://minio:9000', BATON_S3_PATH_STYLE: 'false' })
        .forcePathStyle,
    ).toBe(false);
    expect(() => s3OptionsFromUrl('s3:///nobucket', {})).toThrow(/is not s3:\/\/bucket\[\/prefix\]/);
  });
});
