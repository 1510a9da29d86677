-- lua_journal: the Journal exercise, line by line (docs/lua.md shows both side by side).
--
--   defmodule Journal do
--     use GenServer
--
--     def init(_), do: {:ok, []}
--
--     def handle_cast({:add_entry, entry}, entries), do: {:noreply, [entry | entries]}
--     def handle_call(:entries, _from, entries), do: {:reply, entries, entries}
--   end
--
-- The state is the list itself, newest first: ["first entry"] after one entry. It starts as
-- gs.array(), not {}: an empty Lua table is a JSON object ({}), and the journal's state must
-- read [] before its first entry.
local Journal = {
  vsn = "1",
  description = "The Journal exercise in Lua: entries kept newest first.",
  messages = {
    {kind = "cast", example = {"add_entry", "first entry"}, description = "prepends the entry"},
    {kind = "call", example = "entries", description = "replies with every entry, newest first"},
  },
}

function Journal.init(_)
  return {"ok", gs.array()}
end

function Journal.handle_cast(msg, entries)
  if type(msg) == "table" and msg[1] == "add_entry" and #msg == 2 then
    table.insert(entries, 1, msg[2]) -- [entry | entries]
    return {"noreply", entries}
  end
end

function Journal.handle_call(msg, _from, entries)
  if msg == "entries" then return {"reply", entries, entries} end
end

return Journal
