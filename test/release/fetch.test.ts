/** Fetching from file:// and http(s) with streaming verification. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildFullTarball, fetchRelease } from '../../src/release/index.js';
import { buildTinyRelease } from './helpers/fixture.js';

let work: string;
let tarball: { file: string; sha256: string; size: number };
let server: Server;
let tlsServer: Server;
let base: string;
let tlsBase: string;
let cert: string;
let served = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-fetch-'));
  const rel = buildTinyRelease(work, 'rel');
  tarball = await buildFullTarball(rel, join(work, 'tiny.tar.gz'));
  const bytes = readFileSync(tarball.file);
  const serve: RequestListener = (req, res) => {
    if (req.url !== '/tiny.tar.gz') {
      res.writeHead(404).end();
      return;
    }
    served++;
    res.writeHead(200, { 'content-length': bytes.length });
    // In small pieces, so the extraction really streams.
    let off = 0;
    const next = (): void => {
      if (off >= bytes.length) {
        res.end();
        return;
      }
      res.write(bytes.subarray(off, off + 16384), next);
      off += 16384;
    };
    next();
  };
  server = createServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  // A self-signed certificate for 127.0.0.1, trusted only through the `ca` option.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(work, 'key.pem'),
      '-out',
      join(work, 'cert.pem'),
    ],
    { stdio: 'pipe' },
  );
  cert = readFileSync(join(work, 'cert.pem'), 'utf8');
  tlsServer = createTlsServer({ key: readFileSync(join(work, 'key.pem')), cert }, serve);
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
  tlsServer?.close();
  rmSync(work, { recursive: true, force: true });
});

it('fetches over http(s) and file://, verifying sha256 as it streams', async () => {
  const viaHttp = await fetchRelease(`${base}/tiny.tar.gz`, join(work, 'a'), {
    sha256: tarball.sha256,
    expect: 'full',
  });
  expect(viaHttp).toMatchObject({
    sha256: tarball.sha256,
    compressedBytes: tarball.size,
    info: { kind: 'full', version: '0.1.0' },
  });
  expect(served).toBe(1);
  const viaFile = await fetchRelease(pathToFileURL(tarball.file).href, join(work, 'b'), { sha256: tarball.sha256 });
  expect(viaFile.info.apps.map((a) => a.name)).toContain('tiny');
});

it('fetches over https with a private CA, and refuses the certificate without it', async () => {
  const got = await fetchRelease(`${tlsBase}/tiny.tar.gz`, join(work, 'tls'), {
    sha256: tarball.sha256,
    expect: 'full',
    ca: cert,
  });
  expect(got.info.version).toBe('0.1.0');
  await expect(fetchRelease(`${tlsBase}/tiny.tar.gz`, join(work, 'tls2'))).rejects.toMatchObject({
    code: 'FETCH_FAILED',
    message: expect.stringMatching(/self.signed certificate/),
  });
});

it('refuses a wrong sha256, a 404, and plain http off loopback', async () => {
  await expect(
    fetchRelease(`${base}/tiny.tar.gz`, join(work, 'bad-c'), { sha256: '0'.repeat(64) }),
  ).rejects.toMatchObject({ code: 'SHA256_MISMATCH' });
  await expect(fetchRelease(`${base}/nope.tar.gz`, join(work, 'bad-d'))).rejects.toThrow(
    /cannot fetch http:\/\/127\.0\.0\.1:\d+\/nope\.tar\.gz: HTTP 404/,
  );
  await expect(fetchRelease('http://example.com/x.tar.gz', join(work, 'bad-e'))).rejects.toThrow(
    /plain http is only allowed on loopback/,
  );
  expect(readdirSync(work).filter((n) => n.startsWith('bad-') || n.includes('.partial-'))).toEqual([]);
});
