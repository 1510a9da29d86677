local M = {notify_caller_gone = true}
function M.init(a) return {'ok', {log = gs.array(), held = gs.null}, {'continue', 'start'}} end
function M.handle_continue(arg, s) table.insert(s.log, arg) return {'noreply', s, 5} end
function M.handle_call(m, from, s)
  if m == 'hold' then s.held = from return {'noreply', s} end
  if m == 'release' then gs.reply(s.held, 'late') return {'reply', 'ok', s, 'hibernate'} end
  if m == 'stop' then return {'stop', 'normal', 'bye', s} end
  if type(m) == 'table' and m[1] == 'push' then table.insert(s.log, m[2]) end
  return {'reply', s.log, s, {'continue', m}}
end
function M.handle_info(m, s)
  if m == 'timeout' then return {'noreply', s, 'hibernate'} end
  gs.send_after(nil, {'later', m}, 1)
  return {'noreply', s}
end
function M.handle_cast(m, s) return {'noreply', s, 'hibernate'} end
function M.terminate(r, s) gs.log('info', 'bye') end
function M.format_status(s) return {n = #s.log} end
return M
--@@
["hold", ["push", 1], "release", null, {"a": []}, "stop"]
