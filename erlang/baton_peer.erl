%% What baton does inside a peer, loaded with code:load_binary over erpc (the user's
%% release never contains it; kernel and stdlib only, OTP 25+):
%%   - prepare/1: mark the peer (baton app env role = peer) and inject app env, both
%%     persistent so that application:load/1 of the app cannot wipe them;
%%   - the orphan watchdog: a registered process that stops the VM when baton has
%%     been gone for orphan_ms, unless a new baton adopts it first (adopt/2);
%%   - start_app/1: ensure_all_started with the reason already worded for a human;
%%   - listening/1 and connections/1: readiness and drain, judged by the sockets
%%     themselves (accepted sockets share the listener's local port);
%%   - stop_endpoint/2: stop accepting by terminating the listener supervisor through
%%     its parent (never restarted, acceptors go before the socket closes).
-module(baton_peer).
-export([prepare/1, adopt/2, watchdog/0, start_app/1, listening/1, connections/1,
         stop_endpoint/2, drain/2, format/1, listen_sockets/0]).

-define(WATCHDOG, baton_peer_watchdog).

-spec prepare(#{baton := node(), orphan_ms := non_neg_integer(),
                env := [{atom(), atom(), term()}]}) -> ok.
prepare(#{baton := Baton, orphan_ms := OrphanMs, env := Env}) ->
    ok = application:set_env(baton, role, peer, [{persistent, true}]),
    lists:foreach(fun({App, Key, Val}) ->
                          ok = application:set_env(App, Key, Val, [{persistent, true}])
                  end, Env),
    adopt(Baton, OrphanMs).

%% Called by the baton that starts the peer and by one that re-adopts it: from now on
%% the watchdog watches that node.
-spec adopt(node(), non_neg_integer()) -> ok.
adopt(Baton, OrphanMs) ->
    case whereis(?WATCHDOG) of
        undefined ->
            Self = self(),
            {Pid, Ref} = spawn_monitor(fun() -> watchdog_init(Self) end),
            receive
                {Pid, registered} -> erlang:demonitor(Ref, [flush]);
                {'DOWN', Ref, process, Pid, _} -> ok  % lost a race with another adopt
            end;
        _ -> ok
    end,
    Ref2 = make_ref(),
    ?WATCHDOG ! {adopt, Baton, OrphanMs, self(), Ref2},
    receive {Ref2, ok} -> ok after 5000 -> erlang:error(watchdog_unresponsive) end.

%% For tests and status: who is watched, and since when baton is missing.
-spec watchdog() -> #{baton := node(), orphan_ms := non_neg_integer(),
                      orphaned_since := integer() | undefined} | undefined.
watchdog() ->
    case whereis(?WATCHDOG) of
        undefined -> undefined;
        Pid ->
            Ref = make_ref(),
            Pid ! {status, self(), Ref},
            receive {Ref, S} -> S after 5000 -> undefined end
    end.

watchdog_init(Parent) ->
    register(?WATCHDOG, self()),
    Parent ! {self(), registered},
    ok = net_kernel:monitor_nodes(true, [{node_type, all}, nodedown_reason]),
    %% Outlives the erpc process that started it; nothing here links to the app.
    watchdog_loop(#{baton => undefined, orphan_ms => 0, timer => undefined, since => undefined}).

watchdog_loop(S = #{baton := Baton, timer := Timer}) ->
    receive
        {adopt, New, OrphanMs, From, Ref} ->
            cancel(Timer),
            case Baton of
                undefined -> ok;
                New -> ok;
                _ -> erlang:monitor_node(Baton, false)
            end,
            erlang:monitor_node(New, true),
            From ! {Ref, ok},
            S1 = S#{baton := New, orphan_ms := OrphanMs, timer := undefined, since := undefined},
            %% monitor_node delivers nodedown at once when New is not connected.
            watchdog_loop(S1);
        {nodedown, Baton} when Timer =:= undefined ->
            #{orphan_ms := Ms} = S,
            io:format(standard_error, "baton_peer: lost ~s; stopping in ~b ms unless adopted~n",
                      [Baton, Ms]),
            T = erlang:send_after(Ms, self(), orphaned),
            watchdog_loop(S#{timer := T, since := erlang:system_time(millisecond)});
        {nodedown, _} ->
            watchdog_loop(S);
        {nodeup, Baton, _} when Timer =/= undefined ->
            %% The same baton reconnected (a connection lost and found again).
            cancel(Timer),
            erlang:monitor_node(Baton, true),
            io:format(standard_error, "baton_peer: ~s is back~n", [Baton]),
            watchdog_loop(S#{timer := undefined, since := undefined});
        {nodedown, Baton, Info} ->
            %% Why the connection to baton went, for the peer's log.
            io:format(standard_error, "baton_peer: connection to ~s down: ~0p~n", [Baton, Info]),
            watchdog_loop(S);
        orphaned when Timer =/= undefined ->
            io:format(standard_error, "baton_peer: no baton for ~b ms, stopping~n",
                      [maps:get(orphan_ms, S)]),
            %% A graceful stop first; halt if something in the app blocks it.
            erlang:send_after(10000, self(), halt),
            init:stop(),
            watchdog_loop(S);
        halt ->
            erlang:halt(1);
        {status, From, Ref} ->
            From ! {Ref, #{baton => Baton, orphan_ms => maps:get(orphan_ms, S),
                           orphaned_since => maps:get(since, S)}},
            watchdog_loop(S);
        _ ->
            watchdog_loop(S)
    end.

cancel(undefined) -> ok;
cancel(T) -> erlang:cancel_timer(T), ok.

-spec start_app(atom()) -> {ok, [atom()]} | {error, binary()}.
start_app(App) ->
    %% Started from a local process whose group leader is the peer's own `user`: the
    %% application inherits it (not baton's remote io server, which would be gone with
    %% the connection that started it).
    {Pid, Ref} = spawn_monitor(fun() ->
        case whereis(user) of
            undefined -> ok;
            User -> group_leader(User, self())
        end,
        exit({result, application:ensure_all_started(App)})
    end),
    receive
        {'DOWN', Ref, process, Pid, {result, {ok, Started}}} -> {ok, Started};
        {'DOWN', Ref, process, Pid, {result, {error, Reason}}} -> {error, format(Reason)};
        {'DOWN', Ref, process, Pid, Other} -> {error, format(Other)}
    end.

-spec format(term()) -> binary().
format(Term) ->
    unicode:characters_to_binary(io_lib:format("~0tp", [Term])).

-spec listening(inet:port_number()) -> boolean().
listening(Port) ->
    [] =/= listeners_on(Port).

%% Accepted connections on the endpoint: sockets whose local port is the listener's.
-spec connections(inet:port_number()) -> non_neg_integer().
connections(Port) ->
    Dist = [P || {_, P} <- erlang:system_info(dist_ctrl), is_port(P)],
    length([S || S <- tcp_sockets(), not lists:member(S, Dist), not status(S, listen),
                 local_port(S) =:= Port]).

%% The node's listening TCP sockets (baton_endpoint finds servers' ports with it too).
-spec listen_sockets() -> [port()].
listen_sockets() ->
    [S || S <- tcp_sockets(), status(S, listen)].

listeners_on(Port) ->
    [S || S <- listen_sockets(), local_port(S) =:= Port].

tcp_sockets() ->
    [P || P <- erlang:ports(), erlang:port_info(P, name) =:= {name, "tcp_inet"}].

status(S, Flag) ->
    case catch prim_inet:getstatus(S) of
        {ok, Flags} -> lists:member(Flag, Flags);
        _ -> false
    end.

local_port(S) ->
    case catch inet:sockname(S) of
        {ok, {_, P}} -> P;
        _ -> undefined
    end.

%% Stops accepting: the endpoint is the supervisor registered as Name, else the owner
%% of the listening socket on Port. It is terminated through its parent, so the
%% acceptors are gone before the socket closes (closing a socket under an acceptor
%% resets a connection whose request was never read).
-spec stop_endpoint(atom() | undefined, inet:port_number()) ->
          ok | {error, no_endpoint | {not_supervised, pid()} | term()}.
stop_endpoint(Name, Port) ->
    case endpoint(Name, Port) of
        undefined -> {error, no_endpoint};
        Pid ->
            case parent(Pid) of
                undefined -> {error, {not_supervised, Pid}};
                Parent ->
                    case [Id || {Id, P, _, _} <- supervisor:which_children(Parent), P =:= Pid] of
                        [Id | _] -> supervisor:terminate_child(Parent, Id);
                        [] -> {error, {not_supervised, Pid}}
                    end
            end
    end.

endpoint(Name, _Port) when is_atom(Name), Name =/= undefined ->
    whereis(Name);
endpoint(_, Port) ->
    case listeners_on(Port) of
        [S | _] ->
            case erlang:port_info(S, connected) of
                {connected, Owner} -> Owner;
                _ -> undefined
            end;
        [] -> undefined
    end.

parent(Pid) ->
    case erlang:process_info(Pid, dictionary) of
        {dictionary, D} ->
            case proplists:get_value('$ancestors', D) of
                [P | _] when is_pid(P) -> P;
                [P | _] when is_atom(P) -> whereis(P);
                _ -> undefined
            end;
        undefined -> undefined
    end.

%% Waits until no accepted connection is left on Port, at most TimeoutMs; returns how
%% many were still open.
-spec drain(inet:port_number(), non_neg_integer()) -> non_neg_integer().
drain(Port, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    drain_loop(Port, Deadline).

drain_loop(Port, Deadline) ->
    case connections(Port) of
        0 -> 0;
        N ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> N;
                false -> timer:sleep(20), drain_loop(Port, Deadline)
            end
    end.
