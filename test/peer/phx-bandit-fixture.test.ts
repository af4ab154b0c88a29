/**
 * demo_phx built with `adapter: Bandit.PhoenixAdapter`: the Bandit 1.11.1 / ThousandIsland
 * 1.5.0 stand-ins boot as a user's release would (`bin/demo_phx start`, PHX_SERVER, PORT,
 * the generated `ip: {0,0,0,0,0,0,0,0}`), and show baton what a real Phoenix-on-Bandit app
 * shows: the ThousandIsland.Server supervisor and its children, the option merging of
 * Bandit and of ThousandIsland.Transports.TCP, and how suspending stops accepting while
 * open keep-alive connections are still served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtures } from '../support/fixtures.js';
import { KeepAlive } from '../support/keepalive.js';
import { Control, getOnce, newCookie, type Started, startDemoPhx } from '../support/nodes.js';

let ctl: Control;
let app: Started;
const cookie = newCookie();

/** Evaluates `body` (Erlang expressions) inside the demo_phx node, by its own erl_eval. */
const onNode = <T = unknown>(body: string): Promise<T> => ctl.evalOn<T>(app.node, body);

/** Binds Srv to the endpoint's ThousandIsland server, as Bandit.PhoenixAdapter finds it. */
const SRV = `{ok, Srv} = 'Elixir.Bandit.PhoenixAdapter':bandit_pid('Elixir.DemoPhxWeb.Endpoint')`;

/** How many processes sleep in a request (`/slow`, Process.sleep/1) on the node. */
const SLEEPERS = `length([P || P <- erlang:processes(),
                               erlang:process_info(P, current_function) =:= {current_function, {'Elixir.Process', sleep, 1}}])`;

/** Formats a term as Erlang prints it, so tuples and atoms keep their shape through JSON. */
const fmt = (expr: string): string => `lists:flatten(io_lib:format("~0p", [${expr}]))`;

beforeAll(async () => {
  const fx = await fixtures();
  ctl = new Control(fx.erlEbin, cookie);
  app = await startDemoPhx(fx.demoPhx.bandit, { cookie });
}, 120_000);

afterAll(async () => {
  await app?.stop();
  await ctl?.close();
});

describe('demo_phx on the Bandit / ThousandIsland stand-ins', () => {
  it('serves GET / over IPv4 and IPv6: the generated ip {0,0,0,0,0,0,0,0} binds dual stack', async () => {
    const want = { server: 'bandit', node: app.node, vsn: '0.1.0' };
    expect(await getOnce(`http://127.0.0.1:${app.port}/`)).toEqual(want);
    expect(await getOnce(`http://[::1]:${app.port}/`)).toEqual(want);
    expect(
      await onNode<string>(
        fmt(
          `'Elixir.ThousandIsland':listener_info(element(2, 'Elixir.Bandit.PhoenixAdapter':bandit_pid('Elixir.DemoPhxWeb.Endpoint')))`,
        ),
      ),
    ).toBe(`{ok,{{0,0,0,0,0,0,0,0},${app.port}}}`);
  });

  it('has the ThousandIsland supervision tree under the endpoint', async () => {
    const tree = await onNode<Record<string, unknown>>(`
      ${SRV},
      {dictionary, D} = erlang:process_info(Srv, dictionary),
      [{_, Pool, _, _}] = [C || {acceptor_pool_supervisor, _, _, _} = C <- supervisor:which_children(Srv)],
      Accs = supervisor:which_children(Pool),
      [{_, Acc1, _, _}] = [C || {<<"acceptor-1">>, _, _, _} = C <- Accs],
      {ok, ListenerSpec} = supervisor:get_childspec(Srv, listener),
      {ok, AcceptorSpec} = supervisor:get_childspec(Acc1, acceptor),
      ConnSup = 'Elixir.ThousandIsland.AcceptorSupervisor':connection_sup_pid(Acc1),
      #{initial_call => ${fmt('proc_lib:initial_call(Srv)')},
        dict_initial_call => ${fmt("proplists:get_value('$initial_call', D)")},
        parent => ${fmt("hd(proplists:get_value('$ancestors', D))")},
        ids => ${fmt('[Id || {Id, _, _, _} <- supervisor:which_children(Srv)]')},
        strategy => element(3, sys:get_state(Srv)),
        listener_restart => maps:get(restart, ListenerSpec),
        acceptors => length(Accs),
        acceptor_ids => lists:sort([Id || {Id, _, _, _} <- Accs]) -- [<<"acceptor-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 100)],
        acc_children => ${fmt('[{Id, T} || {Id, _, T, _} <- supervisor:which_children(Acc1)]')},
        acc_strategy => element(3, sys:get_state(Acc1)),
        acceptor_restart => maps:get(restart, AcceptorSpec),
        connection_sup => ${fmt('proc_lib:initial_call(ConnSup)')},
        connection_sup_max => maps:get(max_children, sys:get_state(ConnSup))}`);
    expect(tree).toEqual({
      initial_call: "{supervisor,'Elixir.ThousandIsland.Server',['Argument__1']}",
      dict_initial_call: "{supervisor,'Elixir.ThousandIsland.Server',1}",
      parent: "'Elixir.DemoPhxWeb.Endpoint'",
      ids: '[shutdown_listener,acceptor_pool_supervisor,listener]',
      strategy: 'rest_for_one',
      listener_restart: 'transient',
      acceptors: 100,
      acceptor_ids: [],
      acc_children: '[{acceptor,worker},{connection_sup,supervisor}]',
      acc_strategy: 'rest_for_one',
      acceptor_restart: 'transient',
      // Elixir's DynamicSupervisor reports itself as a supervisor (for observer and the like).
      connection_sup: "{supervisor,'Elixir.Supervisor.Default',['Argument__1']}",
      connection_sup_max: 16384,
    });
  });

  it('merges the endpoint config as Bandit does: ip after the transport options, port and handler put only when absent', async () => {
    // The running server, from the generated runtime.exs (ip + PORT).
    const cfg = await onNode<Record<string, string>>(`
      ${SRV},
      {ok, #{start := {_, _, [C]}}} = supervisor:get_childspec(Srv, listener),
      #{port => maps:get(port, C), transport => ${fmt('maps:get(transport_options, C)')},
        handler => maps:get(handler_module, C), transport_module => maps:get(transport_module, C),
        num_acceptors => maps:get(num_acceptors, C)}`);
    expect(cfg).toEqual({
      port: app.port,
      transport: '[{ip,{0,0,0,0,0,0,0,0}}]',
      handler: 'Elixir.Bandit.DelegatingHandler',
      transport_module: 'Elixir.ThousandIsland.Transports.TCP',
      num_acceptors: 100,
    });

    // Unknown keys raise, at the top level and inside thousand_island_options.
    const errors = await onNode<string[]>(`
      Try = fun(Opts) ->
        try 'Elixir.Bandit':start_link([{plug, 'Elixir.DemoPhxWeb.Endpoint'} | Opts]) of R -> ${fmt('R')}
        catch error:E -> binary_to_list(maps:get(message, E)) end
      end,
      [Try([{port, 0}, {bogus, 1}]), Try([{thousand_island_options, [{port, 0}, {num_acceptor, 3}]}])]`);
    expect(errors).toEqual([
      'Unsupported key(s) in top level config: [:bogus]',
      'Unsupported key(s) in thousand_island_options config: [:num_acceptor]',
    ]);

    // An endpoint http config as baton injects it: a listen socket's fd with port 0. With the
    // generated ip still there, Bandit appends it to the transport options and the listen
    // fails (an fd takes no ip); without it, the server takes the fd and reports its port,
    // whatever the top-level port says. The holder keeps the original socket open (and never
    // accepts), as baton's parent does.
    const fd = await onNode<Record<string, string | number>>(`
      process_flag(trap_exit, true),
      Self = self(),
      Holder = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [inet6, {active, false}]),
        Self ! {held, L},
        receive stop -> ok end
      end),
      L = receive {held, Sock} -> Sock end,
      {ok, Fd} = inet:getfd(L),
      {ok, {_, Port}} = inet:sockname(L),
      Conf = fun(Http) -> lists:keystore(http, 1, 'Elixir.DemoPhxWeb.Endpoint':config(), {http, Http}) end,
      Start = fun(Http) ->
        [#{start := {M, F, A}}] = 'Elixir.Bandit.PhoenixAdapter':child_specs('Elixir.DemoPhxWeb.Endpoint', Conf(Http)),
        apply(M, F, A)
      end,
      TI = [{thousand_island_options, [{port, 0}, {transport_options, [inet6, {fd, Fd}]}]}],
      WithIp = Start([{ip, {0,0,0,0,0,0,0,0}}, {port, 4000} | TI]),
      {ok, Pid} = Start([{port, 4000} | TI]),
      unlink(Pid),
      {ok, #{start := {_, _, [C]}}} = supervisor:get_childspec(Pid, listener),
      {ok, {_, Bound}} = 'Elixir.ThousandIsland':listener_info(Pid),
      persistent_term:put(phx_bandit_fixture_test, {Pid, Holder}),
      #{with_ip => ${fmt('WithIp')}, transport => ${fmt('maps:get(transport_options, C)')},
        fd => Fd, held_port => Port, bound_port => Bound}`);
    expect(fd['with_ip']).toBe('{error,{shutdown,{failed_to_start_child,listener,einval}}}');
    expect(fd['transport']).toBe(`[inet6,{fd,${fd['fd']}}]`);
    expect(fd['bound_port']).toBe(fd['held_port']);
    // The injected server serves on that socket, over IPv6 and (dual stack) IPv4.
    expect(await getOnce(`http://[::1]:${fd['held_port']}/`)).toMatchObject({ server: 'bandit', node: app.node });
    expect(await getOnce(`http://127.0.0.1:${fd['held_port']}/`)).toMatchObject({ server: 'bandit' });
    expect(
      await onNode<string>(`
        {Pid, Holder} = persistent_term:get(phx_bandit_fixture_test),
        persistent_term:erase(phx_bandit_fixture_test),
        Holder ! stop,
        ${fmt("'Elixir.ThousandIsland':stop(Pid, 1000)")}`),
    ).toBe('ok');
  });

  it('ThousandIsland.Transports.TCP.listen merges options as the real one does', async () => {
    const r = await onNode<Record<string, string>>(`
      TCP = 'Elixir.ThousandIsland.Transports.TCP',
      {ok, A} = TCP:listen(0, [inet6, {nodelay, false}, {active, true}, {mode, list}, {backlog, 7}]),
      Opts = inet:getopts(A, [nodelay, active, mode, send_timeout, send_timeout_close, reuseaddr]),
      {ok, {Addr, _}} = inet:sockname(A),
      gen_tcp:close(A),
      Backend = case TCP:listen(0, [inet6, {inet_backend, socket}]) of
        {ok, {'$inet', gen_tcp_socket, _} = S} -> gen_tcp:close(S), socket_backend;
        Other -> Other
      end,
      Raw = try TCP:listen(0, [{raw, 1, 15, <<1:32/native>>}]) of R -> R catch error:E -> E end,
      #{opts => ${fmt('Opts')}, addr => ${fmt('Addr')}, backend => ${fmt('Backend')},
        plain_backend => ${fmt('catch gen_tcp:listen(0, [inet6, {inet_backend, socket}])')},
        raw => ${fmt('Raw')}}`);
    expect(r).toEqual({
      // The user's nodelay beats the default; active and mode are hardcoded.
      opts: '{ok,[{nodelay,false},{active,false},{mode,binary},{send_timeout,30000},{send_timeout_close,true},{reuseaddr,true}]}',
      addr: '{0,0,0,0,0,0,0,0}',
      // inet_backend is moved first, where gen_tcp wants it; unsorted, it is a badarg.
      backend: 'socket_backend',
      plain_backend: "{'EXIT',badarg}",
      raw: 'function_clause',
    });
  });

  it('blocks an acceptor in DynamicSupervisor.start_child while its connection_sup is suspended', async () => {
    // baton's recipe parks acceptors this way before closing the listener.
    const sups = `[C || {_, A, _, _} <- supervisor:which_children('Elixir.ThousandIsland.Server':acceptor_pool_supervisor_pid(Srv)),
                        C <- ['Elixir.ThousandIsland.AcceptorSupervisor':connection_sup_pid(A)]]`;
    expect(await onNode<string>(`${SRV}, [ok = sys:suspend(C) || C <- ${sups}], ok`)).toBe('ok');
    let conn: KeepAlive | undefined;
    try {
      conn = await KeepAlive.open(app.port);
      const answer = conn.get('/', 10_000).then((a) => a.text);
      const notAccepting = `
        ${SRV},
        Accs = [Acc || {_, A, _, _} <- supervisor:which_children('Elixir.ThousandIsland.Server':acceptor_pool_supervisor_pid(Srv)),
                       {acceptor, Acc, _, _} <- supervisor:which_children(A)],
        [${fmt('F')} || P <- Accs, {current_function, F} <- [erlang:process_info(P, current_function)],
                        element(1, F) =/= prim_inet]`;
      // Exactly one acceptor took the connection and now waits on its connection_sup.
      await expect
        .poll(() => onNode<string[]>(notAccepting), { timeout: 5000, interval: 50 })
        .toEqual(['{gen,do_call,4}']);
      // Its start_child sits unread in the suspended connection_sup's queue: no connection
      // process exists to answer, so the request is still unanswered now.
      const queued = `${SRV}, lists:sum([length([M || {'$gen_call', _, {start_child, _}} = M <- Ms])
                              || C <- ${sups}, {messages, Ms} <- [erlang:process_info(C, messages)]])`;
      expect(await onNode<number>(queued)).toBe(1);
      expect(await Promise.race([answer.then(() => 'answered'), Promise.resolve('pending')])).toBe('pending');
      expect(await onNode<string>(`${SRV}, [ok = sys:resume(C) || C <- ${sups}], ok`)).toBe('ok');
      expect(await answer).toMatch(/"server":"bandit"/);
      await expect.poll(() => onNode<string[]>(notAccepting), { timeout: 5000, interval: 50 }).toEqual([]);
    } finally {
      conn?.close();
      await onNode(`${SRV}, [catch sys:resume(C) || C <- ${sups}], ok`);
    }
  });

  it('ThousandIsland.Server.suspend/1 stops accepting while an open keep-alive connection is still served', async () => {
    const conn = await KeepAlive.open(app.port);
    try {
      const first = (await conn.get('/')).text;
      expect(first).toMatch(/connection: keep-alive/);
      expect(first).toMatch(/"server":"bandit"/);
      expect(await onNode<string>(`${SRV}, 'Elixir.ThousandIsland.Server':suspend(Srv)`)).toBe('ok');
      await expect(getOnce(`http://127.0.0.1:${app.port}/`)).rejects.toThrow(/ECONNREFUSED/);
      await expect(getOnce(`http://[::1]:${app.port}/`)).rejects.toThrow(/ECONNREFUSED/);
      // Bandit keeps the connection alive (no `connection: close`) and serves it on.
      const second = (await conn.get('/slow?ms=100')).text;
      expect(second).toMatch(/connection: keep-alive/);
      expect(second).toMatch(/"slept":100/);
      expect(conn.closed).toBe(false);
      const state = await onNode<string>(
        `${SRV}, ${fmt('[{Id, is_pid(P)} || {Id, P, _, _} <- supervisor:which_children(Srv)]')}`,
      );
      expect(state).toBe('[{shutdown_listener,false},{acceptor_pool_supervisor,true},{listener,false}]');
    } finally {
      conn.close();
      expect(await onNode<string>(`${SRV}, 'Elixir.ThousandIsland.Server':resume(Srv)`)).toBe('ok');
    }
    // Resumed on the same (configured) port.
    expect(await getOnce(`http://127.0.0.1:${app.port}/`)).toMatchObject({ server: 'bandit' });
  });

  it('terminating the shutdown_listener child closes the listener, ends the acceptors normally, and keeps connections', async () => {
    const conn = await KeepAlive.open(app.port);
    try {
      expect((await conn.get('/')).text).toMatch(/"server":"bandit"/);
      expect(await onNode<string>(`${SRV}, ok = supervisor:terminate_child(Srv, shutdown_listener)`)).toBe('ok');
      const after = `
        ${SRV},
        Pool = 'Elixir.ThousandIsland.Server':acceptor_pool_supervisor_pid(Srv),
        Left = [P || {_, A, _, _} <- supervisor:which_children(Pool), {acceptor, P, _, _} <- supervisor:which_children(A), is_pid(P)],
        #{listener => ${fmt('[is_pid(P) || {listener, P, _, _} <- supervisor:which_children(Srv)]')},
          acceptors_left => length(Left), pool_alive => is_process_alive(Pool)}`;
      // The acceptors end as their accept fails on the closed socket: wait for it.
      await expect
        .poll(() => onNode<Record<string, unknown>>(after), { timeout: 5000, interval: 20 })
        .toEqual({ listener: '[false]', acceptors_left: 0, pool_alive: true });
      await expect(getOnce(`http://127.0.0.1:${app.port}/`)).rejects.toThrow(/ECONNREFUSED/);
      expect((await conn.get('/')).text).toMatch(/"server":"bandit"/);
    } finally {
      conn.close();
      expect(await onNode<string>(`${SRV}, 'Elixir.ThousandIsland.Server':resume(Srv)`)).toBe('ok');
    }
    expect(await getOnce(`http://[::1]:${app.port}/`)).toMatchObject({ server: 'bandit' });
  });
  it('at shutdown closes idle keep-alive connections without waiting out shutdown_timeout and lets an in-flight request finish, as Bandit does', async () => {
    const port = await onNode<number>(`
      process_flag(trap_exit, true),
      {ok, Pid} = 'Elixir.Bandit':start_link([{plug, 'Elixir.DemoPhxWeb.Endpoint'}, {port, 0}, {startup_log, false}]),
      unlink(Pid),
      persistent_term:put(phx_bandit_fixture_stop, Pid),
      {ok, {_, Port}} = 'Elixir.ThousandIsland':listener_info(Pid),
      Port`);
    const idle = await KeepAlive.open(port);
    const busy = await KeepAlive.open(port);
    try {
      expect((await idle.get('/')).text).toMatch(/"server":"bandit"/);
      const slow = busy.get('/slow?ms=700').then((a) => a.text);
      // The slow request is being served (its connection process sleeps in it) before the stop.
      await expect.poll(() => onNode<number>(SLEEPERS), { timeout: 5000, interval: 10 }).toBe(1);
      const t0 = Date.now();
      const stopped = onNode<string>(`
        Pid = persistent_term:get(phx_bandit_fixture_stop),
        persistent_term:erase(phx_bandit_fixture_stop),
        'Elixir.ThousandIsland':stop(Pid, 5000)`);
      const answer = await slow;
      expect(answer).toMatch(/"slept":700/);
      // No `connection: close` even while the server drains.
      expect(answer).toMatch(/connection: keep-alive/);
      // The supervisors shut connection_sups down one after the other, so the idle
      // connection closes before or right after the busy one's response, not after the
      // 15 s shutdown_timeout (ThousandIsland.stop/2 would give up after 5 s).
      expect(await stopped).toBe('ok');
      expect(Date.now() - t0).toBeLessThan(3000);
      await expect.poll(() => idle.closed, { timeout: 500, interval: 10 }).toBe(true);
      await expect.poll(() => busy.closed, { timeout: 2000, interval: 10 }).toBe(true);
    } finally {
      idle.close();
      busy.close();
    }
  });
});
