/**
 * fd injection into Phoenix endpoint config (baton_endpoint:inject/2) on a real `erl`
 * node: the app env shapes Phoenix generates (compile-time config in the .app, the
 * generated runtime.exs's `ip`/`port` set persistent as Config.Provider does), for
 * Bandit and Cowboy adapters, IPv4 and IPv6 sockets, and what is left alone.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Node } from '../../src/distribution/index.js';
import { charlistToString } from '../../src/etf/index.js';
import { describeEndpoints, injectEndpoints, loadHelpers, type PeerCall } from '../../src/peer/index.js';
import { closeAllBatons, type ErlNode, killAll, startBaton, startErl } from '../distribution/helpers.js';
import { fixtures } from '../support/fixtures.js';
import { newCookie } from '../support/nodes.js';

let baton: Node;
let work: string;
const cookie = newCookie();

// One app per case: its .app carries the compile-time endpoint config, as mix writes it.
const compileTime = (adapter: string | undefined): string =>
  `[{url, [{host, <<"localhost">>}]},${adapter ? ` {adapter, '${adapter}'},` : ''} {render_errors, [{layout, false}]}, {pubsub_server, 'Elixir.Demo.PubSub'}]`;

function writeApp(name: string, env: string): void {
  const ebin = join(work, name, 'ebin');
  mkdirSync(ebin, { recursive: true });
  writeFileSync(
    join(ebin, `${name}.app`),
    `{application, ${name}, [{vsn, "0.1.0"}, {modules, []}, {applications, [kernel, stdlib]}, {env, ${env}}]}.\n`,
  );
}

let erl: ErlNode;
let call: PeerCall;

async function show(expr: string): Promise<string> {
  return charlistToString(await baton.eval(erl.name, `lists:flatten(io_lib:format("~0p", [${expr}]))`)) ?? '';
}

const adapters: Record<string, string | undefined> = {
  phx_bandit: 'Elixir.Bandit.PhoenixAdapter',
  phx_bandit6: 'Elixir.Bandit.PhoenixAdapter',
  phx_ti: 'Elixir.Bandit.PhoenixAdapter',
  phx_https: 'Elixir.Bandit.PhoenixAdapter',
  phx_cowboy: 'Elixir.Phoenix.Endpoint.Cowboy2Adapter',
  phx_default: undefined,
  phx_other: 'Elixir.My.Adapter',
  phx_reuse_cowboy: 'Elixir.Phoenix.Endpoint.Cowboy2Adapter',
  phx_reuse_bandit: 'Elixir.Bandit.PhoenixAdapter',
};

/**
 * Sets the endpoint's config the way Config.Provider does with runtime.exs: the
 * compile-time keys merged with the runtime ones, persistent, before the app loads.
 */
async function runtimeConfig(app: string, runtime: string): Promise<void> {
  const adapter = adapters[app];
  const conf = `[{adapter, '${adapter ?? 'Elixir.Phoenix.Endpoint.Cowboy2Adapter'}'} || ${adapter !== undefined ? 'true' : 'false'}] ++ [{render_errors, [{layout, false}]}, {pubsub_server, 'Elixir.Demo.PubSub'} | ${runtime}]`;
  await baton.eval(
    erl.name,
    `ok = application:set_env(${app}, 'Elixir.DemoWeb.Endpoint', ${conf}, [{persistent, true}])`,
  );
}

beforeAll(async () => {
  const fx = await fixtures();
  work = mkdtempSync(join(tmpdir(), 'baton-inject-'));
  for (const [app, adapter] of Object.entries(adapters))
    writeApp(app, `[{'Elixir.DemoWeb.Endpoint', ${compileTime(adapter)}}]`);
  writeApp('not_phx', `[{'Elixir.Demo.Client', [{http, [{port, 80}, {ip, {127,0,0,1}}]}, {timeout, 5000}]}]`);
  erl = await startErl({
    cookie,
    args: ['-pa', ...[...Object.keys(adapters), 'not_phx'].map((a) => join(work, a, 'ebin'))],
  });
  baton = await startBaton({ cookie });
  await loadHelpers(baton, erl.name, fx.erlEbin);
  call = (m, f, a, t) => baton.erpc(erl.name, m, f, a, { timeoutMs: t ?? 10_000 });
});

afterAll(async () => {
  await closeAllBatons();
  await killAll();
  rmSync(work, { recursive: true, force: true });
});

const generated = (extra = ''): string =>
  `[{url, [{host, <<"example.com">>}, {port, 443}, {scheme, <<"https">>}]}, {http, [{ip, {0,0,0,0,0,0,0,0}}, {port, 4000}${extra}]}, {secret_key_base, <<"s">>}, {server, true}]`;

describe('inject', () => {
  it('Bandit: thousand_island_options listen on the fd with port 0; the generated ip is dropped; it survives application:load', async () => {
    await runtimeConfig('phx_bandit', generated());
    const r = await injectEndpoints(call, ['phx_bandit'], { fd: 3, inet6: false });
    expect(r).toEqual([
      {
        app: 'phx_bandit',
        endpoint: 'DemoWeb.Endpoint',
        adapter: 'bandit',
        result: 'injected',
        http: '[{port,4000},{thousand_island_options,[{port,0},{transport_options,[{fd,3}]}]}]',
      },
    ]);
    // Unloading and loading again (what ensure_all_started's load does to a fresh app)
    // reads the .app env: only persistent values survive it.
    await baton.eval(erl.name, 'ok = application:unload(phx_bandit), ok = application:load(phx_bandit)');
    expect(
      await show(`proplists:get_value(http, element(2, application:get_env(phx_bandit, 'Elixir.DemoWeb.Endpoint')))`),
    ).toBe('[{port,4000},{thousand_island_options,[{port,0},{transport_options,[{fd,3}]}]}]');
    // Everything else the endpoint had is still there.
    expect(
      await show(
        `proplists:get_value(secret_key_base, element(2, application:get_env(phx_bandit, 'Elixir.DemoWeb.Endpoint')))`,
      ),
    ).toBe('<<"s">>');
  });

  it('Bandit on an IPv6 socket (Fly): inet6 beside the fd', async () => {
    await runtimeConfig('phx_bandit6', generated());
    const [r] = await injectEndpoints(call, ['phx_bandit6'], { fd: 3, inet6: true });
    expect(r?.http).toBe('[{port,4000},{thousand_island_options,[{port,0},{transport_options,[{fd,3},inet6]}]}]');
  });

  it("Bandit: the app's own thousand_island_options are kept, minus what the fd decides", async () => {
    await runtimeConfig(
      'phx_ti',
      generated(
        ', {thousand_island_options, [{num_acceptors, 10}, {transport_options, [{ip, {127,0,0,1}}, {nodelay, false}]}]}',
      ),
    );
    const [r] = await injectEndpoints(call, ['phx_ti'], { fd: 4, inet6: false });
    expect(r?.http).toBe(
      '[{port,4000},{thousand_island_options,[{num_acceptors,10},{transport_options,[{fd,4},{nodelay,false}]},{port,0}]}]',
    );
  });

  it('Cowboy: port 0 and the fd as options, ip dropped, other options kept', async () => {
    await runtimeConfig('phx_cowboy', generated(', {protocol_options, [{idle_timeout, 1000}]}'));
    const [r] = await injectEndpoints(call, ['phx_cowboy'], { fd: 3, inet6: true });
    expect(r).toMatchObject({
      adapter: 'cowboy',
      result: 'injected',
      http: '[{port,0},{fd,3},inet6,{protocol_options,[{idle_timeout,1000}]}]',
    });
  });

  it("no adapter configured is Phoenix's default, Cowboy", async () => {
    await runtimeConfig('phx_default', generated());
    const [r] = await injectEndpoints(call, ['phx_default'], { fd: 3, inet6: false });
    expect(r).toMatchObject({ adapter: 'cowboy', result: 'injected', http: '[{port,0},{fd,3}]' });
  });

  it('an adapter baton does not know is left as configured, and said so', async () => {
    await runtimeConfig('phx_other', generated());
    const before = await show(`application:get_env(phx_other, 'Elixir.DemoWeb.Endpoint')`);
    expect(await injectEndpoints(call, ['phx_other'], { fd: 3, inet6: false })).toEqual([
      { app: 'phx_other', endpoint: 'DemoWeb.Endpoint', adapter: 'My.Adapter', result: 'skipped: unknown_adapter' },
    ]);
    expect(await show(`application:get_env(phx_other, 'Elixir.DemoWeb.Endpoint')`)).toBe(before);
  });

  it('reuseport: Cowboy gets the raw SO_REUSEPORT option beside its own ip and port; Bandit cannot take it and is left alone', async () => {
    await runtimeConfig('phx_reuse_cowboy', generated());
    const [c] = await injectEndpoints(call, ['phx_reuse_cowboy'], { reuseport: true });
    expect(c).toMatchObject({
      result: 'injected',
      http: '[{ip,{0,0,0,0,0,0,0,0}},{port,4000},{raw,1,15,<<1,0,0,0>>}]',
    });
    await runtimeConfig('phx_reuse_bandit', generated());
    const before = await show(`application:get_env(phx_reuse_bandit, 'Elixir.DemoWeb.Endpoint')`);
    const [b] = await injectEndpoints(call, ['phx_reuse_bandit'], { reuseport: true });
    expect(b).toMatchObject({ adapter: 'bandit', result: 'skipped: reuseport_unsupported' });
    expect(await show(`application:get_env(phx_reuse_bandit, 'Elixir.DemoWeb.Endpoint')`)).toBe(before);
  });

  it('an endpoint serving https only is left alone', async () => {
    await runtimeConfig('phx_https', `[{url, [{host, <<"h">>}]}, {https, [{port, 443}]}, {secret_key_base, <<"s">>}]`);
    expect(await injectEndpoints(call, ['phx_https'], { fd: 3, inet6: false })).toEqual([
      { app: 'phx_https', endpoint: 'DemoWeb.Endpoint', adapter: 'bandit', result: 'skipped: no_http' },
    ]);
  });

  it('config that merely has an http key (an HTTP client) is not an endpoint', async () => {
    expect(await injectEndpoints(call, ['not_phx'], { fd: 3, inet6: false })).toEqual([]);
    expect(await show(`application:get_env(not_phx, 'Elixir.Demo.Client')`)).toBe(
      '{ok,[{http,[{port,80},{ip,{127,0,0,1}}]},{timeout,5000}]}',
    );
  });

  it('describe names the endpoints of loaded apps with their adapter and port', async () => {
    const found = await describeEndpoints(call);
    expect(found).toContainEqual({
      kind: 'phoenix',
      name: 'DemoWeb.Endpoint',
      app: 'phx_bandit',
      adapter: 'bandit',
      port: 0,
    });
    expect(found).toContainEqual({
      kind: 'phoenix',
      name: 'DemoWeb.Endpoint',
      app: 'phx_cowboy',
      adapter: 'cowboy',
      port: 0,
    });
    expect(found.filter((e) => e.app === 'not_phx')).toEqual([]);
  });
});
