-- lua_incrementing_counter: IncrementingCounter, a count that goes up by itself, driven by
-- a :tick the server sends itself every second.
--
--   defmodule IncrementingCounter do
--     use GenServer
--
--     def init(count) do
--       Process.send_after(self(), :tick, 1000)
--       {:ok, count}
--     end
--
--     def handle_info(:tick, count) do
--       Process.send_after(self(), :tick, 1000)
--       {:noreply, count + 1}
--     end
--   end
--
-- Start it with its first count as the args ("args": 0); GET /servers/NAME shows the count
-- as the state. gs.send_after(nil, ...) is Process.send_after(self(), ...): a timer aimed
-- at this incarnation of the server, dropped if it has crashed or stopped meanwhile. As in
-- Elixir, a "tick" sent by hand starts a second chain of ticks.
local IncrementingCounter = {
  vsn = "1",
  description = "IncrementingCounter (Elixir GenServer lessons) in Lua: count + 1 every 1000 ms.",
  args = 0,
  messages = {
    {kind = "info", example = "tick", description = "count + 1, and the next tick in 1000 ms"},
  },
}

function IncrementingCounter.init(count)
  gs.send_after(nil, "tick", 1000)
  return {"ok", count}
end

function IncrementingCounter.handle_info(msg, count)
  if msg == "tick" then
    gs.send_after(nil, "tick", 1000)
    return {"noreply", count + 1}
  end
end

return IncrementingCounter
