/** src/peer launching the real fixture releases: boot, serve, runtime config, bad apps. */
import { describe, expect, it } from 'vitest';
import { atom, charlist, charlistToString, mapGet, Tuple, tuple } from '../../src/etf/index.js';
import { PeerLayoutError, PeerReadyTimeoutError, PeerStartError, pidAlive } from '../../src/peer/index.js';
import { getOnce } from '../support/nodes.js';
import { useHarness } from '../support/peers.js';

const t = useHarness();

describe('launch', () => {
  it('boots demo_erl as a peer on a handed-over socket; it serves HTTP and is marked', async () => {
    const l = t.h.bind();
    const peer = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.0'], port: l.port, handoff: 'fd', listener: l });
    expect(await getOnce(`http://127.0.0.1:${l.port}/`)).toEqual({ version: '1.0.0', node: peer.node });
    expect(peer.node).toMatch(/^p-.*-1@/);
    expect(await peer.erpc('application', 'get_env', [atom('baton'), atom('role')])).toEqual(
      tuple(atom('ok'), atom('peer')),
    );
    expect(charlistToString(await peer.erpc('os', 'getenv', [charlist('BATON_PEER')]))).toBe('1');
  });
});

describe('launch (Elixir)', () => {
  it('boots demo_ex: runtime.exs applied, consolidated protocol, Logger to the peer log', async () => {
    const l = t.h.bind('::1');
    const peer = await t.h.launch({
      releaseRoot: t.fx.demoEx,
      port: l.port,
      handoff: 'fd',
      listener: l,
      env: { ...process.env, DEMO_EX_VALUE: 'green' },
    });
    const body = await getOnce(`http://[::1]:${l.port}/`);
    expect(body).toEqual({
      node: peer.node,
      runtime_value: 'GREEN/prod',
      describe: `info(${peer.node}, GREEN/prod)`,
      consolidated: true,
    });
    expect(await peer.erpc('Elixir.DemoEx.Describe', 'impl_for', [1])).toEqual(atom('Elixir.DemoEx.Describe.Integer'));
    // The start script's variables, as env.sh saw them, and PHX_SERVER as bin/server sets it.
    expect(charlistToString(await peer.erpc('os', 'getenv', [charlist('RELEASE_ROOT')]))).toBe(t.fx.demoEx);
    expect(charlistToString(await peer.erpc('os', 'getenv', [charlist('PHX_SERVER')]))).toBe('true');
    await expect.poll(() => peer.output(), { timeout: 5000 }).toMatch(/runtime_value=GREEN\/prod/);
  });

  it('boots demo_erl with its own ERTS, on PORT when the handoff is restart', async () => {
    const peer = await t.h.launchOnFreePort({ releaseRoot: t.fx.demoErlWithErts, handoff: 'restart' });
    expect(await getOnce(`http://127.0.0.1:${peer.record.port}/`)).toEqual({ version: '1.0.0', node: peer.node });
    expect(charlistOf(await peer.erpc('code', 'root_dir', []))).toBe(t.fx.demoErlWithErts);
  });
});

function charlistOf(t: unknown): string {
  return String(t);
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('launch failures', () => {
  it('an app crashing in start/2: PeerStartError with its reason and the peer output, nothing left running', async () => {
    let pid = 0;
    const err = await t.h
      .launchOnFreePort({
        releaseRoot: t.fx.demoBad,
        handoff: 'restart',
        env: { ...process.env, DEMO_BAD: 'crash' },
        onSpawn: (p) => (pid = p),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerStartError);
    const e = err as PeerStartError;
    expect(e.code).toBe('PEER_START');
    expect(e.stage).toBe('start');
    expect(e.reason).toMatch(/application demo_bad did not start: .*demo_bad_crashed/);
    expect(e.output).toMatch(/demo_bad: about to crash in start\/2/);
    expect(e.message).toMatch(/demo_bad_crashed[\s\S]*--- peer output ---[\s\S]*about to crash/);
    expect(pid).toBeGreaterThan(0);
    expect(pidAlive(pid)).toBe(false);
    expect(groupAlive(pid)).toBe(false);
  });

  it('an app that never binds: PeerReadyTimeoutError, nothing left running', async () => {
    let pid = 0;
    const err = await t.h
      .launchOnFreePort({
        releaseRoot: t.fx.demoBad,
        handoff: 'restart',
        readyTimeoutMs: 1000,
        env: { ...process.env, DEMO_BAD: 'nobind' },
        onSpawn: (p) => (pid = p),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerReadyTimeoutError);
    const e = err as PeerReadyTimeoutError;
    expect(e.port).toBeGreaterThan(0);
    expect(e.message).toMatch(new RegExp(`did not listen on port ${e.port} within 1000 ms`));
    expect(groupAlive(pid)).toBe(false);
  });

  it('a release directory without a release: PeerLayoutError', async () => {
    await expect(t.h.launch({ releaseRoot: t.fx.erlEbin, port: 1, handoff: 'restart' })).rejects.toBeInstanceOf(
      PeerLayoutError,
    );
  });
});

describe('injected application env', () => {
  it('is persistent: the application loading its .app and sys.config does not wipe it', async () => {
    // sys.config says 4 acceptors; the injected value must win over it and the .app.
    const peer = await t.h.launchOnFreePort({
      releaseRoot: t.fx.demoErl['1.0.0'],
      handoff: 'restart',
      appEnv: [['demo_erl', 'acceptors', 2]],
    });
    expect(await peer.erpc('application', 'get_env', [atom('demo_erl'), atom('acceptors')])).toEqual(
      tuple(atom('ok'), 2),
    );
    const children = await peer.erpc('supervisor', 'count_children', [atom('demo_erl_endpoint')]);
    expect(children).toContainEqual(tuple(atom('workers'), 2));
    expect(await getOnce(`http://127.0.0.1:${peer.record.port}/`)).toMatchObject({ node: peer.node });
  });
});

describe('connection to baton', () => {
  it('lost and found again: baton reconnects and the watchdog does not stop the peer', async () => {
    const peer = await t.h.launchOnFreePort({
      releaseRoot: t.fx.demoErl['1.0.0'],
      handoff: 'restart',
      orphanMs: 1500,
    });
    const baton = t.h.node.name;
    const event = (name: 'nodeup' | 'nodedown'): Promise<void> =>
      new Promise((resolve) => {
        const on = (node: string): void => {
          if (node !== peer.node) return;
          t.h.node.off(name, on);
          resolve();
        };
        t.h.node.on(name, on);
      });
    const lost = event('nodedown');
    // The peer drops baton's connection (as a network blip would), once this call has answered.
    const timer = await peer.erpc('timer', 'apply_after', [
      200,
      atom('erlang'),
      atom('disconnect_node'),
      [atom(baton)],
    ]);
    expect(timer).toBeInstanceOf(Tuple);
    expect((timer as Tuple).elements[0]).toBe(atom('ok'));
    await lost;
    const back = event('nodeup');
    // The watchdog saw baton go and armed its timer...
    await expect
      .poll(() => peer.output(), { timeout: 10_000 })
      .toContain(`baton_peer: lost ${baton}; stopping in 1500 ms unless adopted`);
    // Baton connects again by itself (nothing here calls the peer until then)...
    await back;
    // ...and the watchdog knows: a status read after the loss with no orphaned_since means the
    // timer was cancelled (a cancelled timer's message is ignored), so this loss cannot stop it.
    await expect
      .poll(
        async () => {
          const wd = await peer.erpc('baton_peer', 'watchdog', []);
          return wd instanceof Map ? [mapGet(wd, atom('baton')), mapGet(wd, atom('orphaned_since'))] : wd;
        },
        { timeout: 10_000, interval: 50 },
      )
      .toEqual([atom(baton), atom('undefined')]);
    expect(peer.alive).toBe(true);
    expect(await getOnce(`http://127.0.0.1:${peer.record.port}/`)).toMatchObject({ node: peer.node });
  });
});
