%% Conformance corpus for baton's ETF codec: a seeded generator of terms covering every
%% tag the BEAM emits, written out as term_to_binary/1,2 produces them, and a checker
%% that reads terms encoded by baton back with binary_to_term/1 and compares them =:=
%% with the originals.
%%
%% Files are sequences of <<Len:32, Bin:Len/binary>>.
-module(etf_corpus).
-export([write/3, write_deep/3, write_bench/1, check/3, terms/2, reencode/2]).

-define(MIB, 1048576).

%% Writes plain.bin (term_to_binary/1), mv2.bin ({minor_version, 2}) and
%% compressed.bin ([compressed]) for the corpus of Seed/Count into Dir.
-spec write(file:filename(), integer(), pos_integer()) -> ok.
write(Dir, Seed, Count) ->
    Terms = terms(Seed, Count),
    ok = dump(filename:join(Dir, "plain.bin"), [term_to_binary(T) || T <- Terms]),
    ok = dump(filename:join(Dir, "mv2.bin"), [term_to_binary(T, [{minor_version, 2}]) || T <- Terms]),
    ok = dump(filename:join(Dir, "compressed.bin"), [term_to_binary(T, [compressed]) || T <- Terms]),
    ok = file:write_file(filename:join(Dir, "count.txt"), integer_to_list(length(Terms))).

%% Writes deep.bin: terms nested deeper than a recursive codec manages (lists 5,000 and
%% 100,000 deep, a tuple 2,000 deep, mixes, maps nested 100,000 deep in values and
%% 20,000 deep in keys), then the first Count terms of the corpus of Seed each wrapped 70
%% levels deep in a mix of lists, tuples, maps and improper lists.
-spec write_deep(file:filename(), integer(), pos_integer()) -> ok.
write_deep(Dir, Seed, Count) ->
    Nest = fun(Wrap, Depth, Leaf) -> lists:foldl(Wrap, Leaf, lists:seq(1, Depth)) end,
    Mix = fun(I, Acc) ->
              case I rem 4 of
                  0 -> [Acc];
                  1 -> {I, Acc};
                  2 -> #{I => Acc, k => I};
                  3 -> [Acc | tail]
              end
          end,
    Deep = [Nest(fun(_, A) -> [A] end, 5000, []),
            Nest(fun(I, A) -> {I, A} end, 2000, {}),
            Nest(Mix, 3000, <<"leaf">>),
            Nest(fun(_, A) -> [A] end, 100000, []),
            Nest(fun(I, A) -> [I, A] end, 100000, "end"),
            Nest(fun(_, A) -> #{v => A} end, 100000, 0),
            Nest(fun(_, A) -> #{A => 1} end, 20000, key),
            Nest(fun(I, A) -> {I, [A | I], #{A => I}} end, 12, x),
            Nest(Mix, 100000, 1.5)],
    Wrapped = [Nest(Mix, 70, T) || T <- lists:sublist(terms(Seed, Count), Count)],
    ok = dump(filename:join(Dir, "deep.bin"), [term_to_binary(T) || T <- Deep ++ Wrapped]).

%% Writes to File the corpus of `npm run bench -- etf` as term_to_binary/1 writes it, in
%% the order of test/bench/etf.ts: control messages, a 1 MiB binary, 100,000 small
%% integers, nested maps, a 60,000-character string.
-spec write_bench(file:filename()) -> ok.
write_bench(File) ->
    From = external_pid('peer@host', 101, 0, 3),
    To = external_pid('baton-1@host', 7, 0, 1),
    Ref = external_ref('peer@host', 3, [17, 2, 3]),
    Control = [{22, From, To}, {19, From, To, Ref}, {31, Ref, To, 0, From}],
    Mib = << <<(32 + I rem 95)>> || I <- lists:seq(0, ?MIB - 1) >>,
    Text = lists:sublist(lists:append(lists:duplicate(1400, "the quick brown fox jumps over the lazy dog. ")), 60000),
    Terms = [Control, Mib, lists:seq(0, 99999), bench_maps(2), Text],
    dump(File, [term_to_binary(T) || T <- Terms]).

bench_maps(Depth) ->
    maps:from_list(lists:append(
        [[{list_to_atom("key_" ++ integer_to_list(I)), case Depth of 0 -> I; _ -> bench_maps(Depth - 1) end},
          {<<"bin_", (integer_to_binary(I))/binary>>, [I, v]}] || I <- lists:seq(0, 7)])).

%% Reads File (encoded by baton) and writes to Out "ok N" or one line per term that
%% binary_to_term refused or that differs from the original in Originals (plain.bin:
%% the corpus holds fresh refs, so it cannot simply be generated again).
-spec check(file:filename(), file:filename(), file:filename()) -> ok.
check(File, Originals, Out) ->
    {ok, OrigBin} = file:read_file(Originals),
    Terms = [binary_to_term(B) || B <- undump(OrigBin)],
    {ok, Bin} = file:read_file(File),
    Encoded = undump(Bin),
    Problems =
        case length(Encoded) =:= length(Terms) of
            false ->
                [io_lib:format("count ~b, expected ~b~n", [length(Encoded), length(Terms)])];
            true ->
                lists:append(lists:zipwith3(fun compare/3, lists:seq(0, length(Terms) - 1), Terms, Encoded))
        end,
    Report =
        case Problems of
            [] -> io_lib:format("ok ~b~n", [length(Terms)]);
            _ -> Problems
        end,
    ok = file:write_file(Out, Report).

%% For each binary of In, writes to Out <<0, term_to_binary(binary_to_term(B))>>, or <<1>>
%% when binary_to_term refuses it: how the BEAM itself reads legacy and odd encodings.
-spec reencode(file:filename(), file:filename()) -> ok.
reencode(In, Out) ->
    {ok, Bin} = file:read_file(In),
    dump(Out, [try <<0, (term_to_binary(binary_to_term(B)))/binary>> catch _:_ -> <<1>> end
               || B <- undump(Bin)]).

compare(I, Original, Bin) ->
    try binary_to_term(Bin) of
        Original -> [];
        Other -> [io_lib:format("~b differs: ~P~n", [I, Other, 12])]
    catch
        C:R -> [io_lib:format("~b refused: ~p:~p ~P~n", [I, C, R, Original, 12])]
    end.

dump(File, Bins) ->
    file:write_file(File, [[<<(byte_size(B)):32>>, B] || B <- Bins]).

undump(<<Len:32, B:Len/binary, Rest/binary>>) -> [B | undump(Rest)];
undump(<<>>) -> [].

%% The fixed edge cases first, then Count - length(edges) random terms (at least 100).
-spec terms(integer(), pos_integer()) -> [term()].
terms(Seed, Count) ->
    _ = rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 2}),
    Edges = edges(),
    Edges ++ [random_term(4) || _ <- lists:seq(1, max(100, Count - length(Edges)))].

edges() ->
    Lambda = [955],
    Pids = [external_pid(Node, Id, Ser, Cr) || {Node, Id, Ser, Cr} <- [
        {'a@b', 1, 0, 0}, {'other@host', 32767, 8191, 3}, {'x@y', 16#FFFFFFFF, 16#FFFFFFFF, 16#FFFFFFFF},
        {list_to_atom("λ@höst"), 5, 0, 1234567}]],
    Refs = [external_ref(Node, Cr, Ids) || {Node, Cr, Ids} <- [
        {'a@b', 0, [1, 2, 3]}, {'peer@host', 16#FFFFFFFF, [16#FFFFFFFF, 0, 7]},
        {'a@b', 9, [1]}, {'a@b', 9, [1, 2, 3, 4]}, {'a@b', 9, [1, 2, 3, 4, 5]}]],
    Ports = [external_port(Node, Id, Cr) || {Node, Id, Cr} <- [
        {'a@b', 0, 0}, {'a@b', 16#FFFFFFFF, 77}, {'a@b', 16#100000000, 5}, {'p@q', 16#FFFFFFFFFFFFFFF, 16#FFFFFFFF}]],
    Bits = [<<(rand:uniform(256) - 1):N>> || N <- lists:seq(1, 7)] ++
           [<<1, 2, 3, 5:3>>, <<255:7>>, <<(crypto_bytes(100))/binary, 1:1>>],
    Big = fun(Digits) -> list_to_integer([$1 | lists:duplicate(Digits - 1, $7)]) end,
    Ints = [0, 1, 255, 256, -1, -255, -256, 16#7FFFFFFF, -16#80000000, 16#80000000, -16#80000001,
            1 bsl 32, 1 bsl 48, (1 bsl 53) - 1, 1 bsl 53, -(1 bsl 53), (1 bsl 53) + 1,
            1 bsl 64, -(1 bsl 64), (1 bsl 64) - 1, 1 - (1 bsl 64), 1 bsl 2039, 1 bsl 2040, -(1 bsl 2040),
            Big(1000), -Big(1000), Big(20), -Big(20)],
    Floats = [0.0, -0.0, 1.0, -1.0, 1.5, 0.1, -2.5e-300, 5.0e-324, 1.7976931348623157e308,
              9007199254740992.0, 1.0e300, 123456789.0],
    Atoms = ['', a, 'Aa', 'with space', 'é', list_to_atom(lists:duplicate(255, $x)),
             list_to_atom(lists:duplicate(255, 233)), list_to_atom(lists:duplicate(255, 955)),
             list_to_atom(lists:duplicate(255, 16#1F600)), list_to_atom(Lambda), true, false, undefined, nil],
    Tuples = [{}, {a}, list_to_tuple(lists:seq(1, 255)), list_to_tuple(lists:seq(1, 256)),
              list_to_tuple([X rem 7 || X <- lists:seq(1, 1000)])],
    Lists = [[], "", "abc", [0], [255], [256], [-1], lists:seq(0, 255), lists:duplicate(65535, $a),
             lists:duplicate(65536, $a), "hélló", [955, 955], [a | b], [1, 2 | 3], [[1 | 2] | [3 | 4]],
             [[[[a | b] | c] | d] | e], [1, 2, 3 | <<>>], [{x, [y | z]} | #{k => [1 | 2]}], [[]], [[], []],
             nest_improper(50), [1.0, 2], lists:seq(1, 100000)],
    Maps = [#{}, #{a => 1}, #{#{a => 1} => x, #{} => #{}}, #{1 => a, 1.0 => b},
            maps:from_list([{I, I * I} || I <- lists:seq(1, 32)]),
            maps:from_list([{I, I * I} || I <- lists:seq(1, 33)]),
            maps:from_list([{integer_to_binary(I), {I}} || I <- lists:seq(1, 200)]),
            #{[1 | 2] => {}, <<1:3>> => self(), make_ref() => fun lists:map/2}],
    Bins = [<<>>, <<0>>, <<"hello">>, crypto_bytes(?MIB), binary:copy(<<7>>, ?MIB)],
    Funs = [fun lists:map/2, fun erlang:'+'/2, fun(X) -> X end, fun() -> Lambda end,
            make_closure(a, <<1, 2>>), make_closure({1, [2 | 3]}, #{x => 1.0})],
    Local = [self(), make_ref(), hd(erlang:ports()), node()],
    Pids ++ Refs ++ Ports ++ Bits ++ Ints ++ Floats ++ Atoms ++ Tuples ++ Lists ++ Maps ++ Bins ++ Funs ++ Local ++ boms().

%% U+FEFF (a byte-order mark) at the start of text, alone, in the middle, repeated: a
%% decoder that strips a leading BOM loses it. Its UTF-8 bytes EF BB BF also stand as
%% Latin-1 text (ATOM_EXT, STRING_EXT) and as binaries, where they are three characters.
boms() ->
    Bom = 16#FEFF,
    Texts = [[Bom, $a], [Bom], [$a, Bom, $b], [$a, Bom], [Bom, Bom, Bom, $x], [Bom, 955, Bom]],
    [list_to_atom(T) || T <- Texts] ++ Texts ++
        [unicode:characters_to_binary(T) || T <- Texts] ++
        [list_to_atom(lists:duplicate(255, Bom)), list_to_atom([239, 187, 191, $a]), [239, 187, 191, $a],
         <<239, 187, 191>>, {list_to_atom([Bom | "k"]), #{list_to_atom([Bom]) => [Bom], [Bom] => <<239, 187, 191>>}},
         external_pid(list_to_atom([Bom | "n@h"]), 1, 0, 1), external_ref(list_to_atom([Bom | "r@h"]), 2, [1, 2, 3])].

make_closure(A, B) -> fun(C) -> {A, B, C} end.

nest_improper(0) -> tail;
nest_improper(N) -> [nest_improper(N - 1), N | N].

crypto_bytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

atom_bytes(Node) ->
    Name = atom_to_binary(Node, utf8),
    <<119, (byte_size(Name)), Name/binary>>.

external_pid(Node, Id, Serial, Creation) ->
    binary_to_term(<<131, 88, (atom_bytes(Node))/binary, Id:32, Serial:32, Creation:32>>).

external_ref(Node, Creation, Ids) ->
    binary_to_term(<<131, 90, (length(Ids)):16, (atom_bytes(Node))/binary, Creation:32,
                     (<< <<I:32>> || I <- Ids >>)/binary>>).

external_port(Node, Id, Creation) when Id > 16#FFFFFFFF ->
    binary_to_term(<<131, 120, (atom_bytes(Node))/binary, Id:64, Creation:32>>);
external_port(Node, Id, Creation) ->
    binary_to_term(<<131, 89, (atom_bytes(Node))/binary, Id:32, Creation:32>>).

pick(List) -> lists:nth(rand:uniform(length(List)), List).

random_term(0) -> random_leaf();
random_term(Depth) ->
    case rand:uniform(10) of
        N when N =< 5 -> random_leaf();
        6 -> list_to_tuple([random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        7 -> [random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        8 -> maps:from_list([{random_term(Depth - 1), random_term(Depth - 1)} || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        9 -> [random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(3))] ++ random_leaf_nonlist();
        10 -> make_closure(random_term(Depth - 1), random_leaf())
    end.

random_leaf_nonlist() ->
    case random_leaf() of
        L when is_list(L) -> {L};
        T -> T
    end.

random_leaf() ->
    case rand:uniform(14) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 32) - (1 bsl 31);
        3 -> (rand:uniform(1 bsl 62) - (1 bsl 61)) * pick([1, 1 bsl 30, 1 bsl 200]);
        4 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        5 -> float(rand:uniform(1000000) - 500000);
        6 -> list_to_atom([pick([$a, $z, $_, $@, 233, 955, 16#1F600]) || _ <- lists:seq(1, rand:uniform(20))]);
        7 -> crypto_bytes(rand:uniform(40) - 1);
        8 -> <<(rand:uniform(1 bsl 20)):(rand:uniform(23))>>;
        9 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(10))];
        10 -> [rand:uniform(2000) || _ <- lists:seq(1, rand:uniform(10))];
        11 -> external_pid(pick(['n1@h', 'n2@h', 'λ@h']), rand:uniform(1 bsl 20), rand:uniform(100) - 1, rand:uniform(1 bsl 32) - 1);
        12 -> external_ref(pick(['n1@h', 'n2@h']), rand:uniform(1 bsl 32) - 1, [rand:uniform(1 bsl 32) - 1 || _ <- lists:seq(1, pick([1, 3, 4, 5]))]);
        13 -> external_port('n1@h', rand:uniform(1 bsl 40), rand:uniform(1 bsl 32) - 1);
        14 -> pick([fun lists:map/2, fun erlang:node/0, self(), make_ref(), [], {}, #{}])
    end.
