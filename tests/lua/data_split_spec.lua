-- ml.Generator (torch.Generator), data.random_split, data.Subset and
-- data.ConcatDataset, and the DataLoader over them (the C gather kept where the
-- columns allow it).
local ml = require "moonlight"
local data = ml.data
local T = data.transforms
local testing = ml.testing

-- the count of each class id (0-9), as float32 [10]
local function F_one_hot_counts(targets)
  return ml.F.one_hot(targets, 10):float():sum(1)
end

local function sorted(list)
  local c = {}
  for i, v in ipairs(list) do c[i] = v end
  table.sort(c)
  return c
end

local function range(a, b)
  local r = {}
  for i = a, b do r[#r + 1] = i end
  return r
end

-- a small dataset whose sample i is recognisable: x = i (as [2, 2] uint8), y = i % 10
local function numbered(n, base)
  base = base or 0
  local x = ml.tensor(range(base + 1, base + n), {dtype = "uint8"}):view({n, 1, 1}):expand({n, 2, 2}):contiguous()
  local ids = {}
  for i = base + 1, base + n do ids[#ids + 1] = i % 10 end
  local y = ml.tensor(ids, {dtype = "int64"})
  return data.TensorDataset(x, y)
end

describe("ml.Generator", function()
  it("has its own state: seeded, repeatable, independent of ml.manual_seed", function()
    local g = ml.Generator():manual_seed(42)
    assert.are.equal(42, g:initial_seed())
    assert.are.equal("cpu", g.device)
    local a = ml.rand({5}, {generator = g})
    ml.manual_seed(1)
    local before = ml.get_rng_state()
    local b = ml.rand({5}, {generator = g})
    assert.are.equal(before, ml.get_rng_state())
    local g2 = ml.Generator():manual_seed(42)
    testing.assert_close(ml.rand({5}, {generator = g2}), a)
    testing.assert_close(ml.rand({5}, {generator = g2}), b)
    -- the same numbers as the default generator under the same seed
    ml.manual_seed(42)
    testing.assert_close(ml.rand({5}), a)
  end)

  it("saves and restores its state; randn and randperm take it", function()
    local g = ml.Generator():manual_seed(7)
    local s = g:get_state()
    local p1, n1 = ml.randperm(10, {generator = g}), ml.randn({3}, {generator = g, dtype = "float64"})
    assert.are.equal(g, g:set_state(s))
    testing.assert_close(ml.randperm(10, {generator = g}), p1)
    testing.assert_close(ml.randn({3}, {generator = g, dtype = "float64"}), n1)
    local seed = g:seed()
    assert.are.equal(seed, g:initial_seed())
    assert.is_true(seed >= 0)
    assert.matches("Generator%(device=cpu, initial_seed=7%)", tostring(ml.Generator():manual_seed(7)))
    local ok, err = pcall(ml.rand, {2}, {generator = 3})
    assert.is_false(ok)
    assert.matches("rand: option 'generator' must be an ml.Generator, got number", err)
    ok, err = pcall(function() g:set_state("abc") end)
    assert.matches("set_state: expected a state of 40 bytes", err)
  end)

  it("gives a fresh Generator torch's default seed", function()
    assert.are.equal(67280421310721, ml.Generator():initial_seed())
  end)
end)

describe("data.random_split", function()
  it("splits by counts: disjoint, covering, repeatable with the same seed", function()
    local ds = numbered(50)
    local a, b, c = table.unpack(data.random_split(ds, {20, 25, 5}, ml.Generator():manual_seed(42)))
    assert.are.equal(20, #a)
    assert.are.equal(25, #b)
    assert.are.equal(5, #c)
    local all = {}
    for _, s in ipairs({a, b, c}) do
      for _, p in ipairs(s.indices) do all[#all + 1] = p end
    end
    assert.are.same(range(1, 50), sorted(all))
    local a2 = data.random_split(ds, {20, 25, 5}, ml.Generator():manual_seed(42))[1]
    assert.are.same(a.indices, a2.indices)
    local a3 = data.random_split(ds, {20, 25, 5}, ml.Generator():manual_seed(43))[1]
    assert.are_not.same(a.indices, a3.indices)
    -- samples are the dataset's at those positions
    local s = a[3]
    assert.are.equal(a.indices[3], s[1][1][1]:item())
    assert.are.equal(a.indices[3] % 10, s[2]:item())
  end)

  it("splits by fractions with torch's rule for the remainder", function()
    local ds = numbered(11)
    local parts = data.random_split(ds, {0.5, 0.3, 0.2}, ml.Generator():manual_seed(0))
    -- floor: 5, 3, 2 (10); the remaining 1 goes to the first split
    assert.are.same({6, 3, 2}, {#parts[1], #parts[2], #parts[3]})
    parts = data.random_split(numbered(10), {0.34, 0.33, 0.33})
    -- floor: 3, 3, 3; one more to the first
    assert.are.same({4, 3, 3}, {#parts[1], #parts[2], #parts[3]})
    parts = data.random_split(numbered(7), {0.25, 0.25, 0.25, 0.25})
    -- floor: 1 each; 3 more, one to each of the first three
    assert.are.same({2, 2, 2, 1}, {#parts[1], #parts[2], #parts[3], #parts[4]})
  end)

  it("uses ml's generator by default, and reports bad lengths", function()
    ml.manual_seed(5)
    local a = data.random_split(numbered(30), {10, 20})[1]
    ml.manual_seed(5)
    local b = data.random_split(numbered(30), {10, 20})[1]
    assert.are.same(a.indices, b.indices)
    local ok, err = pcall(data.random_split, numbered(10), {3, 3})
    assert.is_false(ok)
    assert.matches("random_split: sum of input lengths %(6%) does not equal the length of the input dataset %(10%)", err)
    ok, err = pcall(data.random_split, numbered(10), {0.5, 1.5})
    assert.matches("random_split: length 1 is 0.5: give counts %(integers%) or fractions summing to 1", err)
    ok, err = pcall(data.random_split, numbered(10), {5, 5}, "seed")
    assert.matches("random_split: generator must be an ml.Generator, got string", err)
  end)
end)

describe("data.Subset and data.ConcatDataset", function()
  it("Subset reads its dataset at 1-based positions, or 0-based tensor indices", function()
    local ds = numbered(20)
    local s = data.Subset(ds, {4, 2, 20})
    assert.are.equal(3, #s)
    assert.are.equal(20, s[3][1][1][1]:item())
    assert.are.equal(20, s[-1][1][1][1]:item())
    local t = data.Subset(ds, ml.tensor({3, 1}, {dtype = "int64"}))
    assert.are.same({4, 2}, t.indices)
    local ss = data.Subset(s, {3, 1})
    assert.are.equal(20, ss[1][1][1][1]:item())
    assert.are.equal(4, ss[2][1][1][1]:item())
    local ok, err = pcall(data.Subset, ds, {0})
    assert.is_false(ok)
    assert.matches("Subset: position 0 %(index 1%) is out of range for a dataset of 20 samples", err)
  end)

  it("ConcatDataset chains its parts, columns kept when they agree", function()
    local a, b = numbered(5), numbered(7, 100)
    local c = data.ConcatDataset({a, b})
    assert.are.equal(12, #c)
    assert.are.same({5, 12}, c.cumulative_sizes)
    assert.are.equal(5, c[5][1][1][1]:item())
    assert.are.equal(101, c[6][1][1][1]:item())
    assert.are.equal(107, c[12][1][1][1]:item())
    local loader = data.DataLoader(c, {batch_size = 12})
    local _, batch = loader:iter()()
    assert.are.same({1, 2, 3, 4, 5, 101, 102, 103, 104, 105, 106, 107},
                    batch[1]:select(2, 1):select(2, 1):long():totable())
    assert.is_truthy(rawget(c, "_columns"))
  end)

  it("the loader over a Subset gives the same batches as sample by sample", function()
    local ds = numbered(40)
    local sub = data.random_split(ds, {0.75, 0.25}, ml.Generator():manual_seed(3))[1]
    local loader = data.DataLoader(sub, {batch_size = 7})
    local got = {}
    for _, b in loader:iter() do
      for _, v in ipairs(b[1]:select(2, 1):select(2, 1):long():totable()) do got[#got + 1] = v end
    end
    assert.are.same(sub.indices, got)
    -- and through a Lua transform (sample by sample)
    local sub2 = data.Subset(data.TensorDataset(ds.tensors[1]:float()), sub.indices)
    assert.are.equal(30, #sub2)
  end)

  it("keeps MNIST's fused gather for a split and for the split parts concatenated", function()
    local f = io.open("data/mnist/t10k-images-idx3-ubyte", "rb")
    if not f then return pending("data/mnist is not there") end
    f:close()
    local test = data.MNIST("data/mnist", {train = false, transform = T.Compose({T.ToTensor(), T.Normalize(0.1307, 0.3081)}),
                                          target_transform = T.OneHot(10)})
    local train, val = table.unpack(data.random_split(test, {9000, 1000}, ml.Generator():manual_seed(42)))
    local loader = data.DataLoader(val, {batch_size = 64, shuffle = true, generator = ml.Generator():manual_seed(1)})
    local seen = 0
    for _, b in loader:iter() do
      assert.are.same({b[1]:size(1), 1, 28, 28}, b[1]:shape())
      seen = seen + b[1]:size(1)
    end
    assert.are.equal(1000, seen)
    -- a batch equals the samples read one by one
    local l2 = data.DataLoader(val, {batch_size = 5})
    local _, b = l2:iter()()
    for i = 1, 5 do
      testing.assert_close(b[1][i], val[i][1])
      testing.assert_close(b[2][i], val[i][2])
    end
    -- both parts again, concatenated: positions into the same tensor, no copy
    local both = data.ConcatDataset({train, val})
    assert.are.equal(10000, #both)
    local l3 = data.DataLoader(both, {batch_size = 10000})
    local _, all = l3:iter()()
    -- every sample once: the one-hot rows add up to the class counts
    testing.assert_close(all[2]:sum(1), F_one_hot_counts(test.targets))
    assert.is_true(rawequal(rawget(both, "_columns")[1].data, test.data))
  end)

  it("a DataLoader with a generator draws its order from it", function()
    local ds = numbered(30)
    local function order(g)
      local out = {}
      for _, b in data.DataLoader(ds, {batch_size = 30, shuffle = true, generator = g}):iter() do
        out = b[2]:totable()
      end
      return out
    end
    local o1 = order(ml.Generator():manual_seed(9))
    local o2 = order(ml.Generator():manual_seed(9))
    assert.are.same(o1, o2)
    local ok, err = pcall(data.DataLoader, ds, {generator = 1})
    assert.matches("DataLoader: generator must be an ml.Generator, got number", err)
  end)
end)
