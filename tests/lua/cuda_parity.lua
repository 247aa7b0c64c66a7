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
-- "f64", "class": int64 ids in [0, spec.classes), "prob" in (0.01, 0.99),
-- "count": small whole numbers as float32), dtype (cast after drawing), grad (a
-- leaf that collects a gradient), view ("t": transposed after moving, so the op
-- sees a strided tensor).
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
  elseif kind == "class" then
    x = (ml.rand(shape) * spec.classes):long()
  elseif kind == "prob" then
    x = ml.rand(shape) * 0.98 + 0.01
  elseif kind == "count" then
    x = (ml.rand(shape) * 6):long():float()
  else
    x = ml.randn(shape)
  end
  if spec.dtype then x = x:to({dtype = spec.dtype}) end
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

-- unary (float32, with backward), on a matrix, a strided view, a 0-dim and a long
-- vector: every op of the list (src/backend/elementwise_ops.h), on positive inputs
-- and on normal ones (NaN where an op is not defined there, at the same positions)
local ops_list = require("moonlight.core")._elementwise_ops
for _, u in ipairs(ops_list.unary) do
  local op = u.name
  local f = function(x) return x[op](x) end
  for _, kind in ipairs({"randn", "pos"}) do
    local sfx = kind == "pos" and " positive" or ""
    add(op .. sfx .. " [33, 65]", {{{33, 65}, kind = kind, grad = true}}, f)
    add(op .. sfx .. " strided [65, 33]^T", {{{65, 33}, kind = kind, grad = true, view = "t"}}, f)
    add(op .. sfx .. " 0-dim", {{{}, kind = kind, grad = true}}, f)
    add(op .. sfx .. " [100003]", {{{100003}, kind = kind, grad = true}}, f)
  end
  add(op .. " float64 [7, 9]", {{{7, 9}, kind = "f64", grad = true}}, f)
  -- integers: the `any` ops in their dtype, the others cast to float32 first
  add(op .. " int64 [7, 9]", {{{7, 9}, kind = "int"}}, f)
  add(op .. " uint8 [257]", {{{257}, kind = "u8"}}, f)
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
add("floor_divide {33,65} by {65}", {{{33, 65}}, {{65}, kind = "pos"}},
    function(a, b) return a // b end)
add("floor_divide by zero float", {{{7}}}, function(a) return a // 0 end)
add("floor_divide int64 {7,1} by {1,9}", {{{7, 1}, kind = "int"}, {{1, 9}, kind = "int"}},
    function(a, b) return a // (b:abs() + 1) end)
add("floor_divide uint8", {{{257}, kind = "u8"}, {{257}, kind = "u8"}},
    function(a, b) return a // (b // 2 + 1) end)
add("relu keeps NaN", {{{33, 65}, grad = true}}, function(x) return (x:log()):relu() end)
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
  -- the backward of max/min with a dim scatters through the index family
  red("max dim 1", shape, function(x) return x:max(1) end)
  red("min dim -1", shape, function(x) return x:min(-1) end)
  red("argmax dim 1", shape, function(x) return x:argmax(1) end, nil, false)
  red("argmin dim -1", shape, function(x) return x:argmin(-1) end, nil, false)
  red("logsumexp dim -1", shape, function(x) return x:logsumexp(-1) end)
  red("max all", shape, function(x) return x:max() end)
end
red("sum dim 2 {3,4,5}", {3, 4, 5}, function(x) return x:sum(2) end)
red("logsumexp dim 2", {3, 4, 5}, function(x) return x:logsumexp(2) end)
red("max dim 2", {3, 4, 5}, function(x) return x:max(2) end)
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

add("logsumexp with NaN and infinities (rows, columns, one long row)", {{{2}}}, function(x)
  local nan, inf = 0 / 0, math.huge
  local t = ml.tensor({{nan, 1, 2}, {1, nan, -inf}, {nan, nan, nan}, {inf, nan, 1}, {inf, inf, 1},
                       {-inf, -inf, -inf}}, {device = x.device})
  local long = ml.zeros({1, 20001}, {device = x.device})
  long[1][12345] = nan
  return t:logsumexp(2), t:t():contiguous():logsumexp(1), long:logsumexp(2),
         t:double():logsumexp(2)
end)
add("casts of NaN, infinities and out-of-range floats", {{{2}}}, function(x)
  local v = {0 / 0, 1 / 0, -1 / 0, 1e20, -1e20, 300.7, -1.5, 255.9, 256, -0.5, 511, -257, 1e10,
             3000000001, -3000000001}
  local f32 = ml.tensor(v, {device = x.device})
  local f64 = ml.tensor(v, {device = x.device, dtype = "float64"})
  local strided = ml.tensor({v, v}, {device = x.device, dtype = "float64"}):t()
  return f32:long(), f32:byte(), f64:long(), f64:byte(), strided:byte(), strided:long()
end, {rtol = 0, atol = 0})

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
add("linear and matmul with an inner size of 0", {{{3, 0}, grad = true}, {{2, 0}, grad = true},
                                                {{2}, grad = true}},
    function(x, w, b) return ml.F.linear(x, w, b), x:matmul(w:t()) end, mm)
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

-- losses: every kind x reduction x options, forward and the input's gradient
-- (and target's / var's where the loss gives one)
local F = ml.F
local function loss_case(name, inputs, fname, opts, wrap)
  for _, red_ in ipairs({"mean", "sum", "none"}) do
    local o = {reduction = red_}
    for k, v in pairs(opts or {}) do o[k] = v end
    add(("%s %s %s"):format(fname, name, red_), inputs, function(...)
      local args = table.pack(...)
      if wrap then args = table.pack(wrap(...)) end
      local n = args.n
      -- a trailing tensor option (weight, pos_weight) is the last input
      if o._tensor_opt then
        o[o._tensor_opt] = args[n]
        n = n - 1
      end
      local oo = {}
      for k, v in pairs(o) do if k ~= "_tensor_opt" then oo[k] = v end end
      local call = {}
      for i = 1, n do call[i] = args[i] end
      call[n + 1] = oo
      return F[fname](table.unpack(call, 1, n + 1))
    end)
  end
end
local X = {33, 65}
local function xin(kind, grad) return {X, kind = kind or "randn", grad = grad ~= false} end
loss_case("[33,65]", {xin(), xin()}, "mse_loss")
loss_case("float64", {xin("f64"), xin("f64")}, "mse_loss")
loss_case("[100003]", {{{100003}, grad = true}, {{100003}}}, "mse_loss")
loss_case("[33,65]", {xin(), xin()}, "l1_loss")
loss_case("beta 1", {xin(), xin()}, "smooth_l1_loss")
loss_case("beta 0.5", {xin(), xin()}, "smooth_l1_loss", {beta = 0.5})
loss_case("beta 0", {xin(), xin()}, "smooth_l1_loss", {beta = 0})
loss_case("[33,65]", {xin("prob"), xin("prob", false)}, "binary_cross_entropy")
loss_case("weight [65]", {xin("prob"), xin("prob", false), {{65}, kind = "pos"}},
          "binary_cross_entropy", {_tensor_opt = "weight"})
loss_case("float64", {xin("prob", true), xin("prob", false)}, "binary_cross_entropy", nil,
          function(x, t) return x:double(), t:double() end)
loss_case("[33,65]", {xin(), xin("prob", false)}, "binary_cross_entropy_with_logits")
loss_case("weight", {xin(), xin("prob", false), {{65}, kind = "pos"}},
          "binary_cross_entropy_with_logits", {_tensor_opt = "weight"})
loss_case("pos_weight", {xin(), xin("prob", false), {{65}, kind = "pos"}},
          "binary_cross_entropy_with_logits", {_tensor_opt = "pos_weight"})
loss_case("", {xin(), xin("pos", false)}, "kl_div", nil,
          function(x, t) return F.log_softmax(x, -1), t / t:sum(-1, true) end)
loss_case("log_target", {xin(), xin(nil, false)}, "kl_div", {log_target = true},
          function(x, t) return F.log_softmax(x, -1), F.log_softmax(t, -1) end)
add("kl_div batchmean", {xin(), xin("pos", false)}, function(x, t)
  return F.kl_div(F.log_softmax(x, -1), t / t:sum(-1, true), {reduction = "batchmean"})
end)
loss_case("log_input", {xin(), xin("count", false)}, "poisson_nll_loss")
loss_case("probabilities", {xin("pos"), xin("count", false)}, "poisson_nll_loss", {log_input = false})
loss_case("full", {xin(), xin("count", false)}, "poisson_nll_loss", {full = true})
loss_case("var [33,65]", {xin(), xin(), xin("pos")}, "gaussian_nll_loss")
loss_case("var [33,1] full", {xin(), xin(), {{33, 1}, kind = "pos", grad = true}}, "gaussian_nll_loss",
          {full = true})
loss_case("var [33] eps", {xin(), xin(), {{33}, kind = "pos", grad = true}}, "gaussian_nll_loss",
          {eps = 0.5})
local C = 10
local function logits(shape, kind) return {shape, kind = kind or "randn", grad = true} end
local function ids(shape, c) return {shape, kind = "class", classes = c or C} end
local W10 = {{C}, kind = "pos"}
loss_case("[129,10]", {logits({129, C}), ids({129})}, "nll_loss", nil,
          function(x, t) return F.log_softmax(x, -1), t end)
loss_case("weight", {logits({129, C}), ids({129}), W10}, "nll_loss", {_tensor_opt = "weight"},
          function(x, t, w) return F.log_softmax(x, -1), t, w end)
loss_case("ignore_index 3", {logits({129, C}), ids({129})}, "nll_loss", {ignore_index = 3},
          function(x, t) return F.log_softmax(x, -1), t end)
loss_case("[129,10]", {logits({129, C}), ids({129})}, "cross_entropy")
loss_case("weight", {logits({129, C}), ids({129}), W10}, "cross_entropy", {_tensor_opt = "weight"})
loss_case("ignore_index 3", {logits({129, C}), ids({129})}, "cross_entropy", {ignore_index = 3})
loss_case("label_smoothing 0.1", {logits({129, C}), ids({129})}, "cross_entropy", {label_smoothing = 0.1})
loss_case("weight + ls + ignore", {logits({129, C}), ids({129}), W10}, "cross_entropy",
          {_tensor_opt = "weight", label_smoothing = 0.2, ignore_index = 0})
loss_case("class dim 2 [3,10,7]", {logits({3, C, 7}), ids({3, 7})}, "cross_entropy")
loss_case("class dim 2 weight + ls", {logits({3, C, 7}), ids({3, 7}), W10}, "cross_entropy",
          {_tensor_opt = "weight", label_smoothing = 0.1})
loss_case("1000 classes (warp rows)", {logits({65, 1000}), ids({65}, 1000), {{1000}, kind = "pos"}},
          "cross_entropy", {_tensor_opt = "weight", label_smoothing = 0.1, ignore_index = 7})
loss_case("1000 classes nll", {logits({65, 1000}), ids({65}, 1000)}, "nll_loss", nil,
          function(x, t) return F.log_softmax(x, -1), t end)
loss_case("float64", {logits({129, C}, "f64"), ids({129})}, "cross_entropy", {label_smoothing = 0.1})
loss_case("unbatched [10]", {logits({C}), ids({})}, "cross_entropy")
loss_case("probabilities", {logits({129, C}), {{129, C}, kind = "pos"}}, "cross_entropy", nil,
          function(x, t) return x, t / t:sum(-1, true) end)
loss_case("probabilities weight + ls", {logits({129, C}), {{129, C}, kind = "pos"}, W10},
          "cross_entropy", {_tensor_opt = "weight", label_smoothing = 0.1},
          function(x, t, w) return x, t / t:sum(-1, true), w end)
loss_case("probabilities 1000 classes", {logits({33, 1000}), {{33, 1000}, kind = "pos"}},
          "cross_entropy", nil, function(x, t) return x, t / t:sum(-1, true) end)
add("cross_entropy all ignored (NaN mean)", {logits({5, C})}, function(x)
  local t = ml.full({5}, 2, {dtype = "int64", device = x.device})
  return F.cross_entropy(x, t, {ignore_index = 2})
end)

-- bad data is an error naming the loss on both devices
local function raises(pattern, f)
  return function(x)
    local ok, err = pcall(f, x)
    local hit = not ok and tostring(err):find(pattern, 1, true) ~= nil
    return ml.tensor({hit and 1 or 0, ok and 1 or 0}, {dtype = "int64"})
  end
end
add("cross_entropy class id out of range", {logits({5, C})}, raises(
  "cross_entropy: target class id 10 is out of range", function(x)
    return F.cross_entropy(x, ml.tensor({1, 2, 10, 3, 4}, {dtype = "int64", device = x.device}))
  end))
add("nll_loss negative class id", {logits({5, C})}, raises(
  "nll_loss: target class id -3 is out of range", function(x)
    return F.nll_loss(x, ml.tensor({1, 2, -3, 3, 4}, {dtype = "int64", device = x.device}))
  end))
add("binary_cross_entropy input outside [0, 1]", {{{7}}}, raises(
  "binary_cross_entropy: all elements of input should be between 0 and 1", function(x)
    return F.binary_cross_entropy(x:abs() + 1, x:abs():clamp(0, 1))
  end))
add("gaussian_nll_loss negative var", {{{7}}}, raises(
  "gaussian_nll_loss: var has negative entries", function(x)
    return F.gaussian_nll_loss(x, x, -x:abs() - 1)
  end))

-- optimizers: several steps from the same parameters and gradients
local function optim_case(name, make, dtype)
  add("optim " .. name, {{{33, 65}, dtype = dtype}, {{33, 65}, dtype = dtype}, {{33, 65}, dtype = dtype}},
      function(w, g1, g2)
        local p = w:clone():requires_grad_(true)
        local q = w:narrow(2, 1, 7):contiguous():requires_grad_(true)
        local opt = make({p, q})
        for s = 1, 6 do
          local g = s % 2 == 1 and g1 or g2
          p.grad = g * (1 + 0.25 * s)
          q.grad = g:narrow(2, 3, 7):contiguous() * -s
          opt:step()
        end
        return p:detach(), q:detach()
      end)
end
local optim = ml.optim
optim_case("Adam", function(ps) return optim.Adam(ps, {lr = 1e-2}) end)
optim_case("Adam float64", function(ps) return optim.Adam(ps, {lr = 1e-2}) end, "float64")
optim_case("Adam weight_decay", function(ps) return optim.Adam(ps, {lr = 1e-2, weight_decay = 0.1}) end)
optim_case("Adam amsgrad", function(ps) return optim.Adam(ps, {lr = 1e-2, amsgrad = true, betas = {0.8, 0.9}}) end)
optim_case("Adam maximize", function(ps) return optim.Adam(ps, {lr = 1e-2, maximize = true, eps = 1e-6}) end)
optim_case("AdamW", function(ps) return optim.AdamW(ps, {lr = 1e-2}) end)
optim_case("AdamW amsgrad float64", function(ps) return optim.AdamW(ps, {lr = 1e-2, amsgrad = true, weight_decay = 0.5}) end, "float64")
optim_case("SGD", function(ps) return optim.SGD(ps, {lr = 0.1}) end)
optim_case("SGD momentum", function(ps) return optim.SGD(ps, {lr = 0.1, momentum = 0.9}) end)
optim_case("SGD momentum dampening wd", function(ps)
  return optim.SGD(ps, {lr = 0.1, momentum = 0.9, dampening = 0.3, weight_decay = 0.01}) end)
optim_case("SGD nesterov maximize", function(ps)
  return optim.SGD(ps, {lr = 0.05, momentum = 0.8, nesterov = true, maximize = true}) end)
optim_case("SGD float64", function(ps) return optim.SGD(ps, {lr = 0.1, momentum = 0.5}) end, "float64")

-- index family (gather's backward is scatter_add, index_select's is index_add)
add("gather dim 2 [33,65] by [33,20]", {{{33, 65}, grad = true}, ids({33, 20}, 65)},
    function(x, i) return x:gather(2, i) end)
add("gather dim 1 [33,65] by [7,65]", {{{33, 65}, grad = true}, ids({7, 65}, 33)},
    function(x, i) return x:gather(1, i) end)
add("gather dim 2 [3,17,5] by [3,40,4] (repeats)", {{{3, 17, 5}, grad = true}, ids({3, 40, 4}, 17)},
    function(x, i) return x:gather(2, i) end)
add("gather int64 and uint8", {{{9, 11}, kind = "int"}, {{9, 11}, kind = "u8"}, ids({9, 5}, 11)},
    function(a, b, i) return a:gather(2, i), b:gather(2, i) end)
add("gather float64", {{{9, 11}, kind = "f64", grad = true}, ids({4, 11}, 9)},
    function(x, i) return x:gather(1, i) end)
add("scatter_add dim 2 (repeats)", {{{6, 13}, grad = true}, ids({6, 40}, 13), {{6, 40}, grad = true}},
    function(x, i, src) return x:scatter_add(2, i, src) end)
add("scatter_add dim 1 int64", {{{6, 13}, kind = "int"}, ids({20, 13}, 6), {{20, 13}, kind = "int"}},
    function(x, i, src) return x:scatter_add(1, i, src) end)
add("index_select dim 1", {{{33, 65}, grad = true}, ids({50}, 33)}, function(x, i) return x:index_select(1, i) end)
add("index_select dim 2 [4,33,5]", {{{4, 33, 5}, grad = true}, ids({70}, 33)},
    function(x, i) return x:index_select(2, i) end)
add("index_select last dim uint8", {{{7, 300}, kind = "u8"}, ids({99}, 300)},
    function(x, i) return x:index_select(2, i) end)
add("index_add dim 1 (repeats)", {{{9, 65}, grad = true}, ids({40}, 9), {{40, 65}, grad = true}},
    function(x, i, src) return x:index_add(1, i, src) end)
add("index_add dim 2 float64", {{{5, 9, 3}, kind = "f64", grad = true}, ids({12}, 9),
                                {{5, 12, 3}, kind = "f64", grad = true}},
    function(x, i, src) return x:index_add(2, i, src) end)
add("one_hot", {ids({129}), ids({3, 7}, 4)}, function(a, b)
  return F.one_hot(a, 10), F.one_hot(b), F.one_hot(a, 12):float()
end)

-- data family: batches gathered from a uint8 dataset resident on the device
local core = require "moonlight.core"
local function rows(dev)
  ml.manual_seed(5)
  local idx = (ml.rand({131}) * 1000):long() -- on the host, as the loader makes them
  return idx, dev
end
add("data gather_scaled (ToTensor, Normalize) and gather_rows", {{{1000, 28, 28}, kind = "u8"}},
    function(src)
      local idx = rows()
      return core._gather_scaled(src, idx, 1 / 255, 0, true),
             core._gather_scaled(src, idx, 1 / (255 * 0.3081), -0.1307 / 0.3081, false),
             core._gather_scaled(src, idx, 1 / 255, 0, false, "float64"),
             core._gather_rows(src, idx)
    end, {rtol = 0, atol = 0})
add("data gather_rows float32, int64 and odd rows", {{{1000, 3}}, {{1000, 5}, kind = "int"}, {{1000, 3}, kind = "u8"}},
    function(a, b, c)
      local idx = rows()
      return core._gather_rows(a, idx), core._gather_rows(b, idx), core._gather_rows(c, idx)
    end, {rtol = 0, atol = 0})
add("data gather_one_hot and gather_labels", {ids({1000}), {{1000}, kind = "class", classes = 10, dtype = "uint8"}},
    function(l64, l8)
      local idx = rows()
      return core._gather_one_hot(l64, idx, 10), core._gather_one_hot(l8, idx, 10),
             core._gather_labels(l64, idx), core._gather_labels(l8, idx)
    end, {rtol = 0, atol = 0})
add("data gather_one_hot label out of range", {ids({1000})}, raises(
  "one_hot: class id 10 is out of range for 10 classes", function(l)
    local idx = rows()
    return core._gather_one_hot(l, idx, 9 + 1) + core._gather_one_hot(l + 1, idx, 10)
  end))
add("data DataLoader batches on the device", {{{300, 28, 28}, kind = "u8"}, ids({300})},
    function(images, labels)
      local d = ml.data
      local T = d.transforms
      local ds = d.TensorDataset(images:cpu(), labels:cpu())
      local out = {}
      local loader = d.DataLoader(ds, {batch_size = 64, shuffle = true, seed = 3, device = images.device})
      for _, b in loader:iter() do
        out[#out + 1] = b[1]
        out[#out + 1] = b[2]
      end
      return table.unpack(out)
    end, {rtol = 0, atol = 0})

-- data family: augmentation kernels (crop/pad/flip, affine warps, jitter), the
-- per-image params drawn on the host as the transforms draw them
local function aug_params(n, kind)
  ml.manual_seed(6)
  local u = ml.rand({n, 3}, {dtype = "float64"}):totable()
  local out = {}
  for b = 1, n do
    if kind == "crop" then
      out[b] = {math.floor(u[b][1] * 9) - 4, math.floor(u[b][2] * 9) - 4, u[b][3] < 0.5 and 1 or 0}
    elseif kind == "affine" then
      local a, s = (u[b][1] - 0.5) * 4, 0.8 + 0.4 * u[b][2]
      out[b] = {math.cos(a) / s, math.sin(a) / s, u[b][3] * 3 - 1.5, -math.sin(a) / s, math.cos(a) / s, 0.7}
    else
      out[b] = {0.5 + u[b][1], u[b][2] < 0.3 and -1 or 0.5 + u[b][2], u[b][3] < 0.5 and 1 or 0}
    end
  end
  return ml.tensor(out, {dtype = kind == "crop" and "int64" or "float64"})
end
add("data augment_crop: pad modes, flips, uint8/float32/int64, odd sizes", {{{13, 2, 17, 11}, kind = "u8"},
    {{13, 2, 17, 11}}, {{13, 1, 5, 3}, kind = "int"}},
    function(a, b, c)
      local p = aug_params(13, "crop")
      return core._augment_crop(a, p, 15, 12, 0, 7), core._augment_crop(a, p, 9, 13, 1, 0),
             core._augment_crop(b, p, 17, 11, 2, 0), core._augment_crop(b, p, 20, 6, 3, 0),
             core._augment_crop(c, p, 4, 7, 0, -3)
    end, {rtol = 0, atol = 0})
add("data augment_affine: nearest and bilinear, fill, float32/float64/uint8", {{{9, 3, 19, 23}},
    {{9, 1, 12, 7}, kind = "f64"}, {{9, 1, 28, 28}, kind = "u8"}},
    function(a, b, c)
      local p = aug_params(9, "affine")
      return core._augment_affine(a, p, false, 0), core._augment_affine(a, p, true, 0.25),
             core._augment_affine(b, p, true, -1), core._augment_affine(c, p, false, 30),
             core._augment_affine(c, p, true, 0)
    end, {rtol = 1e-6, atol = 1e-6})
add("data augment_jitter: brightness, contrast, both orders, float32/float64/uint8", {{{21, 1, 13, 29}, kind = "unit"},
    {{21, 1, 28, 28}, kind = "u8"}, {{21, 1, 7, 5}, kind = "f64"}},
    function(a, b, c)
      local p = aug_params(21, "jitter")
      return core._augment_jitter(a:abs(), p), core._augment_jitter(b, p), core._augment_jitter(c:abs():clamp(0, 1), p)
    end, {rtol = 1e-6, atol = 1e-6})
add("data transforms on a batch on the device", {{{6, 1, 28, 28}, kind = "u8"}},
    function(x)
      local T = ml.data.transforms
      local out = {}
      for i, t in ipairs({T.RandomCrop(24, {padding = 3}), T.RandomHorizontalFlip(), T.RandomRotation(20),
                          T.RandomAffine(15, {translate = {0.1, 0.2}, scale = {0.8, 1.2}, interpolation = "bilinear"}),
                          T.ColorJitter(0.5, 0.5)}) do
        ml.manual_seed(30 + i)
        out[i] = t:batch(x:float() / 255)
      end
      return table.unpack(out)
    end, {rtol = 1e-6, atol = 1e-6})
-- issue 16: activations with their parameters, the sort family (sort, argsort,
-- topk, cumsum), all/any, var/std/norm, masked_fill, F.pad, F.dropout, chunk/split
-- (the unary list's loop above already runs every activation at its defaults)
for _, op in ipairs({
  {"gelu tanh", function(x) return F.gelu(x, {approximate = "tanh"}) end},
  {"leaky_relu 0.2", function(x) return F.leaky_relu(x, 0.2) end},
  {"elu alpha 0.5", function(x) return F.elu(x, 0.5) end},
  {"softplus beta 2 threshold 1", function(x) return F.softplus(x, 2, 1) end},
}) do
  add(op[1] .. " [33, 65]", {{{33, 65}, grad = true}}, op[2])
  add(op[1] .. " float64 strided", {{{65, 33}, kind = "f64", grad = true, view = "t"}}, op[2])
end
add("isnan/isinf with NaN and infinities", {{{2}}}, function(x)
  local nan, inf = 0 / 0, math.huge
  local t = ml.tensor({{nan, 1, -inf}, {inf, 0, nan}}, {device = x.device})
  return t:isnan(), t:isinf(), t:t():isinf(), t:double():isnan()
end)
for _, shape in ipairs({{33, 65}, {3, 4, 5}, {1, 300001}, {2, 1025, 3}, {7}}) do
  red("sort dim -1", shape, function(x) return x:sort(-1) end)
  red("sort dim 1 descending", shape, function(x) return x:sort(1, {descending = true}) end)
  red("argsort dim 1", shape, function(x) return x:argsort(1) end, nil, false)
  red("cumsum dim 1", shape, function(x) return x:cumsum(1) end)
  red("cumsum dim -1", shape, function(x) return x:cumsum(-1) end)
  red("var dim -1", shape, function(x) return x:var(-1) end)
  red("std all", shape, function(x) return x:std() end)
  red("norm all", shape, function(x) return x:norm() end)
  red("norm 3 dim 1 keepdim", shape, function(x) return x:norm(3, 1, {keepdim = true}) end)
  red("all/any", shape, function(x) return x:gt(-2):all(), x:gt(2):any(1), x:gt(0):all(-1) end,
      nil, false)
end
red("sort int64 with ties", {33, 65}, function(x) return x:sort(2), x:sort(1, {descending = true}) end,
    "int", false)
red("sort uint8", {257}, function(x) return x:sort(1) end, "u8", false)
red("sort float64 strided", {65, 33}, function(x) return x:t():sort(1) end, "f64")
red("sort with ties and NaN", {5}, function(x)
  local nan = 0 / 0
  local t = ml.tensor({{3, 1, nan, 1, 2, nan, 1}, {0, 0, -1, 5, 5, 0, -1}}, {device = x.device})
  local v, i = t:sort(2)
  local vd, id = t:sort(2, {descending = true})
  return v, i, vd, id
end, nil, false)
red("topk k 5 dim -1", {33, 65}, function(x) return x:topk(5) end)
red("topk k 3 dim 1 smallest", {3, 1025, 3}, function(x) return x:topk(3, 2, {largest = false}) end)
red("cumsum int64 and uint8", {33, 65}, function(x)
  return x:long():cumsum(2), (x:abs() * 10):byte():cumsum(1)
end, nil, false)
red("norm p inf/-inf/0/1/0.5", {33, 65}, function(x)
  return x:norm(math.huge, 2), x:norm(-math.huge), x:norm(0, 1), x:norm(1, -1), x:norm(0.5)
end)
red("var/std correction 0 keepdim", {3, 4, 5}, function(x)
  return x:var(2, {correction = 0, keepdim = true}), x:std(1, {correction = 2})
end)
add("masked_fill broadcast mask and a tensor value",
    {{{33, 65}, grad = true}, {{65}}, {{}, grad = true}}, function(x, m, v)
  return x:masked_fill(m:gt(0), -1.5), x:masked_fill(m:gt(0.5), v)
end)
add("masked_fill strided", {{{65, 33}, grad = true, view = "t"}, {{33, 1}}}, function(x, m)
  return x:masked_fill(m:lt(0), -math.huge)
end)
for _, mode in ipairs({"constant", "reflect", "replicate"}) do
  add("pad " .. mode .. " last dim", {{{3, 5, 33}, grad = true}}, function(x)
    return F.pad(x, {2, 3}, {mode = mode})
  end)
  add("pad " .. mode .. " last two dims", {{{2, 3, 17, 9}, grad = true}}, function(x)
    return F.pad(x, {1, 2, 3, 1}, {mode = mode})
  end)
  add("pad " .. mode .. " last three dims strided", {{{3, 6, 5, 4}, grad = true}}, function(x)
    return F.pad(x:transpose(2, 4), {1, 0, 2, 1, 0, 3}, {mode = mode})
  end)
end
add("pad constant negative with a value", {{{4, 9, 7}, grad = true}}, function(x)
  return F.pad(x, {-2, 3, 1, -1}, {value = 0.25})
end)
add("dropout: the same mask on both devices", {{{33, 65}, grad = true}}, function(x)
  ml.manual_seed(5)
  return F.dropout(x, {p = 0.3}), F.dropout(x:double(), 0.5)
end)
add("chunk and split views", {{{9, 65}, grad = true}}, function(x)
  local a, b, c = x:chunk(3, 2)
  local d, e = x:split({4, 5}, 1)
  return a * 2, b:exp(), c, d:sum(2), e:t()
end)
add("gelu and silu in a small MLP step", {{{16, 33}}, {{16, 5}}}, function(x, y)
  ml.manual_seed(3)
  local nn = ml.nn
  local m = nn.Sequential(nn.Linear(33, 20), nn.GELU(), nn.Linear(20, 20), nn.SiLU(),
                          nn.Dropout(0.1), nn.Linear(20, 5), nn.LeakyReLU(0.1), nn.ELU(),
                          nn.Softplus())
  m:to(x.device)
  local loss = F.mse_loss(m(x), y)
  loss:backward()
  local p = m:parameters()
  return loss:detach(), p[1].grad, p[#p].grad
end, {rtol = 1e-4, atol = 1e-5})

-- the reference MLP (784-64-32-10, softmax, MSE on one-hot targets, Adam 1e-3,
-- batch 128) trained 50 steps on both devices from the same initial weights and
-- batch order: MNIST when data/mnist is there, else synthetic data of its shape
local function mnist_or_synthetic()
  local d, T = ml.data, ml.data.transforms
  local f = io.open("data/mnist/train-images-idx3-ubyte", "rb")
  if f then
    f:close()
    return d.MNIST("data/mnist", {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})
  end
  ml.manual_seed(11)
  local x = (ml.rand({6400, 1, 28, 28}) * 255):byte():float() / 255
  local y = F.one_hot((ml.rand({6400}) * 10):long(), 10):float()
  return d.TensorDataset(x, y)
end
add("train the reference MLP 50 steps (Adam, DataLoader on the device)", {{{1}}}, function(x)
  local dev, nn = x.device, ml.nn
  ml.manual_seed(0)
  local model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                              nn.Linear(32, 10), nn.Softmax(-1))
  model:to(dev)
  local opt = optim.Adam(model:parameters(), {lr = 1e-3})
  local loader = ml.data.DataLoader(mnist_or_synthetic(), {batch_size = 128, shuffle = true, seed = 1, device = dev})
  local losses = {}
  for i, b in loader:iter() do
    if i > 50 then break end
    opt:zero_grad()
    local loss = F.mse_loss(model(b[1]), b[2])
    loss:backward()
    opt:step()
    losses[#losses + 1] = loss:detach():view({1})
  end
  local w = model:parameters()
  return ml.cat(losses), w[1]:detach(), w[#w]:detach()
end, {rtol = 1e-3, atol = 1e-5})

-- convolution, pooling, batch norm (issue 16): every kernel of the conv, pool and
-- batchnorm families, forward and backward, odd sizes, batch 1, groups, strides,
-- padding (also "same" with an even kernel), dilation, float64, strided inputs
do
  local c2 = F.conv2d
  add("conv2d [3,5,9,7] k3 bias", {{{3, 5, 9, 7}, grad = true}, {{4, 5, 3, 3}, grad = true}, {{4}, grad = true}},
      function(x, w, b) return c2(x, w, b) end, {rtol = 1e-4})
  add("conv2d stride 2 pad 1 dilation {1,2} groups 2", {{{2, 4, 11, 10}, grad = true}, {{6, 2, 3, 3}, grad = true},
      {{6}, grad = true}}, function(x, w, b)
        return c2(x, w, b, {stride = 2, padding = 1, dilation = {1, 2}, groups = 2})
      end, {rtol = 1e-4})
  add("conv2d padding same, even kernel, no bias", {{{1, 3, 6, 7}, grad = true}, {{2, 3, 2, 4}, grad = true}},
      function(x, w) return c2(x, w, nil, {padding = "same"}) end, {rtol = 1e-4})
  add("conv2d 1x1 on a strided input", {{{2, 3, 5, 4}, grad = true}, {{4, 3, 1, 1}, grad = true}},
      function(x, w) return c2(x:transpose(3, 4), w) end, {rtol = 1e-4})
  add("conv2d batch 37 (blocks) float64", {{{37, 2, 5, 5}, kind = "f64", grad = true},
      {{3, 2, 3, 3}, kind = "f64", grad = true}, {{3}, kind = "f64", grad = true}},
      function(x, w, b) return c2(x, w, b, {padding = 1}) end)
  add("conv1d stride 2 dilation 2 groups 3", {{{2, 6, 13}, grad = true}, {{3, 2, 3}, grad = true}, {{3}, grad = true}},
      function(x, w, b) return F.conv1d(x, w, b, {stride = 2, dilation = 2, groups = 3}) end, {rtol = 1e-4})
  add("conv_transpose2d stride 2 output_padding 1 groups 2", {{{2, 4, 3, 5}, grad = true}, {{4, 3, 3, 2}, grad = true},
      {{6}, grad = true}}, function(x, w, b)
        return F.conv_transpose2d(x, w, b, {stride = 2, padding = 1, output_padding = 1, groups = 2})
      end, {rtol = 1e-4})
  add("conv_transpose2d unbatched dilation 2", {{{3, 4, 4}, grad = true}, {{3, 2, 3, 3}, grad = true}},
      function(x, w) return F.conv_transpose2d(x, w, nil, {dilation = 2}) end, {rtol = 1e-4})
  add("max_pool2d 2 (the 2x2 path) with indices", {{{3, 5, 8, 10}, grad = true}},
      function(x) return F.max_pool2d(x, 2, {return_indices = true}) end)
  add("max_pool2d 3 stride 2 pad 1 dilation 2 ceil_mode", {{{2, 3, 11, 9}, grad = true}},
      function(x) return F.max_pool2d(x, 3, {stride = 2, padding = 1, dilation = {2, 1}, ceil_mode = true}) end)
  add("max_pool2d ties and NaN", {{{2, 2, 6, 6}, kind = "count", grad = true}},
      function(x) return F.max_pool2d((x / x:ne(5):float()) * 0 + x, 2, {stride = 1}) end) -- NaN where x is 5
  add("max_pool2d 2 for inference (no positions kept)", {{{3, 5, 8, 10}}},
      function(x) return F.max_pool2d(x, 2) end)
  add("max_pool2d 3 stride 2 for inference", {{{2, 3, 11, 9}}},
      function(x) return F.max_pool2d(x, 3, {stride = 2, padding = 1}) end)
  add("max_pool2d dilated windows wholly in the padding, with indices", {{{1, 4, 1, 2}, grad = true}},
      function(x)
        local y, idx = F.max_pool2d(x, {1, 2}, {stride = 1, padding = {0, 1}, dilation = {1, 3}, return_indices = true})
        return y:clamp(-1e30, 1e30), idx
      end)
  add("max_pool2d overlapping windows float64", {{{1, 2, 7, 7}, kind = "f64", grad = true}},
      function(x) return F.max_pool2d(x, 3, {stride = 1}) end)
  add("avg_pool2d ceil_mode count_include_pad false", {{{2, 3, 9, 8}, grad = true}},
      function(x) return F.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false}) end)
  add("avg_pool2d {3,2} pads counted", {{{1, 2, 7, 6}, grad = true}},
      function(x) return F.avg_pool2d(x, {3, 2}, {stride = {2, 1}, padding = {1, 1}}) end)
  add("adaptive_avg_pool2d 10x9 -> 4x5 and upsampled 3x3 -> 5x4", {{{2, 3, 10, 9}, grad = true}, {{1, 2, 3, 3}, grad = true}},
      function(x, y) return F.adaptive_avg_pool2d(x, {4, 5}), F.adaptive_avg_pool2d(y, {5, 4}) end)
  add("batch_norm training, running stats updated", {{{4, 3, 5, 7}, grad = true}, {{3}, grad = true}, {{3}, grad = true}},
      function(x, w, b)
        local rm, rv = ml.zeros({3}, {device = x.device}), ml.ones({3}, {device = x.device})
        local y = F.batch_norm(x, rm, rv, {weight = w, bias = b, training = true, momentum = 0.2})
        return y, rm, rv
      end)
  add("batch_norm eval float64 3-D", {{{5, 4, 3}, kind = "f64", grad = true}, {{4}, kind = "f64", grad = true}},
      function(x, w)
        local rm = ml.full({4}, 0.3, {dtype = "float64", device = x.device})
        local rv = ml.full({4}, 1.7, {dtype = "float64", device = x.device})
        return F.batch_norm(x, rm, rv, {weight = w, training = false})
      end)
  add("batch_norm training 2-D without affine or stats", {{{9, 5}, grad = true}},
      function(x) return F.batch_norm(x, nil, nil, {training = true}) end)
  -- nn.Sequential's BatchNorm2d + MaxPool2d as one op (src/ops/batchnorm.h)
  add("batch_norm_max_pool2d 2x2 training, odd planes, running stats", {{{3, 4, 9, 11}, grad = true},
      {{4}, grad = true}, {{4}, grad = true}},
      function(x, w, b)
        local rm, rv = ml.zeros({4}, {device = x.device}), ml.ones({4}, {device = x.device})
        local y = ml._batch_norm_max_pool2d(x, rm, rv, {weight = w, bias = b, training = true}, 2, 2)
        return y, rm, rv
      end)
  add("batch_norm_max_pool2d {3, 2} eval float64", {{{2, 3, 7, 6}, kind = "f64", grad = true},
      {{3}, kind = "f64", grad = true}},
      function(x, w)
        local rm = ml.full({3}, 0.3, {dtype = "float64", device = x.device})
        local rv = ml.full({3}, 1.7, {dtype = "float64", device = x.device})
        return ml._batch_norm_max_pool2d(x, rm, rv, {weight = w, training = false}, 3, 2)
      end)
  add("batch_norm_max_pool2d for inference (no codes kept)", {{{2, 3, 8, 10}}, {{3}}},
      function(x, w)
        local rm, rv = ml.full({3}, 0.2, {device = x.device}), ml.full({3}, 1.5, {device = x.device})
        return ml._batch_norm_max_pool2d(x, rm, rv, {weight = w, training = false}, 2, 2),
               ml._batch_norm_max_pool2d(x, rm, rv, {weight = w, training = false}, 3, 2)
      end)
  add("batch_norm_max_pool2d eval, ties and NaN, no affine", {{{2, 2, 6, 6}, kind = "count", grad = true}},
      function(x)
        local rm, rv = ml.full({2}, 0.5, {device = x.device}), ml.full({2}, 2, {device = x.device})
        return ml._batch_norm_max_pool2d((x / x:ne(5):float()) * 0 + x, rm, rv, {training = false}, 2, 2)
      end)
  add("the MNIST CNN forward and backward (BatchNorm in train mode)", {{{5, 1, 28, 28}, kind = "unit"}},
      function(x)
        local nn = ml.nn
        ml.manual_seed(0)
        local m = nn.Sequential(nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Flatten(), nn.Linear(1568, 10))
        m:to(x.device)
        local y = m(x)
        y:sum():backward()
        return y:detach(), m[1].weight.grad, m[5].weight.grad, m[2].running_var
      end, {rtol = 1e-4})
end

-- issue 16, layers: layer_norm and group_norm (the norm family: one
-- block per row, the weight gradients in blocks of rows), embedding (index_select
-- forward, the CSR backward, no atomics), scaled_dot_product_attention (batched
-- matmul, where, softmax) and a Transformer encoder layer, forward and backward
do
  local F, nn = ml.F, ml.nn
  local function ln(shape, nshape) return function(x, w, b) return F.layer_norm(x, nshape, {weight = w, bias = b}) end end
  add("layer_norm [33,65] over [65]", {{{33, 65}, grad = true}, {{65}, grad = true}, {{65}, grad = true}},
      ln({33, 65}, {65}))
  add("layer_norm [3,7,300] over [7,300] (long rows)", {{{3, 7, 300}, grad = true}, {{7, 300}, grad = true},
      {{7, 300}, grad = true}}, ln({3, 7, 300}, {7, 300}))
  add("layer_norm strided [65,33]^T over [65]", {{{65, 33}, grad = true, view = "t"}, {{65}, grad = true},
      {{65}, grad = true}}, ln({33, 65}, {65}))
  add("layer_norm [2000,24] (several row blocks), weight only", {{{2000, 24}, grad = true}, {{24}, grad = true}},
      function(x, w) return F.layer_norm(x, {24}, {weight = w, eps = 1e-3}) end)
  add("layer_norm float64 [5,9], no affine", {{{5, 9}, kind = "f64", grad = true}},
      function(x) return F.layer_norm(x, {9}) end)
  local function gn(g) return function(x, w, b) return F.group_norm(x, g, {weight = w, bias = b}) end end
  add("group_norm [5,6,7,3] in 3 groups", {{{5, 6, 7, 3}, grad = true}, {{6}, grad = true}, {{6}, grad = true}}, gn(3))
  add("group_norm [2,12] in 4 groups", {{{2, 12}, grad = true}, {{12}, grad = true}, {{12}, grad = true}}, gn(4))
  add("group_norm [300,4,17] in 2 groups (row blocks), float64", {{{300, 4, 17}, kind = "f64", grad = true},
      {{4}, kind = "f64", grad = true}, {{4}, kind = "f64", grad = true}}, gn(2))
  add("group_norm [3,8,5] in 1 group, bias only", {{{3, 8, 5}, grad = true}, {{8}, grad = true}},
      function(x, b) return F.group_norm(x, 1, {bias = b}) end)
  local function ids(shape, c) return {shape, kind = "class", classes = c} end
  add("embedding [40] ids into [13,33] (repeats)", {ids({40}, 13), {{13, 33}, grad = true}},
      function(i, w) return F.embedding(i, w) end)
  add("embedding [3,7] into [1000,5], padding_idx 3", {ids({3, 7}, 10), {{1000, 5}, grad = true}},
      function(i, w) return F.embedding(i, w, {padding_idx = 3}) end)
  add("embedding scale_grad_by_freq, float64", {ids({2, 50}, 6), {{6, 300}, kind = "f64", grad = true}},
      function(i, w) return F.embedding(i, w, {scale_grad_by_freq = true}) end)
  add("embedding only padding ids, and no ids", {{{6, 4}, grad = true}}, function(w)
    local pad = ml.full({2, 3}, 2, {dtype = "int64"}):to(w.device)
    return F.embedding(pad, w, {padding_idx = 2}) + 1, F.embedding(ml.zeros({0}, {dtype = "int64"}):to(w.device), w)
  end)
  add("embedding id out of range", {{{4}}}, raises("embedding: id 9 out of range for num_embeddings 9",
      function(x)
        local w = ml.zeros({9, 2}, {device = x.device})
        return F.embedding(ml.tensor({1, 9}, {dtype = "int64"}):to(x.device), w)
      end))
  local function sdpa(o) return function(q, k, v, m)
    local opts = {}
    for key, val in pairs(o or {}) do opts[key] = val end
    if m then opts.attn_mask = o and o.bool and m:gt(0) or m end
    opts.bool = nil
    return F.scaled_dot_product_attention(q, k, v, opts)
  end end
  add("sdpa [2,3,17,8] x [2,3,19,8] causal", {{{2, 3, 17, 8}, grad = true}, {{2, 3, 19, 8}, grad = true},
      {{2, 3, 19, 5}, grad = true}}, sdpa({is_causal = true}))
  add("sdpa float mask [17,19] with its gradient", {{{2, 17, 8}, grad = true}, {{2, 19, 8}, grad = true},
      {{2, 19, 8}, grad = true}, {{17, 19}, grad = true}}, sdpa())
  add("sdpa boolean mask [2,1,1,19], scale 0.5", {{{2, 3, 17, 8}, grad = true}, {{2, 3, 19, 8}, grad = true},
      {{2, 3, 19, 8}, grad = true}, {{2, 1, 1, 19}}}, sdpa({bool = true, scale = 0.5}))
  add("sdpa dropout_p 0.3 (the mask is drawn on the host)", {{{2, 9, 8}, grad = true}, {{2, 9, 8}, grad = true},
      {{2, 9, 8}, grad = true}}, sdpa({dropout_p = 0.3}))
  -- a whole encoder layer: its output, the input's gradient (by the harness) and
  -- some parameters' gradients from a second pass
  local function encoder(norm_first)
    return function(x)
      ml.manual_seed(5)
      local layer = nn.TransformerEncoderLayer(16, 4, {dim_feedforward = 24, dropout = 0.0, batch_first = true,
                                                       norm_first = norm_first})
      layer:to(x.device)
      local y = layer(x, {src_key_padding_mask = ml.tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 0, 0}}):gt(0):to(x.device)})
      local y2 = layer(x:detach(), {is_causal = true})
      local l2 = (y2 * y2):sum()
      l2:backward()
      return y, layer.self_attn.in_proj_weight.grad, layer.linear1.weight.grad, layer.norm1.weight.grad,
             layer.norm2.bias.grad
    end
  end
  add("TransformerEncoderLayer post-norm [2,5,16]", {{{2, 5, 16}, grad = true}}, encoder(false), {rtol = 1e-4})
  add("TransformerEncoderLayer norm_first [2,5,16]", {{{2, 5, 16}, grad = true}}, encoder(true), {rtol = 1e-4})
  add("MultiheadAttention need_weights, sequence first", {{{6, 2, 8}, grad = true}, {{4, 2, 8}, grad = true}},
      function(q, k)
        ml.manual_seed(9)
        local m = nn.MultiheadAttention(8, 2):to(q.device)
        return m(q, k, k)
      end, {rtol = 1e-4})
end

return M
