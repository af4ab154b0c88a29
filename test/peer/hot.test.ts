/** Hot upgrade 1.0.0 -> 1.0.1 of a peer started by src/peer, driven from TS. */
import { describe, expect, it } from 'vitest';
import { HotUpgradeError, hotUpgrade, upgradeBeams } from '../../src/peer/index.js';
import { getJson } from '../support/nodes.js';
import { useHarness } from '../support/peers.js';

const t = useHarness();

describe('hot upgrade through src/peer', () => {
  it('1.0.0 -> 1.0.1: a corrupt beam is refused first; then only changed modules reload and the counter keeps its value', async () => {
    const peer = await t.h.launchOnFreePort({ releaseRoot: t.fx.demoErl['1.0.0'], handoff: 'restart' });
    const port = peer.record.port;
    for (let i = 1; i <= 3; i++) expect(await getJson(port, '/counter')).toEqual({ count: i, state: 'integer' });

    const beams = upgradeBeams(t.fx.demoErl['1.0.0'], t.fx.demoErl['1.0.1']);
    expect(beams.map((b) => b.module)).toContain('demo_erl_counter');
    const corrupt = beams.map((b) =>
      b.module === 'demo_erl_counter' ? { ...b, binary: Buffer.from('not a beam') } : b,
    );
    const err = await hotUpgrade(peer, corrupt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HotUpgradeError);
    expect((err as HotUpgradeError).reason).toMatch(/prepare_failed/);
    expect((err as HotUpgradeError).message).toMatch(/^hot upgrade of .* failed: \{prepare_failed/);
    expect(await getJson(port, '/counter')).toEqual({ count: 4, state: 'integer' });

    const r = await hotUpgrade(peer, beams);
    // demo_erl_vsn is loaded lazily (interactive mode): reloaded if GET / ran, else added.
    expect(r.reloaded).toContain('demo_erl_counter');
    expect([...r.reloaded, ...r.added].sort()).toEqual(['demo_erl_counter', 'demo_erl_vsn']);
    expect(r.unchanged.length).toBeGreaterThan(0);
    expect(r.suspended.map((p) => p.name)).toEqual(['demo_erl_counter']);
    expect(r.suspendUs).toBeGreaterThan(0);
    expect(r.totalUs).toBeGreaterThanOrEqual(r.suspendUs);
    expect(await getJson(port, '/counter')).toEqual({ count: 5, state: 'map' });
    expect(await getJson(port, '/')).toEqual({ version: '1.0.1', node: peer.node });
  });
});
