/** Socket handoff between peers (fd, reuseport, restart) and stopping a peer without losing a request. */
import { describe, expect, it } from 'vitest';
import { atom, tuple } from '../../src/etf/index.js';
import type { Peer } from '../../src/peer/index.js';
import { getOnce } from '../support/nodes.js';
import { useHarness } from '../support/peers.js';

const t = useHarness();

/** Fresh connections until every node in `want` answered (the kernel spreads connections, not requests). */
async function nodesSeen(port: number, want: string[], tries = 400): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < tries && want.some((n) => !seen.has(n)); i++) {
    seen.add((await getOnce(`http://127.0.0.1:${port}/`))['node'] as string);
  }
  return seen;
}

describe('handoff', () => {
  it('fd: two peers accept from one listener handed to both, and both serve', async () => {
    const l = t.h.bind();
    const a = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.0'], port: l.port, handoff: 'fd', listener: l });
    const b = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.1'], port: l.port, handoff: 'fd', listener: l });
    expect([...(await nodesSeen(l.port, [a.node, b.node]))].sort()).toEqual([a.node, b.node].sort());
    // baton holds the socket but never accepts: with A stopped, everything goes to B.
    await a.stop({ drainMs: 5000 });
    for (let i = 0; i < 20; i++)
      expect(await getOnce(`http://127.0.0.1:${l.port}/`)).toEqual({ version: '1.0.1', node: b.node });
  });

  it('reuseport: two peers bind the same port with SO_REUSEPORT, and both serve', async () => {
    const a = await t.h.launchOnFreePort({ releaseRoot: t.fx.demoErl['1.0.0'], handoff: 'reuseport' });
    const port = a.record.port;
    const b = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.0'], port, handoff: 'reuseport' });
    expect([...(await nodesSeen(port, [a.node, b.node]))].sort()).toEqual([a.node, b.node].sort());
  });

  it('restart: the old peer stops, the new one binds the port itself', async () => {
    const a = await t.h.launchOnFreePort({ releaseRoot: t.fx.demoErl['1.0.0'], handoff: 'restart' });
    const port = a.record.port;
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node: a.node });
    const r = await a.stop({ drainMs: 5000 });
    expect(r).toMatchObject({ endpoint: 'ok', recipe: { recipe: 'plain' }, leftOpen: 0, killed: false });
    expect(a.alive).toBe(false);
    const b = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.1'], port, handoff: 'restart' });
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.1', node: b.node });
  });
});

describe('stop', () => {
  it('completes every in-flight /slow request: endpoint stop, drain, init:stop', async () => {
    const l = t.h.bind();
    const peer: Peer = await t.h.launch({
      releaseRoot: t.fx.demoErl['1.0.0'],
      port: l.port,
      handoff: 'fd',
      listener: l,
    });
    const slow = Array.from({ length: 8 }, () => getOnce(`http://127.0.0.1:${l.port}/slow?ms=1500`));
    // All eight are being served (accepted by the peer) before the stop begins.
    await expect.poll(() => peer.erpc('baton_peer', 'connections', [l.port]), { timeout: 5000, interval: 20 }).toBe(8);
    const t0 = Date.now();
    const stopped = peer.stop({ drainMs: 10_000 });
    const results = await Promise.all(slow);
    expect(results).toEqual(Array.from({ length: 8 }, () => ({ slept: 1500 })));
    expect(await stopped).toMatchObject({ endpoint: 'ok', recipe: { recipe: 'plain' }, leftOpen: 0, killed: false });
    expect(peer.alive).toBe(false);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('kills a peer that does not exit within the timeout after init:stop', async () => {
    const peer = await t.h.launchOnFreePort({ releaseRoot: t.fx.demoErl['1.0.0'], handoff: 'restart' });
    const port = peer.record.port;
    // A connection that never finishes keeps the drain waiting past its bound.
    const hanging = getOnce(`http://127.0.0.1:${port}/slow?ms=60000`).catch(() => 'reset');
    await expect.poll(() => peer.erpc('baton_peer', 'connections', [port]), { timeout: 5000, interval: 20 }).toBe(1);
    // init:stop cannot finish while an app blocks it: make the app's stop hang.
    await peer.erpc('erlang', 'suspend_process', [
      await peer.erpc('erlang', 'whereis', [atom('application_controller')]),
    ]);
    const r = await peer.stop({ drainMs: 300, exitTimeoutMs: 1000 });
    expect(r.leftOpen).toBe(1);
    expect(r.killed).toBe(true);
    expect(peer.alive).toBe(false);
    expect(await hanging).toBe('reset');
  });
});

describe('blue-green neighbours', () => {
  it('the incoming peer is connected to the outgoing one before its application starts', async () => {
    const l = t.h.bind();
    const old = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.0'], port: l.port, handoff: 'fd', listener: l });
    const next = await t.h.launch({
      releaseRoot: t.fx.demoErl['2.0.0'],
      port: l.port,
      handoff: 'fd',
      listener: l,
      connectTo: [old.node],
    });
    // What the application's start/2 saw of the cluster when it ran (demo_erl_app keeps it).
    const atStart = await next.erpc('persistent_term', 'get', [tuple(atom('demo_erl_app'), atom('nodes_at_start'))]);
    expect(atStart).toEqual([atom(old.node)]);
    // Without connectTo, a peer starts alone (baton's node is hidden, not in nodes()).
    const alone = await t.h.launch({ releaseRoot: t.fx.demoErl['2.0.0'], port: l.port, handoff: 'fd', listener: l });
    expect(await alone.erpc('persistent_term', 'get', [tuple(atom('demo_erl_app'), atom('nodes_at_start'))])).toEqual(
      [],
    );
    expect(await next.erpc('erlang', 'nodes', [])).toEqual([atom(old.node)]);
    expect(await old.erpc('erlang', 'nodes', [])).toEqual([atom(next.node)]);
  });
});
