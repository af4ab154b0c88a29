%% Loaded into a peer by the tests, to look at what the upgrader does from the side.
-module(baton_test_probe).
-export([start_counters/1, hold/1, release/1, sys_state/1, counts/1,
         trace_suspends/0, suspends_seen/1, md5/1]).

%% Counters beside the registered one, running the same callback module.
-spec start_counters(non_neg_integer()) -> [pid()].
start_counters(N) ->
    [begin
         {ok, P} = gen_server:start(demo_erl_counter, [], []),
         P
     end || _ <- lists:seq(1, N)].

%% Suspends Pid at the VM level (not sys): it answers nothing, system messages
%% included, until released. The holder outlives the erpc call that made it.
-spec hold(pid() | atom()) -> pid().
hold(Name) when is_atom(Name) -> hold(whereis(Name));
hold(Pid) ->
    Parent = self(),
    Holder = spawn(fun() ->
                           true = erlang:suspend_process(Pid),
                           Parent ! {held, self()},
                           receive release -> true = erlang:resume_process(Pid) end
                   end),
    receive {held, Holder} -> Holder end.

-spec release(pid()) -> ok.
release(Holder) ->
    Ref = monitor(process, Holder),
    Holder ! release,
    receive {'DOWN', Ref, _, _, _} -> ok end.

%% running | suspended, as sys sees it.
-spec sys_state([pid() | atom()]) -> [running | suspended].
sys_state(Pids) ->
    [begin
         {status, _, _, [_PDict, SysState | _]} = sys:get_status(P, 2000),
         SysState
     end || P <- Pids].

-spec counts([pid()]) -> [{non_neg_integer(), integer | map}].
counts(Pids) -> [demo_erl_counter:peek(P) || P <- Pids].

%% Records every {system, _, suspend} that any process now alive receives.
-spec trace_suspends() -> pid().
trace_suspends() ->
    Tracer = spawn(fun() -> tracer([]) end),
    _ = [catch erlang:trace(P, true, ['receive', {tracer, Tracer}])
         || P <- erlang:processes(), P =/= Tracer],
    Tracer.

-spec suspends_seen(pid()) -> [pid()].
suspends_seen(Tracer) ->
    _ = [catch erlang:trace(P, false, ['receive']) || P <- erlang:processes(), P =/= Tracer],
    Ref = monitor(process, Tracer),
    Tracer ! {stop, self()},
    receive
        {seen, Seen} -> demonitor(Ref, [flush]), lists:usort(Seen);
        {'DOWN', Ref, _, _, R} -> error(R)
    end.

tracer(Seen) ->
    receive
        {trace, Pid, 'receive', {system, _, suspend}} -> tracer([Pid | Seen]);
        {trace, _, _, _} -> tracer(Seen);
        {stop, From} -> From ! {seen, Seen}
    end.

-spec md5(module()) -> binary().
md5(M) -> binary:encode_hex(M:module_info(md5)).
