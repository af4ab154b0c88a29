%% The tests' stand-in for baton's distribution layer (not available yet): a hidden
%% node that reads one Erlang expression per line on stdin, evaluates it, and writes
%% the value as one JSON line ("@@" + {"ok": V} or {"error": "..."}) on stdout.
%% It also holds the helpers those expressions call.
-module(baton_test_ctl).
-export([main/0, load/2, beams/1, beams/2, json/1, module_binary/2, module_from_source/1,
         corrupt_code/1]).

-spec main() -> no_return().
main() ->
    ok = io:setopts(standard_io, [binary, {encoding, unicode}]),
    loop(),
    erlang:halt(0).

loop() ->
    case io:get_line(standard_io, "") of
        eof -> ok;
        {error, _} -> ok;
        Line ->
            Reply = try eval(unicode:characters_to_list(Line)) of
                        V -> [<<"{\"ok\":">>, json(V), <<"}">>]
                    catch
                        C:R:St ->
                            Text = io_lib:format("~p:~0p ~0p", [C, R, St]),
                            [<<"{\"error\":">>, json(unicode:characters_to_binary(Text)), <<"}">>]
                    end,
            io:put_chars(standard_io, [<<"@@">>, Reply, $\n]),
            loop()
    end.

eval(Text) ->
    {ok, Tokens, _} = erl_scan:string(Text),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
    V.

%% Loads local modules into Node from binaries, as baton does: with a file name that
%% does not exist there, so nothing in the peer can rely on a file behind them.
-spec load(node(), [module()]) -> [{module, module()}].
load(Node, Mods) ->
    [begin
         {M, Bin, _} = code:get_object_code(M),
         erpc:call(Node, code, load_binary, [M, "baton-loaded/" ++ atom_to_list(M) ++ ".beam", Bin])
     end || M <- Mods].

-spec beams(file:filename()) -> [{module(), file:filename(), binary()}].
beams(Dir) ->
    [begin
         {ok, Bin} = file:read_file(F),
         {list_to_atom(filename:basename(F, ".beam")), F, Bin}
     end || F <- lists:sort(filelib:wildcard(filename:join(Dir, "*.beam")))].

-spec beams(file:filename(), [module()]) -> [{module(), file:filename(), binary()}].
beams(Dir, Mods) ->
    [B || {M, _, _} = B <- beams(Dir), lists:member(M, Mods)].

%% A module `Name` compiled to a binary here: v() -> Value, and loop(), a plain
%% receive loop that is no sys-compliant process (it ends on `stop`).
-spec module_binary(module(), term()) -> binary().
module_binary(Name, Value) ->
    Loop = {clause, 4, [], [],
            [{'receive', 4, [{clause, 4, [{atom, 4, stop}], [], [{atom, 4, ok}]}]}]},
    Forms = [{attribute, 1, module, Name}, {attribute, 2, export, [{v, 0}, {loop, 0}]},
             {function, 3, v, 0, [{clause, 3, [], [], [erl_parse:abstract(Value)]}]},
             {function, 4, loop, 0, [Loop]}],
    {ok, Name, Bin} = compile:forms(Forms, [binary]),
    Bin.

%% A module compiled here from its source text.
-spec module_from_source(string()) -> binary().
module_from_source(Text) ->
    {ok, Tokens, _} = erl_scan:string(Text),
    {ok, _, Bin} = compile:forms(forms(Tokens, [], []), [binary]),
    Bin.

forms([], [], Acc) ->
    lists:reverse(Acc);
forms([{dot, _} = Dot | Rest], Cur, Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Cur])),
    forms(Rest, [], [Form | Acc]);
forms([T | Rest], Cur, Acc) ->
    forms(Rest, [T | Cur], Acc).

%% The same beam with the bytes of its Code chunk overwritten: its md5 is computed
%% happily, only the loader can tell it is broken.
-spec corrupt_code(binary()) -> binary().
corrupt_code(<<"FOR1", _:32, "BEAM", Chunks/binary>>) ->
    Out = corrupt_chunks(Chunks),
    <<"FOR1", (byte_size(Out) + 4):32, "BEAM", Out/binary>>.

corrupt_chunks(<<>>) -> <<>>;
corrupt_chunks(<<Id:4/binary, Size:32, Rest/binary>>) ->
    Padded = (Size + 3) div 4 * 4,
    <<Data:Size/binary, Pad:(Padded - Size)/binary, More/binary>> = Rest,
    Data1 = case Id of
                <<"Code">> ->
                    <<Head:20/binary, Body/binary>> = Data,
                    <<Head/binary, (binary:copy(<<255>>, byte_size(Body)))/binary>>;
                _ -> Data
            end,
    <<Id/binary, Size:32, Data1/binary, Pad/binary, (corrupt_chunks(More))/binary>>.

%% Enough JSON for test results: atoms are strings (true/false/undefined aside),
%% tuples are arrays, pids and refs are their printed form.
-spec json(term()) -> iodata().
json(true) -> <<"true">>;
json(false) -> <<"false">>;
json(undefined) -> <<"null">>;
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(I) when is_integer(I) -> integer_to_binary(I);
json(F) when is_float(F) -> float_to_binary(F, [short]);
json(B) when is_binary(B) -> [$", escape(B), $"];
json(M) when is_map(M) ->
    [${, lists:join($,, [[json(key(K)), $:, json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), $}];
json(T) when is_tuple(T) -> json(tuple_to_list(T));
json(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) andalso L =/= [] of
        true -> json(unicode:characters_to_binary(L));
        false -> [$[, lists:join($,, [json(E) || E <- L]), $]]
    end;
json(Other) -> json(iolist_to_binary(io_lib:format("~0p", [Other]))).

key(K) when is_binary(K) -> K;
key(K) when is_atom(K) -> atom_to_binary(K);
key(K) -> iolist_to_binary(io_lib:format("~0p", [K])).

escape(B) ->
    << <<(case C of
              $" -> <<"\\\"">>;
              $\\ -> <<"\\\\">>;
              $\n -> <<"\\n">>;
              _ when C < 32 -> list_to_binary(io_lib:format("\\u~4.16.0b", [C]));
              _ -> <<C/utf8>>
          end)/binary>> || <<C/utf8>> <= B >>.
