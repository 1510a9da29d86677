-- lua_decrementing_counter: DecrementingCounter, IncrementingCounter's twin that counts down
-- twice as fast.
--
--   defmodule DecrementingCounter do
--     use GenServer
--
--     def init(count) do
--       Process.send_after(self(), :tick, 500)
--       {:ok, count}
--     end
--
--     def handle_info(:tick, count) do
--       Process.send_after(self(), :tick, 500)
--       {:noreply, count - 1}
--     end
--   end
--
-- Start it with its first count as the args ("args": 0); GET /servers/NAME shows the count
-- as the state.
local DecrementingCounter = {
  vsn = "1",
  description = "DecrementingCounter (Elixir GenServer lessons) in Lua: count - 1 every 500 ms.",
  args = 0,
  messages = {
    {kind = "info", example = "tick", description = "count - 1, and the next tick in 500 ms"},
  },
}

function DecrementingCounter.init(count)
  gs.send_after(nil, "tick", 500)
  return {"ok", count}
end

function DecrementingCounter.handle_info(msg, count)
  if msg == "tick" then
    gs.send_after(nil, "tick", 500)
    return {"noreply", count - 1}
  end
end

return DecrementingCounter
