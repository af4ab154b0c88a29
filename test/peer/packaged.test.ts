/**
 * baton as installed from npm: the package has no rebar3 build, so the helper modules
 * are compiled from the shipped `erlang/*.erl` with `erlc` on first use, and a peer
 * loads those beams.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type * as Distribution from '../../src/distribution/index.js';
import type * as Etf from '../../src/etf/index.js';
import type * as Helpers from '../../src/peer/helpers.js';
import { killAll, startErl } from '../distribution/helpers.js';
import { uniqueName } from '../support/nodes.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(join(tmpdir(), 'baton-packaged-'));

let node: Distribution.Node | undefined;

afterAll(async () => {
  await node?.close();
  await killAll();
  rmSync(work, { recursive: true, force: true });
});

describe('installed from npm', () => {
  it('ships the helper sources; helperEbin compiles them with erlc and a peer loads them', async () => {
    execFileSync('npm', ['pack', '--silent', '--pack-destination', work], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    execFileSync('tar', ['-xzf', join(work, tarball!), '-C', work]);
    const pkg = join(work, 'package');
    expect(existsSync(join(pkg, '_build'))).toBe(false);
    expect(
      readdirSync(join(pkg, 'erlang'))
        .filter((f) => f.endsWith('.erl'))
        .sort(),
    ).toEqual(['baton_endpoint.erl', 'baton_peer.erl', 'baton_upgrader.erl']);
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));

    // A fresh temporary directory, so the compiled beams cannot come from an earlier run.
    const tmp = join(work, 'tmp');
    mkdirSync(tmp);
    const before = process.env['TMPDIR'];
    process.env['TMPDIR'] = tmp;
    // The package's own modules throughout: its atoms are not this checkout's.
    const load = async <T>(path: string): Promise<T> =>
      (await import(pathToFileURL(join(pkg, 'dist', path)).href)) as T;
    const helpers = await load<typeof Helpers>('peer/helpers.js');
    const { atom, charlistToString } = await load<typeof Etf>('etf/index.js');
    const { Node } = await load<typeof Distribution>('distribution/index.js');
    let ebin: string;
    try {
      ebin = await helpers.helperEbin();
    } finally {
      if (before === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = before;
    }
    expect(ebin.startsWith(tmp)).toBe(true);
    for (const m of helpers.HELPER_MODULES) expect(existsSync(join(ebin, `${m}.beam`))).toBe(true);

    const cookie = 'packaged_cookie';
    const peer = await startErl({ cookie, prefix: 'packaged' });
    node = new Node({ name: uniqueName('packaged_baton'), cookie, hidden: true, log: () => {} });
    await node.start();
    await helpers.loadHelpers(node, peer.name, ebin);
    for (const m of helpers.HELPER_MODULES) {
      expect(charlistToString(await node.erpc(peer.name, 'code', 'which', [atom(m)]))).toBe(join(ebin, `${m}.beam`));
    }
    expect((await node.erpc(peer.name, 'baton_peer', 'format', [[1, 2]])) as Buffer).toEqual(Buffer.from('[1,2]'));
  });
});
