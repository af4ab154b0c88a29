/**
 * Extraction cost grows linearly: with the number of entries, and with how deep they
 * are. Not timed against a clock: each test extracts a small and a larger archive in
 * the same run and bounds the ratio of their times (the best of three each, so one
 * stall on a busy machine does not decide), well below what a quadratic cost gives.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Header, Pax } from 'tar';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { extractTarball } from '../../src/release/index.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-scaling-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Directory entries, each path given a pax record when a tar header cannot hold it. */
function directories(paths: string[]): Buffer {
  const blocks: Buffer[] = [];
  for (const path of paths) {
    if (path.length > 99) blocks.push(new Pax({ path }).encode());
    const block = Buffer.alloc(512);
    new Header({ path: path.slice(-99), type: 'Directory', size: 0, mode: 0o755, mtime: new Date(0) }).encode(block, 0);
    blocks.push(block);
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

let n = 0;
/** Milliseconds to extract `tgz`, the best of three runs. */
async function bestTime(tgz: Buffer, entries: number): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const dest = join(work, `d${n++}`);
    const t = performance.now();
    // Repeated headers compress far past the ratio limit, which is not what is measured here.
    const r = await extractTarball(Readable.from([tgz]), dest, { limits: { maxRatio: Number.POSITIVE_INFINITY } });
    best = Math.min(best, performance.now() - t);
    expect(r.entries).toBe(entries);
    rmSync(dest, { recursive: true, force: true });
  }
  return best;
}

it('4x the directories take less than 8x the time', async () => {
  const count = 400;
  const tree = (entries: number): Buffer => directories(Array.from({ length: entries }, (_, i) => `d/e${i}/`));
  const small = await bestTime(tree(count), count);
  const large = await bestTime(tree(4 * count), 4 * count);
  expect(large / small).toBeLessThan(8);
}, 60_000);

it('entries 10x as deep take less than 15x the time (a cost quadratic in depth gives ~100x)', async () => {
  // One directory listed again and again: created once, so what is timed is the checks each entry gets.
  // 500 levels is as deep as the 1024-byte path limit allows.
  const count = 3000;
  const repeated = (depth: number): Buffer => directories(Array.from({ length: count }, () => 'a/'.repeat(depth)));
  const shallow = await bestTime(repeated(50), count);
  const deep = await bestTime(repeated(500), count);
  expect(deep / shallow).toBeLessThan(15);
}, 60_000);
