-- lua_misbehaving_gen_server: MisbehavingGenServer, which calls itself from its own handler.
--
--   defmodule MisbehavingGenServer do
--     use GenServer
--
--     def init(_), do: {:ok, nil}
--
--     def handle_call(:message, _from, state) do
--       GenServer.call(self(), :message)  # exits: {:calling_self, {GenServer, :call, ...}}
--       {:reply, :ok, state}
--     end
--   end
--
-- A blocking call to yourself would wait for your own reply forever; OTP refuses it with
-- calling_self, and so does genserv. A Lua handler never blocks: its call to another server
-- is gs.send_request, whose answer comes later as a message. Aimed at itself it returns nil
-- and "calling_self" at once, and assert raises that: the server crashes with the reason
-- ["lua_error", "calling_self"], the caller of "message" gets 500 server_crashed with that
-- reason, and the supervisor restarts the server (restarts: 1). "ping" (not in the lesson)
-- shows that the restarted server answers.
local MisbehavingGenServer = {
  vsn = "1",
  description = "MisbehavingGenServer (Elixir GenServer lessons) in Lua: calling itself crashes it.",
  messages = {
    {kind = "call", example = "message", description = "calls itself: crashes with calling_self"},
    {kind = "call", example = "ping", description = 'replies "pong"'},
  },
}

function MisbehavingGenServer.init(_)
  return {"ok", nil}
end

function MisbehavingGenServer.handle_call(msg, _from, state)
  if msg == "message" then
    assert(gs.send_request(gs.self(), "message", "message"))
    return {"reply", "ok", state}
  end
  if msg == "ping" then return {"reply", "pong", state} end
end

return MisbehavingGenServer
