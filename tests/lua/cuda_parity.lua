-- The CUDA/CPU parity cases: every op of the CUDA table the Lua API reaches, run
-- forward and backward on both devices from the same inputs, compared at float32
-- tolerance (integer and mask results exactly). Shapes are odd on purpose (not
-- multiples of a block or a warp), with broadcasting, strided views, 0-dim
-- tensors, long rows (the two-pass whole-tensor reduction) and inner dims.
--
-- Used by cuda_parity_spec.lua (busted) and by scripts/gpu-parity.lua (a plain
-- runner for a GPU machine without busted). Returns {cases = ..., check = fn}.
local ml = require "moonlight"

local M = {}

-- An input: shape, kind ("randn", "pos" > 0, "unit" in (-1, 1), "int", "u8",
-- "f64"), grad (a leaf that collects a gradient), view ("t": transposed after
-- moving, so the op sees a strided tensor).
local function make_input(spec, seed, dev)
  ml.manual_seed(seed)
  local shape, kind = spec[1], spec.kind or "randn"
  local x
  if kind == "int" then
    x = (ml.randn(shape) * 5):long()
  elseif kind == "u8" then
    x = (ml.rand(shape) * 200):byte()
  elseif kind == "pos" then
    x = ml.rand(shape) * 2 + 0.1
  elseif kind == "unit" then
    x = ml.rand(shape) * 1.8 - 0.9
  elseif kind == "f64" then
    x = ml.randn(shape):double()
  else
    x = ml.randn(shape)
  end
  if dev == "cuda" then x = x:cuda() end
  local leaf = x
  if spec.grad then leaf = x:detach():requires_grad_(true) end
  local used = leaf
  if spec.view == "t" then used = leaf:t() end
  return used, spec.grad and leaf or nil
end

local function is_float(t) return t.dtype == "float32" or t.dtype == "float64" end

-- Runs one case on dev: the outputs and the gradients of the grad inputs (CPU).
function M.run(case, dev)
  local used, leaves = {}, {}
  for i, spec in ipairs(case.inputs) do
    used[i], leaves[i] = make_input(spec, 1000 + 17 * i, dev)
  end
  local outs = table.pack(case.fn(table.unpack(used, 1, #case.inputs)))
  local loss
  for i = 1, outs.n do
    local o = outs[i]
    if is_float(o) and o.requires_grad then
      ml.manual_seed(77 + i)
      local g = ml.randn(o:shape()):to({dtype = o.dtype})
      if dev == "cuda" then g = g:cuda() end
      local term = (o * g):sum()
      loss = loss and loss + term or term
    end
  end
  if loss then loss:backward() end
  local res = {}
  for i = 1, outs.n do res[#res + 1] = {name = "output " .. i, t = outs[i]:cpu()} end
  for i = 1, #case.inputs do
    if leaves[i] then
      local g = leaves[i].grad
      res[#res + 1] = {name = "grad of input " .. i, t = g and g:cpu()}
    end
  end
  return res
end

-- nil when a and b agree; else what differs.
function M.compare(name, a, b, rtol, atol)
  if (a == nil) ~= (b == nil) then return name .. ": present on one device only" end
  if a == nil then return nil end
  local sa, sb = table.concat(a:shape(), ","), table.concat(b:shape(), ",")
  if sa ~= sb then return ("%s: shape {%s} on cuda, {%s} on cpu"):format(name, sa, sb) end
  if a.dtype ~= b.dtype then return ("%s: dtype %s on cuda, %s on cpu"):format(name, a.dtype, b.dtype) end
  if a:numel() == 0 then return nil end
  if not is_float(a) then
    local bad = a:ne(b):sum():item()
    if bad > 0 then return ("%s: %d of %d elements differ"):format(name, bad, a:numel()) end
    return nil
  end
  local nan_a, nan_b = a:ne(a), b:ne(b)
  local nan_bad = nan_a:ne(nan_b):sum():item()
  if nan_bad > 0 then return ("%s: NaN at %d positions on one device only"):format(name, nan_bad) end
  local da, db = a:double(), b:double()
  local diff = (da - db):abs()
  local lim = db:abs() * rtol + atol
  local bad_mask = diff:gt(lim) * da:ne(db)
  local bad = bad_mask:sum():item()
  if bad > 0 then
    local worst = (diff * bad_mask:double()):max():item()
    return ("%s: %d of %d elements beyond rtol %g atol %g (worst abs diff %.3g)"):format(
      name, bad, a:numel(), rtol, atol, worst)
  end
  return nil
end

-- Runs the case on both devices; nil when they agree, else a message.
function M.check(case)
  local ok, cpu = pcall(M.run, case, "cpu")
  if not ok then return "cpu run failed: " .. tostring(cpu) end
  local ok2, gpu = pcall(M.run, case, "cuda")
  if not ok2 then return "cuda run failed: " .. tostring(gpu) end
  if #cpu ~= #gpu then return "different numbers of results" end
  for i = 1, #cpu do
    local msg = M.compare(cpu[i].name, gpu[i].t, cpu[i].t, case.rtol or 1e-5, case.atol or 1e-5)
    if msg then return msg end
  end
  return nil
end

-- The allocator's counters: a block is counted while live, cached when freed,
-- reused for the same size, and given back by empty_cache. nil when all hold.
function M.memory_check()
  local function gc() collectgarbage(); collectgarbage() end
  ml.cuda.synchronize()
  gc()
  local before = ml.cuda.memory_allocated()
  local t = ml.zeros({1000, 1000}, {device = "cuda"})
  if ml.cuda.memory_allocated() < before + 4000000 then return "a live 4 MB tensor is not counted" end
  if ml.cuda.memory_reserved() < ml.cuda.memory_allocated() then return "reserved < allocated" end
  t = nil
  gc()
  if ml.cuda.memory_allocated() > before then return "a freed tensor is still counted" end
  local reserved = ml.cuda.memory_reserved()
  local u = ml.zeros({1000, 1000}, {device = "cuda"})
  if ml.cuda.memory_reserved() ~= reserved then return "the cached block was not reused" end
  u = nil
  gc()
  ml.cuda.empty_cache()
  if ml.cuda.memory_reserved() >= reserved then return "empty_cache kept the cached blocks" end
  return nil
end

local cases = {}
M.cases = cases
local function add(name, inputs, fn, opts)
  local c = {name = name, inputs = inputs, fn = fn}
  for k, v in pairs(opts or {}) do c[k] = v end
  cases[#cases + 1] = c
end

-- unary (float32, with backward), on a matrix, a strided view, a 0-dim and a long vector
local unary = {
  {"neg", "randn"}, {"exp", "randn"}, {"log", "pos"}, {"log1p", "pos"}, {"abs", "randn"},
  {"sqrt", "pos"}, {"square", "randn"}, {"sign", "randn"}, {"relu", "randn"},
  {"sigmoid", "randn"}, {"tanh", "randn"}, {"reciprocal", "pos"},
}
for _, u in ipairs(unary) do
  local op, kind = u[1], u[2]
  local f = function(x) return x[op](x) end
  add(op .. " [33, 65]", {{{33, 65}, kind = kind, grad = true}}, f)
  add(op .. " strided [65, 33]^T", {{{65, 33}, kind = kind, grad = true, view = "t"}}, f)
  add(op .. " 0-dim", {{{}, kind = kind, grad = true}}, f)
  add(op .. " [100003]", {{{100003}, kind = kind, grad = true}}, f)
end
for _, op in ipairs({"neg", "abs", "square", "sign", "relu"}) do
  add(op .. " int64 [7, 9]", {{{7, 9}, kind = "int"}}, function(x) return x[op](x) end)
end
for _, op in ipairs({"abs", "sign", "relu", "square"}) do
  add(op .. " uint8 [257]", {{{257}, kind = "u8"}}, function(x) return x[op](x) end)
end

-- binary, with broadcasting
local shapes = {
  {{33, 65}, {33, 65}}, {{3, 1, 5}, {4, 1}}, {{33, 65}, {65}}, {{7, 1}, {1, 9}}, {{}, {6, 5}},
  {{2, 3, 4, 5}, {3, 1, 5}},
}
local binary = {
  {"add", function(a, b) return a + b end}, {"sub", function(a, b) return a - b end},
  {"mul", function(a, b) return a * b end}, {"div", function(a, b) return a / b end, "pos"},
  {"pow", function(a, b) return a:pow(b) end, "pos"},
  {"maximum", function(a, b) return a:maximum(b) end},
  {"minimum", function(a, b) return a:minimum(b) end},
}
for _, bop in ipairs(binary) do
  for _, sh in ipairs(shapes) do
    add(("%s {%s} by {%s}"):format(bop[1], table.concat(sh[1], ","), table.concat(sh[2], ",")),
        {{sh[1], grad = true, kind = bop[3] == "pos" and "pos" or "randn"}, {sh[2], grad = true, kind = "randn"}},
        bop[2])
  end
end
add("add strided + broadcast", {{{65, 33}, grad = true, view = "t"}, {{65}, grad = true}},
    function(a, b) return a + b end)
add("mul by a number", {{{33, 65}, grad = true}}, function(a) return a * 2.5 - 1 end)
for _, op in ipairs({"eq", "ne", "lt", "le", "gt", "ge"}) do
  add(op .. " float {3,1,5} by {4,1}", {{{3, 1, 5}}, {{4, 1}}}, function(a, b) return a[op](a, b) end)
  add(op .. " int64 {33,65} by {65}", {{{33, 65}, kind = "int"}, {{65}, kind = "int"}},
      function(a, b) return a[op](a, b) end)
end
for _, op in ipairs({"add", "sub", "mul", "maximum", "minimum"}) do
  add(op .. " int64 {7,1} by {1,9}", {{{7, 1}, kind = "int"}, {{1, 9}, kind = "int"}},
      function(a, b) return a[op](a, b) end)
end
add("add uint8", {{{257}, kind = "u8"}, {{257}, kind = "u8"}}, function(a, b) return a + b end)
add("float64 mul/div/exp", {{{33, 65}, kind = "f64", grad = true}, {{65}, kind = "f64", grad = true}},
    function(a, b) return (a * b / (b:abs() + 1)):exp() end)

-- clamp, pow by a number, in-place accumulation (axpy), fill, copies and casts, where
add("clamp both", {{{33, 65}, grad = true}}, function(x) return x:clamp(-0.5, 0.7) end)
add("clamp min", {{{33, 65}, grad = true}}, function(x) return x:clamp({min = 0}) end)
add("clamp max int64", {{{7, 9}, kind = "int"}}, function(x) return x:clamp({max = 2}) end)
for _, p in ipairs({2, 0.5, 3, -1.5}) do
  add("pow " .. p, {{{33, 65}, kind = "pos", grad = true}}, function(x) return x ^ p end)
end
add("pow 2 float64", {{{33, 65}, kind = "f64", grad = true}}, function(x) return x ^ 2 end)
add("pow 3 int64", {{{7, 9}, kind = "int"}}, function(x) return x ^ 3 end)
add("add_ in place", {{{33, 65}}, {{65}}}, function(a, b)
  local c = a:clone(); c:add_(b); return c
end)
add("gradient accumulation", {{{33, 65}, grad = true}}, function(x) return x * x + x:exp() + x end)
add("fill_ and zero_", {{{33, 65}}}, function(x)
  local a, b = x:clone(), x:clone(); a:fill_(3.25); b:zero_(); return a, b
end)
add("full/zeros/ones", {{{3}}}, function(x)
  local d = x.device
  return ml.full({33, 65}, 7, {device = d}), ml.zeros({5}, {device = d, dtype = "int64"}),
         ml.ones({2, 3}, {device = d, dtype = "float64"})
end)
add("contiguous of a transpose", {{{65, 33}, grad = true, view = "t"}}, function(x) return x:contiguous() end)
add("copy_ broadcast", {{{33, 65}}, {{65}}}, function(a, b) local c = a:clone(); c:copy_(b); return c end)
add("casts", {{{33, 65}}}, function(x)
  return x:double(), (x * 10):long(), (x:abs() * 10):byte(), (x * 10):long():float(),
         x:double():float()
end)
add("permute and narrow copies", {{{4, 5, 6}, grad = true}}, function(x)
  return x:permute({3, 1, 2}):contiguous(), x:narrow(2, 2, 3):contiguous()
end)
add("where", {{{3, 1, 5}}, {{4, 5}, grad = true}, {{3, 4, 1}, grad = true}}, function(c, a, b)
  return ml.where(c:gt(0), a, b)
end)

-- reductions
local function red(name, shape, fn, kind, grad)
  add(("%s {%s}"):format(name, table.concat(shape, ",")), {{shape, kind = kind, grad = grad ~= false}}, fn)
end
for _, shape in ipairs({{33, 65}, {3, 4, 5}, {1, 300001}, {300001}, {1000, 3}, {2, 1025, 3}}) do
  red("sum", shape, function(x) return x:sum() end)
  red("mean", shape, function(x) return x:mean() end)
  red("sum dim 1", shape, function(x) return x:sum(1) end)
  red("mean dim -1 keepdim", shape, function(x) return x:mean(-1, true) end)
  -- forward only: the backward of max/min with a dim scatters through the index
  -- family, which has no CUDA kernels yet (ops/reduce.c says so on cuda)
  red("max dim 1", shape, function(x) return x:max(1) end, nil, false)
  red("min dim -1", shape, function(x) return x:min(-1) end, nil, false)
  red("argmax dim 1", shape, function(x) return x:argmax(1) end, nil, false)
  red("argmin dim -1", shape, function(x) return x:argmin(-1) end, nil, false)
  red("logsumexp dim -1", shape, function(x) return x:logsumexp(-1) end)
  red("max all", shape, function(x) return x:max() end)
end
red("sum dim 2 {3,4,5}", {3, 4, 5}, function(x) return x:sum(2) end)
red("logsumexp dim 2", {3, 4, 5}, function(x) return x:logsumexp(2) end)
red("max dim 2", {3, 4, 5}, function(x) return x:max(2) end, nil, false)
red("sum int64", {33, 65}, function(x) return x:sum(), x:sum(1), x:max(2) end, "int", false)
red("sum uint8", {1, 300001}, function(x) return x:sum(), x:sum(2), x:argmax(2) end, "u8", false)
red("sum float64", {300001}, function(x) return x:sum(), x:mean() end, "f64")
red("sum of a strided view", {65, 33}, function(x) return x:t():sum(2) end)
add("max ties and NaN", {{{5}}}, function(x)
  local t = ml.tensor({{1, 3, 3, 2}, {0 / 0, 1, 0 / 0, 5}}, {device = x.device})
  return t:max(2)
end)
add("logsumexp -inf row", {{{2}}}, function(x)
  local t = ml.tensor({{-math.huge, -math.huge}, {1, -math.huge}}, {device = x.device})
  return t:logsumexp(2)
end)

-- matmul (cuBLAS against OpenBLAS)
local mm = {rtol = 1e-4, atol = 1e-4}
add("mm [33,65]x[65,17]", {{{33, 65}, grad = true}, {{65, 17}, grad = true}},
    function(a, b) return a:matmul(b) end, mm)
add("mm transposed operands", {{{65, 33}, grad = true, view = "t"}, {{17, 65}, grad = true, view = "t"}},
    function(a, b) return a:matmul(b) end, mm)
add("batched [3,33,65]x[65,17]", {{{3, 33, 65}, grad = true}, {{65, 17}, grad = true}},
    function(a, b) return a:matmul(b) end, mm)
add("batched broadcast [2,1,5,7]x[3,7,4]", {{{2, 1, 5, 7}, grad = true}, {{3, 7, 4}, grad = true}},
    function(a, b) return a:matmul(b) end, mm)
add("matrix-vector", {{{33, 65}, grad = true}, {{65}, grad = true}}, function(a, b) return a:matmul(b) end, mm)
add("vector-vector", {{{65}, grad = true}, {{65}, grad = true}}, function(a, b) return a:matmul(b) end, mm)
add("mm float64", {{{33, 65}, kind = "f64", grad = true}, {{65, 17}, kind = "f64", grad = true}},
    function(a, b) return a:matmul(b) end, mm)
add("linear with bias [129,784]", {{{129, 784}, grad = true}, {{64, 784}, grad = true}, {{64}, grad = true}},
    function(x, w, b) return ml.F.linear(x, w, b) end, mm)
add("linear 3-D input, no bias", {{{2, 5, 31}, grad = true}, {{10, 31}, grad = true}},
    function(x, w) return ml.F.linear(x, w) end, mm)

-- softmax / log_softmax (last dim, a middle dim, one long row)
for _, op in ipairs({"softmax", "log_softmax"}) do
  add(op .. " dim -1 [129,10]", {{{129, 10}, grad = true}}, function(x) return ml.F[op](x, -1) end)
  add(op .. " dim 2 [3,37,5]", {{{3, 37, 5}, grad = true}}, function(x) return ml.F[op](x, 2) end)
  add(op .. " dim 1 [1000,3]", {{{1000, 3}, grad = true}}, function(x) return ml.F[op](x, 1) end)
  add(op .. " long row [2,5000]", {{{2, 5000}, grad = true}}, function(x) return ml.F[op](x, -1) end)
  add(op .. " float64", {{{17, 33}, kind = "f64", grad = true}}, function(x) return ml.F[op](x, -1) end)
end

-- a small MLP step: everything together
add("MLP forward/backward", {{{128, 784}}, {{64, 784}, grad = true}, {{64}, grad = true},
                             {{10, 64}, grad = true}, {{10}, grad = true}},
    function(x, w1, b1, w2, b2)
      local h = ml.F.relu(ml.F.linear(x, w1, b1))
      local p = ml.F.softmax(ml.F.linear(h, w2, b2), -1)
      return ((p - 0.1) ^ 2):mean()
    end, mm)

return M
