-- lua_blocky_consumer: Blocky.Consumer from the article on deferred replies ("A GenServer can
-- block senders without blocking itself"): GenServer.reply/2 as backpressure.
--
--   defmodule Blocky.Consumer do          # in outline
--     use GenServer
--
--     def push(number), do: GenServer.call(__MODULE__, {:push, number})
--
--     def init(_) do
--       Process.send_after(self(), :aggregate, @interval)
--       {:ok, []}
--     end
--
--     def handle_call({:push, number}, from, batch), do: {:noreply, [{from, number} | batch]}
--
--     def handle_info(:aggregate, batch) do
--       sum = batch |> Enum.map(fn {_from, n} -> n end) |> Enum.sum()
--       IO.puts("batch of #{length(batch)}, sum #{sum}")
--       Enum.each(batch, fn {from, _n} -> GenServer.reply(from, :ok) end)
--       Process.send_after(self(), :aggregate, @interval)
--       {:noreply, []}
--     end
--   end
--
-- handle_call keeps each push's `from` and returns no reply; every interval, handle_info
-- adds the batch up and only then answers every held caller. A producer (lua_blocky_producer)
-- pushes its next number only once answered, so it has one number in each batch: ten
-- producers make batches of exactly ten, with sums 10, 20, 30... (every producer pushes 1,
-- then 2, then 3...), as in the article's output.
--
-- Init args: {"interval_ms": 1000, "reply_immediately": false}. With reply_immediately (the
-- article's version without backpressure) a push is answered at once and only its number is
-- kept, so producers push as fast as they can and the batches grow huge.
--
-- The state holds what the Elixir prints too: "batches", the last 20 batches as {"size",
-- "sum"}, oldest first. format_status (what GET /servers/NAME shows) leaves out the batch
-- being filled, which can hold a million numbers, and shows its size as "pending".
local Consumer = {
  vsn = "1",
  description = "Blocky.Consumer (the deferred-reply article) in Lua: deferred replies every interval, as backpressure.",
  args = {interval_ms = 1000, reply_immediately = false},
  messages = {
    {kind = "call", example = {"push", 1}, description = 'adds 1 to the batch; "ok" at its end'},
    {kind = "info", example = "aggregate", description = "closes the batch, answers its callers"},
  },
}

local KEEP = 20 -- batches shown in the state

function Consumer.init(args)
  local state = {
    interval_ms = 1000,
    reply_immediately = false,
    batch = gs.array(),
    batches = gs.array(),
  }
  if args ~= gs.null then
    state.interval_ms = args.interval_ms or state.interval_ms
    state.reply_immediately = args.reply_immediately or state.reply_immediately
  end
  gs.send_after(nil, "aggregate", state.interval_ms)
  return {"ok", state}
end

function Consumer.handle_call(msg, from, state)
  if type(msg) == "table" and msg[1] == "push" and math.type(msg[2]) == "integer" then
    if state.reply_immediately then
      table.insert(state.batch, msg[2])
      return {"reply", "ok", state}
    end
    table.insert(state.batch, {from, msg[2]}) -- [{from, number} | batch]
    return {"noreply", state}
  end
end

function Consumer.handle_info(msg, state)
  if msg == "aggregate" then
    local sum = 0
    for _, pushed in ipairs(state.batch) do
      sum = sum + (state.reply_immediately and pushed or pushed[2])
    end
    print(("batch of %d, sum %d"):format(#state.batch, sum))
    table.insert(state.batches, {size = #state.batch, sum = sum})
    if #state.batches > KEEP then table.remove(state.batches, 1) end
    if not state.reply_immediately then
      for _, pushed in ipairs(state.batch) do gs.reply(pushed[1], "ok") end
    end
    gs.send_after(nil, "aggregate", state.interval_ms)
    state.batch = gs.array()
    return {"noreply", state}
  end
end

function Consumer.format_status(state)
  return {
    interval_ms = state.interval_ms,
    reply_immediately = state.reply_immediately,
    pending = #state.batch,
    batches = state.batches,
  }
end

return Consumer
