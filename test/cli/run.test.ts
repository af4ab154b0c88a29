/**
 * The CLI around a peer: `baton run` (start, restart with backoff, stop on SIGTERM),
 * `baton peer-node`, `baton eval`, `baton remsh`, against the real demo release.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pidAlive, readRecord, recordPath } from '../../src/peer/index.js';
import { baton } from '../support/cli.js';
import { Control, getOnce } from '../support/nodes.js';
import { peerNode, recordedPort, remshEval, runEnv, startRun, useRuns } from '../support/run.js';

const t = useRuns();

describe('baton run', () => {
  it('runs the release as a peer; peer-node names it; an erl -hidden node calls it; eval; restart on exit; SIGTERM stops it', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0']);
    const run = startRun(env);
    const node = await peerNode(env);
    const port = recordedPort(env);
    expect(node).toMatch(new RegExp(`^${env['RELEASE_NODE']}-\\d+@`));
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.0', node });

    const ctl = new Control(t.fx.erlEbin, env['BATON_COOKIE']!);
    try {
      expect(await ctl.eval(`erpc:call('${node}', demo_erl_counter, bump, [])`)).toEqual([1, 'integer']);
    } finally {
      await ctl.close();
    }
    const ev = baton(['eval', 'demo_erl_counter:bump().'], env);
    expect(ev.stderr).toBe('');
    expect(ev.stdout).toBe('{2,integer}\n');
    const bad = baton(['eval', 'demo_erl_counter:bump('], env);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^baton eval: the expression does not parse: /);

    // The peer dies: baton starts a new one (a new name), which serves the same port.
    const rec = readRecord(env['BATON_STATE_DIR']!)!;
    process.kill(-rec.osPid, 'SIGKILL');
    const next = await peerNode(env, node);
    expect(next).not.toBe(node);
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.0', node: next });
    expect(run.output()).toMatch(/peer .* exited \(SIGKILL\); restarting in 200 ms/);

    const nextPid = readRecord(env['BATON_STATE_DIR']!)!.osPid;
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(pidAlive(nextPid)).toBe(false);
    expect(existsSync(recordPath(env['BATON_STATE_DIR']!))).toBe(false);
    expect(run.output()).toMatch(/SIGTERM: stopping the peer/);
    const none = baton(['peer-node'], env);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^baton peer-node: no peer is recorded in /);
  });

  it('exits 1 when the first peer cannot start after its attempts', async () => {
    const env = runEnv(t.fx.demoBad, {
      DEMO_BAD: 'crash',
      BATON_START_ATTEMPTS: '2',
      BATON_HANDOFF: 'restart',
    });
    const run = startRun(env);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(/demo_bad_crashed/);
    expect(run.output()).toMatch(/the peer failed to start 2 times; giving up/);
  });

  it('remsh opens an interactive shell on the peer', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0']);
    const run = startRun(env);
    const node = await peerNode(env);
    const port = recordedPort(env);
    // Ctrl-G q leaves the shell without stopping the peer.
    await remshEval(env, '{node(), demo_erl_counter:bump()}.', `{'${node}',{1,integer}}`, {
      prompt: /\(\S+\)\d+>/,
      promptMs: 20_000,
    });
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});

describe('two batons on one host', () => {
  it('each gets its own node name although both state dirs count generations from 1', async () => {
    const envs = [runEnv(t.fx.demoErl['1.0.0']), runEnv(t.fx.demoErl['1.0.0'])];
    const runs = envs.map((env) => startRun(env));
    const peers = await Promise.all(envs.map((env) => peerNode(env)));
    // The line reaches us through a pipe: it may land after the record is written.
    const batonName = (r: (typeof runs)[number]): string | undefined => /node (baton-\d+@\S+)/.exec(r.output())?.[1];
    for (const r of runs) await expect.poll(() => batonName(r), { timeout: 10_000 }).toBeDefined();
    const batonNames = runs.map(batonName);
    expect(batonNames[0]).not.toBe(batonNames[1]);
    for (const [i, env] of envs.entries()) {
      expect(await getOnce(`http://127.0.0.1:${recordedPort(env)}/`)).toEqual({ version: '1.0.0', node: peers[i] });
    }
    for (const r of runs) r.child.kill('SIGTERM');
    expect(await Promise.all(runs.map((r) => r.exited))).toEqual([0, 0]);
  });
});

describe('baton run on Fly-style long names', () => {
  it('FLY_PRIVATE_IP: peers are <base>-<gen>@<ip> over inet6_tcp, the socket is dual stack, eval reaches it', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0'], { FLY_PRIVATE_IP: '::1' });
    delete env['BATON_BIND'];
    const run = startRun(env);
    const node = await peerNode(env);
    const port = recordedPort(env);
    expect(node).toMatch(new RegExp(`^${env['RELEASE_NODE']}-\\d+@::1$`));
    // Bound on `::` (the Fly default): IPv6 and IPv4 clients both reach the peer.
    expect(await getOnce(`http://[::1]:${port}/`)).toEqual({ version: '1.0.0', node });
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toEqual({ version: '1.0.0', node });
    expect(baton(['eval', 'node().'], env).stdout).toBe(`'${node}'\n`);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});

describe('baton run stops cleanly', () => {
  it('SIGTERM while /slow requests are in flight: every one completes, then exit 0', async () => {
    const env = runEnv(t.fx.demoErl['1.0.0']);
    const run = startRun(env);
    await peerNode(env);
    const port = recordedPort(env);
    const pid = readRecord(env['BATON_STATE_DIR']!)!.osPid;
    // Long enough to be counted in flight by `baton eval` (a CLI spawn each) on a loaded machine.
    const slow = Array.from({ length: 4 }, () => getOnce(`http://127.0.0.1:${port}/slow?ms=5000`));
    await expect
      .poll(() => baton(['eval', `baton_peer:connections(${port}).`], env).stdout.trim(), {
        timeout: 10_000,
        interval: 100,
      })
      .toBe('4');
    run.child.kill('SIGTERM');
    expect(await Promise.all(slow)).toEqual(Array.from({ length: 4 }, () => ({ slept: 5000 })));
    expect(await run.exited).toBe(0);
    expect(pidAlive(pid)).toBe(false);
    expect(run.output()).toMatch(/peer \S+ stopped\n/);
  });
});
