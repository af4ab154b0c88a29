/** Fetching from file:// and http(s) with streaming verification. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildFullTarball, fetchRelease } from '../../src/release/index.js';
import { buildTinyRelease } from './helpers/fixture.js';

let work: string;
let tarball: { file: string; sha256: string; size: number };
let server: Server;
let base: string;
let served = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'baton-fetch-'));
  const rel = buildTinyRelease(work, 'rel');
  tarball = await buildFullTarball(rel, join(work, 'tiny.tar.gz'));
  const bytes = readFileSync(tarball.file);
  server = createServer((req, res) => {
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
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
  rmSync(work, { recursive: true, force: true });
});

it('fetches over http(s) and file://, verifying sha256 as it streams', async () => {
  const viaHttp = await fetchRelease(`${base}/tiny.tar.gz`, join(work, 'a'), { sha256: tarball.sha256, expect: 'full' });
  expect(viaHttp).toMatchObject({ sha256: tarball.sha256, compressedBytes: tarball.size, info: { kind: 'full', version: '0.1.0' } });
  expect(served).toBe(1);
  const viaFile = await fetchRelease(pathToFileURL(tarball.file).href, join(work, 'b'), { sha256: tarball.sha256 });
  expect(viaFile.info.apps.map((a) => a.name)).toContain('tiny');
});

it('refuses a wrong sha256, a 404, and plain http off loopback', async () => {
  await expect(fetchRelease(`${base}/tiny.tar.gz`, join(work, 'c'), { sha256: '0'.repeat(64) })).rejects.toMatchObject({ code: 'SHA256_MISMATCH' });
  await expect(fetchRelease(`${base}/nope.tar.gz`, join(work, 'd'))).rejects.toThrow(/cannot fetch http:\/\/127\.0\.0\.1:\d+\/nope\.tar\.gz: HTTP 404/);
  await expect(fetchRelease('http://example.com/x.tar.gz', join(work, 'e'))).rejects.toThrow(/plain http is only allowed on loopback/);
  writeFileSync(join(work, 'marker'), '');
  expect(readdirSync(work).filter((n) => /^[cde]/.test(n) || n.includes('.partial-'))).toEqual([]);
});
