-- lua_counter, version 2: a hot upgrade that changes the state's shape. Not loaded by
-- --behaviours-dir (it is in a folder of its own): it replaces lua_counter while its servers
-- run, with PUT /behaviours/lua_counter and this file as the body.
--
-- Version 1 (../lua_counter.lua) keeps the count as a bare integer. Version 2 keeps an object,
-- {"count": 3, "history": [...]}, with the last ten things that happened to it. Each running
-- server moves to it between two of its messages through code_change, as OTP's does:
--
--   def code_change("1", count, _extra) when is_integer(count),
--     do: {:ok, %{count: count, history: [{:upgraded, "1", count}]}}
--   def code_change(_old_vsn, state, _extra), do: {:error, {:not_a_count, state}}
--
-- A server whose count is not an integer (started with "args": "ten", say) refuses: it keeps
-- version 1's code and its state, and the PUT's answer lists its error. Every other server
-- runs version 2 from its next message on, and so does every server started after the PUT.
local Counter = {
  vsn = "2",
  description = "lua_counter, version 2: the count with a history of what changed it.",
  args = 0,
  messages = {
    {kind = "cast", example = "increment", description = "count + 1, recorded in the history"},
    {kind = "call", example = "get_count", description = "replies with the count"},
    {kind = "call", example = "history", description = "replies with the last ten events"},
  },
}

local KEEP = 10

local function record(state, event)
  table.insert(state.history, event)
  if #state.history > KEEP then table.remove(state.history, 1) end
end

function Counter.init(count)
  return {"ok", {count = count, history = gs.array()}}
end

function Counter.code_change(old_vsn, count, _extra)
  if math.type(count) ~= "integer" then return {"error", {"not_a_count", count}} end
  local state = {count = count, history = gs.array()}
  record(state, {"upgraded", old_vsn or gs.null, count})
  return {"ok", state}
end

function Counter.handle_cast(msg, state)
  if msg == "increment" then
    state.count = state.count + 1
    record(state, {"increment", state.count})
    return {"noreply", state}
  end
end

function Counter.handle_call(msg, _from, state)
  if msg == "get_count" then return {"reply", state.count, state} end
  if msg == "history" then return {"reply", state.history, state} end
end

return Counter
