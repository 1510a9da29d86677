local M = {}
function M.init() return {'ok', {}} end
function M.handle_call(m, from, s)
  local ok, err = gs.send_request(gs.self(), m, 'tag')
  local r = gs.send_after('nobody', m, 10)
  gs.cancel_timer(r or 'x')
  gs.cast(gs.self(), {'from', from})
  return {'reply', {ok == nil, err, gs.read_timer('0'), gs.now_ms() > 0}, s}
end
function M.handle_cast(m, s)
  if type(m) == 'table' and m[1] == 'from' then gs.reply(m[2], 'twice') end
  return {'noreply', s}
end
function M.handle_info(m, s) return {'noreply', s} end
return M
--@@
[1, "two", [3], {"four": 4}]
