-- ml.testing.assert_trajectory (golden files of per-step values) and
-- ml.testing.seeded, and the regression spec the README shows: the reference
-- MLP's first 50 losses pinned to tests/lua/golden/mlp_first_50_losses.csv.
local ml = require "moonlight"
local testing = ml.testing
local read_file = require("test_util").read_file

local tmpdir = os.tmpname()
os.remove(tmpdir)

describe("ml.testing.assert_trajectory", function()
  local path = tmpdir .. "/golden/traj.csv"

  it("writes the golden file when absent, then compares against it", function()
    local written, wrote = testing.assert_trajectory({0.5, 0.25, 1 / 3, 1e-9}, path)
    assert.is_true(written)
    assert.is_true(wrote)
    assert.are.equal("step,value\n1,0.5\n2,0.25\n3,0.3333333333333333\n4,1e-09\n", read_file(path))
    local ok, again = testing.assert_trajectory({0.5, 0.25, 1 / 3, 1e-9}, path)
    assert.is_true(ok)
    assert.is_false(again)
    -- tensors and a 1-D tensor are per-step values too
    assert.is_true(testing.assert_trajectory({ml.tensor(0.5, {dtype = "float64"}), 0.25, 1 / 3, 1e-9}, path))
    assert.is_true(testing.assert_trajectory(ml.tensor({0.5, 0.25, 1 / 3, 1e-9}, {dtype = "float64"}), path))
  end)

  it("reports the first step that differs with both values", function()
    local ok, err = pcall(function() testing.assert_trajectory({0.5, 0.2501, 0.4, 1e-9}, path) end)
    assert.is_false(ok)
    assert.matches("testing_golden_spec.lua:%d+: assert_trajectory: step 2 of 4 differs from .*traj.csv: "
                   .. "actual 0.2501, expected 0.25 %(difference 0.0001", err)
    assert.matches("2 of 4 steps differ", err)
    -- within tolerance
    assert.is_true(testing.assert_trajectory({0.5, 0.2501, 1 / 3, 1e-9}, path, {rtol = 1e-3, atol = 0}))
    ok, err = pcall(testing.assert_trajectory, {0.5, 0.25, 1 / 3}, path)
    assert.matches("assert_trajectory: 3 steps, but .*traj.csv has 4", err)
    ok, err = pcall(testing.assert_trajectory, {0.5, "x"}, path)
    assert.matches("assert_trajectory: step 2 is a string, expected a number", err)
  end)

  it("rewrites the file under MOONLIGHT_UPDATE_GOLDEN=1", function()
    -- os.getenv cannot be set from Lua: run a child interpreter with it
    local lua = arg and arg[-1] or "lua5.4"
    local script = tmpdir .. "/update.lua"
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
      local ml = require "moonlight"
      local ok, wrote = ml.testing.assert_trajectory({1, 2}, %q)
      io.write(tostring(wrote))]], path))
    f:close()
    local p = io.popen("MOONLIGHT_UPDATE_GOLDEN=1 " .. lua .. " " .. script .. " 2>&1")
    local out = p:read("a")
    p:close()
    assert.are.equal("true", out)
    assert.are.equal("step,value\n1,1\n2,2\n", read_file(path))
    os.remove(path)
  end)

  it("matches NaN with NaN", function()
    local p = tmpdir .. "/nan.csv"
    testing.assert_trajectory({0 / 0, 1}, p)
    assert.is_true(testing.assert_trajectory({0 / 0, 1}, p))
    assert.has_error(function() testing.assert_trajectory({1, 1}, p) end)
    os.remove(p)
  end)
end)

describe("ml.testing.seeded", function()
  it("runs under a fixed seed and puts the generator back, errors too", function()
    ml.manual_seed(123)
    local state = ml.get_rng_state()
    local a = testing.seeded(function() return ml.rand({3}) end)
    local b = testing.seeded(function() return ml.rand({3}) end)
    testing.assert_close(a, b)
    assert.are.equal(state, ml.get_rng_state())
    local c = testing.seeded(function() return ml.rand({3}) end, 7)
    ml.manual_seed(7)
    testing.assert_close(c, ml.rand({3}))
    ml.set_rng_state(state)
    local ok, err = pcall(testing.seeded, function() ml.rand({2}); error("boom") end)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.are.equal(state, ml.get_rng_state())
  end)
end)

-- The regression spec of the README: the reference MLP (784-64-32-10, softmax,
-- MSE on one-hot targets, Adam 1e-3, batch 128) on MNIST, its first 50 losses
-- pinned. Synthetic data of MNIST's shape when data/mnist is absent (its own
-- golden file).
describe("the reference model's first 50 losses", function()
  it("stay on their golden trajectory", function()
    local nn, F, data = ml.nn, ml.F, ml.data
    local losses = testing.seeded(function()
      local ds, golden
      local f = io.open("data/mnist/train-images-idx3-ubyte", "rb")
      if f then
        f:close()
        ds = data.MNIST("data/mnist", {train = true, transform = data.transforms.ToTensor(),
                                       target_transform = data.transforms.OneHot(10)})
        golden = "tests/lua/golden/mlp_first_50_losses.csv"
      else
        local x = (ml.rand({6400, 1, 28, 28}) * 255):byte():float() / 255
        ds = data.TensorDataset(x, F.one_hot((ml.rand({6400}) * 10):long(), 10):float())
        golden = "tests/lua/golden/mlp_first_50_losses_synthetic.csv"
      end
      local model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32),
                                  nn.ReLU(), nn.Linear(32, 10), nn.Softmax(-1))
      local opt = ml.optim.Adam(model:parameters(), {lr = 1e-3})
      local out = {}
      for i, b in data.DataLoader(ds, {batch_size = 128, shuffle = true}):iter() do
        if i > 50 then break end
        opt:zero_grad()
        local loss = F.mse_loss(model(b[1]), b[2])
        loss:backward()
        opt:step()
        out[i] = loss:item()
      end
      return {values = out, golden = golden}
    end, 42)
    assert.are.equal(50, #losses.values)
    -- float32 sums differ between ISA levels (scripts/test runs the default
    -- level too): a tolerance that covers that, far below a real change
    testing.assert_trajectory(losses.values, losses.golden, {rtol = 1e-4, atol = 1e-6})
  end)
end)
