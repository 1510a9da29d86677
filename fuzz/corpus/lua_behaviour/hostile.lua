return {
  handle_call = function(m, f, s)
    if m == 'spin' then while true do end end
    if m == 'grow' then local t = {} for i = 1, 1e9 do t[i] = i end end
    if m == 'pattern' then return {'reply', (('a'):rep(1e4):find('.-.-.-b')), s} end
    if m == 'rep' then return {'reply', #('x'):rep(1e9), s} end
    if m == 'fn' then return {'reply', print, s} end
    if m == 'global' then x = 1 end
    if m == 'error' then error({'an', 'error'}) end
    return {'reply', pcall(string.rep), s}
  end,
  handle_cast = function(m, s) return {'noreply', s, -1} end,
}
--@@
["spin", "grow", "pattern", "rep", "fn", "global", "error", "other"]
