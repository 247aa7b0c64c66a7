-- Module level (issue 16): a PyTorch CNN with BatchNorm, saved as safetensors by
-- scripts/fixtures/gen_conv.py, loads into the same Moonlight model with
-- strict = true and gives PyTorch's outputs in eval and in train mode, the same
-- parameter gradients, and the same running statistics afterwards.
local ml = require "moonlight"
local nn, T = ml.nn, ml.testing

local ref = dofile("tests/fixtures/cnn_bn.lua")

local Net = nn.Module:extend("Net")
function Net:init()
  self.body = nn.Sequential(
    nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(4, 6, 3, {stride = 1}), nn.BatchNorm2d(6), nn.ReLU(),
    nn.AvgPool2d(2, {stride = 1}), nn.AdaptiveAvgPool2d({2, 2}), nn.Flatten(),
    nn.Linear(24, 5), nn.BatchNorm1d(5), nn.Conv1d(1, 2, 3, {padding = 1}))
end
function Net:forward(x)
  local y = x
  for i = 1, 12 do y = self.body[i](y) end
  return self.body[13](y:unsqueeze(2)):flatten(2) -- Conv1d over the 5 features
end

local function tensor(e, dtype)
  return ml.tensor(e.data, {dtype = e.dtype == "int64" and "int64" or dtype}):view(e.shape)
end

local function load(dtype)
  local sd = ml.load("tests/fixtures/cnn_bn.safetensors")
  local x = sd.input
  sd.input = nil
  local m = Net()
  local result = m:load_state_dict(sd, {strict = true})
  assert.are.same({}, result.missing_keys)
  assert.are.same({}, result.unexpected_keys)
  if dtype == "float64" then
    m:double()
    x = x:double()
  end
  return m, x
end

local tol = {float32 = {rtol = 1e-4, atol = 1e-5}, float64 = {rtol = 1e-9, atol = 1e-10}}

describe("a PyTorch CNN with BatchNorm, loaded from safetensors", function()
  it("has PyTorch's state dict keys, in PyTorch's order", function()
    local keys = {}
    for k in pairs(Net():state_dict()) do keys[#keys + 1] = k end
    assert.are.same(ref.keys, keys)
  end)

  for _, dtype in ipairs({"float32", "float64"}) do
    it("gives PyTorch's outputs in eval mode (" .. dtype .. ")", function()
      local m, x = load(dtype)
      m:eval()
      local y = ml.no_grad(function() return m(x) end)
      T.assert_close(y, tensor(ref.out_eval, dtype), tol[dtype])
    end)

    it("gives PyTorch's outputs, gradients and running statistics in train mode (" .. dtype .. ")", function()
      local m, x = load(dtype)
      m:train()
      local y = m(x)
      T.assert_close(y, tensor(ref.out_train, dtype), tol[dtype])
      y:backward(tensor(ref.grad_out, dtype))
      for name, p in m:named_parameters() do
        T.assert_close(p.grad, tensor(ref.grads[name], dtype),
                       {rtol = tol[dtype].rtol * 10, atol = tol[dtype].atol * 10, msg = name})
      end
      local sd = m:state_dict()
      for k, e in pairs(ref.after) do
        if e.dtype == "int64" then
          assert.are.equal(e.data[1], sd[k]:item(), k)
        else
          T.assert_close(sd[k], tensor(e, dtype), {rtol = tol[dtype].rtol, atol = tol[dtype].atol, msg = k})
        end
      end
    end)
  end
end)
