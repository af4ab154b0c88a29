/**
 * The Supervisor keeping a real peer running: restart with backoff after it exits, a
 * graceful stop, giving up on a first peer that cannot start, and a kill that does not
 * wait for the drain (the second signal).
 */
import { describe, expect, it } from 'vitest';
import { atom } from '../../src/etf/index.js';
import { Supervisor, type SupervisorEvent, type SupervisorOptions, stopOnSignals } from '../../src/manager/index.js';
import { type Handoff, killGroup, type Peer } from '../../src/peer/index.js';
import { getOnce, uniqueName } from '../support/nodes.js';
import { trackPid, useHarness } from '../support/peers.js';

const t = useHarness();

/** A supervisor on the harness's node whose events are recorded, and a wait for the next of a kind. */
function supervise(o: {
  releaseRoot: string;
  env?: Record<string, string>;
  handoff?: Handoff;
  policy?: Partial<SupervisorOptions['policy']>;
  drainMs?: number;
}) {
  const events: SupervisorEvent[] = [];
  const waiters: Array<() => void> = [];
  const sup = new Supervisor({
    batonNode: t.h.node,
    cookie: t.h.cookie,
    stateDir: t.h.stateDir(),
    peer: {
      releaseRoot: o.releaseRoot,
      port: 0,
      handoff: o.handoff ?? 'fd',
      bind: '127.0.0.1',
      orphanMs: 10_000,
      nodeBase: uniqueName('sup'),
      helperEbin: t.fx.erlEbin,
      ...(o.env ? { env: { ...process.env, ...o.env } } : {}),
    },
    policy: { startAttempts: 3, backoffMs: 100, maxBackoffMs: 30_000, resetAfterMs: 60_000, ...o.policy },
    drainMs: o.drainMs ?? 5000,
    onEvent: (e) => {
      if (e.type === 'running') trackPid(e.peer.osPid);
      events.push(e);
      for (const w of waiters.splice(0)) w();
    },
  });
  const next = async <K extends SupervisorEvent['type']>(
    type: K,
    after = 0,
  ): Promise<Extract<SupervisorEvent, { type: K }>> => {
    for (;;) {
      const e = events.slice(after).find((x) => x.type === type);
      if (e !== undefined) return e as Extract<SupervisorEvent, { type: K }>;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { sup, events, next };
}

function port(p: Peer): number {
  return p.record.port;
}

describe('Supervisor', () => {
  it('starts the peer, starts it again after it dies (backoff), stops it gracefully', async () => {
    const { sup, events, next } = supervise({ releaseRoot: t.fx.demoErl['1.0.0'] });
    const outcome = sup.start();
    const first = (await next('running')).peer;
    expect(await getOnce(`http://127.0.0.1:${port(first)}/`)).toEqual({ version: '1.0.0', node: first.node });

    const mark = events.length;
    killGroup(first.osPid, 'SIGKILL');
    const exited = await next('exited', mark);
    expect(exited).toMatchObject({ peer: first, exit: { signal: 'SIGKILL' }, delayMs: 100 });
    const second = (await next('running', mark)).peer;
    expect(second.node).not.toBe(first.node);
    // The same socket (fd handoff): the new peer serves the port the first one did.
    expect(port(second)).toBe(port(first));
    expect(await getOnce(`http://127.0.0.1:${port(second)}/`)).toEqual({ version: '1.0.0', node: second.node });

    expect(sup.stop('test')).toBe(outcome);
    expect(await outcome).toBe('stopped');
    const stopped = await next('stopped');
    expect(stopped.peer).toBe(second);
    expect(stopped.result).toMatchObject({ endpoint: 'ok', leftOpen: 0, killed: false });
    expect(second.alive).toBe(false);
    expect(events.map((e) => e.type).filter((x) => x !== 'progress')).toEqual([
      'running',
      'exited',
      'running',
      'stopping',
      'stopped',
    ]);
  });

  it('gives up on a first peer that fails its attempts, backing off between them', async () => {
    const { sup, events } = supervise({
      releaseRoot: t.fx.demoBad,
      env: { DEMO_BAD: 'crash' },
      handoff: 'restart',
      policy: { startAttempts: 2, backoffMs: 50 },
    });
    expect(await sup.start()).toBe('gave_up');
    const seen = events.filter((e) => e.type !== 'progress');
    expect(seen.map((e) => e.type)).toEqual(['start_failed', 'retrying', 'start_failed', 'gave_up']);
    expect(seen[1]).toEqual({ type: 'retrying', delayMs: 50, attempt: 2 });
    expect(seen[3]).toEqual({ type: 'gave_up', failures: 2 });
    expect((seen[0] as { error: Error }).error.message).toMatch(/demo_bad_crashed/);
  });

  it('a second signal kills the peer without waiting for the drain', async () => {
    const { sup, next } = supervise({ releaseRoot: t.fx.demoErl['1.0.0'], drainMs: 60_000 });
    const unhook = stopOnSignals(sup, ['SIGUSR2']);
    try {
      const outcome = sup.start();
      const peer = (await next('running')).peer;
      // A request that would hold the drain for its whole 60 s.
      const hanging = getOnce(`http://127.0.0.1:${port(peer)}/slow?ms=60000`).catch(() => 'reset');
      await expect
        .poll(() => peer.erpc('baton_peer', 'connections', [port(peer)]), { timeout: 5000, interval: 20 })
        .toBe(1);
      process.kill(process.pid, 'SIGUSR2');
      expect(await next('stopping')).toEqual({ type: 'stopping', reason: 'SIGUSR2' });
      // The drain has begun: the endpoint no longer listens, the request holds the drain.
      await expect
        .poll(() => peer.erpc('baton_peer', 'listening', [port(peer)]), { timeout: 10_000, interval: 20 })
        .toBe(atom('false'));
      const t0 = Date.now();
      process.kill(process.pid, 'SIGUSR2');
      expect(await next('killing')).toEqual({ type: 'killing', reason: 'SIGUSR2 again' });
      expect(await outcome).toBe('killed');
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(peer.alive).toBe(false);
      expect(await hanging).toBe('reset');
    } finally {
      unhook();
    }
  });
});
