local ml = require "moonlight"
local nn = ml.nn

local reference = require "reference_model"
local err = require("test_util").err
local Model, myModel = reference.Model, reference.myModel

describe("nn.Module registration", function()
  it("registers parameters and children in assignment order, nested", function()
    local m = myModel()
    local names = {}
    for name, p in m:named_parameters() do
      names[#names + 1] = name
      assert.is_true(p.requires_grad)
    end
    assert.are.same({"layers.linear1.weight", "layers.linear1.bias", "layers.linear2.weight",
                     "layers.linear2.bias", "layers.linear3.weight", "layers.linear3.bias"}, names)
    assert.are.equal(6, #m:parameters())
    assert.are.equal(m.layers.linear1.weight, m:parameters()[1])
    local kids = {}
    for name, c in m.layers:named_children() do kids[#kids + 1] = name .. ":" .. c:_get_name() end
    assert.are.same({"flatten:Flatten", "linear1:Linear", "relu1:ReLU", "linear2:Linear",
                     "relu2:ReLU", "linear3:Linear", "softmax:Softmax"}, kids)
    assert.are.equal(1, #m:children())
    assert.are.equal(9, #m:modules())
    local mods = {}
    for name in m:named_modules() do mods[#mods + 1] = name end
    assert.are.equal("", mods[1])
    assert.are.equal("layers", mods[2])
    assert.are.equal("layers.linear1", mods[4])
  end)

  it("keeps a module's own parameters before its children's, and plain fields apart", function()
    local M = nn.Module:extend("M")
    function M:init()
      self.child = nn.Linear(2, 2)
      self.scale = nn.Parameter(ml.ones({2}))
      self.count = 3
      self.cache = ml.ones({2}) -- a plain tensor is an attribute, not a parameter
    end
    local m = M()
    local names = {}
    for n in m:named_parameters() do names[#names + 1] = n end
    assert.are.same({"scale", "child.weight", "child.bias"}, names)
    assert.are.equal(3, m.count)
    assert.is_nil(m:state_dict().cache)
  end)

  it("registers buffers, frozen parameters, and replaces or removes entries", function()
    local M = nn.Module:extend("M")
    function M:init()
      self.w = nn.Parameter(ml.ones({2}), false)
      self:register_buffer("running", ml.zeros({3}))
      self:register_buffer("tmp", ml.zeros({1}), {persistent = false})
    end
    local m = M()
    assert.is_false(m.w.requires_grad)
    assert.are.equal(1, #m:parameters())
    assert.are.equal(2, #m:buffers())
    local sd = m:state_dict()
    assert.is_not_nil(sd.running)
    assert.is_nil(sd.tmp)
    m.w = nil
    assert.are.equal(0, #m:parameters())
    assert.matches("cannot assign number as parameter",
                   err(function() local M2 = M(); M2.w = 5 end), 1, true)
    assert.matches("register_buffer: unknown option 'persist'",
                   err(function() m:register_buffer("x", ml.zeros({1}), {persist = true}) end), 1, true)
  end)

  it("calls forward through m(x) and runs forward hooks", function()
    local m = myModel()
    local seen = {}
    local h = m.layers.linear2:register_forward_hook(function(mod, args, out)
      seen[#seen + 1] = table.concat(args[1]:shape(), "x") .. "->" .. table.concat(out:shape(), "x")
    end)
    local y = m(ml.zeros({8, 1, 28, 28}))
    assert.are.same({8, 10}, y:shape())
    assert.are.same({"8x64->8x32"}, seen)
    h.remove()
    m(ml.zeros({2, 784}))
    assert.are.equal(1, #seen)
  end)

  it("train() and eval() set training everywhere", function()
    local m = myModel()
    assert.is_true(m.training and m.layers.linear1.training)
    m:eval()
    assert.is_false(m.training or m.layers.linear1.training)
    m:train()
    assert.is_true(m.layers.softmax.training)
  end)

  it("to() moves parameters in place, keeping them leaves that require grad", function()
    local m = nn.Linear(3, 2)
    local w = m.weight
    local opt = ml.optim.SGD(m:parameters(), {lr = 0.1})
    m:to("float64")
    assert.are.equal(w, m.weight)
    assert.are.equal("float64", w.dtype)
    assert.is_true(w.requires_grad and w.is_leaf)
    local loss = m(ml.ones({1, 3}, {dtype = "float64"})):sum()
    loss:backward()
    local before = w:totable()
    opt:step()
    assert.are_not.same(before, w:totable())
    assert.are.equal(m, m:to("cpu"))
  end)

  it("zero_grad clears gradients", function()
    local m = nn.Linear(3, 2)
    m(ml.ones({1, 3})):sum():backward()
    assert.is_not_nil(m.weight.grad)
    m:zero_grad({set_to_none = false})
    assert.are.same({0, 0}, m.bias.grad:totable())
    m:zero_grad()
    assert.is_nil(m.weight.grad)
  end)
end)

describe("state dicts", function()
  it("round-trips with PyTorch's keys", function()
    ml.manual_seed(1)
    local a = myModel()
    ml.manual_seed(2)
    local b = myModel()
    local sd = a:state_dict()
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    assert.are.same({"layers.linear1.weight", "layers.linear1.bias", "layers.linear2.weight",
                     "layers.linear2.bias", "layers.linear3.weight", "layers.linear3.bias"}, keys)
    assert.are_not.same(sd["layers.linear1.bias"]:totable(), b.layers.linear1.bias:totable())
    local r = b:load_state_dict(sd)
    assert.are.same({}, r.missing_keys)
    assert.are.same(a.layers.linear3.weight:totable(), b.layers.linear3.weight:totable())
    local x = ml.rand({4, 784})
    assert.are.same(a(x):totable(), b(x):totable())
    -- b's tensors are its own: changing a does not change b
    ml.no_grad(function() a.layers.linear1.bias:fill_(7) end)
    assert.are_not.equal(7, b.layers.linear1.bias:totable()[1])
  end)

  it("names a missing, an unexpected and a wrongly shaped key", function()
    local m = myModel()
    local sd = m:state_dict()
    sd["layers.linear2.bias"] = nil
    sd["layers.extra"] = ml.zeros({1})
    local e = err(function() m:load_state_dict(sd) end)
    assert.matches('Missing key(s) in state_dict: "layers.linear2.bias"', e, 1, true)
    assert.matches('Unexpected key(s) in state_dict: "layers.extra"', e, 1, true)
    local r = m:load_state_dict(sd, {strict = false})
    assert.are.same({"layers.linear2.bias"}, r.missing_keys)
    assert.are.same({"layers.extra"}, r.unexpected_keys)
    local sd2 = m:state_dict()
    sd2["layers.linear1.weight"] = ml.zeros({64, 100})
    assert.matches("size mismatch for layers.linear1.weight: copying a param with shape [64, 100] "
                   .. "from checkpoint, the shape in current model is [64, 784]",
                   err(function() m:load_state_dict(sd2, {strict = false}) end), 1, true)
    assert.matches("unknown option 'strcit'", err(function() m:load_state_dict(sd2, {strcit = false}) end), 1, true)
  end)

  it("Sequential names children 0, 1, ... as PyTorch", function()
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    local keys = {}
    for k in pairs(s:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"}, keys)
    assert.are.equal(3, #s)
    assert.are.equal("ReLU", s[2]:_get_name())
    assert.are.same({5, 1}, s(ml.ones({5, 2})):shape())
    assert.matches("nn.Sequential: argument 2 is a number", err(nn.Sequential, nn.ReLU(), 3), 1, true)
  end)
end)

describe("printing", function()
  it("prints the tree as PyTorch's repr", function()
    local expected = table.concat({
      "myModel(",
      "  (layers): Model(",
      "    (flatten): Flatten(start_dim=1, end_dim=-1)",
      "    (linear1): Linear(in_features=784, out_features=64, bias=True)",
      "    (relu1): ReLU()",
      "    (linear2): Linear(in_features=64, out_features=32, bias=True)",
      "    (relu2): ReLU()",
      "    (linear3): Linear(in_features=32, out_features=10, bias=True)",
      "    (softmax): Softmax(dim=1)",
      "  )",
      ")"}, "\n")
    assert.are.equal(expected, tostring(myModel()))
    assert.are.equal("Dropout(p=0.2, inplace=False)", tostring(nn.Dropout(0.2)))
    assert.are.equal("Linear(in_features=3, out_features=1, bias=False)",
                     tostring(nn.Linear(3, 1, {bias = false})))
    assert.are.equal("Sequential(\n  (0): Tanh()\n  (1): LogSoftmax(dim=-1)\n)",
                     tostring(nn.Sequential(nn.Tanh(), nn.LogSoftmax(-1))))
    assert.are.equal("MSELoss()", tostring(nn.MSELoss()))
  end)
end)

describe("layers", function()
  it("initialises Linear as PyTorch: U(-1/sqrt(in), 1/sqrt(in))", function()
    ml.manual_seed(0)
    local l = nn.Linear(400, 300)
    local bound = 1 / math.sqrt(400)
    local w = l.weight
    assert.are.same({300, 400}, w:shape())
    assert.is_true(w:max():item() <= bound and w:min():item() >= -bound)
    assert.is_true(w:max():item() > 0.99 * bound and w:min():item() < -0.99 * bound)
    assert.is_true(math.abs(w:mean():item()) < 0.002)
    local std = math.sqrt((w * w):mean():item())
    assert.is_true(math.abs(std - bound / math.sqrt(3)) < 0.001)
    local b = l.bias
    assert.is_true(b:max():item() <= bound and b:min():item() >= -bound)
    assert.is_true(b:max():item() - b:min():item() > bound)
    -- seeded: the same numbers again
    ml.manual_seed(0)
    assert.are.same(w:totable(), nn.Linear(400, 300).weight:totable())
  end)

  it("computes Linear, activations, Softmax, Flatten, Identity", function()
    local l = nn.Linear(2, 1)
    ml.no_grad(function() l.weight:copy_(ml.tensor({{2, 3}})); l.bias:fill_(1) end)
    assert.are.same({{6}}, l(ml.tensor({{1, 1}})):totable())
    assert.are.same({0, 2}, nn.ReLU()(ml.tensor({-1, 2})):totable())
    local s = nn.Softmax(2)(ml.tensor({{0, 0}, {1, 1}}))
    assert.are.same({{0.5, 0.5}, {0.5, 0.5}}, s:totable())
    assert.are.same({2, 12}, nn.Flatten()(ml.zeros({2, 3, 4})):shape())
    assert.are.same({2, 3, 4}, nn.Flatten(2, 2)(ml.zeros({2, 3, 4})):shape())
    assert.are.same({6, 4}, nn.Flatten(1, 2)(ml.zeros({2, 3, 4})):shape())
    local x = ml.ones({2})
    assert.are.equal(x, nn.Identity()(x))
    assert.is_true(math.abs(nn.Sigmoid()(ml.zeros({1})):item() - 0.5) < 1e-7)
    assert.are.equal(0, nn.Tanh()(ml.zeros({1})):item())
  end)

  it("Dropout: inverted dropout in training, identity in eval", function()
    ml.manual_seed(3)
    local d = nn.Dropout(0.25)
    local x = ml.ones({100, 100}, {requires_grad = true})
    local y = d(x)
    local zeros = y:eq(0):float():mean():item()
    assert.is_true(math.abs(zeros - 0.25) < 0.02)
    local kept = y:sum():item() / ((1 - zeros) * 10000)
    assert.is_true(math.abs(kept - 1 / 0.75) < 1e-4)
    y:sum():backward()
    assert.are.same(y:totable(), x.grad:totable())
    d:eval()
    assert.are.equal(x, d(x))
    assert.are.equal(x, nn.Dropout(0)(x))
    assert.matches("nn.Dropout: p must be a probability", err(nn.Dropout, 1.5), 1, true)
  end)
end)

describe("loss modules", function()
  local names = {
    MSELoss = "mse_loss", L1Loss = "l1_loss", SmoothL1Loss = "smooth_l1_loss",
    CrossEntropyLoss = "cross_entropy", NLLLoss = "nll_loss", BCELoss = "binary_cross_entropy",
    BCEWithLogitsLoss = "binary_cross_entropy_with_logits", KLDivLoss = "kl_div",
    PoissonNLLLoss = "poisson_nll_loss", GaussianNLLLoss = "gaussian_nll_loss",
  }
  for cls, fname in pairs(names) do
    it(cls .. " calls F." .. fname .. " with its options", function()
      local saved = ml.F[fname]
      local got
      ml.F[fname] = function(...) got = table.pack(...) return ml.zeros({}) end
      local ok, e = pcall(function()
        local x, t, v = ml.ones({2}), ml.zeros({2}), ml.ones({2})
        local m = nn[cls]({reduction = "sum"})
        if cls == "GaussianNLLLoss" then
          m(x, t, v)
          assert.are.equal(v, got[3])
          assert.are.equal("sum", got[4].reduction)
        else
          m(x, t)
          assert.are.equal(x, got[1])
          assert.are.equal(t, got[2])
          assert.are.equal("sum", got[3].reduction)
        end
      end)
      ml.F[fname] = saved
      assert(ok, e)
    end)
  end

  it("keeps tensor options as buffers and passes them on", function()
    local saved = ml.F.cross_entropy
    local got
    ml.F.cross_entropy = function(_, _, o) got = o return ml.zeros({}) end
    local w = ml.tensor({1, 2, 3})
    local m = nn.CrossEntropyLoss({weight = w, label_smoothing = 0.1})
    local ok, e = pcall(function() m(ml.zeros({2, 3}), ml.zeros({2}, {dtype = "int64"})) end)
    ml.F.cross_entropy = saved
    assert(ok, e)
    assert.are.equal(w, got.weight)
    assert.are.equal(0.1, got.label_smoothing)
    assert.is_not_nil(m:state_dict().weight)
  end)

  it("says when the F function is missing", function()
    local saved = ml.F.kl_div
    ml.F.kl_div = nil
    local e = err(function() nn.KLDivLoss()(ml.zeros({1}), ml.zeros({1})) end)
    ml.F.kl_div = saved
    assert.matches("nn.KLDivLoss: ml.F.kl_div is not available", e, 1, true)
  end)
end)

describe("bad input", function()
  it("names the layer and the shapes", function()
    local m = myModel()
    local e = err(function() m.layers.linear1(ml.zeros({8, 1, 28, 28})) end)
    assert.matches("Linear(784 -> 64) got input [8, 1, 28, 28]", e, 1, true)
    e = err(function() nn.Linear(3, 2)("x") end)
    assert.matches("Linear(3 -> 2) got input string", e, 1, true)
    e = err(function() nn.Softmax(3)(ml.zeros({2, 2})) end)
    assert.matches("Softmax(dim=2) got input [2, 2]", e, 1, true)
  end)

  it("rejects bad constructor arguments and options", function()
    assert.matches("nn.Softmax: dim is required", err(nn.Softmax), 1, true)
    assert.matches("nn.Linear: unknown option 'bais'", err(nn.Linear, 2, 3, {bais = false}), 1, true)
    assert.matches("nn.Linear: in_features must be a non-negative integer", err(nn.Linear, 2.5, 3), 1, true)
    assert.matches("forward is not implemented", err(function() nn.Module:extend("Empty")()(1) end), 1, true)
    assert.matches("nn.Parameter: expected a tensor", err(nn.Parameter, 3), 1, true)
  end)
end)
