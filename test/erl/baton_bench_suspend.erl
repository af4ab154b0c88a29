%% The reference for `npm run bench -- suspend`: the four phases of a hot upgrade as
%% a plain script inside the VM would run them (what fly_deploy and a hand-written
%% upgrade do): sys:suspend each process in turn, purge + load_binary each changed
%% module, sys:change_code each process, sys:resume each process. Which processes
%% and modules are involved is worked out before the clock starts, as it is for
%% baton_upgrader (whose window also starts at its first suspend).
-module(baton_bench_suspend).
-export([plain/1]).

-spec plain([{module(), file:filename(), binary()}]) ->
    #{suspend_us := non_neg_integer(), processes := non_neg_integer(),
      modules := [module()]}.
plain(Beams) ->
    Changed = [B || {M, _, Bin} = B <- Beams,
                    erlang:module_loaded(M),
                    {ok, {_, MD5}} <- [beam_lib:md5(Bin)],
                    M:module_info(md5) =/= MD5],
    Mods = [M || {M, _, _} <- Changed],
    Vsns = maps:from_list([{M, proplists:get_value(vsn, M:module_info(attributes))} || M <- Mods]),
    Procs = [{P, Cb} || P <- erlang:processes(), P =/= self(),
                        {Cb, _, _} <- [proc_lib:initial_call(P)],
                        lists:member(Cb, Mods)],
    T0 = erlang:monotonic_time(microsecond),
    _ = [sys:suspend(P) || {P, _} <- Procs],
    _ = [begin
             code:purge(M),
             {module, M} = code:load_binary(M, F, Bin)
         end || {M, F, Bin} <- Changed],
    _ = [ok = sys:change_code(P, Cb, maps:get(Cb, Vsns), []) || {P, Cb} <- Procs],
    _ = [sys:resume(P) || {P, _} <- Procs],
    T1 = erlang:monotonic_time(microsecond),
    #{suspend_us => T1 - T0, processes => length(Procs), modules => Mods}.
