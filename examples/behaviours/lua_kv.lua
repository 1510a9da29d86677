-- lua_kv: the example plugin's key-value store (examples/plugin/kv.c) rewritten in Lua, with
-- the same messages, replies, init args and state. Elixir, for comparison, keeps a map in the
-- state and lets each expiry be a message (as kv.c's comment has it):
--
--   def handle_call({:put, k, v, ttl}, _from, s) do
--     ref = Process.send_after(self(), {:expire, k, gen}, ttl)
--     {:reply, :ok, put_in(s, [k], {v, ref, gen})}
--   end
--   def handle_info({:expire, k, gen}, s), do: {:noreply, drop_if_same_gen(s, k, gen)}
--
-- Messages (a tuple is an array with its tag first):
--   call ["put", KEY, VALUE] or ["put", KEY, VALUE, TTL_MS]  -> "ok" | ["error", "full"]
--   call ["get", KEY]       -> ["ok", VALUE] | "not_found"
--   call ["ttl", KEY]       -> ["ok", MS or null] | "not_found"
--   call ["delete", KEY]    -> "ok"
--   call "keys"             -> [KEY...] (sorted; kv.c answers in insertion order)
--   call "size"             -> N
--   cast ["put", ...] and ["delete", KEY]: the same without an answer
--   info ["expire", KEY, GEN]: the TTL timer; dropped if KEY was written again since.
-- A malformed call is answered ["error", "bad_request"] instead of crashing the store.
-- Init args: null or {"max_keys": N, "max_bytes": N} (defaults 100000 keys and 8 MiB of
-- values counted as kv.c counts them; a put past either is ["error", "full"]). kv.c allows
-- 64 MiB by default, but a Lua server's memory is capped (16 MiB unless "memory_limit" at
-- its start says otherwise) and a store that reached its cap would crash and lose every key:
-- keep max_bytes well below the server's memory_limit. State (format_status): {"size",
-- "bytes", "max_keys", "max_bytes", "entries": {KEY: {"value", "ttl_ms"}}}.
local KV = {
  vsn = "1",
  description = "A key-value store whose keys can expire (the kv plugin, in Lua).",
  args = {max_keys = 100000, max_bytes = 8388608},
  messages = {
    {kind = "call", example = {"put", "greeting", "hello", 5000},
     description = "Store a value; with a fourth element it expires after that many ms."},
    {kind = "call", example = {"get", "greeting"},
     description = 'Fetch a value: ["ok", value] or "not_found".'},
    {kind = "call", example = {"ttl", "greeting"},
     description = "Milliseconds left before the key expires (null: never)."},
    {kind = "call", example = {"delete", "greeting"}, description = "Remove a key."},
    {kind = "call", example = "keys", description = "Every key."},
    {kind = "call", example = "size", description = "How many keys are stored."},
    {kind = "cast", example = {"put", "greeting", "hello"},
     description = "Store a value without waiting."},
    {kind = "cast", example = {"delete", "greeting"},
     description = "Remove a key without waiting."},
  },
}

local DEFAULT_MAX_KEYS = 100000
local DEFAULT_MAX_BYTES = 8 * 1024 * 1024
local MAX_TTL_MS = 2147483647

-- gs_json_size(v) of genserv/message.h, so that max_bytes counts what it counts in kv.c:
-- about the bytes jansson would take for v.
local function json_size(v)
  local t = type(v)
  if t == "number" then return 40 end
  if t == "string" then return 64 + #v + 1 end
  if t ~= "table" then return 0 end -- gs.null, true, false
  if gs.is_array(v) then
    local n = 72 + #v * 8
    for _, e in ipairs(v) do n = n + json_size(e) end
    return n
  end
  local n = 120
  for k, e in pairs(v) do n = n + 88 + #tostring(k) + json_size(e) end
  return n
end

local function entry_bytes(key, entry)
  return #key + json_size(entry.value)
end

local function is_tuple(msg, tag, arity)
  return type(msg) == "table" and msg[1] == tag and #msg == arity
end

local function is_put(msg)
  return is_tuple(msg, "put", 3) or is_tuple(msg, "put", 4)
end

local function int_in(v, min, max)
  return math.type(v) == "integer" and v >= min and v <= max
end

function KV.init(args)
  local state = {
    entries = {}, -- KEY -> {value, gen, deadline (gs.monotonic_ms) and timer, if it expires}
    count = 0,
    bytes = 0,
    next_gen = 0,
    max_keys = DEFAULT_MAX_KEYS,
    max_bytes = DEFAULT_MAX_BYTES,
  }
  if args ~= gs.null then
    if type(args) ~= "table" or gs.is_array(args) then
      return {"stop", {"bad_args", "init args must be an object or null"}}
    end
    for k in pairs(args) do
      if k ~= "max_keys" and k ~= "max_bytes" then
        return {"stop", {"bad_args", ('unknown key "%s"'):format(k:sub(1, 64))}}
      end
    end
    if args.max_keys ~= nil and not int_in(args.max_keys, 1, math.maxinteger) then
      return {"stop", {"bad_args", "max_keys must be an integer from 1 to " .. math.maxinteger}}
    end
    if args.max_bytes ~= nil and not int_in(args.max_bytes, 1024, math.maxinteger) then
      return {"stop", {"bad_args", "max_bytes must be an integer from 1024 to " .. math.maxinteger}}
    end
    state.max_keys = args.max_keys or state.max_keys
    state.max_bytes = args.max_bytes or state.max_bytes
  end
  return {"ok", state}
end

-- ["put", KEY, VALUE] or ["put", KEY, VALUE, TTL_MS]: the reply.
local function put(state, msg)
  local key, value, ttl = msg[2], msg[3], msg[4]
  state.next_gen = state.next_gen + 1
  local gen = state.next_gen
  if type(key) ~= "string" or (ttl ~= nil and not int_in(ttl, 0, MAX_TTL_MS)) then
    return {"error", "bad_request"}
  end
  local old = state.entries[key]
  if old == nil and state.count >= state.max_keys then return {"error", "full"} end
  local grow = #key + json_size(value) - (old and entry_bytes(key, old) or 0)
  if state.bytes + grow > state.max_bytes then return {"error", "full"} end
  if old and old.timer then gs.cancel_timer(old.timer) end
  local entry = {value = value, gen = gen}
  if ttl ~= nil then
    -- The expiry is a message to this incarnation: a restarted store starts empty, and its
    -- predecessor's timers are dropped.
    local ref = gs.send_after(nil, {"expire", key, gen}, ttl)
    if ref then
      entry.deadline = gs.monotonic_ms() + ttl
      entry.timer = ref
    end
  end
  if old == nil then state.count = state.count + 1 end
  state.entries[key] = entry
  state.bytes = state.bytes + grow
  return "ok"
end

local function delete(state, key)
  local old = state.entries[key]
  if old then
    if old.timer then gs.cancel_timer(old.timer) end
    state.bytes = state.bytes - entry_bytes(key, old)
    state.entries[key] = nil
    state.count = state.count - 1
  end
  return "ok"
end

local function answer(state, msg)
  local key = type(msg) == "table" and msg[2] or nil
  if msg == "size" then return state.count end
  if msg == "keys" then
    local keys = gs.array()
    for k in pairs(state.entries) do table.insert(keys, k) end
    table.sort(keys)
    return keys
  end
  if is_put(msg) then return put(state, msg) end
  if type(key) ~= "string" then return {"error", "bad_request"} end
  if is_tuple(msg, "get", 2) then
    local e = state.entries[key]
    if e == nil then return "not_found" end
    return {"ok", e.value}
  end
  if is_tuple(msg, "ttl", 2) then
    local e = state.entries[key]
    if e == nil then return "not_found" end
    if e.deadline == nil then return {"ok", gs.null} end
    return {"ok", math.max(e.deadline - gs.monotonic_ms(), 0)}
  end
  if is_tuple(msg, "delete", 2) then return delete(state, key) end
  return {"error", "bad_request"}
end

function KV.handle_call(msg, _from, state)
  return {"reply", answer(state, msg), state}
end

function KV.handle_cast(msg, state)
  -- Casts of "put" and "delete" only; there is nobody to tell about a bad one.
  if is_put(msg) or is_tuple(msg, "delete", 2) then answer(state, msg) end
  return {"noreply", state}
end

function KV.handle_info(msg, state)
  if is_tuple(msg, "expire", 3) and type(msg[2]) == "string" and math.type(msg[3]) == "integer" then
    local e = state.entries[msg[2]]
    -- Only the write that scheduled this expiry may expire it.
    if e ~= nil and e.gen == msg[3] then delete(state, msg[2]) end
  end
  return {"noreply", state}
end

function KV.format_status(state)
  local entries, now = {}, gs.monotonic_ms()
  for k, e in pairs(state.entries) do
    entries[k] = {value = e.value, ttl_ms = e.deadline and math.max(e.deadline - now, 0) or gs.null}
  end
  return {
    size = state.count,
    bytes = state.bytes,
    max_keys = state.max_keys,
    max_bytes = state.max_bytes,
    entries = entries,
  }
end

return KV
