-- Issue 16's activations, modules, F.dropout, F.pad and tensor maths from the user's
-- side: constructor forms and reprs, ml.summary rows, dropout's semantics, the
-- errors on bad input (each naming the function, the shapes or values and what was
-- expected), and results that do not depend on the thread count. Values against
-- PyTorch: tensor_maths_fixture_spec.lua.
local ml = require "moonlight"
local nn, F, T = ml.nn, ml.F, ml.testing
local err = require("test_util").err

local function same(a, b) return a:eq(b):all():item() == 1 end

describe("activation modules", function()
  it("print as PyTorch's", function()
    local want = {
      {nn.GELU(), "GELU(approximate='none')"},
      {nn.GELU("tanh"), "GELU(approximate='tanh')"},
      {nn.GELU({approximate = "tanh"}), "GELU(approximate='tanh')"},
      {nn.SiLU(), "SiLU()"},
      {nn.SiLU(true), "SiLU(inplace=True)"},
      {nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"},
      {nn.LeakyReLU(0.2, true), "LeakyReLU(negative_slope=0.2, inplace=True)"},
      {nn.LeakyReLU({negative_slope = 0.1}), "LeakyReLU(negative_slope=0.1)"},
      {nn.ELU(), "ELU(alpha=1.0)"},
      {nn.ELU(0.5), "ELU(alpha=0.5)"},
      {nn.Softplus(), "Softplus(beta=1, threshold=20)"},
      {nn.Softplus(2, 10), "Softplus(beta=2, threshold=10)"},
      {nn.Softplus({beta = 0.5}), "Softplus(beta=0.5, threshold=20)"},
      {nn.Identity(54, {unused = true}), "Identity()"},
    }
    for _, w in ipairs(want) do assert.are.equal(w[2], tostring(w[1])) end
  end)

  it("compute what ml.F computes, have no parameters, and keep their options", function()
    ml.manual_seed(1)
    local x = ml.randn({4, 6}) * 3
    T.assert_close(nn.GELU()(x), F.gelu(x))
    T.assert_close(nn.GELU("tanh")(x), F.gelu(x, {approximate = "tanh"}))
    T.assert_close(nn.SiLU()(x), x * x:sigmoid())
    T.assert_close(nn.LeakyReLU(0.2)(x), ml.where(x:gt(0), x, x * 0.2))
    T.assert_close(nn.ELU(0.5)(x), ml.where(x:gt(0), x, (x:exp() - 1) * 0.5))
    T.assert_close(nn.Softplus(2, 3)(x), ml.where((x * 2):gt(3), x, ((x * 2):exp() + 1):log() / 2))
    assert.are.equal(x, nn.Identity()(x))
    for _, m in ipairs({nn.GELU(), nn.SiLU(), nn.LeakyReLU(), nn.ELU(), nn.Softplus(), nn.Identity()}) do
      assert.are.same({}, m:parameters())
      m:eval()
      assert.is_true(same(m(x), (m:train())(x)))
    end
    local m = nn.LeakyReLU(0.3)
    assert.are.equal(0.3, m.negative_slope)
    assert.are.equal("tanh", nn.GELU("tanh").approximate)
    assert.are.same({2, 10}, {nn.Softplus(2, 10).beta, nn.Softplus(2, 10).threshold})
  end)

  it("refuse bad arguments, naming the module", function()
    assert.matches("nn.GELU: approximate must be 'none' or 'tanh', got 'fast'", err(nn.GELU, "fast"), 1, true)
    assert.matches("nn.LeakyReLU: option 'negative_slope' must be a number, got string",
                   err(nn.LeakyReLU, "0.2"), 1, true)
    assert.matches("nn.Softplus: unknown option 'alpha'", err(nn.Softplus, {alpha = 1}), 1, true)
    assert.matches("nn.GELU: takes at most 1 argument, got string after string",
                   err(nn.GELU, "tanh", "none"), 1, true)
    assert.matches("GELU(approximate='none') got input string", err(nn.GELU(), "x"), 1, true)
  end)

  it("give ml.summary rows as torchinfo 1.7 does", function()
    local m = nn.Sequential(nn.Linear(10, 20), nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.2), nn.ELU(),
                            nn.Softplus(), nn.Identity(), nn.Dropout(0.1), nn.Linear(20, 5))
    local want = [[
==========================================================================================
Layer (type:depth-idx)                   Output Shape              Param #
==========================================================================================
Sequential                               [8, 5]                    --
├─Linear: 1-1                            [8, 20]                   220
├─GELU: 1-2                              [8, 20]                   --
├─SiLU: 1-3                              [8, 20]                   --
├─LeakyReLU: 1-4                         [8, 20]                   --
├─ELU: 1-5                               [8, 20]                   --
├─Softplus: 1-6                          [8, 20]                   --
├─Identity: 1-7                          [8, 20]                   --
├─Dropout: 1-8                           [8, 20]                   --
├─Linear: 1-9                            [8, 5]                    105
==========================================================================================
Total params: 325
Trainable params: 325
Non-trainable params: 0
Total mult-adds (M): 0.00
==========================================================================================
Input size (MB): 0.00
Forward/backward pass size (MB): 0.00
Params size (MB): 0.00
Estimated Total Size (MB): 0.00
==========================================================================================]]
    local s = ml.summary(m, {input_size = {8, 10}})
    assert.are.equal(want, tostring(s))
    assert.are.equal(8 * 220 + 8 * 105, s.total_mult_adds)
  end)
end)

describe("F.dropout", function()
  it("returns its input untouched without training or with p = 0", function()
    local x = ml.randn({3, 4})
    assert.are.equal(x, F.dropout(x, {training = false}))
    assert.are.equal(x, F.dropout(x, {p = 0}))
    assert.are.equal(x, F.dropout(x, 0, true))
  end)

  it("zeroes about p of the elements and scales the rest by 1 / (1 - p)", function()
    ml.manual_seed(7)
    local x = ml.ones({200, 500})
    local y = F.dropout(x, {p = 0.3})
    local zeros = y:eq(0):float():mean():item()
    assert.is_true(math.abs(zeros - 0.3) < 0.01, "fraction dropped " .. zeros)
    local kept = ml.where(y:ne(0), y, ml.full({}, 1 / 0.7))
    T.assert_close(kept, ml.full({200, 500}, 1 / 0.7))
    assert.is_true(same(F.dropout(x, {p = 1}), ml.zeros({200, 500})))
  end)

  it("draws its mask from ml's generator, as nn.Dropout (the same elements)", function()
    local x = ml.randn({6, 7}, {requires_grad = true})
    ml.manual_seed(3)
    local a = F.dropout(x, 0.5)
    ml.manual_seed(3)
    local b = nn.Dropout(0.5)(x)
    assert.is_true(same(a, b))
    a:sum():backward()
    T.assert_close(x.grad, a:detach():ne(0):float() * 2)
  end)

  it("refuses a p outside [0, 1] and integer tensors, naming itself", function()
    local x = ml.randn({2})
    assert.matches("F.dropout: dropout probability has to be between 0 and 1, but got 1.5",
                   err(F.dropout, x, {p = 1.5}), 1, true)
    assert.matches("F.dropout: expected a floating point tensor, got int64",
                   err(F.dropout, x:long()), 1, true)
  end)
end)

describe("bad input", function()
  local x = ml.randn({3, 4})
  local cases = {
    {"topk: k = 5 is out of range for dim 2 of size 4 (shape [3, 4]; expected 0 <= k <= 4)",
     function() return x:topk(5) end},
    {"topk: k = -1 is out of range", function() return x:topk(-1, 1) end},
    {"pad: 6 padding numbers pad 3 dims, the input of shape [3, 4] has 2",
     function() return F.pad(x, {1, 1, 1, 1, 1, 1}) end},
    {"pad: reflect padding (4, 0) of dim 3 must be smaller than its size 4 (shape [1, 3, 4])",
     function() return F.pad(x:view({1, 3, 4}), {4, 0}, "reflect") end},
    {"pad: reflect padding of the last 2 dims needs a 3-D or 4-D input (batch and channels first), got shape [3, 4]",
     function() return F.pad(x, {1, 1, 1, 1}, "reflect") end},
    {"pad: the padding must hold pairs (before, after) per dim, got 3 numbers",
     function() return F.pad(x, {1, 1, 1}) end},
    {"pad: replicate padding must not be negative, got (-1, 0) for dim 3",
     function() return F.pad(x:view({1, 3, 4}), {-1, 0}, "replicate") end},
    {"pad: padding (-3, -2) of dim 2 of size 4 (shape [3, 4]) leaves a negative size",
     function() return F.pad(x, {-3, -2}) end},
    {"F.pad: padding mode 'reflect' takes no value (got 2.0)",
     function() return F.pad(x:view({1, 3, 4}), {1, 1}, "reflect", 2.0) end},
    {"pad: mode must be 'constant', 'reflect' or 'replicate', got 'circular'",
     function() return F.pad(x, {1, 1}, "circular") end},
    {"masked_fill: mask of shape [3, 1, 4] does not broadcast to the input's shape [3, 4]",
     function() return x:masked_fill(ml.ones({3, 1, 4}, {dtype = "uint8"}), 0) end},
    {"masked_fill: mask of shape [3] does not broadcast to the input's shape [3, 4]",
     function() return x:masked_fill(ml.ones({3}, {dtype = "uint8"}), 0) end},
    {"masked_fill: mask must be a uint8 mask (as comparisons give), got float32",
     function() return x:masked_fill(x, 0) end},
    {"masked_fill: value must be a number or a 0-dim tensor, got a tensor of shape [2]",
     function() return x:masked_fill(x:gt(0), ml.ones({2})) end},
    {"var: needs a floating point tensor, got int64", function() return x:long():var() end},
    {"std: unknown option 'ddof'", function() return x:std(1, {ddof = 1}) end},
    {"norm: p must be a number or \"fro\", got \"nuc\"", function() return x:norm("nuc") end},
    {"norm: cannot compute the inf norm over an empty dim", function() return ml.zeros({2, 0}):norm(math.huge, 2) end},
    {"split: sizes add up to 2, dim 1 of the tensor of shape [3, 4] has size 3 (they must be equal)",
     function() return x:split({1, 1}) end},
    {"chunk: the number of chunks must be a positive integer, got 0", function() return x:chunk(0) end},
    {"chunk: a 0-dim tensor has no dim to cut", function() return ml.tensor(1):chunk(2) end},
    {"sort: dim 3 out of range for a 2-dim tensor", function() return x:sort(3) end},
    {"cumsum: dim is required", function() return x:cumsum() end},
    {"leaky_relu: negative_slope must be a number, got string", function() return x:leaky_relu("a") end},
    {"F.gelu: approximate must be 'none' or 'tanh', got 'erf'", function() return F.gelu(x, {approximate = "erf"}) end},
    {"F.leaky_relu: unknown option 'slope'", function() return F.leaky_relu(x, {slope = 1}) end},
    {"permute: dim 1 appears twice", function() return x:permute({1, 1}) end},
    {"unsqueeze: dim 4 out of range for a 2-dim tensor (a new dim goes at 1..3 or -3..-1)",
     function() return x:unsqueeze(4) end},
    {"transpose: dim -3 out of range", function() return x:transpose(1, -3) end},
  }
  for _, c in ipairs(cases) do
    it(c[1], function() assert.matches(c[1], err(c[2]), 1, true) end)
  end

  it("names the user's line for an error raised in C under ml.F", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local e = err(function() local y = F.pad(x, {9, 9, 9, 9, 9, 9}); return y end)
    assert.matches("tensor_maths_spec.lua:" .. line .. ": pad:", e, 1, true)
  end)
end)

describe("views along a dim", function()
  it("chunk and split share the input's storage and send gradients back", function()
    local x = ml.randn({5, 7}, {requires_grad = true})
    local a, b, c = x:chunk(3, 2)
    assert.are.same({{5, 3}, {5, 3}, {5, 1}}, {a:shape(), b:shape(), c:shape()})
    assert.is_nil(select(4, x:chunk(3, 2)))
    local parts = {x:split(2)}
    assert.are.equal(3, #parts)
    assert.are.same({1, 7}, parts[3]:shape())
    local d = x:detach()
    local p = d:split(3, 2)
    p:fill_(9)
    assert.are.equal(9, d[1][1]:item()) -- a view, as torch's
    ;(a:sum() + c:sum() * 2):backward()
    local want = ml.zeros({5, 7})
    want:narrow(2, 1, 3):fill_(1)
    want:narrow(2, 7, 1):fill_(2)
    T.assert_close(x.grad, want)
  end)
end)

describe("results that do not depend on the thread count", function()
  it("sort, topk, cumsum, var, norm, all, any on 1 thread and on 2", function()
    ml.manual_seed(21)
    local a = ml.randn({300, 257})
    local function compute()
      local v, i = a:sort(1)
      local tv, ti = a:topk(7, 2)
      return {v, i, tv, ti, a:cumsum(1), a:cumsum(2), a:var(1), a:std(), a:norm(3, 2),
              a:gt(0):any(1), a:gt(-4):all(2), a:argsort(2, {descending = true})}
    end
    local n0 = ml.get_num_threads()
    ml.set_num_threads(1)
    local one = compute()
    ml.set_num_threads(2)
    local two = compute()
    ml.set_num_threads(n0)
    for i = 1, #one do assert.is_true(same(one[i], two[i]), "result " .. i) end
  end)
end)

describe("the sort family on a 0-dim tensor and empty dims", function()
  it("treats a 0-dim tensor as a line of one, as torch", function()
    local s = ml.tensor(2.5, {requires_grad = true})
    local v, i = s:sort()
    assert.are.same({}, v:shape())
    assert.are.equal(0, i:item())
    local tv = s:topk(1)
    tv:backward()
    assert.are.equal(1, s.grad:item())
    assert.are.equal(2.5, s:cumsum(1):item())
  end)

  it("sorts and sums empty dims", function()
    local e = ml.zeros({3, 0})
    local v, i = e:sort(2)
    assert.are.same({3, 0}, v:shape())
    assert.are.same({3, 0}, i:shape())
    assert.are.same({3, 0}, e:cumsum(2):shape())
    assert.are.same({3, 0}, (e:topk(0)):shape())
  end)
end)
