%% The peer's HTTP endpoints, found without knowing the app's module names, and the
%% two things baton does to them (kernel and stdlib only; loaded with code:load_binary;
%% docs/design.md, "Sharing the socket" and "Stopping without dropping a request"):
%%
%%   - inject/2, before the application starts and after its config (sys.config and
%%     runtime.exs) is applied: every Phoenix endpoint's `http` is rewritten to listen
%%     on the socket baton hands over (fd N), in the shape its adapter wants. `ip` goes
%%     (an fd with an ip is einval), `inet6` comes when the socket is IPv6, and the env
%%     is set persistent so that application:load/1 of the app cannot wipe it.
%%   - stop/1, to stop accepting without resetting a connection: park the acceptors,
%%     close the listener, let in-flight requests finish. The recipe follows what is
%%     running (ThousandIsland, ranch, the plain BATON_ENDPOINT contract) and falls back
%%     to the server's own suspend, then to terminating the listener's supervisor, when
%%     the server's internals are not what the recipe expects.
%%
%% Discovery (describe/0): Phoenix endpoints from the app env (an `Elixir.*` key whose
%% keyword list has `http`/`https` and Phoenix's own keys), ThousandIsland servers by
%% walking every application master's supervision tree for
%% proc_lib:initial_call = {supervisor, 'Elixir.ThousandIsland.Server', _}, ranch
%% listeners from ranch:info(), and the supervisor named by BATON_ENDPOINT.
-module(baton_endpoint).
-export([describe/0, inject/2, stop/1, phoenix_endpoints/1, ti_servers/0, idle/1]).

%% Parking ends when every acceptor is parked, when none has been parked for STALL_MS
%% (no connection is arriving: closing now resets nothing), or after PARK_MS.
-define(PARK_MS, 1000).
-define(STALL_MS, 50).
-define(REUSEPORT, {raw, 1, 15, <<1:32/native>>}).
-define(CALL_MS, 2000).

-type endpoint() :: map().

%%% Discovery ------------------------------------------------------------------

%% What is there, for `baton status`: names as text, ports where a socket listens.
-spec describe() -> [#{kind := atom(), name := binary(), port := inet:port_number() | undefined,
                       atom() => term()}].
describe() ->
    Loaded = [A || {A, _, _} <- application:loaded_applications()],
    [#{kind => phoenix, name => module_name(Ep), app => App, adapter => Adapter,
       port => http_port(Conf)}
     || #{app := App, endpoint := Ep, adapter := Adapter, conf := Conf} <- phoenix_endpoints(Loaded)]
        ++ [#{kind => thousand_island, name => fmt(S), port => ti_port(S)} || S <- ti_servers()]
        ++ [#{kind => ranch, name => fmt(R), port => P} || {R, P} <- ranch_listeners()]
        ++ [#{kind => plain, name => atom_to_binary(N), port => plain_port(Pid)}
            || #{name := N, pid := Pid} <- plain()].

module_name(M) ->
    case atom_to_list(M) of
        "Elixir." ++ Rest -> list_to_binary(Rest);
        Name -> list_to_binary(Name)
    end.

http_port(Conf) ->
    case proplists:get_value(http, Conf) of
        Http when is_list(Http) ->
            TI = proplists:get_value(thousand_island_options, Http, []),
            case proplists:get_value(port, TI, proplists:get_value(port, Http)) of
                P when is_integer(P) -> P;
                _ -> undefined
            end;
        _ -> undefined
    end.

%% The port of the socket the plain endpoint's supervisor (or a child of it) listens on.
plain_port(undefined) -> undefined;
plain_port(Sup) ->
    Owners = [Sup | [P || {_, P, _, _} <- children(Sup), is_pid(P)]],
    case [P || O <- Owners, P <- [owned_listen_port(O)], P =/= undefined] of
        [P | _] -> P;
        [] -> undefined
    end.

%% Endpoints configured in the env of Apps (loaded or not: set_env and runtime config
%% write the env of unloaded apps too).
-spec phoenix_endpoints([atom()]) -> [endpoint()].
phoenix_endpoints(Apps) ->
    [#{kind => phoenix, app => App, endpoint => Key, adapter => adapter(Conf), conf => Conf}
     || App <- lists:usort(Apps),
        {Key, Conf} <- application:get_all_env(App),
        is_phoenix_endpoint(Key, Conf)].

is_phoenix_endpoint(Key, Conf) when is_atom(Key), is_list(Conf) ->
    lists:prefix("Elixir.", atom_to_list(Key))
        andalso keyword(Conf)
        andalso (lists:keymember(http, 1, Conf) orelse lists:keymember(https, 1, Conf))
        andalso lists:any(fun(K) -> lists:keymember(K, 1, Conf) end,
                          [adapter, url, secret_key_base, pubsub_server, render_errors,
                           live_view, server]);
is_phoenix_endpoint(_, _) ->
    false.

keyword(L) ->
    lists:all(fun({K, _}) when is_atom(K) -> true; (_) -> false end, L).

%% Phoenix's default adapter is Cowboy2Adapter; generators since 1.7.11 set Bandit's.
adapter(Conf) ->
    case proplists:get_value(adapter, Conf, 'Elixir.Phoenix.Endpoint.Cowboy2Adapter') of
        'Elixir.Bandit.PhoenixAdapter' -> bandit;
        'Elixir.Phoenix.Endpoint.Cowboy2Adapter' -> cowboy;
        Other -> Other
    end.

ti_servers() ->
    walk([Top || {App, _, _} <- application:which_applications(?CALL_MS),
                 Top <- app_top(App)], 8, []).

app_top(App) ->
    case application_controller:get_master(App) of
        Master when is_pid(Master) ->
            case catch application_master:get_child(Master) of
                {Pid, _Mod} when is_pid(Pid) -> [Pid];
                _ -> []
            end;
        _ -> []
    end.

walk([], _Depth, Acc) ->
    lists:reverse(Acc);
walk([Sup | Rest], Depth, Acc) ->
    case proc_lib:initial_call(Sup) of
        {supervisor, 'Elixir.ThousandIsland.Server', _} ->
            walk(Rest, Depth, [Sup | Acc]);
        _ when Depth =:= 0 ->
            walk(Rest, Depth, Acc);
        _ ->
            Subs = [P || {_, P, supervisor, _} <- children(Sup), is_pid(P)],
            walk(Rest, Depth, lists:reverse(walk(Subs, Depth - 1, []), Acc))
    end.

%% which_children with a bound: a supervisor busy starting a child must not hang us.
children(Sup) ->
    case catch gen:call(Sup, '$gen_call', which_children, ?CALL_MS) of
        {ok, L} when is_list(L) -> L;
        _ -> []
    end.

child(Sup, Id) ->
    case lists:keyfind(Id, 1, children(Sup)) of
        {Id, Pid, _, _} when is_pid(Pid) -> Pid;
        _ -> undefined
    end.

ti_port(Srv) ->
    case child(Srv, listener) of
        undefined -> undefined;
        L -> owned_listen_port(L)
    end.

owned_listen_port(Pid) ->
    case [P || S <- baton_peer:listen_sockets(), erlang:port_info(S, connected) =:= {connected, Pid},
               {ok, {_, P}} <- [inet:sockname(S)]] of
        [P | _] -> P;
        [] -> undefined
    end.

%% ranch 1.x answers [{Ref, Proplist}], 2.x #{Ref => Map}.
ranch_listeners() ->
    case exported(ranch, info, 0) of
        false -> [];
        true ->
            case catch ranch:info() of
                L when is_list(L) -> [{R, proplists:get_value(port, I)} || {R, I} <- L];
                M when is_map(M) -> [{R, maps:get(port, I, undefined)} || {R, I} <- maps:to_list(M)];
                _ -> []
            end
    end.

plain() ->
    case os:getenv("BATON_ENDPOINT") of
        V when V =:= false; V =:= "" -> [];
        Name ->
            [#{kind => plain, name => list_to_atom(Name), pid => whereis(list_to_atom(Name))}]
    end.

exported(M, F, A) ->
    _ = code:ensure_loaded(M),
    erlang:function_exported(M, F, A).

%%% Injection ------------------------------------------------------------------

%% Apps: the release's application and what it depends on (loaded here so their env,
%% sys.config and runtime config included, is what we read).
%% Sock: `#{fd, inet6}` in fd mode, `#{reuseport := true}` in reuseport mode.
-spec inject([atom()], #{fd => non_neg_integer(), inet6 => boolean(), reuseport => true}) -> [map()].
inject(Apps, Sock) ->
    All = load_all(Apps, []),
    [inject_one(E, Sock) || E <- phoenix_endpoints(All)].

load_all([], Seen) ->
    Seen;
load_all([App | Rest], Seen) ->
    case lists:member(App, Seen) of
        true -> load_all(Rest, Seen);
        false ->
            _ = application:load(App),
            Deps = case application:get_key(App, applications) of
                       {ok, D} -> D;
                       undefined -> []
                   end,
            Inc = case application:get_key(App, included_applications) of
                      {ok, I} -> I;
                      undefined -> []
                  end,
            load_all(Deps ++ Inc ++ Rest, [App | Seen])
    end.

inject_one(#{app := App, endpoint := Ep, adapter := Adapter, conf := Conf}, Sock) ->
    Base = #{app => App, endpoint => Ep, adapter => Adapter},
    case proplists:get_value(http, Conf) of
        Http when is_list(Http) ->
            case http_for(Adapter, Http, Sock) of
                {ok, New} ->
                    Conf1 = lists:keystore(http, 1, Conf, {http, New}),
                    ok = application:set_env(App, Ep, Conf1, [{persistent, true}]),
                    Base#{result => injected, http => fmt(New)};
                {skip, Why} ->
                    Base#{result => {skipped, Why}}
            end;
        _ ->
            Base#{result => {skipped, no_http}}
    end.

%% `{fd, N}` works only with port 0 and no `ip`; an IPv6 socket also needs `inet6`.
%% SO_REUSEPORT is a raw option on OTP 25 (`{reuseport, true}` is badarg before 26):
%% ranch passes it through, ThousandIsland rejects raw tuples, so Bandit cannot share
%% a port that way and keeps its config (the peer binds PORT alone).
-spec http_for(atom(), list(), map()) -> {ok, list()} | {skip, atom()}.
http_for(bandit, _Http, #{reuseport := true}) ->
    {skip, reuseport_unsupported};
http_for(cowboy, Http, #{reuseport := true}) ->
    {ok, [O || O <- Http, O =/= ?REUSEPORT] ++ [?REUSEPORT]};
http_for(bandit, Http, #{fd := Fd, inet6 := Inet6}) ->
    TI = proplists:get_value(thousand_island_options, Http, []),
    Transport = [O || O <- proplists:get_value(transport_options, TI, []), not socket_opt(O)],
    TI1 = lists:keystore(port, 1, TI, {port, 0}),
    TI2 = lists:keystore(transport_options, 1, TI1,
                         {transport_options, [{fd, Fd} | family(Inet6)] ++ Transport}),
    {ok, lists:keystore(thousand_island_options, 1, without(ip, Http),
                        {thousand_island_options, TI2})};
http_for(cowboy, Http, #{fd := Fd, inet6 := Inet6}) ->
    Rest = [O || O <- Http, not socket_opt(O), not is_key(port, O)],
    {ok, [{port, 0}, {fd, Fd} | family(Inet6)] ++ Rest};
http_for(_, _, _) ->
    {skip, unknown_adapter}.

family(true) -> [inet6];
family(false) -> [].

%% What decides where a socket listens: these come from the handed fd instead.
socket_opt(O) ->
    lists:member(O, [inet, inet6, local]) orelse is_key(ip, O) orelse is_key(fd, O)
        orelse is_key(ifaddr, O) orelse is_key(port, O).

is_key(K, {K, _}) -> true;
is_key(_, _) -> false.

without(K, L) -> [O || O <- L, not is_key(K, O)].

%%% Stop accepting -------------------------------------------------------------

%% Opts: port (the endpoint's), endpoint (BATON_ENDPOINT's name or undefined),
%% drain_ms. Returns which recipe ran, how long each phase took (ms), why a fallback
%% was taken, and how many connections were still busy when the drain gave up.
-spec stop(#{port := inet:port_number(), endpoint := atom(), drain_ms := non_neg_integer()}) ->
          #{recipe := atom(), phases := [{atom(), non_neg_integer()}],
            fallback := undefined | binary(), left_open := non_neg_integer()}.
stop(#{port := Port, endpoint := Name, drain_ms := DrainMs}) ->
    Deadline = now_ms() + DrainMs,
    R = case choose(Port, Name) of
            {thousand_island, Srv} -> stop_ti(Srv, Port, Deadline);
            {ranch, Ref} -> stop_ranch(Ref, Port, Deadline);
            plain -> stop_plain(Name, Port, Deadline, undefined)
        end,
    maps:merge(#{fallback => undefined}, R).

choose(_Port, Name) when is_atom(Name), Name =/= undefined ->
    plain;
choose(Port, _) ->
    case [S || S <- ti_servers(), ti_port(S) =:= Port] of
        [Srv | _] -> {thousand_island, Srv};
        [] ->
            case [R || {R, P} <- ranch_listeners(), P =:= Port] of
                [Ref | _] -> {ranch, Ref};
                [] -> plain
            end
    end.

%% The plain contract, and the last fallback: terminate the listener's supervisor
%% through its parent (acceptors go before the socket), then wait for the connections.
stop_plain(Name, Port, Deadline, Why) ->
    {T1, R} = timed(fun() -> baton_peer:stop_endpoint(Name, Port) end),
    {T2, Left} = timed(fun() -> drain_port(Port, Deadline) end),
    Plain = #{recipe => plain, phases => [{stop_endpoint, T1}, {drain, T2}], left_open => Left},
    case {R, Why} of
        {ok, _} -> Plain#{fallback => Why};
        {_, undefined} -> Plain#{fallback => fmt({stop_endpoint, R})};
        _ -> Plain#{fallback => <<Why/binary, "; then ", (fmt({stop_endpoint, R}))/binary>>}
    end.

%% ThousandIsland 1.x: every acceptor's connection_sup is suspended, so an acceptor that
%% has just accepted blocks in DynamicSupervisor.start_child holding its socket. Once
%% none is inside accept, or none has come out of it for STALL_MS (no connection is
%% arriving), closing the listener resets nothing; the connection_sups resume (also if
%% anything in between fails) and the parked connections are served.
stop_ti(Srv, Port, Deadline) ->
    case ti_shape(Srv) of
        {ok, Pairs} ->
            ConnSups = [C || {C, _} <- Pairs],
            Acceptors = [A || {_, A} <- Pairs],
            {T1, Suspended} = timed(fun() -> suspend_all(ConnSups) end),
            case Suspended of
                ok ->
                    Resume = fun() -> [catch sys:resume(C, ?CALL_MS) || C <- ConnSups] end,
                    {T2, T3, Closed} =
                        try
                            {P, _} = timed(fun() -> park(fun() -> length([A || A <- Acceptors, not in_accept(A)]) end, length(Acceptors)) end),
                            {C, Cl} = timed(fun() -> supervisor:terminate_child(Srv, shutdown_listener) end),
                            {P, C, Cl}
                        catch
                            Class:Reason:St -> Resume(), erlang:raise(Class, Reason, St)
                        end,
                    {T4, _} = timed(Resume),
                    {T5, Left} = timed(fun() -> drain_idle(fun() -> ti_connections(ConnSups) end, Deadline) end),
                    R = #{recipe => thousand_island,
                          phases => [{suspend, T1}, {park, T2}, {close, T3}, {resume, T4}, {drain, T5}],
                          left_open => Left},
                    case Closed of
                        ok -> R;
                        Err -> R#{fallback => fmt({shutdown_listener, Err})}
                    end;
                {error, Why} ->
                    [catch sys:resume(C, ?CALL_MS) || C <- ConnSups],
                    ti_fallback(Srv, Port, Deadline, fmt({suspend, Why}))
            end;
        {error, Why} ->
            ti_fallback(Srv, Port, Deadline, fmt(Why))
    end.

%% ThousandIsland's own suspend (acceptors, then the listener): loses a connection an
%% acceptor had just accepted, but stops accepting everywhere. When even that fails,
%% the plain stop closes the listener through its supervisor.
ti_fallback(Srv, Port, Deadline, Why) ->
    case exported('Elixir.ThousandIsland.Server', suspend, 1) of
        true ->
            ConnSups = [C || {_, A, supervisor, _} <- children(child(Srv, acceptor_pool_supervisor)), is_pid(A),
                             C <- [child(A, connection_sup)], is_pid(C)],
            case timed(fun() -> catch 'Elixir.ThousandIsland.Server':suspend(Srv) end) of
                {T1, ok} ->
                    {T2, Left} = timed(fun() -> drain_idle(fun() -> ti_connections(ConnSups) end, Deadline) end),
                    #{recipe => thousand_island_suspend, phases => [{suspend, T1}, {drain, T2}],
                      fallback => Why, left_open => Left};
                {_, Err} ->
                    stop_plain(undefined, Port, Deadline,
                               <<Why/binary, "; ThousandIsland.Server.suspend/1 returned ", (fmt(Err))/binary>>)
            end;
        false ->
            stop_plain(undefined, Port, Deadline, Why)
    end.

%% The child ids and process kinds the recipe leans on (ThousandIsland 1.x).
ti_shape(Srv) ->
    Ids = [Id || {Id, _, _, _} <- children(Srv)],
    case [I || I <- [listener, acceptor_pool_supervisor, shutdown_listener], not lists:member(I, Ids)] of
        [] ->
            Pool = child(Srv, acceptor_pool_supervisor),
            Sups = [P || {_, P, supervisor, _} <- children(Pool), is_pid(P)],
            Pairs = [{child(S, connection_sup), child(S, acceptor)} || S <- Sups],
            case [S || {C, A} = S <- Pairs, not is_pid(C) orelse not is_pid(A)] of
                [] when Pairs =/= [] -> {ok, Pairs};
                [] -> {error, no_acceptors};
                _ -> {error, {unexpected_children, acceptor_supervisor}}
            end;
        Missing ->
            {error, {missing_children, Missing}}
    end.

suspend_all(Pids) ->
    suspend_all(Pids, []).

suspend_all([], _Done) ->
    ok;
suspend_all([P | Rest], Done) ->
    case catch sys:suspend(P, ?CALL_MS) of
        ok -> suspend_all(Rest, [P | Done]);
        Err ->
            [catch sys:resume(D, ?CALL_MS) || D <- Done],
            {error, Err}
    end.

ti_connections(ConnSups) ->
    [P || C <- ConnSups, {_, P, _, _} <- children(C), is_pid(P)].

%% ranch: at max_connections 0 an acceptor that accepts hands the socket over (it is
%% served) and then sleeps in ranch_conns_sup:start_protocol; once all sleep, the
%% listener is suspended (acceptors and socket go) with nothing half accepted.
stop_ranch(Ref, Port, Deadline) ->
    case exported(ranch, procs, 2) andalso exported(ranch, set_max_connections, 2) of
        true ->
            {T1, _} = timed(fun() -> ranch:set_max_connections(Ref, 0) end),
            Acceptors = case catch ranch:procs(Ref, acceptors) of
                            L when is_list(L) -> L;
                            _ -> []
                        end,
            {T2, _} = timed(fun() -> park(fun() -> length([A || A <- Acceptors, in_start_protocol(A)]) end, length(Acceptors)) end),
            {T3, Suspended} = timed(fun() -> catch ranch:suspend_listener(Ref) end),
            {T4, Left} = timed(fun() -> drain_idle(fun() -> ranch_connections(Ref) end, Deadline, count) end),
            R = #{recipe => ranch,
                  phases => [{max_connections, T1}, {park, T2}, {suspend, T3}, {drain, T4}],
                  left_open => Left},
            case Suspended of
                ok -> R;
                Err -> R#{fallback => fmt({suspend_listener, Err})}
            end;
        false ->
            case exported(ranch, suspend_listener, 1) of
                true ->
                    {T1, _} = timed(fun() -> catch ranch:suspend_listener(Ref) end),
                    {T2, Left} = timed(fun() -> drain_port(Port, Deadline) end),
                    #{recipe => ranch_suspend,
                      phases => [{suspend, T1}, {drain, T2}],
                      fallback => <<"ranch has no procs/2 (older than 1.7)">>, left_open => Left};
                false ->
                    stop_plain(undefined, Port, Deadline, <<"ranch has no suspend_listener/1">>)
            end
    end.

ranch_connections(Ref) ->
    case catch ranch:procs(Ref, connections) of
        L when is_list(L) -> L;
        _ -> []
    end.

in_accept(Pid) ->
    case erlang:process_info(Pid, current_function) of
        {current_function, {prim_inet, F, _}} -> lists:member(F, [accept, accept0]);
        {current_function, {gen_tcp_socket, F, _}} -> lists:member(F, [accept, accept_result]);
        {current_function, {inet_tcp, accept, _}} -> true;
        {current_function, {gen_tcp, accept, _}} -> true;
        _ -> false
    end.

in_start_protocol(Pid) ->
    case erlang:process_info(Pid, current_function) of
        {current_function, {ranch_conns_sup, start_protocol, _}} -> true;
        undefined -> true;   % gone: not accepting either
        _ -> false
    end.

%%% Draining -------------------------------------------------------------------

%% Waits until every connection process is idle (waiting for a request that has not
%% started), at most until Deadline; returns how many were still busy. `count` waits
%% for the connections to be gone instead (servers whose idle state we cannot read).
drain_idle(Conns, Deadline) ->
    drain_idle(Conns, Deadline, idle).

drain_idle(Conns, Deadline, Mode) ->
    case busy(Conns, Mode) of
        [] -> 0;
        Busy ->
            case now_ms() >= Deadline of
                true -> length(Busy);
                false -> timer:sleep(10), drain_idle(Conns, Deadline, Mode)
            end
    end.

busy(Conns, idle) -> [P || P <- Conns(), not idle(P)];
busy(Conns, count) -> Conns().

%% A connection process is idle when it sits, with nothing queued, where servers wait
%% for the next request (a gen_server/gen_statem receive, as ThousandIsland handlers
%% with active: once do, or a passive recv) and its socket has delivered bytes before
%% (a connection that has read nothing still owes its first request an answer).
-spec idle(pid()) -> boolean().
idle(Pid) ->
    case erlang:process_info(Pid, [current_function, message_queue_len, status, links]) of
        [{current_function, MFA}, {message_queue_len, 0}, {status, waiting}, {links, Links}] ->
            idle_at(MFA) andalso lists:all(fun has_read/1, [L || L <- Links, is_port(L)]);
        undefined -> true;
        _ -> false
    end.

has_read(Port) ->
    case erlang:port_info(Port, name) of
        {name, "tcp_inet"} ->
            case inet:getstat(Port, [recv_oct]) of
                {ok, [{recv_oct, N}]} -> N > 0;
                _ -> true
            end;
        _ -> true
    end.

idle_at({gen_server, loop, _}) -> true;
idle_at({gen_statem, loop_receive, _}) -> true;
idle_at({erlang, hibernate, _}) -> true;
idle_at({prim_inet, recv0, _}) -> true;
idle_at({prim_inet, recv, _}) -> true;
idle_at({gen_tcp_socket, F, _}) -> lists:member(F, [recv, recv_result]);
idle_at(_) -> false.

drain_port(Port, Deadline) ->
    baton_peer:drain(Port, max(0, Deadline - now_ms())).

%%% Small things ---------------------------------------------------------------

timed(F) ->
    T0 = now_ms(),
    R = F(),
    {now_ms() - T0, R}.

%% Waits for Parked() to reach Total, giving up after PARK_MS, or STALL_MS after the
%% count last moved.
park(Parked, Total) ->
    Now = now_ms(),
    park_loop(Parked, Total, Parked(), Now, Now + ?PARK_MS).

park_loop(Parked, Total, Last, Moved, Deadline) ->
    case Parked() of
        N when N >= Total -> done;
        N ->
            Now = now_ms(),
            Moved1 = case N =/= Last of true -> Now; false -> Moved end,
            case Now >= Deadline orelse Now - Moved1 >= ?STALL_MS of
                true -> N;
                false -> timer:sleep(2), park_loop(Parked, Total, N, Moved1, Deadline)
            end
    end.

fmt(Term) ->
    unicode:characters_to_binary(io_lib:format("~0tp", [Term])).

now_ms() ->
    erlang:monotonic_time(millisecond).
