%% Helpers the distribution tests run on real peers (loaded with -pa from _build).
-module(baton_dist_helper).
-behaviour(gen_server).
-export([echo/1, sleep_then/2, start_server/0, send_to/3, monitor_and_report/2,
         link_and_report/2, format_and_return/1, big/1, kill_in/2, report_to/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

echo(X) -> X.

sleep_then(Ms, X) -> timer:sleep(Ms), X.

format_and_return(X) ->
    io:format("hello from ~p: ~p~n", [node(), X]),
    io:put_chars(<<"second line\n"/utf8>>),
    X.

big(N) -> binary:copy(<<7>>, N).

%% A registered gen_server, for TS processes calling it.
start_server() ->
    {ok, Pid} = gen_server:start({local, baton_dist_server}, ?MODULE, [], []),
    Pid.

init([]) -> {ok, #{}}.
handle_call(ping, _From, S) -> {reply, pong, S};
handle_call({echo, X}, _From, S) -> {reply, X, S};
handle_call({later, X}, From, S) ->
    spawn(fun() -> timer:sleep(50), gen_server:reply(From, {late, X}) end),
    {noreply, S};
handle_call(crash, _From, S) -> {stop, crashed, S}.
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

%% Sends Msg to {Name, Node} from a fresh process.
send_to(Name, Node, Msg) ->
    spawn(fun() -> {Name, Node} ! Msg end),
    ok.

%% Monitors Target (a pid) from a fresh process and sends the 'DOWN' it gets to ReportTo.
monitor_and_report(Target, ReportTo) ->
    Self = self(),
    Pid = spawn(fun() ->
        Ref = erlang:monitor(process, Target),
        Self ! {monitoring, Ref},
        receive Down -> ReportTo ! {got, Down} end
    end),
    receive {monitoring, _} -> Pid end.

%% Links a fresh trapping process to Target; reports the exit it receives.
link_and_report(Target, ReportTo) ->
    Self = self(),
    Pid = spawn(fun() ->
        process_flag(trap_exit, true),
        link(Target),
        Self ! linked,
        receive Exit -> ReportTo ! {got, Exit} end
    end),
    receive linked -> Pid end.

%% A process that links to Target and then exits with Reason after Ms.
kill_in(Target, {Ms, Reason}) ->
    spawn(fun() -> link(Target), timer:sleep(Ms), exit(Reason) end).

report_to(Dest, Msg) -> Dest ! Msg, ok.
