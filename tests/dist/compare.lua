-- moonlight compare.lua A.safetensors B.safetensors TOL: every tensor of A and B
-- (the same names) within TOL (absolute); prints the largest difference; exit 1
-- when one is over (or a name is missing).
local ml = require "moonlight"
local a, b = ml.load(arg[1]), ml.load(arg[2])
local tol = tonumber(arg[3])
local worst, where, n = 0, "", 0
for name, t in pairs(a) do
  local u = b[name]
  if not u then error("compare: " .. name .. " is missing from " .. arg[2]) end
  local d = (t:double() - u:double()):abs():max():item()
  if d > worst or d ~= d then worst, where = d, name end
  n = n + 1
end
for name in pairs(b) do
  if not a[name] then error("compare: " .. name .. " is missing from " .. arg[1]) end
end
print(string.format("compare: %d tensors, largest difference %.3g (%s), tolerance %g", n, worst, where, tol))
if not (worst <= tol) then os.exit(1) end
