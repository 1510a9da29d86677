-- lua_receiver: Receiver, whose plain messages (send/2, not a call or a cast) reach
-- handle_info.
--
--   defmodule Receiver do
--     use GenServer
--
--     def init(_), do: {:ok, nil}
--
--     def handle_info(msg, state) do
--       IO.inspect(msg, label: "received")
--       {:noreply, state}
--     end
--   end
--
-- Instead of printing each message (print would show a table as its address), the state
-- counts them and keeps the last ten, oldest first, so that GET /servers/NAME shows what
-- arrived: {"received": 3, "last": ["hello", ["greeting", "hi"], 42]}. Calls and casts are
-- not handled: a call crashes it with ["bad_call", msg], a cast with ["bad_cast", msg], as
-- OTP's defaults do.
local Receiver = {
  vsn = "1",
  description = "Receiver (Elixir GenServer lessons) in Lua: plain messages reach handle_info.",
  messages = {
    {kind = "info", example = "hello", description = "counted, and kept among the last ten"},
  },
}

function Receiver.init(_)
  return {"ok", {received = 0, last = gs.array()}}
end

function Receiver.handle_info(msg, state)
  state.received = state.received + 1 -- IO.inspect(msg, label: "received")
  table.insert(state.last, msg)
  if #state.last > 10 then table.remove(state.last, 1) end
  return {"noreply", state}
end

return Receiver
