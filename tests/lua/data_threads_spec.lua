-- The ToTensor batch gather splits big batches across threads (src/cpu/data.c); the
-- tests run single-threaded, so this spec turns threads on and checks that the
-- batch is the same as on one thread and as the rows converted one by one, with
-- or without the next batch's rows prefetched.
local ml = require "moonlight"

describe("batch gather split across threads", function()
  local saved
  before_each(function() saved = ml.get_num_threads() end)
  after_each(function() ml.set_num_threads(saved) end)

  it("gives torchvision's v / 255 exactly for every byte", function()
    local bytes = ml.arange(0, 256):to("uint8"):view(1, 16, 16)
    local got = ml._gather_scaled(bytes, ml.tensor({0}, {dtype = "int64"}), 1 / 255, 0, true)
    local want = ml.arange(0, 256):float() / 255 -- float32 division, as torch's ToTensor
    assert.are.equal(0, (got:view(256) - want):abs():max():item())
  end)

  it("gives the same batch on 1, 2 and 3 threads", function()
    ml.manual_seed(3)
    local src = (ml.rand({500, 28, 28}) * 255):to("uint8")
    local idx = ml.randperm(500):narrow(1, 1, 200) -- 200 x 784 elements: above the threshold
    ml.set_num_threads(1)
    local one = ml._gather_scaled(src, idx, 1 / 255, 0, true)
    assert.are.same({200, 1, 28, 28}, one:shape()) -- ToTensor adds the channel dim
    local r = idx[7]:item() + 1 -- ids are 0-based
    assert.are.equal(0, (one[7][1] - src[r]:float() / 255):abs():max():item())
    for _, nt in ipairs({2, 3}) do
      ml.set_num_threads(nt)
      local many = ml._gather_scaled(src, idx, 1 / 255, 0, true)
      assert.are.equal(0, (one - many):abs():max():item())
      -- with the next batch's rows prefetched (the DataLoader's call)
      local next_idx = ml.randperm(500):narrow(1, 1, 150)
      local hinted = ml._gather_scaled(src, idx, 1 / 255, 0, true, nil, next_idx)
      assert.are.equal(0, (one - hinted):abs():max():item())
    end
  end)

  it("checks the next batch's indices as it checks the batch's", function()
    local src = ml.zeros({4, 2, 2}, {dtype = "uint8"})
    local idx = ml.tensor({0, 1}, {dtype = "int64"})
    local ok, err = pcall(ml._gather_scaled, src, idx, 1 / 255, 0, true, nil, ml.tensor({3, 4}, {dtype = "int64"}))
    assert.is_false(ok)
    assert.matches("gather_scaled: index 4 is out of range for 4 rows", err, 1, true)
  end)
end)
