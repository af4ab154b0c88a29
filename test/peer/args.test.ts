/** The pure rules of starting a peer: command line, vm.args, names, environment. */
import { describe, expect, it } from 'vitest';
import {
  envChanges,
  erlPath,
  filterVmArgs,
  nodeBase,
  parseEnv0,
  peerArgs,
  peerEnv,
  peerNodeName,
  protoDistArgs,
  type ReleaseLayout,
  vmArgsName,
} from '../../src/peer/index.js';

const layout: ReleaseLayout = {
  root: '/app',
  name: 'shop',
  vsn: '1.2.0',
  relDir: '/app/releases/1.2.0',
  ertsBin: undefined,
  libEbins: ['/app/lib/kernel-8.5.3/ebin', '/app/lib/shop-1.2.0/ebin'],
  consolidated: '/app/releases/1.2.0/consolidated',
  sysConfig: '/app/releases/1.2.0/sys.config',
  vmArgs: undefined,
  envSh: undefined,
  cookie: undefined,
  elixir: true,
  configProvider: true,
};

describe('peer args', () => {
  it('erl of the release ERTS, else PATH', () => {
    expect(erlPath(layout)).toBe('erl');
    expect(erlPath({ ertsBin: '/app/erts-13.1.5/bin' })).toBe('/app/erts-13.1.5/bin/erl');
  });

  it('builds the command line: name, cookie, start_clean, config, args file, code path', () => {
    expect(peerArgs({ layout, node: 'shop-3@h', longNames: false, cookie: 'c', argsFile: '/s/vm.args' })).toEqual([
      '-sname',
      'shop-3@h',
      '-setcookie',
      'c',
      '-boot',
      '/app/releases/1.2.0/start_clean',
      '-boot_var',
      'RELEASE_LIB',
      '/app/lib',
      '-noinput',
      '-config',
      '/app/releases/1.2.0/sys.config',
      '-args_file',
      '/s/vm.args',
      // -pa reverses: consolidated ends up first in the code path.
      '-pa',
      '/app/lib/kernel-8.5.3/ebin',
      '/app/lib/shop-1.2.0/ebin',
      '/app/releases/1.2.0/consolidated',
    ]);
    expect(
      peerArgs({ layout, node: 'n@10.0.0.1', longNames: true, cookie: 'c', argsFile: undefined }).slice(0, 2),
    ).toEqual(['-name', 'n@10.0.0.1']);
  });

  it('drops what baton sets from vm.args and fills relx ${VAR} templates', () => {
    const text = '-sname ${NODE}\n-setcookie ${COOKIE}\n+K true\n-mode embedded\n-env X ${X}\n## comment';
    expect(filterVmArgs(text, { X: 'y' }, true)).toBe('+K true\n-env X y\n## comment');
    expect(filterVmArgs('-env X ${X}', { X: 'y' }, false)).toBe('-env X ${X}');
    expect(vmArgsName('+K true\n-name app@host')).toEqual({ long: true, name: 'app@host' });
    expect(vmArgsName('+K true')).toBeUndefined();
  });

  it('asks for inet6_tcp on an IPv6 host only when the release does not already (twice falls back to IPv4)', () => {
    expect(protoDistArgs('::1', {}, undefined)).toEqual(['-proto_dist', 'inet6_tcp']);
    expect(protoDistArgs('fdaa:0:1::3', { ERL_AFLAGS: '-proto_dist inet6_tcp' }, undefined)).toEqual([]);
    expect(protoDistArgs('::1', { ERL_FLAGS: '+K true -proto_dist inet6_tcp' }, undefined)).toEqual([]);
    expect(protoDistArgs('::1', {}, '-name a@b\n-proto_dist inet6_tcp\n')).toEqual([]);
    expect(protoDistArgs('::1', { ERL_AFLAGS: '-proto_distx' }, '## -proto_dist inet6_tcp\n')).toEqual([
      '-proto_dist',
      'inet6_tcp',
    ]);
    expect(protoDistArgs('host.example', { ERL_AFLAGS: '' }, undefined)).toEqual([]);
  });

  it('names peers <base>-<gen>@<host> from RELEASE_NODE or the app', () => {
    expect(nodeBase('myapp@fly-local-6pn', 'shop')).toBe('myapp');
    expect(nodeBase(undefined, 'shop')).toBe('shop');
    expect(nodeBase('we!rd', 'shop')).toBe('we_rd');
    expect(peerNodeName('shop', 7, 'host')).toBe('shop-7@host');
  });

  it('gives the peer the start script variables, env.sh exports and the injection contract', () => {
    const env = peerEnv({
      base: { PATH: '/bin', BATON_HANDOFF: 'fd', BATON_LISTEN_FD: '9' },
      layout,
      envSh: { ERL_AFLAGS: '-proto_dist inet6_tcp', RELEASE_NODE: 'from-env-sh' },
      node: 'shop-3@h',
      cookie: 'c',
      port: 4000,
      handoff: 'fd',
      fd: { n: 3, family: 'inet6' },
      endpoint: 'my_endpoint',
    });
    expect(env).toMatchObject({
      PATH: '/bin',
      RELEASE_ROOT: '/app',
      RELEASE_NAME: 'shop',
      RELEASE_VSN: '1.2.0',
      RELEASE_NODE: 'shop-3@h',
      RELEASE_COOKIE: 'c',
      ERL_AFLAGS: '-proto_dist inet6_tcp',
      PHX_SERVER: 'true',
      PORT: '4000',
      BATON_PEER: '1',
      BATON_LISTEN_FD: '3',
      BATON_LISTEN_FAMILY: 'inet6',
      BATON_ENDPOINT: 'my_endpoint',
    });
    expect(env['BATON_HANDOFF']).toBeUndefined();
    const reuse = peerEnv({
      base: { PHX_SERVER: 'false' },
      layout,
      envSh: {},
      node: 'n@h',
      cookie: 'c',
      port: 80,
      handoff: 'reuseport',
      endpoint: undefined,
    });
    expect(reuse).toMatchObject({ BATON_REUSEPORT: '1', PHX_SERVER: 'false', PORT: '80' });
    expect(reuse['BATON_LISTEN_FD']).toBeUndefined();
  });

  it('reads what env.sh exported', () => {
    const after = parseEnv0('A=1\0B=x=y\0PWD=/tmp\0C=3\0');
    expect(after).toEqual({ A: '1', B: 'x=y', PWD: '/tmp', C: '3' });
    expect(envChanges({ A: '1', C: '2' }, after)).toEqual({ B: 'x=y', C: '3' });
  });
});
