/**
 * The launch stages that need no VM: environment (env.sh's exports, long or short names)
 * and naming (node name, log, vm.args, command line, OS environment), as pure functions.
 */
import { describe, expect, it } from 'vitest';
import {
  type Environment,
  type EnvironmentInput,
  environment,
  envShInput,
  LISTEN_FD,
  type NamingInput,
  naming,
  PeerError,
  type ReleaseLayout,
} from '../../src/peer/index.js';

const layout: ReleaseLayout = {
  root: '/app',
  name: 'shop',
  vsn: '1.2.0',
  relDir: '/app/releases/1.2.0',
  ertsBin: '/app/erts-13.1.5/bin',
  libEbins: ['/app/lib/shop-1.2.0/ebin'],
  consolidated: undefined,
  sysConfig: '/app/releases/1.2.0/sys.config',
  vmArgs: { path: '/app/releases/1.2.0/vm.args.src', text: '-sname ${NODE}\n+K true\n-env X ${X}', template: true },
  envSh: '/app/releases/1.2.0/env.sh',
  cookie: undefined,
  elixir: false,
  configProvider: false,
};

const input: EnvironmentInput = {
  layout,
  baseEnv: { PATH: '/bin', X: 'from-baton' },
  cookie: 'c',
  handoff: 'fd',
  hasListener: true,
  baton: { name: 'baton-1@h', host: 'h' },
};

describe('environment stage', () => {
  it('starts the release as its start script would: its name as the app, short names like baton', () => {
    const env = environment(input, { RELEASE_NODE: 'shop-node' });
    expect(env).toMatchObject({ app: 'shop', longNames: false, envSh: { RELEASE_NODE: 'shop-node' } });
    expect(env.shInput).toMatchObject({
      PATH: '/bin',
      RELEASE_ROOT: '/app',
      RELEASE_NAME: 'shop',
      RELEASE_VSN: '1.2.0',
      RELEASE_COMMAND: 'start',
      RELEASE_NODE: 'shop',
      RELEASE_COOKIE: 'c',
    });
    expect(environment({ ...input, app: 'other' }, {}).app).toBe('other');
  });

  it('env.sh is sourced with RELEASE_NODE from baton’s environment when set, else the release name', () => {
    expect(envShInput(layout, { RELEASE_NODE: 'given' }, 'c')['RELEASE_NODE']).toBe('given');
    expect(envShInput(layout, { UNSET: undefined }, 'c')).not.toHaveProperty('UNSET');
  });

  it('long names when baton has them; a release asking for other names than baton’s is refused', () => {
    const long = { ...input, baton: { name: 'baton-1@10.0.0.1', host: '10.0.0.1' } };
    expect(environment(long, {}).longNames).toBe(true);
    expect(environment({ ...long, baton: { name: 'baton-1@::1', host: '::1' } }, {}).longNames).toBe(true);
    expect(() => environment(input, { RELEASE_DISTRIBUTION: 'name' })).toThrow(
      /the release uses long node names but baton's node baton-1@h does not/,
    );
    expect(() => environment({ ...input, baseEnv: { RELEASE_DISTRIBUTION: 'name' } }, {})).toThrow(PeerError);
    const nameInVmArgs = { ...layout, vmArgs: { path: '/v', text: '-name shop@host', template: false } };
    expect(() => environment({ ...input, layout: nameInVmArgs }, {})).toThrow(/long node names/);
    // env.sh's choice wins over baton's environment.
    expect(
      environment({ ...input, baseEnv: { RELEASE_DISTRIBUTION: 'name' } }, { RELEASE_DISTRIBUTION: 'sname' }),
    ).toMatchObject({ longNames: false });
  });

  it('fd handoff without a socket to hand over is refused', () => {
    expect(() => environment({ ...input, hasListener: false }, {})).toThrow(/fd handoff needs the bound listener/);
    expect(environment({ ...input, handoff: 'restart', hasListener: false }, {}).app).toBe('shop');
  });
});

describe('naming stage', () => {
  const env: Environment = environment(input, {});
  const base: NamingInput = {
    env,
    cookie: 'c',
    gen: 7,
    logDir: '/state/logs',
    batonHost: 'h',
    port: 4000,
    handoff: 'fd',
    listener: { port: 4100, family: 'inet' },
    endpoint: undefined,
  };

  it('names the node <base>-<gen>@<host> and puts its log and vm.args in the log dir', () => {
    const plan = naming(base);
    expect(plan.node).toBe('shop-7@h');
    expect(plan.log).toBe('/state/logs/shop-7@h.log');
    // The template filled from baton's environment; the name line is baton's to set.
    expect(plan.vmArgs).toEqual({ path: '/state/logs/shop-7@h.vm.args', text: '+K true\n-env X from-baton' });
    expect(plan.cmd).toBe('/app/erts-13.1.5/bin/erl');
    expect(plan.args.slice(0, 4)).toEqual(['-sname', 'shop-7@h', '-setcookie', 'c']);
    expect(plan.args).toContain('-args_file');
    expect(plan.args[plan.args.indexOf('-args_file') + 1]).toBe('/state/logs/shop-7@h.vm.args');
    expect(plan.env['ERL_CRASH_DUMP']).toBe('/state/logs/shop-7@h.erl_crash.dump');
  });

  it('takes the base from env.sh’s RELEASE_NODE, then baton’s, then the app; an explicit one wins', () => {
    const fromSh = environment({ ...input, baseEnv: { RELEASE_NODE: 'outer@x' } }, { RELEASE_NODE: 'inner@y' });
    expect(naming({ ...base, env: fromSh }).node).toBe('inner-7@h');
    const fromBaton = environment({ ...input, baseEnv: { RELEASE_NODE: 'outer@x' } }, {});
    expect(naming({ ...base, env: fromBaton }).node).toBe('outer-7@h');
    expect(naming({ ...base, nodeBase: 'mine' }).node).toBe('mine-7@h');
  });

  it('fd mode: the listener’s port, the socket as fd 3 in the environment and the endpoint config', () => {
    const plan = naming(base);
    expect(plan.port).toBe(4100);
    expect(plan.env).toMatchObject({ PORT: '4100', BATON_LISTEN_FD: String(LISTEN_FD), BATON_LISTEN_FAMILY: 'inet' });
    expect(plan.socket).toEqual({ fd: 3, inet6: false });
    expect(naming({ ...base, listener: { port: 4100, family: 'inet6' } }).socket).toEqual({ fd: 3, inet6: true });
  });

  it('reuseport and restart: the configured port; SO_REUSEPORT injected, or nothing', () => {
    const reuse = naming({ ...base, handoff: 'reuseport', listener: undefined });
    expect(reuse.port).toBe(4000);
    expect(reuse.env).toMatchObject({ PORT: '4000', BATON_REUSEPORT: '1' });
    expect(reuse.socket).toEqual({ reuseport: true });
    const restart = naming({ ...base, handoff: 'restart', listener: undefined, endpoint: 'MyWeb.Endpoint' });
    expect(restart.socket).toBeUndefined();
    expect(restart.env['BATON_ENDPOINT']).toBe('MyWeb.Endpoint');
    expect(restart.env['BATON_LISTEN_FD']).toBeUndefined();
  });

  it('on an IPv6 host the peer gets distribution over IPv6, once', () => {
    const v6 = environment({ ...input, baton: { name: 'baton-1@::1', host: '::1' } }, {});
    const plan = naming({ ...base, env: v6, batonHost: '::1' });
    expect(plan.node).toBe('shop-7@::1');
    expect(plan.args.slice(0, 2)).toEqual(['-name', 'shop-7@::1']);
    expect(plan.args.join(' ')).toContain('-proto_dist inet6_tcp');
    const given = environment(
      { ...input, baton: { name: 'b@::1', host: '::1' } },
      {
        ERL_AFLAGS: '-proto_dist inet6_tcp',
      },
    );
    expect(naming({ ...base, env: given, batonHost: '::1' }).args).not.toContain('-proto_dist');
  });

  it('is a function of its inputs: the same plan twice', () => {
    expect(naming(base)).toEqual(naming(base));
  });
});
