%% gs_bench: the scenarios of bench/runtime_bench.c, written as plain gen_servers, so that
%% Erlang/OTP's figures can be measured on the same machine (`erl +S 2`, see run.sh).
%%
%% Each scenario mirrors the C one: a sink counts casts from 1 or 100 sender gen_servers that
%% loop on a self-message (64 casts per `go`, a 1 ms pause while the sink has 100,000 messages
%% waiting, like genserv's bounded mailbox); callers do one gen_server:call (default 5 s
%% timeout) per `go`; N idle gen_servers are started, measured and killed; 1,000,000
%% erlang:send_after timers each carry their due time to a sink that records the lateness;
%% 10,000 producers call a batcher that holds every From and replies `ok` to all of them every
%% interval; 100,000 idle gen_servers hibernate from init ({ok, State, hibernate}), the peer
%% of runtime_bench's hibernated Lua servers (its lua group; the other Lua scenarios compare
%% with the groups above). Throughput is counted over a fixed window after a warm-up, the
%% median of Runs.
%%
%% Usage: gs_bench:main([Mode, Runs]) or gs_bench:main([Mode, Runs, Only, JsonFile])
%%   Mode      "quick" or "full" (the counts and windows of runtime_bench's --quick and default)
%%   Runs      how many times each scenario runs
%%   Only      "all" or a comma-separated list of idle,cast,call,timers,batcher,hibernate (the
%%             names of runtime_bench's --only; hibernate is the OTP side of its lua group)
%%   JsonFile  "" or a file to write the results to, in runtime_bench's --json layout: the
%%             same keys, raw units (msg/s, calls/s, bytes, ms) with the display scale beside
%%             them, every sample, and the peak RSS of this OS process (VmHWM), so that
%%             bench/compare can put both side by side.
%% It prints one line per scenario and run (stderr), then a Markdown table of medians.
-module(gs_bench).
-behaviour(gen_server).

-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(BURST, 64).
-define(PRODUCERS, 10000).
-define(BATCH_MS, 10).
-define(MAILBOX_LIMIT, 100000). % genserv's GS_DEFAULT_MAILBOX_LIMIT

%% ------------------------------------------------------------------------------------------
%% Configuration and driver
%% ------------------------------------------------------------------------------------------

config("quick") ->
    #{warmup => 100, window => 400, batcher_window => 800, idle => 100000, timers => 100000,
      tmin => 500, tmax => 1500, hibernated => 100000};
config("full") ->
    #{warmup => 500, window => 2000, batcher_window => 3000, idle => 1000000,
      timers => 1000000, tmin => 1000, tmax => 3000, hibernated => 100000}.

-define(SCENARIOS, ["idle", "cast", "call", "timers", "batcher", "hibernate"]).

main([Mode, RunsS]) ->
    main([Mode, RunsS, "all", ""]);
main([Mode, RunsS, OnlyS, JsonPath]) ->
    Cfg = config(Mode),
    Runs = list_to_integer(RunsS),
    Only = case OnlyS of
               "all" -> ?SCENARIOS;
               _ -> string:lexemes(OnlyS, ",")
           end,
    [erlang:error({unknown_scenario, S}) || S <- Only, not lists:member(S, ?SCENARIOS)],
    io:format("# gs_bench on OTP ~s, ~p schedulers online, ~s mode, ~p runs~n~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online), Mode,
               Runs]),
    Results = lists:foldl(fun(_, Acc) -> run_all(Cfg#{only => Only}, Acc) end, #{},
                          lists:seq(1, Runs)),
    io:format("~n| Scenario | OTP median | min | max | unit |~n|---|---:|---:|---:|---|~n"),
    [print_row(K, U, S, maps:get(K, Results, [])) || {K, _, U, S} <- rows()],
    case JsonPath of
        "" -> ok;
        _ -> ok = file:write_file(JsonPath, json(Mode, Runs, Results))
    end,
    ok.

%% {Key, label, display unit, scale}: the value shown is the raw value / scale. Keys and
%% scales are runtime_bench's where the scenario is the same.
rows() ->
    [{cast_1_sender, "cast to 1 server, 1 sender server", "M msg/s", 1.0e6},
     {cast_100_senders, "cast to 1 server, 100 sender servers", "M msg/s", 1.0e6},
     {call_1_caller, "call round trips, 1 caller server", "k calls/s", 1.0e3},
     {call_100_callers, "call round trips, 100 caller servers", "k calls/s", 1.0e3},
     {start_rate, "start idle servers: rate", "k starts/s", 1.0e3},
     {idle_bytes, "bytes per idle server (erlang:memory total)", "bytes", 1.0},
     {idle_bytes_processes, "bytes per idle server (erlang:memory processes)", "bytes", 1.0},
     {stop_time, "stop them all (exit of their linked owner)", "s", 1.0},
     {timer_schedule_rate, "schedule send_after timers", "k timers/s", 1.0e3},
     {timer_lateness_p50, "timer lateness p50", "ms", 1.0},
     {timer_lateness_p99, "timer lateness p99", "ms", 1.0},
     {timer_lateness_max, "timer lateness max", "ms", 1.0},
     {batcher_10k_producers, "batcher, 10,000 producers: completed calls", "k calls/s", 1.0e3},
     {hibernated_start_rate, "start hibernating idle servers: rate", "k starts/s", 1.0e3},
     {hibernated_idle_bytes, "bytes per hibernated idle server (erlang:memory total)", "bytes",
      1.0}].

scale(K) -> element(4, lists:keyfind(K, 1, rows())).

%% Median (the mean of the middle two for an even count), min and max of raw values.
summary(Vs) ->
    S = lists:sort(Vs),
    N = length(S),
    Med = case N rem 2 of
              1 -> lists:nth(N div 2 + 1, S);
              0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
          end,
    {Med, hd(S), lists:last(S)}.

print_row(_, _, _, []) -> ok;
print_row(K, U, Scale, Vs) ->
    {Med, Min, Max} = summary(Vs),
    io:format("| ~s | ~.2f | ~.2f | ~.2f | ~s |~n", [K, Med / Scale, Min / Scale, Max / Scale, U]).

%% Raw values, in the order they were measured.
add(K, V, Acc) ->
    io:format(standard_error, "  ~s: ~.3f~n", [K, float(V) / scale(K)]),
    maps:update_with(K, fun(L) -> L ++ [V] end, [V], Acc).

num(V) -> float_to_list(float(V), [short]).

json(Mode, Runs, Results) ->
    Res = [io_lib:format("    \"~s\": {\"label\": \"~s\", \"unit\": \"~s\", \"scale\": ~s, "
                         "\"median\": ~s, \"min\": ~s, \"max\": ~s, \"samples\": [~s]}",
                         [K, L, U, num(S), num(Med), num(Min), num(Max),
                          lists:join(", ", [num(V) || V <- Vs])])
           || {K, L, U, S} <- rows(), Vs <- [maps:get(K, Results, [])], Vs =/= [],
              {Med, Min, Max} <- [summary(Vs)]],
    io_lib:format("{\n  \"mode\": \"~s\", \"runs\": ~p, \"schedulers\": ~p, \"otp_release\": \"~s\","
                  "\n  \"peak_rss_kb\": ~p,\n  \"results\": {\n~s\n  }\n}\n",
                  [Mode, Runs, erlang:system_info(schedulers_online),
                   erlang:system_info(otp_release), peak_rss_kb(), lists:join(",\n", Res)]).

%% VmHWM of this OS process (the emulator), from /proc; -1 where there is no /proc.
peak_rss_kb() ->
    case file:read_file("/proc/self/status") of
        {ok, B} ->
            case re:run(B, "VmHWM:\\s*(\\d+)", [{capture, all_but_first, list}]) of
                {match, [Kb]} -> list_to_integer(Kb);
                nomatch -> -1
            end;
        _ -> -1
    end.

run_all(#{only := Only} = Cfg, Acc0) ->
    Steps = [{"idle", fun(A) -> idle(Cfg, A) end},
             {"cast", fun(A) -> A1 = add(cast_1_sender, cast(Cfg, 1), A),
                                add(cast_100_senders, cast(Cfg, 100), A1) end},
             {"call", fun(A) -> A1 = add(call_1_caller, call(Cfg, 1), A),
                                add(call_100_callers, call(Cfg, 100), A1) end},
             {"timers", fun(A) -> timers(Cfg, A) end},
             {"batcher", fun(A) -> add(batcher_10k_producers, batcher(Cfg), A) end},
             {"hibernate", fun(A) -> hibernated(Cfg, A) end}],
    lists:foldl(fun({Name, Step}, A) ->
                        case lists:member(Name, Only) of
                            true -> Step(A);
                            false -> A
                        end
                end, Acc0, Steps).

now_ns() -> erlang:monotonic_time(nanosecond).

%% Events per second counted by Counter over the window that follows the warm-up.
measure(#{warmup := Warmup}, Counter, Window) ->
    timer:sleep(Warmup),
    C0 = counters:get(Counter, 1),
    T0 = now_ns(),
    timer:sleep(Window),
    C1 = counters:get(Counter, 1),
    T1 = now_ns(),
    (C1 - C0) * 1.0e9 / (T1 - T0).

%% Kill every process of a scenario at once (they are all linked to Owner) and wait until
%% they are gone, so that the next scenario starts on an idle system with free names.
with_owner(Fun) ->
    Self = self(),
    Count0 = erlang:system_info(process_count),
    Owner = spawn(fun() -> Self ! {result, Fun()}, receive never -> ok end end),
    Result = receive {result, R} -> R end,
    exit(Owner, kill),
    wait_count(Count0),
    Result.

%% ------------------------------------------------------------------------------------------
%% The gen_server callbacks of every role, told apart by their state
%% ------------------------------------------------------------------------------------------

init({sink, Counter}) -> {ok, {sink, Counter}};
init({sender, Sink}) -> self() ! go, {ok, {sender, Sink}};
init(echo) -> {ok, echo};
init({caller, Counter}) -> self() ! go, {ok, {caller, Counter}};
init(idle) -> {ok, idle};
init(hibernated) -> {ok, idle, hibernate};
init(tsink) -> {ok, {tsink, []}};
init(batcher) -> erlang:send_after(?BATCH_MS, self(), flush), {ok, {batcher, []}};
init({producer, Counter}) -> self() ! go, {ok, {producer, Counter, 1}}.

handle_cast(ping, {sink, Counter} = S) ->
    counters:add(Counter, 1, 1),
    {noreply, S}.

handle_call(ping, _From, echo) -> {reply, ok, echo};
handle_call(lateness, _From, {tsink, L} = S) -> {reply, L, S};
handle_call({push, _N}, From, {batcher, Held}) -> {noreply, {batcher, [From | Held]}}.

handle_info(go, {sender, Sink} = S) ->
    %% genserv's mailboxes are bounded and its senders back off for 1 ms when the sink's is
    %% full; do the same here, or 100 senders bury the sink under a mailbox of gigabytes.
    case erlang:process_info(Sink, message_queue_len) of
        {message_queue_len, Len} when Len >= ?MAILBOX_LIMIT ->
            erlang:send_after(1, self(), go);
        _ ->
            burst(Sink, ?BURST),
            self() ! go
    end,
    {noreply, S};
handle_info(go, {caller, Counter} = S) ->
    ok = gen_server:call(echo, ping),
    counters:add(Counter, 1, 1),
    self() ! go,
    {noreply, S};
handle_info({due, Due}, {tsink, L}) ->
    {noreply, {tsink, [now_ns() - Due | L]}};
handle_info(flush, {batcher, Held}) ->
    [gen_server:reply(From, ok) || From <- Held],
    erlang:send_after(?BATCH_MS, self(), flush),
    {noreply, {batcher, []}};
handle_info(go, {producer, Counter, N}) ->
    ok = gen_server:call(batcher, {push, N}),
    counters:add(Counter, 1, 1),
    self() ! go,
    {noreply, {producer, Counter, N + 1}}.

burst(_, 0) -> ok;
burst(Sink, K) -> gen_server:cast(Sink, ping), burst(Sink, K - 1).

%% ------------------------------------------------------------------------------------------
%% Scenarios
%% ------------------------------------------------------------------------------------------

cast(#{window := Window} = Cfg, Senders) ->
    with_owner(fun() ->
        Counter = counters:new(1, [write_concurrency]),
        {ok, Sink} = gen_server:start_link(?MODULE, {sink, Counter}, []),
        [gen_server:start_link(?MODULE, {sender, Sink}, []) || _ <- lists:seq(1, Senders)],
        measure(Cfg, Counter, Window)
    end).

call(#{window := Window} = Cfg, Callers) ->
    with_owner(fun() ->
        Counter = counters:new(1, [write_concurrency]),
        {ok, _} = gen_server:start_link({local, echo}, ?MODULE, echo, []),
        [gen_server:start_link(?MODULE, {caller, Counter}, []) || _ <- lists:seq(1, Callers)],
        measure(Cfg, Counter, Window)
    end).

idle(#{idle := N}, Acc) ->
    Self = self(),
    erlang:garbage_collect(),
    Mem0 = erlang:memory(total),
    Proc0 = erlang:memory(processes),
    Count0 = erlang:system_info(process_count),
    Owner = spawn(fun() ->
        T0 = now_ns(),
        start_idle(N),
        T1 = now_ns(),
        Self ! {started, T1 - T0},
        receive never -> ok end
    end),
    Dt = receive {started, D} -> D end,
    Mem1 = erlang:memory(total),
    Proc1 = erlang:memory(processes),
    T2 = now_ns(),
    exit(Owner, kill),
    wait_count(Count0),
    T3 = now_ns(),
    Acc1 = add(start_rate, N * 1.0e9 / Dt, Acc),
    Acc2 = add(idle_bytes, (Mem1 - Mem0) / N, Acc1),
    Acc3 = add(idle_bytes_processes, (Proc1 - Proc0) / N, Acc2),
    add(stop_time, (T3 - T2) / 1.0e9, Acc3).

start_idle(0) -> ok;
start_idle(K) -> {ok, _} = gen_server:start_link(?MODULE, idle, []), start_idle(K - 1).

%% N idle gen_servers whose init returns {ok, idle, hibernate}: each hibernates at once
%% (erlang:hibernate: its stack dropped, its heap shrunk to what is live). Memory is read once
%% the last one started has hibernated (the earlier ones did before it).
hibernated(#{hibernated := N}, Acc) ->
    Self = self(),
    erlang:garbage_collect(),
    Mem0 = erlang:memory(total),
    Count0 = erlang:system_info(process_count),
    Owner = spawn(fun() ->
        T0 = now_ns(),
        Last = start_hibernated(N, undefined),
        T1 = now_ns(),
        wait_hibernated(Last),
        Self ! {started, T1 - T0},
        receive never -> ok end
    end),
    Dt = receive {started, D} -> D end,
    Mem1 = erlang:memory(total),
    exit(Owner, kill),
    wait_count(Count0),
    Acc1 = add(hibernated_start_rate, N * 1.0e9 / Dt, Acc),
    add(hibernated_idle_bytes, (Mem1 - Mem0) / N, Acc1).

start_hibernated(0, Last) -> Last;
start_hibernated(K, _) ->
    {ok, Pid} = gen_server:start_link(?MODULE, hibernated, []),
    start_hibernated(K - 1, Pid).

wait_hibernated(Pid) ->
    case erlang:process_info(Pid, current_function) of
        {current_function, {erlang, hibernate, 3}} -> ok;
        _ -> timer:sleep(1), wait_hibernated(Pid)
    end.

wait_count(Count) ->
    case erlang:system_info(process_count) > Count of
        true -> timer:sleep(1), wait_count(Count);
        false -> ok
    end.

timers(#{timers := N, tmin := Min, tmax := Max}, Acc) ->
    {ok, Sink} = gen_server:start(?MODULE, tsink, []),
    Span = Max - Min + 1,
    T0 = now_ns(),
    schedule(Sink, N, Min, Span),
    T1 = now_ns(),
    timer:sleep(Max + 1000),
    Late = lists:sort(gen_server:call(Sink, lateness, infinity)),
    gen_server:stop(Sink),
    Got = length(Late),
    Tuple = list_to_tuple(Late),
    Acc1 = add(timer_schedule_rate, N * 1.0e9 / (T1 - T0), Acc),
    Acc2 = add(timer_lateness_p50, element(Got div 2 + 1, Tuple) / 1.0e6, Acc1),
    Acc3 = add(timer_lateness_p99, element(trunc(Got * 0.99) + 1, Tuple) / 1.0e6, Acc2),
    add(timer_lateness_max, element(Got, Tuple) / 1.0e6, Acc3).

schedule(_, 0, _, _) -> ok;
schedule(Sink, K, Min, Span) ->
    Delay = Min + rand:uniform(Span) - 1,
    erlang:send_after(Delay, Sink, {due, now_ns() + Delay * 1000000}),
    schedule(Sink, K - 1, Min, Span).

batcher(#{batcher_window := Window} = Cfg) ->
    with_owner(fun() ->
        Counter = counters:new(1, [write_concurrency]),
        {ok, _} = gen_server:start_link({local, batcher}, ?MODULE, batcher, []),
        [gen_server:start_link(?MODULE, {producer, Counter}, [])
         || _ <- lists:seq(1, ?PRODUCERS)],
        measure(Cfg, Counter, Window)
    end).
