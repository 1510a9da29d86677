local M = {}
function M.init(a) return {"stop", {"no", a}} end
return M
--@@
[{"x": 1}]