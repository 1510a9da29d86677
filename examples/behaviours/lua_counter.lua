-- lua_counter: the lesson's Counter, line by line (docs/lua.md shows both side by side).
--
--   defmodule Counter do
--     use GenServer
--
--     def init(count), do: {:ok, count}
--
--     def handle_cast(:increment, count), do: {:noreply, count + 1}
--     def handle_call(:get_count, _from, count), do: {:reply, count, count}
--   end
--
-- Start it with its first count as the args, as GenServer.start_link(Counter, 0) does:
--   curl -s localhost:8080/servers -d '{"name":"c","behaviour":"lua_counter","args":0}'
-- A message no clause matches crashes the server (a function returning nothing is a
-- bad_return_value), as a FunctionClauseError does in Elixir; its supervisor restarts it.
local Counter = {
  vsn = "1",
  description = "Counter (Elixir GenServer lessons) in Lua: casts change a count, a call reads it.",
  args = 0,
  messages = {
    {kind = "cast", example = "increment", description = "count + 1"},
    {kind = "call", example = "get_count", description = "replies with the count"},
  },
}

function Counter.init(count)
  return {"ok", count}
end

function Counter.handle_cast(msg, count)
  if msg == "increment" then return {"noreply", count + 1} end
end

function Counter.handle_call(msg, _from, count)
  if msg == "get_count" then return {"reply", count, count} end
end

return Counter
