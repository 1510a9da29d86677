-- lua_slow_server: SlowServer, with its sleep turned into a deferred reply and a timer.
--
--   # The Elixir lesson's SlowServer            # What genserv does, written in Elixir
--   def handle_call(:sleep, _from, state) do    def handle_call(:sleep, from, state) do
--     Process.sleep(1000)                         Process.send_after(self(), {:wake, from}, 1000)
--     {:reply, "response!", state}                {:noreply, state}
--   end                                         end
--
--                                               def handle_info({:wake, from}, state) do
--                                                 GenServer.reply(from, "response!")
--                                                 {:noreply, state}
--                                               end
--
-- The Lua is the right-hand column. A callback runs on one of a few scheduler threads, and
-- there is no sleep in genserv's Lua: the caller waits, not the thread. handle_call keeps the
-- caller's `from` in a timer message to itself and returns no reply; when the timer fires,
-- handle_info answers with gs.reply. Meanwhile the server handles other messages, so every
-- caller sleeps at once, each for its own time. ["sleep", ms] sleeps ms instead of 1000.
-- A `from` is safe to put in a message: gs.reply refuses one this genserv did not make.
local SlowServer = {
  vsn = "1",
  description = "SlowServer (Elixir GenServer lessons) in Lua: a deferred reply plus a timer, not a sleep.",
  messages = {
    {kind = "call", example = "sleep", description = 'replies "response!" after 1000 ms'},
    {kind = "call", example = {"sleep", 200}, description = 'replies "response!" after 200 ms'},
  },
}

function SlowServer.init(_)
  return {"ok", nil}
end

function SlowServer.handle_call(msg, from, state)
  if msg == "sleep" then
    gs.send_after(nil, {"wake", from}, 1000)
    return {"noreply", state}
  end
  if type(msg) == "table" and msg[1] == "sleep" and math.type(msg[2]) == "integer" then
    gs.send_after(nil, {"wake", from}, msg[2])
    return {"noreply", state}
  end
end

function SlowServer.handle_info(msg, state)
  if type(msg) == "table" and msg[1] == "wake" then
    gs.reply(msg[2], "response!")
    return {"noreply", state}
  end
end

return SlowServer
