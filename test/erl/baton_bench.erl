%% The native side of `npm run bench -- erpc`: a hidden erl node calling erpc:call on
%% the same peer as baton, measured the same way. Prints one line per figure.
-module(baton_bench).
-export([main/1, round/3, latency_pcts/3, throughput/3]).

main([Peer, N, DurMs]) ->
    Tiny = ok,
    Big = binary:copy(<<"x">>, 65536),
    true = net_kernel:connect_node(Peer),
    _ = latency(Peer, Tiny, 500),
    _ = latency(Peer, Big, 100),
    report(tiny, latency(Peer, Tiny, N)),
    report(echo64k, latency(Peer, Big, max(1, N div 5))),
    io:format("BENCH tput1 ~p~n", [throughput(Peer, 1, DurMs)]),
    io:format("BENCH tput64 ~p~n", [throughput(Peer, 64, DurMs)]),
    io:format("BENCH done~n"),
    halt().

call(Peer, Arg) -> erpc:call(Peer, baton_dist_helper, echo, [Arg]).

latency(Peer, Arg, N) ->
    lists:sort([begin
                    T0 = erlang:monotonic_time(nanosecond),
                    _ = call(Peer, Arg),
                    erlang:monotonic_time(nanosecond) - T0
                end || _ <- lists:seq(1, N)]).

%% One round, returned to the caller (baton drives the rounds so they interleave with its own):
%% {{TinyP50, TinyP99}, {EchoP50, EchoP99}, Tput1, Tput64}, latencies in ns.
round(Peer, N, DurMs) ->
    Big = binary:copy(<<"x">>, 65536),
    true = net_kernel:connect_node(Peer),
    _ = latency(Peer, ok, 200),
    _ = latency(Peer, Big, 50),
    {pcts(latency(Peer, ok, N)), pcts(latency(Peer, Big, max(1, N div 5))),
     throughput(Peer, 1, DurMs), throughput(Peer, 64, DurMs)}.

%% One latency figure, warmed up first: {P50, P99} in ns of N calls echoing Arg
%% (`tiny` for the atom ok, `big` for a 64 KiB binary).
latency_pcts(Peer, What, N) ->
    Arg = case What of tiny -> ok; big -> binary:copy(<<"x">>, 65536) end,
    true = net_kernel:connect_node(Peer),
    _ = latency(Peer, Arg, max(20, N div 10)),
    pcts(latency(Peer, Arg, N)).

pcts(Sorted) ->
    N = length(Sorted),
    {lists:nth(max(1, round(N * 0.50)), Sorted), lists:nth(max(1, round(N * 0.99)), Sorted)}.

report(Name, Sorted) ->
    N = length(Sorted),
    P50 = lists:nth(max(1, round(N * 0.50)), Sorted),
    P99 = lists:nth(max(1, round(N * 0.99)), Sorted),
    io:format("BENCH ~p ~p ~p~n", [Name, P50, P99]).

throughput(Peer, C, DurMs) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + DurMs,
    T0 = erlang:monotonic_time(nanosecond),
    Pids = [spawn_link(fun() -> Self ! {count, loop(Peer, Deadline, 0)} end) || _ <- lists:seq(1, C)],
    Total = lists:sum([receive {count, K} -> K end || _ <- Pids]),
    Secs = (erlang:monotonic_time(nanosecond) - T0) / 1.0e9,
    round(Total / Secs).

loop(Peer, Deadline, K) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> _ = call(Peer, ok), loop(Peer, Deadline, K + 1);
        false -> K
    end.
