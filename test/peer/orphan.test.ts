/**
 * `kill -9` of baton: the peer's watchdog stops it after BATON_ORPHAN_MS, unless a new
 * baton re-adopts it from the state dir's record first (then it is not restarted).
 */
import { describe, expect, it } from 'vitest';
import { pidAlive, readRecord } from '../../src/peer/index.js';
import { baton } from '../support/cli.js';
import { getOnce } from '../support/nodes.js';
import { peerNode, runEnv, startRun, useRuns } from '../support/run.js';

const t = useRuns();

describe('orphaned peer', () => {
  it('halts after BATON_ORPHAN_MS once baton is killed', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0'], { BATON_ORPHAN_MS: '1500' });
    const run = startRun(env);
    await peerNode(env);
    const rec = readRecord(env['BATON_STATE_DIR']!)!;
    const port = rec.port;
    run.child.kill('SIGKILL');
    await run.exited;
    const killedAt = Date.now();
    // It keeps serving while it waits for a baton.
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node: rec.node });
    await expect.poll(() => pidAlive(rec.osPid), { timeout: 15_000, interval: 100 }).toBe(false);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(1400);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(rec.log, 'utf8')).toMatch(/baton_peer: no baton for 1500 ms, stopping/);
  });

  it('is re-adopted, not restarted, by a baton that comes back in time', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0'], { BATON_ORPHAN_MS: '20000' });
    const first = startRun(env);
    const node = await peerNode(env);
    const before = readRecord(env['BATON_STATE_DIR']!)!;
    const port = before.port;
    expect(baton(['eval', 'demo_erl_counter:bump().'], env).stdout).toBe('{1,integer}\n');
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startRun(env);
    await expect
      .poll(() => second.output(), { timeout: 30_000 })
      .toMatch(new RegExp(`re-adopted peer ${node} \\(os pid ${before.osPid}\\); not restarted`));
    const after = readRecord(env['BATON_STATE_DIR']!)!;
    expect(after.osPid).toBe(before.osPid);
    expect(after.baton).not.toBe(before.baton);
    // Same VM, same state: the counter goes on from where it was.
    expect(baton(['eval', 'demo_erl_counter:bump().'], env).stdout).toBe('{2,integer}\n');
    const wd = baton(['eval', 'maps:get(baton, baton_peer:watchdog()).'], env).stdout.trim();
    expect(wd).toBe(`'${after.baton}'`);
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.0', node });

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(pidAlive(before.osPid)).toBe(false);
  });
});
