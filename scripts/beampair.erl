%% beampair: the BEAM half of scripts/beam.sh, the book's to-do servers on
%% the BEAM, for the speed of todo's in-memory path to be compared with
%% (BenchmarkBEAMPair in bench_test.go is the Go half, of the same shape).
%%
%% 100 to-do list gen_servers (Todo.Server), each holding the book's
%% Todo.List, %{auto_id, entries}, of 100 entries over 10 days, and 2
%% client processes; each client makes one synchronous call at a time to a
%% list picked at random: add_entry (op add: Todo.List.add_entry, as a
%% call rather than the book's cast, so that the client waits, as Go's
%% AddEntry does) or entries(Date) of one of the 10 days (op entries:
%% Todo.List.entries, 10 entries). Nothing is persisted: the Go half runs
%% with the in-memory store and Async durability.
%%
%% Each repetition starts 100 fresh lists, runs the two clients for the
%% window, and stops the lists; it prints the calls answered per second,
%% and the CPU time the runtime's threads used per call, in nanoseconds
%% (erlang:statistics(runtime), which counts the schedulers' busy waits
%% too: the BEAM's default flags are kept).
%% Titles and dates are made once, before the lists start, on both sides.
%%
%% Usage: erl -noshell -pa DIR -s beampair main -extra WindowMs Reps
%% Output: one line "op ops/s cpu-ns/op" per repetition, ops add then
%% entries.
-module(beampair).
-behaviour(gen_server).
-export([main/0, init/1, handle_call/3, handle_cast/2]).

-define(LISTS, 100).
-define(ENTRIES, 100).
-define(DAYS, 10).
-define(CLIENTS, 2).
-define(TITLES, 1000).

%% Todo.List: new, add_entry and entries, as the book writes them.
new_list() -> #{auto_id => 1, entries => #{}}.

add_entry(#{auto_id := Id, entries := Es} = L, Entry) ->
    L#{auto_id := Id + 1, entries := Es#{Id => Entry#{id => Id}}}.

entries(#{entries := Es}, Date) ->
    [E || {_, #{date := D} = E} <- maps:to_list(Es), D =:= Date].

%% Todo.Server, a gen_server per list. The list is built in the process, so
%% that it lives on the process's own heap.
init(Entries) -> {ok, lists:foldl(fun(E, L) -> add_entry(L, E) end, new_list(), Entries)}.

handle_call({add_entry, Entry}, _From, L) -> {reply, ok, add_entry(L, Entry)};
handle_call({entries, Date}, _From, L) -> {reply, entries(L, Date), L}.

handle_cast(_, L) -> {noreply, L}.

%% The 10 days, 2024-01-01 to 2024-01-10, and 1,000 titles.
dates() -> list_to_tuple([{2024, 1, D} || D <- lists:seq(1, ?DAYS)]).
titles() -> list_to_tuple([<<"Dentist appointment ", (integer_to_binary(I))/binary>>
                           || I <- lists:seq(0, ?TITLES - 1)]).

start_lists(Dates, Titles) ->
    Entries = [#{date => element(I rem ?DAYS + 1, Dates), title => element(I rem ?TITLES + 1, Titles)}
               || I <- lists:seq(0, ?ENTRIES - 1)],
    list_to_tuple([element(2, gen_server:start(?MODULE, Entries, [])) || _ <- lists:seq(1, ?LISTS)]).

stop_lists(Lists) ->
    [begin
         Ref = erlang:monitor(process, P),
         exit(P, kill),
         receive {'DOWN', Ref, _, _, _} -> ok end
     end || P <- tuple_to_list(Lists)],
    ok.

%% A 28-bit LCG, each client its own: the list is picked by bits 4 and up,
%% the day and the title by bits 10 and up (Go's half does the same).
lcg(X) -> (X * 69069 + 1) band 16#FFFFFFF.

call(add, Lists, Dates, Titles, X) ->
    ok = gen_server:call(element((X bsr 4) rem ?LISTS + 1, Lists),
                         {add_entry, #{date => element((X bsr 10) rem ?DAYS + 1, Dates),
                                       title => element((X bsr 10) rem ?TITLES + 1, Titles)}});
call(entries, Lists, Dates, _Titles, X) ->
    [_ | _] = gen_server:call(element((X bsr 4) rem ?LISTS + 1, Lists),
                              {entries, element((X bsr 10) rem ?DAYS + 1, Dates)}),
    ok.

%% Calls until the deadline, looked at every 64 calls; returns the count.
client(Op, Lists, Dates, Titles, X, N, Deadline) ->
    X1 = lcg(X),
    call(Op, Lists, Dates, Titles, X1),
    case (N band 63 =:= 0) andalso erlang:monotonic_time() >= Deadline of
        true -> N + 1;
        false -> client(Op, Lists, Dates, Titles, X1, N + 1, Deadline)
    end.

%% One repetition: fresh lists, the clients for the window, the rate.
run(Op, WindowMs, Dates, Titles) ->
    Lists = start_lists(Dates, Titles),
    Parent = self(),
    Clients = [spawn_link(fun() ->
                                  receive {go, Deadline} -> ok end,
                                  N = client(Op, Lists, Dates, Titles, C * 7919 + 1, 0, Deadline),
                                  Parent ! {done, self(), N, erlang:monotonic_time()}
                          end) || C <- lists:seq(1, ?CLIENTS)],
    {Cpu0, _} = erlang:statistics(runtime),
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(WindowMs, millisecond, native),
    [C ! {go, Deadline} || C <- Clients],
    Done = [receive {done, C, N, T} -> {N, T} end || C <- Clients],
    {Cpu1, _} = erlang:statistics(runtime),
    Calls = lists:sum([N || {N, _} <- Done]),
    Elapsed = lists:max([T || {_, T} <- Done]) - T0,
    stop_lists(Lists),
    {Calls / (erlang:convert_time_unit(Elapsed, native, nanosecond) / 1.0e9),
     (Cpu1 - Cpu0) * 1.0e6 / Calls}.

main() ->
    [WindowMs, Reps] = [list_to_integer(A) || A <- init:get_plain_arguments()],
    Dates = dates(),
    Titles = titles(),
    [begin
         {Rate, Cpu} = run(Op, WindowMs, Dates, Titles),
         io:format("~s ~b ~b~n", [Op, round(Rate), round(Cpu)])
     end || Op <- [add, entries], _ <- lists:seq(1, Reps)],
    halt(0).
