/** `baton run`'s configuration: defaults, environment, flags, refusals. */
import { describe, expect, it } from 'vitest';
import { remshCommandLine } from '../../src/cli/peer-commands.js';
import { runConfig } from '../../src/cli/run-config.js';
import type { PeerRecord } from '../../src/peer/index.js';

describe('run config', () => {
  it('has the documented defaults', () => {
    expect(runConfig([], {})).toEqual({
      releaseRoot: '/app',
      app: undefined,
      port: 4000,
      handoff: 'fd',
      bind: '0.0.0.0',
      endpoint: undefined,
      stateDir: '/tmp/baton',
      cookie: undefined,
      drainMs: 15_000,
      orphanMs: 60_000,
      releaseNode: undefined,
      startAttempts: 5,
      backoffMs: 1000,
      maxBackoffMs: 30_000,
      busyPollMs: undefined,
    });
  });

  it('reads the environment; flags win', () => {
    const env = {
      BATON_RELEASE_ROOT: '/r',
      PORT: '8080',
      BATON_HANDOFF: 'reuseport',
      FLY_PRIVATE_IP: 'fdaa::3',
      RELEASE_COOKIE: 'rc',
      BATON_DRAIN_MS: '500',
    };
    const c = runConfig(['--port', '9000', '--handoff', 'restart'], env);
    expect(c).toMatchObject({
      releaseRoot: '/r',
      port: 9000,
      handoff: 'restart',
      bind: '::',
      cookie: 'rc',
      drainMs: 500,
    });
    expect(runConfig([], { BATON_BUSY_POLL_MS: '0' }).busyPollMs).toBe(0);
    expect(runConfig([], { BATON_BUSY_POLL_MS: '0.5' }).busyPollMs).toBe(0.5);
    expect(runConfig([], { ...env, BATON_PORT: '81', BATON_COOKIE: 'bc' })).toMatchObject({
      port: 81,
      cookie: 'bc',
      handoff: 'reuseport',
    });
  });

  it('refuses bad values with a sentence', () => {
    expect(() => runConfig(['--handoff', 'magic'], {})).toThrow(
      /the handoff must be fd, reuseport or restart, not 'magic'/,
    );
    expect(() => runConfig([], { BATON_PORT: 'x' })).toThrow(/the port must be a non-negative integer, not 'x'/);
    expect(() => runConfig(['--nope'], {})).toThrow(/nope/);
    expect(() => runConfig([], { BATON_BUSY_POLL_MS: '-1' })).toThrow(
      /BATON_BUSY_POLL_MS must be a non-negative number of milliseconds, not '-1'/,
    );
    expect(() => runConfig([], { BATON_BUSY_POLL_MS: 'fast' })).toThrow(
      /BATON_BUSY_POLL_MS must be a non-negative number of milliseconds, not 'fast'/,
    );
  });

  it("remsh: erl -remsh for Erlang releases, the release's iex for Elixir (not bin/app, whose env.sh may rename the node)", () => {
    const rec = {
      node: 'app-3@h',
      cookie: 'c',
      releaseRoot: '/app',
      vsn: '1.2.0',
      elixir: false,
      longNames: false,
    } as PeerRecord;
    const erl = remshCommandLine(rec, '/usr/bin/erl');
    expect(erl.cmd).toBe('/usr/bin/erl');
    expect(erl.args).toEqual([
      '-sname',
      expect.stringMatching(/^remsh-[0-9a-f]+@h$/),
      '-hidden',
      '-setcookie',
      'c',
      '-remsh',
      'app-3@h',
    ]);
    const ex = remshCommandLine({ ...rec, elixir: true }, 'erl');
    expect(ex).toEqual({
      cmd: '/app/releases/1.2.0/iex',
      args: [
        '--hidden',
        '--cookie',
        'c',
        '--sname',
        expect.stringMatching(/^remsh-[0-9a-f]+@h$/),
        '--boot',
        '/app/releases/1.2.0/start_clean',
        '--boot-var',
        'RELEASE_LIB',
        '/app/lib',
        '--remsh',
        'app-3@h',
      ],
      env: {},
    });
    // On Fly: long names over IPv6, once.
    const fly = { ...rec, node: 'app-ref-3@fdaa::3', longNames: true };
    expect(remshCommandLine(fly, '/usr/bin/erl').args).toContain('inet6_tcp');
    expect(remshCommandLine({ ...fly, elixir: true }, 'erl').env).toEqual({
      ELIXIR_ERL_OPTIONS: '-proto_dist inet6_tcp',
    });
    expect(remshCommandLine({ ...fly, elixir: true }, 'erl', { ERL_AFLAGS: '-proto_dist inet6_tcp' }).env).toEqual({});
  });
});

describe('distribution host', () => {
  it('long names on Fly (FLY_PRIVATE_IP) or when the release asks for them; short otherwise', async () => {
    const { distributionHost } = await import('../../src/cli/run.js');
    expect(distributionHost({ FLY_PRIVATE_IP: 'fdaa:0:1::3' }, undefined)).toBe('fdaa:0:1::3');
    expect(distributionHost({}, '-sname x\n')).toBeUndefined();
    expect(distributionHost({}, undefined)).toBeUndefined();
    expect(distributionHost({ RELEASE_DISTRIBUTION: 'name' }, undefined)).toMatch(/\./);
    expect(distributionHost({}, '-name app@example.com\n')).toMatch(/\./);
  });
});
