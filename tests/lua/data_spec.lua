-- ml.data: datasets from IDX files (tiny ones written here, and the real MNIST /
-- Fashion-MNIST when present), transforms, TensorDataset, DataLoader.
local ml = require "moonlight"
local data = ml.data
local T = data.transforms
local fx = dofile("tests/fixtures/data.lua")

local function idx_bytes(type_code, dims, payload)
  local parts = {string.pack(">BBBB", 0, 0, type_code, #dims)}
  for _, d in ipairs(dims) do parts[#parts + 1] = string.pack(">I4", d) end
  parts[#parts + 1] = payload
  return table.concat(parts)
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local function bytes_of(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = string.char(v) end
  return table.concat(t)
end

-- a tiny MNIST: n images of 3x2 whose pixels are (i * 6 + j) % 256, labels given
local function tiny_mnist(dir, n, labels, prefix)
  prefix = prefix or "train"
  os.execute("mkdir -p '" .. dir .. "'")
  local px = {}
  for i = 0, n - 1 do for j = 0, 5 do px[#px + 1] = (i * 6 + j * 40) % 256 end end
  write(dir .. "/" .. prefix .. "-images-idx3-ubyte", idx_bytes(8, {n, 3, 2}, bytes_of(px)))
  write(dir .. "/" .. prefix .. "-labels-idx1-ubyte", idx_bytes(8, {#labels}, bytes_of(labels)))
  return px
end

local tmp = os.tmpname()
os.remove(tmp)
local root = tmp .. "_mnist"
local labels = {5, 0, 4, 1, 9, 2, 1, 3, 1, 4}
local pixels = tiny_mnist(root, 10, labels)
tiny_mnist(root, 4, {7, 2, 1, 0}, "t10k")

teardown(function() os.execute("rm -rf '" .. root .. "'") end)

local function shape(t) return t:shape() end

describe("read_idx and MNIST", function()
  it("reads a tiny IDX dataset", function()
    local ds = data.MNIST(root)
    assert.are.equal(10, #ds)
    local s = ds[2]
    assert.are.same({3, 2}, shape(s[1]))
    assert.are.equal("uint8", s[1].dtype)
    assert.are.equal(0, s[2])
    assert.are.equal(5, ds[1][2])
    assert.are.equal(4, ds[-1][2])
    assert.are.same({{6, 46}, {86, 126}, {166, 206}}, ds[2][1]:totable())
    assert.are.equal(4, #data.MNIST(root, {train = false}))
    assert.are.equal(7, data.MNIST(root, {train = false})[1][2])
    assert.are.same({10, 3, 2}, shape(data.read_idx(root .. "/train-images-idx3-ubyte")))
  end)

  it("maps a plain uint8 file: writes stay in memory, the file outlives nothing", function()
    local path = root .. "/train-images-idx3-ubyte"
    local f = io.open(path, "rb")
    local before = f:read("a")
    f:close()
    local x = data.read_idx(path)
    local y = data.read_idx(path)
    assert.are.same({{6, 46}, {86, 126}, {166, 206}}, x[2]:totable())
    x[2]:fill_(7) -- a private mapping: the page is copied, the file and y unchanged
    assert.are.same({{7, 7}, {7, 7}, {7, 7}}, x[2]:totable())
    assert.are.same({{6, 46}, {86, 126}, {166, 206}}, y[2]:totable())
    f = io.open(path, "rb")
    assert.are.equal(before, f:read("a"))
    f:close()
    -- the mapping keeps the data after the file is gone (until the tensors go)
    local copy = root .. "/copy-idx3-ubyte"
    f = io.open(copy, "wb"); f:write(before); f:close()
    local z = data.read_idx(copy)
    os.remove(copy)
    collectgarbage()
    assert.are.same({{6, 46}, {86, 126}, {166, 206}}, z[2]:totable())
    assert.are.same(x:shape(), z:shape())
  end)

  it("finds torchvision's raw/ layout", function()
    local r = root .. "/tv"
    tiny_mnist(r .. "/MNIST/raw", 3, {1, 2, 3})
    tiny_mnist(r .. "/FashionMNIST/raw", 2, {8, 9})
    assert.are.equal(3, #data.MNIST(r))
    assert.are.equal(9, data.FashionMNIST(r)[2][2])
  end)

  it("finds gzipped files", function()
    local r = root .. "/gz"
    tiny_mnist(r, 3, {3, 1, 2})
    local ok = os.execute("gzip -f '" .. r .. "/train-images-idx3-ubyte' '" .. r .. "/train-labels-idx1-ubyte'")
    if not ok then pending("no gzip command") return end
    local ds = data.MNIST(r)
    assert.are.equal(3, #ds)
    assert.are.equal(2, ds[3][2])
  end)

  it("says how to get the files when they are absent", function()
    local ok, err = pcall(data.MNIST, root .. "/nowhere")
    assert.is_false(ok)
    assert.matches("MNIST: cannot find train%-images%-idx3%-ubyte %(or train%-images%-idx3%-ubyte.gz%) in "
                   .. ".*/nowhere or .*/nowhere/MNIST/raw; run scripts/get%-data", err)
    ok, err = pcall(data.FashionMNIST, root .. "/nowhere", {train = false})
    assert.matches("FashionMNIST: cannot find t10k%-images%-idx3%-ubyte.*dataset%-fashion%-mnist", err)
  end)

  it("rejects truncated, wrong-magic and mismatched files", function()
    local r = root .. "/bad"
    tiny_mnist(r, 10, labels)
    local img = r .. "/train-images-idx3-ubyte"
    local f = assert(io.open(img, "rb")); local full = f:read("a"); f:close()
    write(img, full:sub(1, 40))
    local ok, err = pcall(data.MNIST, r)
    assert.is_false(ok)
    assert.matches("read_idx: .*train%-images%-idx3%-ubyte: 76 bytes expected for 10x3x2, found 40", err)
    write(img, "PK" .. full:sub(3))
    ok, err = pcall(data.MNIST, r)
    assert.matches("not an IDX file: magic 50 4b 08 03", err)
    write(img, full)
    write(r .. "/train-labels-idx1-ubyte", idx_bytes(8, {9}, bytes_of({1, 2, 3, 4, 5, 6, 7, 8, 9})))
    ok, err = pcall(data.MNIST, r)
    assert.matches("has 10 images but .* has 9 labels", err)
  end)

  it("checks indices and options", function()
    local ds = data.MNIST(root)
    assert.has_error(function() return ds[11] end,
                     "MNIST: index 11 out of range for 10 samples (positions are 1-based)")
    assert.has_error(function() return ds[0] end)
    local ok, err = pcall(data.MNIST, root, {trian = true})
    assert.matches("MNIST: unknown option 'trian'", err)
  end)
end)

describe("transforms", function()
  local all = {}
  for v = 0, 255 do all[v + 1] = v end
  local img = ml.tensor(all, {dtype = "uint8"}):view({16, 16})

  it("ToTensor is torchvision's x / 255, [1, H, W]", function()
    local x = T.ToTensor()(img)
    assert.are.same({1, 16, 16}, shape(x))
    assert.are.equal("float32", x.dtype)
    local got = x:reshape({-1}):totable()
    for i = 1, 256 do assert.are.equal(fx.to_tensor[i], got[i]) end
    local hwc = T.ToTensor()(img:view({16, 8, 2}))
    assert.are.same({2, 16, 8}, shape(hwc))
  end)

  it("Normalize and Compose match torchvision", function()
    local tf = T.Compose{T.ToTensor(), T.Normalize({fx.normalize_mean}, {fx.normalize_std})}
    local got = tf(img):reshape({-1}):totable()
    for i = 1, 256 do assert.are.equal(fx.normalized[i], got[i]) end
    assert.has_error(function() T.Normalize(0.5, 0) end)
    assert.has_error(function() T.Normalize(0.5, 1)(img) end)
  end)

  it("OneHot is np.eye(n)[y]", function()
    local oh = T.OneHot(10)
    for k, y in ipairs(fx.labels) do
      local t = oh(y)
      assert.are.equal("float32", t.dtype)
      assert.are.same({table.unpack(fx.one_hot, (k - 1) * 10 + 1, k * 10)}, t:totable())
    end
    assert.has_error(function() oh(10) end,
                     "OneHot: class id 10 is out of range for 10 classes (ids are 0-based, 0 to 9)")
  end)

  it("applies transforms to samples, functions too", function()
    local ds = data.MNIST(root, {transform = T.Compose{T.ToTensor(), function(x) return x * 2 end},
                                 target_transform = T.OneHot(10)})
    local s = ds[2]
    assert.are.same({1, 3, 2}, shape(s[1]))
    assert.are.near(2 * 46 / 255, s[1][1][1][2]:item(), 1e-6)
    assert.are.same({1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, s[2]:totable())
  end)
end)

-- every batch of a loader, concatenated: x and y as Lua tables
local function epoch(loader)
  local xs, ys, sizes = {}, {}, {}
  for b, batch in loader:iter() do
    assert.are.equal(#sizes + 1, b)
    sizes[#sizes + 1] = batch[1]:size(1)
    for _, r in ipairs(batch[1]:totable()) do xs[#xs + 1] = r end
    for _, r in ipairs(batch[2]:totable()) do ys[#ys + 1] = r end
  end
  return xs, ys, sizes
end

describe("DataLoader", function()
  local tf = {transform = T.ToTensor(), target_transform = T.OneHot(10)}

  it("batches in order, keeps the short last batch", function()
    local ds = data.MNIST(root, tf)
    local loader = data.DataLoader(ds, {batch_size = 4})
    assert.are.equal(3, #loader)
    local xs, ys, sizes = epoch(loader)
    assert.are.same({4, 4, 2}, sizes)
    for i = 1, 10 do
      assert.are.same(ds[i][1]:totable(), xs[i])
      assert.are.same(ds[i][2]:totable(), ys[i])
    end
    assert.are.equal(2, #data.DataLoader(ds, {batch_size = 4, drop_last = true}))
    local _, _, s2 = epoch(data.DataLoader(ds, {batch_size = 4, drop_last = true}))
    assert.are.same({4, 4}, s2)
  end)

  it("gives x [B, 1, H, W] float32 and y [B, 10] or int64 [B]", function()
    local _, batch = data.DataLoader(data.MNIST(root, tf), {batch_size = 4}):iter()()
    assert.are.same({4, 1, 3, 2}, shape(batch[1]))
    assert.are.equal("float32", batch[1].dtype)
    assert.are.same({4, 10}, shape(batch[2]))
    local _, raw = data.DataLoader(data.MNIST(root, {transform = T.ToTensor()}), {batch_size = 4}):iter()()
    assert.are.equal("int64", raw[2].dtype)
    assert.are.same({5, 0, 4, 1}, raw[2]:totable())
    local _, plain = data.DataLoader(data.MNIST(root), {batch_size = 2}):iter()()
    assert.are.equal("uint8", plain[1].dtype)
    assert.are.same({2, 3, 2}, shape(plain[1]))
  end)

  it("folds Normalize into the gather, as the per-sample path computes it", function()
    local norm = T.Compose{T.ToTensor(), T.Normalize(0.1307, 0.3081)}
    local ds = data.MNIST(root, {transform = norm})
    local xs = epoch(data.DataLoader(ds, {batch_size = 3}))
    for i = 1, 10 do
      local want = ds[i][1]:reshape({-1}):totable()
      local got = ml.tensor(xs[i]):reshape({-1}):totable()
      for k = 1, #want do assert.is_true(math.abs(want[k] - got[k]) <= 2.4e-7 * math.max(1, math.abs(want[k]))) end
    end
  end)

  it("shuffles with a fresh permutation every epoch, repeatable by manual_seed", function()
    local ds = data.MNIST(root, {transform = T.ToTensor()})
    local loader = data.DataLoader(ds, {batch_size = 3, shuffle = true})
    ml.manual_seed(7)
    local _, y1 = epoch(loader)
    local _, y2 = epoch(loader)
    ml.manual_seed(7)
    local _, y1b = epoch(loader)
    assert.are.same(y1, y1b)
    assert.are_not.same(y1, y2)
    local sorted = {table.unpack(y1)}
    table.sort(sorted)
    local want = {table.unpack(labels)}
    table.sort(want)
    assert.are.same(want, sorted)  -- every sample once
  end)

  it("takes its own seed, independent of ml's generator", function()
    local ds = data.MNIST(root, {transform = T.ToTensor()})
    local a = data.DataLoader(ds, {batch_size = 5, shuffle = true, seed = 3})
    local b = data.DataLoader(ds, {batch_size = 5, shuffle = true, seed = 3})
    ml.manual_seed(1)
    local _, ya = epoch(a)
    ml.rand({5})
    local _, yb = epoch(b)
    assert.are.same(ya, yb)
    local _, ya2 = epoch(a)
    assert.are_not.same(ya, ya2)
  end)

  it("stacks samples of Lua-function transforms, same numbers", function()
    local eye = ml.eye(10)
    local ds = data.MNIST(root, {transform = function(x) return T.ToTensor()(x) end,
                                 target_transform = function(y) return eye[y + 1] end})
    local fast = data.MNIST(root, tf)
    local x1, y1 = epoch(data.DataLoader(ds, {batch_size = 4}))
    local x2, y2 = epoch(data.DataLoader(fast, {batch_size = 4}))
    assert.are.same(x2, x1)
    assert.are.same(y2, y1)
    local ints = data.MNIST(root, {target_transform = function(y) return y + 100 end})
    local _, batch = data.DataLoader(ints, {batch_size = 3}):iter()()
    assert.are.equal("int64", batch[2].dtype)
    assert.are.same({105, 100, 104}, batch[2]:totable())
  end)

  it("loads a TensorDataset and any indexable dataset", function()
    local x = ml.arange(12):view({6, 2})
    local y = ml.tensor({0, 1, 0, 1, 1, 0}, {dtype = "int64"})
    local ds = data.TensorDataset(x, y)
    assert.are.equal(6, #ds)
    assert.are.same({4, 5}, ds[3][1]:totable())
    assert.are.equal(0, ds[3][2]:item())
    local _, b = data.DataLoader(ds, {batch_size = 4}):iter()()
    assert.are.same({{0, 1}, {2, 3}, {4, 5}, {6, 7}}, b[1]:totable())
    assert.are.same({0, 1, 0, 1}, b[2]:totable())
    assert.has_error(function() data.TensorDataset(x, ml.zeros({5})) end,
      "TensorDataset: size mismatch between tensors: tensor 1 has 6 samples, tensor 2 has 5 (shape [5])")
    local custom = setmetatable({}, {__len = function() return 5 end,
                                     __index = function(_, i) return {ml.full({2}, i), i * 10} end})
    local l = data.DataLoader(custom, {batch_size = 2})
    assert.are.equal(3, #l)
    local xs, ys, sizes = epoch(l)
    assert.are.same({2, 2, 1}, sizes)
    assert.are.same({5, 5}, xs[5])
    assert.are.same({10, 20, 30, 40, 50}, ys)
  end)

  it("routes batches to a device", function()
    local ds = data.MNIST(root, tf)
    local l = data.DataLoader(ds, {batch_size = 4, device = "cpu"})
    local _, b = l:iter()()
    assert.are.equal("cpu", b[1].device)
    if ml.cuda.is_available() then
      local g = data.DataLoader(ds, {batch_size = 4, device = "cuda"})
      local xs, ys = epoch(g)
      local xc, yc = epoch(l)
      assert.are.same(xc, xs)
      assert.are.same(yc, ys)
    else
      local ok, err = pcall(data.DataLoader, ds, {batch_size = 4, device = "cuda"})
      assert.is_false(ok)
      assert.matches("cuda", err)
    end
    assert.has_error(function() data.DataLoader(ds, {batch_size = 0}) end,
                     "DataLoader: batch_size must be a positive integer, got 0")
    local ok, err = pcall(data.DataLoader, ds, {batchsize = 4})
    assert.matches("DataLoader: unknown option 'batchsize'", err)
  end)
end)

describe("real datasets", function()
  local function have(p) local f = io.open(p, "rb") if f then f:close() return true end return false end

  it("MNIST: 60000 / 10000 samples, known labels, pixels in [0, 1]", function()
    if not have("data/mnist/train-images-idx3-ubyte") and not have("data/mnist/train-images-idx3-ubyte.gz") then
      pending("data/mnist is absent (scripts/get-data fetches it)")
      return
    end
    local train = data.MNIST("data/mnist", {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})
    local test = data.MNIST("data/mnist", {train = false})
    assert.are.equal(60000, #train)
    assert.are.equal(10000, #test)
    assert.are.same({5, 0, 4, 1, 9}, train.targets:narrow(1, 1, 5):totable())
    local t = {}
    for i = 1, 5 do t[i] = test[i][2] end
    assert.are.same({7, 2, 1, 0, 4}, t)
    local loader = data.DataLoader(train, {batch_size = 128, shuffle = true})
    assert.are.equal(469, #loader)
    assert.are.equal(79, #data.DataLoader(test, {batch_size = 128}))
    local n, lo, hi, sum = 0, math.huge, -math.huge, 0
    for _, b in loader:iter() do
      n = n + b[1]:size(1)
      lo = math.min(lo, b[1]:min():item())
      hi = math.max(hi, b[1]:max():item())
      sum = sum + b[1]:sum():item()
      assert.are.equal(b[1]:size(1), b[2]:sum():item())
    end
    assert.are.equal(60000, n)
    assert.are.equal(0, lo)
    assert.are.equal(1, hi)
    assert.are.near(0.1307, sum / (60000 * 784), 1e-4)
  end)

  it("Fashion-MNIST loads from its .gz files", function()
    local r = "/usr/share/datasets/fashion-mnist"
    if not have(r .. "/train-images-idx3-ubyte.gz") then
      pending("dataset-fashion-mnist is not installed")
      return
    end
    local train = data.FashionMNIST(r)
    local test = data.FashionMNIST(r, {train = false})
    assert.are.equal(60000, #train)
    assert.are.equal(10000, #test)
    assert.are.same({9, 0, 0, 3, 0}, train.targets:narrow(1, 1, 5):totable())
    assert.are.same({9, 2, 1, 1, 6}, test.targets:narrow(1, 1, 5):totable())
    assert.are.equal("Ankle boot", train.classes[10])
  end)
end)
