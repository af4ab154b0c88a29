/**
 * The Cowboy build of demo_phx, booted as a user boots it (`bin/demo_phx start` with
 * PHX_SERVER, SECRET_KEY_BASE and PORT): the Phoenix Cowboy2Adapter / Plug.Cowboy /
 * ranch stand-ins must show baton what a real Phoenix app on Cowboy shows it — one ranch
 * listener found by `ranch:info()`, acceptors that park in
 * `ranch_conns_sup:start_protocol/2` at max_connections, a suspend that stops accepting
 * but keeps connections, and Cowboy's max_keepalive closing keep-alive connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtures } from '../support/fixtures.js';
import { KeepAlive } from '../support/keepalive.js';
import { Control, getOnce, newCookie, type Started, startDemoPhx } from '../support/nodes.js';

const REF = "'Elixir.DemoPhxWeb.Endpoint.HTTP'";
const cookie = newCookie();
let ctl: Control;
let peer: Started | undefined;
const open: KeepAlive[] = [];

/** A kept-alive connection closed in afterAll, whatever the test did with it. */
async function openKept(port: number, host: string): Promise<KeepAlive> {
  const ka = await KeepAlive.open(port, host);
  open.push(ka);
  return ka;
}

/** Evaluates the expressions `expr` on the peer, by its own erl_eval. */
const onPeer = <T = unknown>(expr: string): Promise<T> => ctl.evalOn<T>(peer!.node, expr);

beforeAll(async () => {
  const fx = await fixtures();
  ctl = new Control(fx.erlEbin, cookie);
  peer = await startDemoPhx(fx.demoPhx.cowboy, { cookie });
}, 180_000);

afterAll(async () => {
  for (const ka of open) ka.close();
  await peer?.stop();
  await ctl?.close();
});

describe('demo_phx on the Cowboy stand-ins', () => {
  it('serves GET / over IPv4 and IPv6 (runtime.exs binds ::)', async () => {
    const p = peer!;
    expect(await getOnce(`http://127.0.0.1:${p.port}/`)).toEqual({ node: p.node, server: 'cowboy', vsn: '0.1.0' });
    expect(await getOnce(`http://[::1]:${p.port}/`)).toEqual({ node: p.node, server: 'cowboy', vsn: '0.1.0' });
    expect(peer!.output()).toMatch(
      new RegExp(`Running DemoPhxWeb\\.Endpoint with cowboy.* at :::${p.port} \\(http\\)`),
    );
  });

  it('has one ranch listener, as Plug.Cowboy sets it up, under the endpoint', async () => {
    const info = await onPeer<Record<string, unknown>>(`
      [{Ref, I}] = ranch:info(),
      #{socket_opts := SockOpts} = TO = proplists:get_value(transport_options, I),
      LSup = proplists:get_value(pid, I),
      {dictionary, D} = process_info(LSup, dictionary),
      #{ref => Ref,
        key_order => [K || {K, _} <- I],
        status => proplists:get_value(status, I), port => proplists:get_value(port, I),
        ip => inet:ntoa(proplists:get_value(ip, I)), same_port => (ranch:get_port(Ref) =:= proplists:get_value(port, I)),
        transport => proplists:get_value(transport, I), protocol => proplists:get_value(protocol, I),
        max => proplists:get_value(max_connections, I),
        acceptors => maps:get(num_acceptors, TO), socket_opts => [K || {K, _} <- SockOpts],
        ip_opt => inet:ntoa(proplists:get_value(ip, SockOpts)),
        parent => hd(proplists:get_value('$ancestors', D)),
        children => [Id || {Id, _, _, _} <- supervisor:which_children(LSup)],
        acceptor_procs => length(ranch:procs(Ref, acceptors)),
        acceptors_in_accept => length([P || P <- ranch:procs(Ref, acceptors),
                                            {current_function, {prim_inet, accept0, 3}} =:= process_info(P, current_function)]),
        stream_handlers => maps:get(stream_handlers, proplists:get_value(protocol_options, I))}`);
    expect(info).toMatchObject({
      ref: 'Elixir.DemoPhxWeb.Endpoint.HTTP',
      key_order: [
        'pid',
        'status',
        'ip',
        'port',
        'max_connections',
        'active_connections',
        'all_connections',
        'transport',
        'transport_options',
        'protocol',
        'protocol_options',
      ],
      status: 'running',
      port: peer!.port,
      same_port: true,
      ip: '::',
      transport: 'ranch_tcp',
      protocol: 'cowboy_clear',
      max: 16384,
      acceptors: 100,
      // The endpoint's http options, port last (Phoenix appends it), otp_app dropped.
      socket_opts: ['ip', 'port'],
      ip_opt: '::',
      // Phoenix puts the listener under the endpoint's supervisor, not under ranch_sup.
      parent: 'Elixir.DemoPhxWeb.Endpoint',
      // which_children lists the newest first: conns sup started before acceptors sup.
      children: ['ranch_acceptors_sup', 'ranch_conns_sup'],
      acceptor_procs: 100,
      acceptors_in_accept: 100,
      stream_handlers: ['cowboy_telemetry_h', 'cowboy_stream_h'],
    });
  });

  it('parks acceptors in ranch_conns_sup:start_protocol/2 at max_connections, and lets them go when it rises', async () => {
    const parked = `length([P || P <- ranch:procs(${REF}, acceptors),
                     process_info(P, current_function) =:= {current_function, {ranch_conns_sup, start_protocol, 2}}])`;
    expect(await onPeer<number>(parked)).toBe(0);
    expect(await onPeer(`ranch:set_max_connections(${REF}, 0)`)).toBe('ok');
    expect(await onPeer(`ranch:get_max_connections(${REF})`)).toBe(0);
    // Each fresh connection is still served, but the acceptor that took it then sleeps.
    for (let i = 0; i < 5; i++) {
      expect(await getOnce(`http://127.0.0.1:${peer!.port}/`)).toMatchObject({ server: 'cowboy' });
    }
    await expect.poll(() => onPeer<number>(parked), { timeout: 5000, interval: 50 }).toBe(5);
    // Connections ending make no room under 0: they stay parked.
    expect(await onPeer(`ranch:wait_for_connections(${REF}, '==', 0, 10)`)).toBe('ok');
    expect(await onPeer<number>(parked)).toBe(5);
    expect(await onPeer(`ranch:set_max_connections(${REF}, 16384)`)).toBe('ok');
    await expect.poll(() => onPeer<number>(parked), { timeout: 5000, interval: 50 }).toBe(0);
    expect(await getOnce(`http://127.0.0.1:${peer!.port}/`)).toMatchObject({ server: 'cowboy' });
  });

  it("closes a keep-alive connection on Cowboy's max_keepalive (1000) request", async () => {
    const ka = await openKept(peer!.port, '127.0.0.1');
    const conns = await onPeer<number>(`proplists:get_value(active_connections, ranch:info(${REF}))`);
    expect(conns).toBe(1);
    for (let i = 1; i < 1000; i++) {
      const a = await ka.get('/');
      // Not 100: Cowboy 2.12's default is 1000 (see cowboy_http's max_keepalive).
      if (a.headers['connection'] !== 'keep-alive')
        throw new Error(`request ${i}: connection ${a.headers['connection']}`);
    }
    const last = await ka.get('/');
    expect(last.headers['connection']).toBe('close');
    expect(last.body).toMatchObject({ server: 'cowboy' });
    await ka.closedByServer();
    expect(await onPeer(`ranch:wait_for_connections(${REF}, '==', 0, 10)`)).toBe('ok');
  }, 60_000);

  it('listens on a bound fd given as `http: [:inet6, port: 0, fd: N]`, and refuses an ip beside it (einval)', async () => {
    // A dual-stack socket bound (not listening) on the peer, as baton hands one over;
    // its holder process keeps it open. Then a second endpoint's listeners, built by
    // the adapter from the config baton injects.
    const r = await onPeer<{ port: number; ranch_port: number; with_ip: boolean }>(`
      Me = self(),
      Bind = fun() ->
          {ok, S} = socket:open(inet6, stream, tcp),
          ok = socket:setopt(S, {ipv6, v6only}, false),
          ok = socket:bind(S, #{family => inet6, addr => any, port => 0}),
          {ok, #{port := P}} = socket:sockname(S),
          {ok, Fd} = socket:getopt(S, {otp, fd}),
          {Fd, P}
        end,
      Holder = spawn(fun() ->
          {Fd1, P1} = Bind(),
          {Fd2, _} = Bind(),
          Me ! {bound, Fd1, P1, Fd2},
          receive stop -> ok end
        end),
      register(phx_cowboy_fd_holder, Holder),
      receive {bound, Fd, Port, OtherFd} -> ok end,
      Specs = 'Elixir.Phoenix.Endpoint.Cowboy2Adapter':child_specs('Elixir.FdTest.Endpoint',
                [{otp_app, demo_phx}, {http, [inet6, {port, 0}, {fd, Fd}]}]),
      {ok, Sup} = 'Elixir.Supervisor':start_link(Specs, [{strategy, one_for_one}]),
      unlink(Sup),
      register(phx_cowboy_fd_sup, Sup),
      %% Another fd: the failed listen takes its fd away from whoever holds it.
      Bad = 'Elixir.Phoenix.Endpoint.Cowboy2Adapter':child_specs('Elixir.FdTest.Endpoint2',
                [{otp_app, demo_phx}, {http, [inet6, {ip, {0,0,0,0,0,0,0,0}}, {port, 0}, {fd, OtherFd}]}]),
      process_flag(trap_exit, true),
      {error, E} = 'Elixir.Supervisor':start_link(Bad, [{strategy, one_for_one}]),
      #{port => Port, ranch_port => ranch:get_port('Elixir.FdTest.Endpoint.HTTP'),
        with_ip => string:find(io_lib:format("~0p", [E]), "einval") =/= nomatch}`);
    expect(r.ranch_port).toBe(r.port);
    expect(r.with_ip).toBe(true);
    expect(await getOnce(`http://127.0.0.1:${r.port}/`)).toMatchObject({ node: peer!.node, server: 'cowboy' });
    expect(await getOnce(`http://[::1]:${r.port}/`)).toMatchObject({ node: peer!.node, server: 'cowboy' });
    expect(await onPeer(`[Ref || {Ref, _} <- ranch:info()]`)).toEqual([
      'Elixir.DemoPhxWeb.Endpoint.HTTP',
      'Elixir.FdTest.Endpoint.HTTP',
    ]);
    await onPeer(`gen_server:stop(phx_cowboy_fd_sup), phx_cowboy_fd_holder ! stop`);
    await expect
      .poll(() => onPeer<unknown[]>(`[Ref || {Ref, _} <- ranch:info()]`))
      .toEqual(['Elixir.DemoPhxWeb.Endpoint.HTTP']);
  });

  it('suspend_listener stops accepting while open connections keep being served; resume listens again', async () => {
    const p = peer!;
    const ka = await openKept(p.port, '::1');
    expect((await ka.get('/')).headers['connection']).toBe('keep-alive');
    expect(await onPeer(`ranch:suspend_listener(${REF})`)).toBe('ok');
    expect(
      await onPeer(`#{status => ranch:get_status(${REF}), acceptors => ranch:procs(${REF}, acceptors),
                      addr => ranch:get_addr(${REF}), conns => length(ranch:procs(${REF}, connections))}`),
    ).toEqual({ status: 'suspended', acceptors: [], addr: [null, null], conns: 1 });
    await expect(getOnce(`http://127.0.0.1:${p.port}/`)).rejects.toThrow(/ECONNREFUSED/);
    await expect(getOnce(`http://[::1]:${p.port}/`)).rejects.toThrow(/ECONNREFUSED/);
    for (let i = 0; i < 3; i++) {
      const a = await ka.get('/');
      expect(a.headers['connection']).toBe('keep-alive');
      expect(a.body).toMatchObject({ node: p.node, server: 'cowboy' });
    }
    // The drain baton waits for: the conns sup counts the open connection until it ends.
    expect(await onPeer(`ranch:wait_for_connections(${REF}, '>=', 1, 10)`)).toBe('ok');
    ka.close();
    expect(await onPeer(`ranch:wait_for_connections(${REF}, '==', 0, 10)`)).toBe('ok');
    expect(await onPeer(`ranch:resume_listener(${REF})`)).toBe('ok');
    expect(await onPeer(`{ranch:get_status(${REF}), ranch:get_port(${REF})}`)).toEqual(['running', p.port]);
    expect(await getOnce(`http://127.0.0.1:${p.port}/`)).toMatchObject({ node: p.node, server: 'cowboy' });
  });
});
