-- ledger.lua: ledger_plugin.c's ledger in Lua, for the durability tests (test_durable.c,
-- test_crash.c), which upload it with POST /behaviours and start it with "durable": true.
--
-- A count, and how many times each tag was applied:
--   call/cast/info {"add", TAG}   count + 1, tags[TAG] + 1; the call replies the new count
--   call "count"                  the count
--   call "get"                    the whole state, {"count": N, "tags": {TAG: TIMES}}
-- "tags" appears with the first tag: an empty Lua table would be stored as [] and come back
-- as an array, which a tag could not be added to.
local Ledger = {
  vsn = "1",
  description = "The durability tests' ledger in Lua.",
  args = nil,
}

function Ledger.init(_args)
  return {"ok", {count = 0}}
end

local function apply(state, tag)
  state.count = state.count + 1
  state.tags = state.tags or {}
  state.tags[tag] = (state.tags[tag] or 0) + 1
end

local function is_add(msg)
  return type(msg) == "table" and msg[1] == "add" and type(msg[2]) == "string"
end

function Ledger.handle_call(msg, _from, state)
  if is_add(msg) then
    apply(state, msg[2])
    return {"reply", state.count, state}
  end
  if msg == "count" then return {"reply", state.count, state} end
  if msg == "get" then return {"reply", state, state} end
end

function Ledger.handle_cast(msg, state)
  if is_add(msg) then apply(state, msg[2]) end
  return {"noreply", state}
end

Ledger.handle_info = Ledger.handle_cast

return Ledger
