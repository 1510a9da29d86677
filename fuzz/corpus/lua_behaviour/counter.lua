local M = {vsn = '1'}
function M.init(args) return {'ok', {count = 0}} end
function M.handle_cast(msg, s) if msg == 'ping' then s.count = s.count + 1 end return {'noreply', s} end
function M.handle_call(msg, from, s) return {'reply', s.count, s} end
function M.code_change(old, s, extra) return {'ok', {count = s.count, old = old}} end
return M
--@@
["ping", "ping", "get"]
