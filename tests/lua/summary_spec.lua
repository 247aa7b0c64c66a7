local ml = require "moonlight"
local nn = ml.nn

local reference = require "reference_model"
local Model, myModel = reference.Model, reference.myModel

-- torchinfo 1.7's output for the reference model (the tutorial's summary)
local REFERENCE = [[
==========================================================================================
Layer (type:depth-idx)                   Output Shape              Param #
==========================================================================================
myModel                                  [8, 10]                   --
├─Model: 1-1                             [8, 10]                   --
│    └─Flatten: 2-1                      [8, 784]                  --
│    └─Linear: 2-2                       [8, 64]                   50,240
│    └─ReLU: 2-3                         [8, 64]                   --
│    └─Linear: 2-4                       [8, 32]                   2,080
│    └─ReLU: 2-5                         [8, 32]                   --
│    └─Linear: 2-6                       [8, 10]                   330
│    └─Softmax: 2-7                      [8, 10]                   --
==========================================================================================
Total params: 52,650
Trainable params: 52,650
Non-trainable params: 0
Total mult-adds (M): 0.42
==========================================================================================
Input size (MB): 0.03
Forward/backward pass size (MB): 0.01
Params size (MB): 0.21
Estimated Total Size (MB): 0.24
==========================================================================================]]

describe("ml.summary", function()
  it("prints torchinfo's table for the reference model", function()
    local m = myModel()
    local s = ml.summary(m, {input_size = {8, 1, 28, 28}})
    assert.are.equal(REFERENCE, tostring(s))
    assert.are.equal(52650, s.total_params)
    assert.are.equal(52650, s.trainable_params)
    assert.are.equal(0, s.non_trainable_params)
    assert.are.equal(421200, s.total_mult_adds)
    assert.are.equal(25088, s.total_input_bytes)
    assert.are.equal(6784, s.total_output_bytes)
    assert.are.equal(210600, s.total_param_bytes)
    assert.is_true(math.abs(s.estimated_total_size_mb - 0.242472) < 1e-12)
  end)

  it("leaves the model as it was: mode, hooks, generator", function()
    local m = myModel()
    ml.manual_seed(5)
    local before = ml.get_rng_state()
    ml.summary(m, {input_size = {2, 784}})
    assert.are.equal(before, ml.get_rng_state())
    assert.is_true(m.training and m.layers.linear1.training)
    assert.is_nil(rawget(m.layers.linear1, "_forward_hooks"))
    m:eval()
    ml.summary(m, {input_size = {2, 784}})
    assert.is_false(m.training)
  end)

  it("counts frozen parameters, a container's own parameters, and no buffers", function()
    local Net = nn.Module:extend("Net")
    function Net:init()
      self.scale = nn.Parameter(ml.ones({3}))
      self.features = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
      self.head = nn.Linear(3, 2)
      self.head.weight.requires_grad = false
      self.frozen = nn.Linear(2, 2)
      self.frozen:requires_grad_(false)
      self:register_buffer("running", ml.zeros({5}))
    end
    function Net:forward(x) return self.frozen(self.head(self.features(x) * self.scale)) end
    local s = ml.summary(Net(), {input_size = {2, 4}})
    local expected = [[
==========================================================================================
Layer (type:depth-idx)                   Output Shape              Param #
==========================================================================================
Net                                      [2, 2]                    3
├─Sequential: 1-1                        [2, 3]                    --
│    └─Linear: 2-1                       [2, 3]                    15
│    └─Tanh: 2-2                         [2, 3]                    --
├─Linear: 1-2                            [2, 2]                    8
├─Linear: 1-3                            [2, 2]                    (6)
==========================================================================================
Total params: 32
Trainable params: 20
Non-trainable params: 12
Total mult-adds (M): 0.00
==========================================================================================
Input size (MB): 0.00
Forward/backward pass size (MB): 0.00
Params size (MB): 0.00
Estimated Total Size (MB): 0.00
==========================================================================================]]
    assert.are.equal(expected, tostring(s))
    assert.are.equal(58, s.total_mult_adds)
    assert.are.equal(112, s.total_output_bytes)
    assert.are.equal(116, s.total_param_bytes)
  end)

  it("honours depth and col_names, and marks a module used twice as recursive", function()
    local Twice = nn.Module:extend("Twice")
    function Twice:init() self.l = nn.Linear(3, 3) end
    function Twice:forward(x) return self.l(self.l(x)) end
    local s = tostring(ml.summary(Twice(), {input_size = {1, 3},
                                            col_names = {"output_size", "num_params", "trainable"}}))
    assert.matches("├─Linear: 1-1                            [1, 3]                    12                        True", s, 1, true)
    assert.matches("├─Linear: 1-2                            [1, 3]                    (recursive)               True", s, 1, true)
    assert.matches("Total params: 12\n", s, 1, true)
    local d = tostring(ml.summary(myModel(), {input_size = {1, 784}, depth = 1}))
    assert.matches("├─Model: 1-1                             [1, 10]                   52,650", d, 1, true)
    assert.is_nil(d:find("Linear", 1, true))
  end)

  it("reports bad arguments and a failing forward", function()
    local m = myModel()
    assert.has_error(function() ml.summary(m, {input_size = {8, 1, 28, 28}, colour = true}) end)
    assert.has_error(function() ml.summary("x") end)
    local ok, e = pcall(ml.summary, m, {input_size = {8, 100}})
    assert.is_false(ok)
    assert.matches("summary: the forward pass failed", tostring(e), 1, true)
    assert.matches("Linear(784 -> 64) got input [8, 100]", tostring(e), 1, true)
  end)
end)
