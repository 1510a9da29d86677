-- lua_blocky_producer: Blocky.Producer from the article on deferred replies, which pushes
-- numbers to the consumer one at a time, each push waiting for the previous one's reply.
--
--   defmodule Blocky.Producer do          # in outline
--     use GenServer
--
--     def init(state) do                  # state: %{id: id, number: 1}
--       send(self(), :produce)
--       {:ok, state}
--     end
--
--     def handle_info(:produce, %{number: number} = state) do
--       send(self(), :produce)
--       Blocky.Consumer.push(number)      # a GenServer.call: waits for the batch
--       {:noreply, %{state | number: number + 1}}
--     end
--   end
--
-- The Elixir producer blocks inside its handler on GenServer.call. A Lua handler never blocks
-- a scheduler thread: it makes the call with gs.send_request (:gen_server.send_request/4),
-- whose answer comes back to its own handle_info as ["gs_reply", tag, reply], and only then
-- does it count the number pushed and send itself the next :produce. The tag is the number,
-- so an answer to anything but the push in flight is ignored. An error (["gs_error", tag,
-- code, reason], or a refusal up front such as no_such_server while the consumer is not
-- started yet) tries the same number again after 100 ms.
--
-- Init args: {"id": 1, "consumer": "consumer"} (the consumer's server name; both optional).
-- State: {"id": 1, "consumer": "consumer", "number": 42}, the number it pushes next.
local Producer = {
  vsn = "1",
  description = "Blocky.Producer (the deferred-reply article) in Lua: pushes 1, 2, 3... to a consumer, one reply at a time.",
  args = {id = 1, consumer = "consumer"},
  messages = {
    {kind = "info", example = "produce", description = "pushes the number (Elixir's :produce)"},
  },
}

local RETRY_MS = 100

function Producer.init(args)
  local state = {id = 0, consumer = "consumer", number = 1}
  if args ~= gs.null then
    state.id = args.id or state.id
    state.consumer = args.consumer or state.consumer
  end
  gs.send(gs.self(), "produce")
  return {"ok", state}
end

function Producer.handle_info(msg, state)
  if msg == "produce" then
    -- Blocky.Consumer.push(number), answered later as a message
    if not gs.send_request(state.consumer, {"push", state.number}, state.number) then
      gs.send_after(nil, "produce", RETRY_MS)
    end
    return {"noreply", state}
  end
  if type(msg) == "table" and msg[2] == state.number then
    if msg[1] == "gs_reply" then
      state.number = state.number + 1
      gs.send(gs.self(), "produce")
    elseif msg[1] == "gs_error" then
      gs.send_after(nil, "produce", RETRY_MS)
    end
  end
  return {"noreply", state}
end

return Producer
