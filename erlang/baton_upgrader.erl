%% Hot upgrade inside a peer (docs/design.md, "Hot upgrade inside the VM").
%%
%% baton loads this module into the user's release with code:load_binary/3, so it may
%% use kernel and stdlib only, and must not assume the modules it replaces have files.
%%
%% The phases:
%%  1. diff: only modules whose md5 differs from the loaded one are reloaded, so an
%%     unchanged module never disturbs a process running it;
%%  2. prepare: every binary goes through erlang:prepare_loading (code:prepare_loading)
%%     before any process is touched, so a corrupt beam aborts with nothing changed;
%%  3. suspend, in parallel, with one timeout per process, only the processes running a
%%     changed module (current function, initial call, proc_lib's $initial_call, and a
%%     gen_event manager's handler modules, asked with get_modules as release_handler
%%     does); a behaviour process whose callback changed that does not answer in time
%%     aborts the upgrade with all resumed (see #target{} for the others);
%%  4. finish_loading: all new code becomes current at once;
%%  5. sys:change_code on each suspended process whose callback module changed; if one
%%     crashes, the saved old binaries are loaded back and the states that had already
%%     been migrated are put back as they were;
%%  6. resume, in an `after`, so no process is ever left suspended.
%% The suspend window (first suspend sent to last resume answered) is reported in µs.
%%
%% Suspend, get_state, change_code and resume are the messages sys:suspend/2 etc. send
%% ({system, From, Msg}, answered through gen:reply/2), sent to all processes at once and
%% collected against one deadline: the same protocol as sys, without a round trip (or a
%% process) per target. A process that is not sys-compliant (a plain receive loop)
%% cannot be suspended or migrated: it goes on in the code it runs, as with any code
%% load, and the result names it (not_suspended).
-module(baton_upgrader).

-export([upgrade/1, upgrade/2]).

-export_type([beam/0, opts/0, result/0, proc/0]).

-type beam() :: {module(), file:filename_all(), binary()}.
%% snapshot_states (default true): take each migrated process's state while it is
%% suspended, so that a failed migration can put it back. It copies every state into
%% the upgrader; turn it off for processes with very large states, and a rollback
%% then lists the processes it could not restore (states_not_restored).
-type opts() :: #{suspend_timeout => timeout(),
                  change_code_timeout => timeout(),
                  extra => term(),
                  snapshot_states => boolean()}.
-type proc() :: #{pid := pid(), name := atom(), initial_call := mfa() | undefined}.
-type result() :: #{status := ok | error,
                    reason => term(),
                    reloaded := [module()],
                    added := [module()],
                    unchanged := [module()],
                    suspended := [proc()],
                    timed_out := [proc()],
                    not_suspended := [proc()],
                    change_code_failed := [{proc(), term()}],
                    rolled_back := boolean(),
                    not_rolled_back := [module()],
                    states_not_restored := [proc()],
                    old_code_kept := [module()],
                    suspend_us := non_neg_integer(),
                    phases_us => #{suspend | load | change_code | resume =>
                                       non_neg_integer()},
                    total_us := non_neg_integer()}.

-type cfg() :: #{extra := term(), snapshot_states := boolean()}.
%% A system message to send: {Key, Pid, Msg}, and what came back for a key.
-type req() :: {term(), pid(), term()}.
-type answer() :: {reply, term()} | timeout | {down, noproc}.
-type reply() :: {term(), answer()}.
%% What the window produced, before it is turned into a result().
-type outcome() :: #{status => ok | suspend_timeout | change_code_failed
                               | finish_loading_failed,
                     suspended := [pid()],
                     not_suspended := [pid()],
                     atom() => term()}.

%% A process found running a changed module. Callbacks: the modules sys:change_code is
%% called with: the callback module proc_lib started it with, when changed, or a
%% gen_event manager's changed handler modules (one change_code each). Kind:
%%  required    an OTP behaviour process (gen_server, gen_statem, supervisor) whose
%%              callback module changed, or a gen_event manager with a changed handler:
%%              it must be suspended and migrated, and one that does not answer in time
%%              aborts the upgrade;
%%  incidental  any other proc_lib process running a changed module (seen in it right
%%              now, or a special process looping in it): asked to suspend too, and
%%              migrated if it is sys-compliant and answers; if it does not answer, it
%%              goes on running the old code it is in (as any code load leaves it) and
%%              is reported in not_suspended;
%%  plain       a process not started by proc_lib: it cannot handle sys messages and is
%%              sent none (one in its mailbox could confuse its own receive); it is
%%              reported in not_suspended.
-record(target, {pid :: pid(),
                 name :: atom(),
                 initial_call :: mfa() | undefined,
                 callbacks :: [module()],
                 kind :: required | incidental | plain}).

-define(DEFAULT_TIMEOUT, 5000).
-define(STALL_MS, 50).

-spec upgrade([beam()]) -> result().
upgrade(Beams) ->
    upgrade(Beams, #{}).

%% The work runs in a process of its own, not linked to the caller: if the caller dies
%% (an erpc timeout, baton's connection dropping), the upgrade still finishes and
%% resumes every process it suspended.
-spec upgrade([beam()], opts()) -> result().
upgrade(Beams, Opts) when is_list(Beams), is_map(Opts) ->
    Caller = self(),
    Tag = make_ref(),
    {Pid, Mref} = spawn_monitor(fun() -> Caller ! {Tag, single(Caller, Beams, Opts)} end),
    receive
        {Tag, Result} ->
            erlang:demonitor(Mref, [flush]),
            Result;
        {'DOWN', Mref, process, Pid, Reason} ->
            error({upgrader_crashed, Reason})
    end.

%% ---------------------------------------------------------------------------

%% One upgrade at a time per VM: a second one would suspend processes the first one
%% is migrating. The registered name goes with the worker when it exits.
-spec single(pid(), [beam()], opts()) -> result().
single(Caller, Beams, Opts) ->
    try register(baton_upgrader_running, self()) of
        true ->
            %% code:purge/1 kills what runs old code: neither this process nor the
            %% caller (which may be application code calling us) may be among them.
            put(baton_upgrader_protect, [self(), Caller]),
            run(Beams, Opts)
    catch
        error:badarg ->
            (base())#{status => error, reason => busy}
    end.

-spec base() -> result().
base() ->
    #{status => ok, reloaded => [], added => [], unchanged => [], suspended => [],
      timed_out => [], not_suspended => [], change_code_failed => [], rolled_back => false,
      not_rolled_back => [], states_not_restored => [], old_code_kept => [],
      suspend_us => 0, total_us => 0}.

-spec run([beam()], opts()) -> result().
run(Beams, Opts) ->
    T0 = now_us(),
    SuspendTimeout = maps:get(suspend_timeout, Opts, ?DEFAULT_TIMEOUT),
    CodeTimeout = maps:get(change_code_timeout, Opts, ?DEFAULT_TIMEOUT),
    Cfg = #{extra => maps:get(extra, Opts, []),
            snapshot_states => maps:get(snapshot_states, Opts, true)},
    Base = base(),
    R = case diff(Beams) of
            {error, Reason} ->
                Base#{status => error, reason => Reason};
            {ok, Changed, Added, Unchanged} ->
                Base1 = Base#{reloaded => mods(Changed), added => mods(Added),
                              unchanged => Unchanged},
                load(Changed, Added, SuspendTimeout, CodeTimeout, Cfg, Base1)
        end,
    R#{total_us => now_us() - T0}.

%% Changed: loaded modules whose md5 differs; Added: modules not loaded at all (a
%% module not loaded yet may still have an old file on the code path, so it is loaded
%% now rather than left to a lazy load that would find the old file).
-spec diff([beam()]) -> {ok, [beam()], [beam()], [module()]} | {error, term()}.
diff(Beams) ->
    Checked = [check_beam(B) || B <- Beams],
    case [E || {error, E} <- Checked] of
        [_ | _] = Errors ->
            {error, {prepare_failed, Errors}};
        [] ->
            Ms = [M || {M, _, _} <- Beams],
            case Ms -- lists:usort(Ms) of
                [] ->
                    {ok, [B || {changed, B} <- Checked], [B || {added, B} <- Checked],
                     [M || {unchanged, M} <- Checked]};
                Dups ->
                    {error, {prepare_failed, [{M, duplicated} || M <- lists:usort(Dups)]}}
            end
    end.

-spec check_beam(term()) ->
    {changed | added, beam()} | {unchanged, module()} | {error, {term(), term()}}.
check_beam({M, File, Bin}) when is_atom(M), is_binary(Bin) ->
    case is_filename(File) andalso beam_lib:md5(Bin) of
        false ->
            {error, {M, bad_filename}};
        {ok, {M, MD5}} ->
            case is_protected(M) of
                true -> {error, {M, sticky_directory}};
                false -> diff_loaded(M, File, Bin, MD5)
            end;
        {ok, {Other, _}} ->
            {error, {M, {module_name_mismatch, Other}}};
        {error, beam_lib, _} ->
            {error, {M, badfile}}
    end;
check_beam(Other) ->
    {error, {Other, badarg}}.

%% kernel, stdlib and compiler are what code_server makes sticky in interactive mode
%% (and what this module runs on); a release booted in embedded mode has no sticky
%% directories, so they are protected here whatever the mode, preloaded modules too.
%% Refused before anything is suspended, not by finish_loading after.
-spec is_protected(module()) -> boolean().
is_protected(M) ->
    code:is_sticky(M)
        orelse code:is_loaded(M) =:= {file, preloaded}
        orelse case application:get_application(M) of
                   {ok, App} -> lists:member(App, [kernel, stdlib, compiler]);
                   undefined -> false
               end.

-spec diff_loaded(module(), file:filename_all(), binary(), binary()) ->
    {changed | added, beam()} | {unchanged, module()}.
diff_loaded(M, File, Bin, MD5) ->
    case erlang:module_loaded(M) of
        false -> {added, {M, File, Bin}};
        true ->
            case M:module_info(md5) of
                MD5 -> {unchanged, M};
                _ -> {changed, {M, File, Bin}}
            end
    end.

-spec is_filename(term()) -> boolean().
is_filename(F) ->
    try unicode:characters_to_list(F) of
        L when is_list(L) -> true;
        _ -> false
    catch
        _:_ -> false
    end.

-spec load([beam()], [beam()], timeout(), timeout(), cfg(), result()) -> result().
load([], [], _ST, _CT, _Extra, R) ->
    R;
load(Changed, Added, SuspendTimeout, CodeTimeout, Cfg, R) ->
    case prepare(Changed ++ Added) of
        {error, Errors} ->
            R#{status => error, reason => {prepare_failed, Errors}};
        {ok, Prepared} ->
            ChangedMods = mods(Changed),
            %% Saved before anything moves: the files behind code:which/1 may be gone,
            %% rewritten or never have existed.
            OldBins = [{M, old_binary(M)} || M <- ChangedMods],
            Vsns = maps:from_list([{M, vsn(M)} || M <- ChangedMods]),
            case purge_before_load(ChangedMods) of
                {error, Reason} ->
                    R#{status => error, reason => Reason};
                ok ->
                    Targets = find_targets(maps:from_list([{M, true} || M <- ChangedMods]),
                                           SuspendTimeout),
                    swap(Prepared, Targets, OldBins, Vsns, mods(Added),
                         SuspendTimeout, CodeTimeout, Cfg, R)
            end
    end.

-spec prepare([beam()]) -> {ok, term()} | {error, term()}.
prepare(Beams) ->
    try code:prepare_loading([{M, to_list(F), B} || {M, F, B} <- Beams]) of
        {ok, Prepared} -> {ok, Prepared};
        {error, Errors} -> {error, Errors}
    catch
        error:Reason -> {error, Reason}
    end.

-spec to_list(file:filename_all()) -> string().
to_list(F) when is_list(F) -> F;
to_list(F) -> unicode:characters_to_list(F).

%% The binary of the loaded code, found through code:which/1 or the code path, and
%% only trusted when its md5 is the loaded one's.
-spec old_binary(module()) -> {ok, beam()} | none.
old_binary(M) ->
    MD5 = M:module_info(md5),
    Candidates = case code:which(M) of
                     W when is_list(W), W =/= "" -> [W];
                     _ -> []
                 end,
    Found = lists:foldl(
              fun(_, {ok, _} = Hit) -> Hit;
                 (File, none) ->
                      case erl_prim_loader:get_file(File) of
                          {ok, Bin, _} -> match_md5(M, File, Bin, MD5);
                          error -> none
                      end
              end, none, Candidates),
    case Found of
        {ok, _} -> Found;
        none ->
            case code:get_object_code(M) of
                {M, Bin, File} -> match_md5(M, File, Bin, MD5);
                error -> none
            end
    end.

-spec match_md5(module(), file:filename_all(), binary(), binary()) -> {ok, beam()} | none.
match_md5(M, File, Bin, MD5) ->
    case beam_lib:md5(Bin) of
        {ok, {M, MD5}} -> {ok, {M, File, Bin}};
        _ -> none
    end.

%% As release_handler does: the vsn attribute of the code being replaced is the OldVsn
%% that code_change/3 receives.
-spec vsn(module()) -> term().
vsn(M) ->
    try proplists:get_value(vsn, M:module_info(attributes))
    catch _:_ -> undefined
    end.

%% finish_loading refuses a module that still has old code, so old code left by an
%% earlier upgrade goes now: softly if nothing runs it, else by killing what lingers
%% in it (what code:purge/1 and c:l/1 do), but never this process.
-spec purge_before_load([module()]) -> ok | {error, term()}.
purge_before_load(Mods) ->
    Stuck = [M || M <- Mods, erlang:check_old_code(M), not code:soft_purge(M)],
    Protect = case get(baton_upgrader_protect) of
                  undefined -> [self()];
                  Ps -> Ps
              end,
    case [M || M <- Stuck, P <- Protect, is_process_alive(P),
               erlang:check_process_code(P, M)] of
        [] ->
            _ = [code:purge(M) || M <- Stuck],
            ok;
        Mine ->
            {error, {not_purged, Mine}}
    end.

%% Processes running a changed module: by current function, initial call, and
%% proc_lib's $initial_call (which names the behaviour's callback module:
%% {Mod, init, 1} for gen_server/gen_statem, {supervisor, Mod, 1} for supervisors,
%% {gen_event, init_it, 6} for a gen_event manager, whose handlers it is asked for).
-spec find_targets(#{module() => true}, timeout()) -> [#target{}].
find_targets(Changed, Timeout) ->
    %% Not the caller either: it waits in baton_upgrader:upgrade/2, and sys messages
    %% mean nothing to it.
    Skip = case get(baton_upgrader_protect) of
               undefined -> [self()];
               Ps -> Ps
           end,
    lists:filtermap(
      fun(Pid) ->
              not lists:member(Pid, Skip) andalso target(Pid, Changed, Timeout)
      end, erlang:processes()).

-spec target(pid(), #{module() => true}, timeout()) -> false | {true, #target{}}.
target(Pid, Changed, Timeout) ->
    case erlang:process_info(Pid, [current_function, initial_call, registered_name]) of
        undefined ->
            false;
        [{current_function, Cur}, {initial_call, Init}, {registered_name, Reg}] ->
            ProcLib = case Init of
                          {proc_lib, init_p, 5} -> proc_lib_initial_call(Pid);
                          _ -> undefined
                      end,
            {Callbacks, Behaviour} =
                case ProcLib of
                    {supervisor, SupMod, 1} -> {changed(SupMod, Changed), true};
                    {gen_event, init_it, 6} -> {changed_handlers(Pid, Changed, Timeout), true};
                    {CbMod, init, 1} -> {changed(CbMod, Changed), true};
                    {CbMod, _, _} -> {changed(CbMod, Changed), false};
                    undefined -> {[], false}
                end,
            Kind = if
                       Callbacks =/= [], Behaviour -> required;
                       ProcLib =/= undefined -> incidental;
                       true -> plain
                   end,
            Running = Callbacks =/= []
                orelse is_changed(Cur, Changed) orelse is_changed(Init, Changed),
            Running andalso
                {true, #target{pid = Pid,
                               name = case Reg of [] -> undefined; _ -> Reg end,
                               initial_call = case ProcLib of
                                                  undefined -> mfa_or_undefined(Init);
                                                  _ -> ProcLib
                                              end,
                               callbacks = Callbacks,
                               kind = Kind}}
    end.

-spec proc_lib_initial_call(pid()) -> mfa() | undefined.
proc_lib_initial_call(Pid) ->
    case erlang:process_info(Pid, dictionary) of
        {dictionary, D} ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {M, F, A}} when is_atom(M), is_atom(F), is_integer(A) -> {M, F, A};
                _ -> undefined
            end;
        undefined ->
            undefined
    end.

-spec changed(module(), #{module() => true}) -> [module()].
changed(M, Changed) ->
    case maps:is_key(M, Changed) of
        true -> [M];
        false -> []
    end.

%% The changed modules among a gen_event manager's handlers. One that does not say
%% (busy past the timeout, or gone) is left as any process is: judged by what it runs.
-spec changed_handlers(pid(), #{module() => true}, timeout()) -> [module()].
changed_handlers(Pid, Changed, Timeout) ->
    try gen:call(Pid, self(), get_modules, Timeout) of
        {ok, Mods} when is_list(Mods) -> [M || M <- Mods, maps:is_key(M, Changed)];
        _ -> []
    catch
        exit:_ -> []
    end.

-spec is_changed(term(), #{module() => true}) -> boolean().
is_changed({M, _, _}, Changed) -> maps:is_key(M, Changed);
is_changed(_, _) -> false.

-spec mfa_or_undefined(term()) -> mfa() | undefined.
mfa_or_undefined({M, F, A}) when is_atom(M), is_atom(F), is_integer(A) -> {M, F, A};
mfa_or_undefined(_) -> undefined.

%% Phases 3 to 6. Everything from the first suspend on runs under `after`, which
%% resumes every process a suspend was sent to, answered or not: sys handles system
%% messages in order, so one that suspends late is resumed right after.
%% Inside the window the work is on pids and plain lists only (one pass per phase);
%% what the result reports about the processes is assembled after it.
-spec swap(term(), [#target{}], [{module(), {ok, beam()} | none}], #{module() => term()},
           [module()], timeout(), timeout(), cfg(), result()) -> result().
swap(Prepared, Targets, OldBins, Vsns, Added, SuspendTimeout, CodeTimeout, Cfg, R0) ->
    #{extra := Extra, snapshot_states := Snapshot} = Cfg,
    Asked = [T || T <- Targets, T#target.kind =/= plain],
    Pids = [T#target.pid || T <- Asked],
    Required = maps:from_list([{T#target.pid, true} || T <- Asked, T#target.kind =:= required]),
    %% Each process that may be migrated gets get_state right behind suspend: both
    %% are handled in the same wake-up, and the state it had before any new code is
    %% kept to undo a failed migration. The requests are built before the window.
    SuspendReqs = lists:foldr(
                    fun(#target{pid = P, callbacks = [_ | _]}, Acc) when Snapshot ->
                            [{P, P, suspend}, {{state, P}, P, get_state} | Acc];
                       (#target{pid = P}, Acc) ->
                            [{P, P, suspend} | Acc]
                    end, [], Asked),
    %% Keyed {Pid, Module}: a gen_event manager gets one change_code per handler module.
    CodeReqs = [{{P, Cb}, P, {change_code, Cb, maps:get(Cb, Vsns), Extra}}
                || #target{pid = P, callbacks = Cbs} <- Asked, Cb <- Cbs],
    ResumeReqs = [{P, P, resume} || P <- Pids],
    S0 = now_us(),
    Outcome = try
                  suspended(Prepared, SuspendReqs, CodeReqs, Required, OldBins, Added,
                            SuspendTimeout, CodeTimeout)
              after
                  _ = sys_multi(ResumeReqs, SuspendTimeout)
              end,
    %% The window closes when the last resume is answered.
    S1 = now_us(),
    Phases = phases(S0, S1),
    ByPid = maps:from_list([{T#target.pid, T} || T <- Targets]),
    Proc = fun(P) -> proc(maps:get(P, ByPid)) end,
    #{suspended := Ok, not_suspended := Busy} = Outcome,
    Plain = [proc(T) || T <- Targets, T#target.kind =:= plain],
    R1 = R0#{suspended => lists:map(Proc, Ok),
             not_suspended => Plain ++ lists:map(Proc, Busy)},
    R = case Outcome of
            #{status := ok} ->
                R1;
            #{status := suspend_timeout, timed_out := TimedOut} ->
                R1#{status => error, reason => suspend_timeout,
                    timed_out => lists:map(Proc, TimedOut)};
            #{status := change_code_failed, failed := Failed, not_rolled_back := NotRB,
              states_not_restored := NotRestored} ->
                R1#{status => error, reason => change_code_failed, rolled_back => true,
                    change_code_failed => [{Proc(P), W} || {P, W} <- Failed],
                    not_rolled_back => NotRB,
                    states_not_restored => lists:map(Proc, NotRestored)};
            #{status := finish_loading_failed, errors := Errors} ->
                R1#{status => error, reason => {finish_loading_failed, Errors}}
        end,
    keep_old_code(R#{suspend_us => S1 - S0, phases_us => Phases}).

%% Where the window went, for baton's report: suspend (and snapshot), finish_loading,
%% change_code (and any rollback), resume. A phase not reached is absent.
-spec mark(suspended | loaded | migrated) -> term().
mark(Phase) ->
    put({baton_upgrader_mark, Phase}, now_us()).

-spec phases(integer(), integer()) -> #{atom() => non_neg_integer()}.
phases(S0, S1) ->
    Marks = [{P, T} || P <- [suspended, loaded, migrated],
                       T <- [get({baton_upgrader_mark, P})], T =/= undefined],
    {Map, Last} = lists:foldl(
                    fun({P, T}, {Acc, Prev}) ->
                            Name = case P of
                                       suspended -> suspend;
                                       loaded -> load;
                                       migrated -> change_code
                                   end,
                            {Acc#{Name => T - Prev}, T}
                    end, {#{}, S0}, Marks),
    Map#{resume => S1 - Last}.

-spec suspended(term(), [req()], [req()], #{pid() => true},
                [{module(), {ok, beam()} | none}], [module()], timeout(), timeout()) ->
    outcome().
suspended(Prepared, SuspendReqs, CodeReqs, Required, OldBins, Added, SuspendTimeout,
          CodeTimeout) ->
    Replies = sys_multi(SuspendReqs, SuspendTimeout),
    mark(suspended),
    %% The usual case: every one answered ok, and this is one pass.
    case [{P, R} || {P, R} <- Replies, is_pid(P), R =/= {reply, ok}] of
        [] ->
            Ok = [P || {P, _} <- Replies, is_pid(P)],
            migrate(Prepared, CodeReqs, Ok, [], Replies, OldBins, Added, CodeTimeout);
        Bad ->
            Ok = [P || {P, {reply, ok}} <- Replies, is_pid(P)],
            TimedOut = [P || {P, timeout} <- Bad],
            case [P || P <- TimedOut, maps:is_key(P, Required)] of
                [_ | _] = Stuck ->
                    #{status => suspend_timeout, suspended => Ok,
                      not_suspended => TimedOut -- Stuck, timed_out => Stuck};
                [] ->
                    %% Those that exited run nothing any more; those that did not
                    %% answer go on in the code they are in, unmigrated.
                    Skip = maps:from_list(Bad),
                    Left = [R || {_, P, _} = R <- CodeReqs, not maps:is_key(P, Skip)],
                    migrate(Prepared, Left, Ok, TimedOut, Replies, OldBins, Added,
                            CodeTimeout)
            end
    end.

-spec migrate(term(), [req()], [pid()], [pid()], [reply()],
              [{module(), {ok, beam()} | none}], [module()], timeout()) -> outcome().
migrate(Prepared, CodeReqs, Suspended, Busy, States, OldBins, Added, Timeout) ->
    Base = #{suspended => Suspended, not_suspended => Busy},
    case code:finish_loading(Prepared) of
        ok ->
            mark(loaded),
            Replies = sys_multi(CodeReqs, Timeout),
            Outcome = migrated(Replies, States, OldBins, Added, Timeout, Base),
            mark(migrated),
            Outcome;
        {error, Errors} ->
            Base#{status => finish_loading_failed, errors => Errors}
    end.

-spec migrated([reply()], [reply()], [{module(), {ok, beam()} | none}], [module()],
               timeout(), outcome()) -> outcome().
migrated(Replies, States, OldBins, Added, Timeout, Base) ->
    case [{P, W} || {{P, _}, R} <- Replies, W <- [change_code_failure(R)], W =/= none] of
        [] ->
            Base#{status => ok};
        Failed ->
            Snapshots = [{P, S} || {{state, P}, R} <- States, {ok, S} <- [snapshot(R)]],
            %% A process whose change_code timed out may still complete it: its state
            %% is put back too, by a message queued behind it. So is a gen_event
            %% manager's when any of its handlers was migrated.
            Migrated = lists:usort([P || {{P, _}, R} <- Replies,
                                         R =:= timeout orelse change_code_failure(R) =:= none]),
            NotRolledBack = rollback(OldBins, Added, Migrated, Snapshots, Timeout),
            Base#{status => change_code_failed, failed => Failed,
                  not_rolled_back => NotRolledBack,
                  states_not_restored => [P || P <- Migrated,
                                               not lists:keymember(P, 1, Snapshots)]}
    end.

-spec change_code_failure(answer()) -> none | term().
change_code_failure({reply, ok}) -> none;
change_code_failure({reply, Other}) -> Other;
change_code_failure(timeout) -> timeout;
change_code_failure({down, noproc}) -> none.

%% Puts the old binaries back as current code, removes the modules the upgrade
%% added, and gives the processes already migrated their pre-upgrade state back.
%% Returns the modules that could not be restored (no binary of theirs was found).
-spec rollback([{module(), {ok, beam()} | none}], [module()], [pid()], [{pid(), term()}],
               timeout()) -> [module()].
rollback(OldBins, Added, Migrated, Snapshots, Timeout) ->
    Restorable = [B || {_, {ok, B}} <- OldBins],
    Missing = [M || {M, none} <- OldBins],
    %% The slot for old code holds the very code being restored and must be emptied
    %% for the reload; the suspended processes sit in sys, not in it.
    _ = purge_before_load(mods(Restorable)),
    Failed = case prepare(Restorable) of
                 {ok, P} ->
                     case code:finish_loading(P) of
                         ok -> [];
                         {error, Errors} -> [M || {M, _} <- Errors]
                     end;
                 {error, _} ->
                     mods(Restorable)
             end,
    _ = [{code:delete(M), code:soft_purge(M)} || M <- Added],
    Restore = maps:from_list(Snapshots),
    _ = sys_multi([{P, P, {replace_state, restore(maps:get(P, Restore))}}
                   || P <- Migrated, maps:is_key(P, Restore)],
                  Timeout),
    Missing ++ Failed.

%% sys answers get_state with the state itself, or with this error.
-spec snapshot(answer() | none) -> {ok, term()} | none.
snapshot({reply, {error, {callback_failed, _, _}}}) -> none;
snapshot({reply, State}) -> {ok, State};
snapshot(_) -> none.

-spec restore(term()) -> fun((term()) -> term()).
restore(State) ->
    fun(_) -> State end.

%% The previous code stays loaded as old code while processes still run it (a
%% connection process in the middle of a call); the next upgrade purges it.
-spec keep_old_code(result()) -> result().
keep_old_code(#{reloaded := Mods} = R) ->
    R#{old_code_kept => [M || M <- Mods, erlang:check_old_code(M), not code:soft_purge(M)]}.

-spec proc(#target{}) -> proc().
proc(#target{pid = P, name = N, initial_call = I}) ->
    #{pid => P, name => N, initial_call => I}.

-spec mods([beam()]) -> [module()].
mods(Beams) -> [M || {M, _, _} <- Beams].

-spec now_us() -> integer().
now_us() -> erlang:monotonic_time(microsecond).

%% The system-message call sys:suspend/2 and friends make (gen:call(P, system, Msg,
%% Timeout)), made to every process at once and collected against one deadline.
%% The reply tag carries the request's key, so collecting needs no lookup per reply,
%% and a round's fresh reference keeps anything left from an earlier call from being
%% taken for an answer. No monitor per request (that doubled the cost with 10,000
%% processes): when nothing has arrived for ?STALL_MS, the processes still owed an
%% answer are checked for being alive. Keys must be unique.
%% Returns [{Key, {reply, Reply} | timeout | {down, noproc}}].
-spec sys_multi([{Key, pid(), term()}], timeout()) ->
    [{Key, {reply, term()} | timeout | {down, noproc}}] when Key :: term().
sys_multi([], _Timeout) ->
    [];
sys_multi(Reqs, Timeout) ->
    Deadline = case Timeout of
                   infinity -> infinity;
                   _ -> erlang:monotonic_time(millisecond) + Timeout
               end,
    Round = make_ref(),
    Self = self(),
    N = lists:foldl(fun({Key, Pid, Msg}, C) ->
                            Pid ! {system, {Self, {Round, Key}}, Msg},
                            C + 1
                    end, 0, Reqs),
    collect(Reqs, Round, N, Deadline, []).

-spec collect([req()], reference(), non_neg_integer(), integer() | infinity, [reply()]) ->
    [reply()].
collect(_Reqs, _Round, 0, _Deadline, Acc) ->
    Acc;
collect(Reqs, Round, N, Deadline, Acc) ->
    Wait = wait(Deadline),
    receive
        {{Round, Key}, Reply} ->
            collect(Reqs, Round, N - 1, Deadline, [{Key, {reply, Reply}} | Acc])
    after min(Wait, ?STALL_MS) ->
            Answered = maps:from_list(Acc),
            Owed = [{Key, Pid} || {Key, Pid, _} <- Reqs, not maps:is_key(Key, Answered)],
            case [{Key, {down, noproc}} || {Key, Pid} <- Owed, not is_process_alive(Pid)] of
                [] when Wait =< ?STALL_MS ->
                    [{Key, timeout} || {Key, _} <- Owed] ++ Acc;
                [] ->
                    collect(Reqs, Round, N, Deadline, Acc);
                Dead ->
                    collect(Reqs, Round, N - length(Dead), Deadline, Dead ++ Acc)
            end
    end.

-spec wait(integer() | infinity) -> timeout().
wait(infinity) -> infinity;
wait(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).
