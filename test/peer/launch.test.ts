/** src/peer launching the real fixture releases: boot, serve, runtime config, bad apps. */
import { describe, expect, it } from 'vitest';
import { atom, charlist, charlistToString, mapGet, tuple } from '../../src/etf/index.js';
import { PeerLayoutError, PeerReadyTimeoutError, PeerStartError, pidAlive } from '../../src/peer/index.js';
import { freePort, getOnce } from '../support/nodes.js';
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
    const port = await freePort();
    const peer = await t.h.launch({ releaseRoot: t.fx.demoErlWithErts, port, handoff: 'restart' });
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.0', node: peer.node });
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
      .launch({
        releaseRoot: t.fx.demoBad,
        port: await freePort(),
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
    const port = await freePort();
    const err = await t.h
      .launch({
        releaseRoot: t.fx.demoBad,
        port,
        handoff: 'restart',
        readyTimeoutMs: 1000,
        env: { ...process.env, DEMO_BAD: 'nobind' },
        onSpawn: (p) => (pid = p),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerReadyTimeoutError);
    expect((err as PeerReadyTimeoutError).message).toMatch(new RegExp(`did not listen on port ${port} within 1000 ms`));
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
    const port = await freePort();
    // sys.config says 4 acceptors; the injected value must win over it and the .app.
    const peer = await t.h.launch({
      releaseRoot: t.fx.demoErl['1.0.0'],
      port,
      handoff: 'restart',
      appEnv: [['demo_erl', 'acceptors', 2]],
    });
    expect(await peer.erpc('application', 'get_env', [atom('demo_erl'), atom('acceptors')])).toEqual(
      tuple(atom('ok'), 2),
    );
    const children = await peer.erpc('supervisor', 'count_children', [atom('demo_erl_endpoint')]);
    expect(children).toContainEqual(tuple(atom('workers'), 2));
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node: peer.node });
  });
});

describe('connection to baton', () => {
  it('lost and found again: baton reconnects and the watchdog does not stop the peer', async () => {
    const port = await freePort();
    const peer = await t.h.launch({ releaseRoot: t.fx.demoErl['1.0.0'], port, handoff: 'restart', orphanMs: 1500 });
    // The peer drops baton's connection (as a network blip would).
    await peer.erpc('erlang', 'disconnect_node', [atom(t.h.node.name)]).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 3000));
    expect(peer.alive).toBe(true);
    const wd = await peer.erpc('baton_peer', 'watchdog', []);
    expect(wd).toBeInstanceOf(Map);
    expect(mapGet(wd as Map<never, never>, atom('orphaned_since'))).toBe(atom('undefined'));
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node: peer.node });
  });
});
