-- Augmentation transforms (RandomCrop, RandomHorizontalFlip, RandomRotation,
-- RandomAffine, ColorJitter): the data family's augment kernels against
-- torchvision's formulas (tests/fixtures/augment.lua, scripts/fixtures/
-- gen_augment.py), the transforms per sample and per batch, seeded, composed
-- and in the DataLoader.
local ml = require "moonlight"
local core = require "moonlight.core"
local data = ml.data
local T = data.transforms
local testing = ml.testing

local cases = dofile("tests/fixtures/augment.lua")
local PAD = {constant = 0, edge = 1, reflect = 2, symmetric = 3}

local function tensor_of(spec)
  return ml.tensor(spec.data, {dtype = spec.dtype})
end

-- the tolerance of each case: copies are exact; interpolated float values
-- within float32's rounding; uint8 results may land one step apart where
-- torch rounds a float32 computation (grid, mean) we compute in double
local function tolerance(case)
  if case.op == "crop" then return {rtol = 0, atol = 0} end
  if case.expected.dtype == "uint8" then return {rtol = 0, atol = 1} end
  if case.expected.dtype == "float64" then return {rtol = 1e-12, atol = 1e-12} end
  return {rtol = 1e-5, atol = 1e-6}
end

local function run(case, dev)
  local x = tensor_of(case.input)
  if dev then x = x:to(dev) end
  if case.op == "crop" then
    return core._augment_crop(x, ml.tensor(case.params, {dtype = "int64"}), case.size[1], case.size[2],
                              PAD[case.mode], case.fill)
  elseif case.op == "affine" then
    return core._augment_affine(x, ml.tensor(case.params, {dtype = "float64"}), case.bilinear, case.fill)
  end
  return core._augment_jitter(x, ml.tensor(case.params, {dtype = "float64"}))
end

describe("augment kernels against torchvision's formulas", function()
  for _, case in ipairs(cases) do
    it(case.name, function()
      local out = run(case)
      local want = tensor_of(case.expected)
      assert.are.equal(want.dtype, out.dtype)
      if want.dtype == "uint8" then
        -- compare as numbers, and count the pixels one step apart
        local d = (out:long() - want:long()):abs()
        assert.is_true(d:max():item() <= tolerance(case).atol, case.name .. ": max difference " .. d:max():item())
        assert.is_true(d:gt(0):sum():item() <= math.max(1, want:numel() // 100), case.name)
      else
        testing.assert_close(out, want, tolerance(case))
      end
    end)
  end

  it("makes torchvision's inverse matrices from its parameters", function()
    for _, case in ipairs(cases) do
      if case.tv then
        local s = case.input.shape
        local h, w = s[#s - 1], s[#s]
        for b, p in ipairs(case.tv) do
          local cx, cy = 0.0, 0.0
          if case.center then cx, cy = case.center[1] - w * 0.5, case.center[2] - h * 0.5 end
          local m = T._inverse_affine(cx, cy, p[1], p[2][1], p[2][2], p[3], p[4][1], p[4][2])
          testing.assert_close(ml.tensor(m, {dtype = "float64"}), ml.tensor(case.params[b], {dtype = "float64"}),
                               {rtol = 1e-12, atol = 1e-12})
        end
      end
    end
  end)

  it("refuses what the kernels cannot do", function()
    local x = ml.zeros({2, 3, 4, 4})
    local ok, err = pcall(core._augment_jitter, x, ml.zeros({2, 3}, {dtype = "float64"}))
    assert.matches("color_jitter: brightness and contrast of greyscale images %(1 channel%), got 3 channels", err)
    ok, err = pcall(core._augment_affine, x, ml.zeros({3, 6}, {dtype = "float64"}), false, 0)
    assert.matches("affine: params must be float64 %[2, 6%], got float64 %[3, 6%]", err)
    ok, err = pcall(core._augment_crop, ml.zeros({4, 4}), ml.zeros({1, 3}, {dtype = "int64"}), 2, 2, 0, 0)
    assert.matches("crop: images must be %[B, C, H, W%], got shape %[4, 4%]", err)
  end)
end)

local function image(seed, shape, dtype)
  ml.manual_seed(seed)
  local x = (ml.rand(shape) * 255.99):byte()
  if dtype == "float32" then return x:float() / 255 end
  return x
end

describe("augmentation transforms", function()
  local all = {
    function() return T.RandomCrop(24, {padding = 4}) end,
    function() return T.RandomHorizontalFlip() end,
    function() return T.RandomRotation(15) end,
    function() return T.RandomAffine(10, {translate = {0.1, 0.1}, scale = {0.9, 1.1}, shear = 5,
                                          interpolation = "bilinear"}) end,
    function() return T.ColorJitter(0.4, 0.4) end,
  }

  it("draw per image what a batch draws for the same images in order", function()
    for _, make in ipairs(all) do
      local t = make()
      local xb = image(1, {5, 28, 28}, "float32")
      ml.manual_seed(7)
      local batch = t:batch(xb)
      ml.manual_seed(7)
      local one = {}
      for i = 1, 5 do one[i] = t(xb[i]) end
      testing.assert_close(batch, ml.stack(one), {rtol = 0, atol = 0, msg = tostring(t)})
    end
  end)

  it("are repeatable under a seed or their own generator, and keep the shape's rank", function()
    local x = image(2, {1, 28, 28}, "uint8")
    for _, make in ipairs(all) do
      local t = make()
      local a = ml.testing.seeded(function() return t(x) end, 3)
      local b = ml.testing.seeded(function() return t(x) end, 3)
      testing.assert_close(a, b, {rtol = 0, atol = 0})
      assert.are.equal(3, a:dim())
      assert.are.equal("uint8", a.dtype)
    end
    local g1, g2 = ml.Generator():manual_seed(5), ml.Generator():manual_seed(5)
    local r1 = T.RandomRotation(30, {generator = g1})
    local r2 = T.RandomRotation(30, {generator = g2})
    testing.assert_close(r1(x), r2(x), {rtol = 0, atol = 0})
  end)

  it("do what they say", function()
    local x = image(3, {1, 6, 8}, "uint8")
    local rows = x[1]:totable()
    local flipped = {}
    for i, r in ipairs(rows) do
      flipped[i] = {}
      for j = 1, #r do flipped[i][j] = r[#r + 1 - j] end
    end
    testing.assert_close(T.RandomHorizontalFlip(1)(x), ml.tensor({flipped}, {dtype = "uint8"}), {rtol = 0, atol = 0})
    testing.assert_close(T.RandomHorizontalFlip(0)(x), x, {rtol = 0, atol = 0})
    testing.assert_close(T.RandomRotation(0)(x), x, {rtol = 0, atol = 0})
    testing.assert_close(T.RandomAffine(0)(x), x, {rtol = 0, atol = 0})
    testing.assert_close(T.RandomCrop({6, 8})(x), x, {rtol = 0, atol = 0})
    testing.assert_close(T.ColorJitter(0, 0)(x), x, {rtol = 0, atol = 0})
    -- a crop is a window of the padded image
    local c = ml.testing.seeded(function() return T.RandomCrop({3, 4}, {padding = 2, fill = 9})(x) end)
    assert.are.same({1, 3, 4}, c:shape())
    -- a 180-degree rotation of an odd-sized image is exact with nearest
    local y = image(4, {5, 7}, "uint8")
    local r = T.RandomRotation({180, 180})(y):totable()
    local yt = y:totable()
    for i = 1, 5 do for j = 1, 7 do assert.are.equal(yt[6 - i][8 - j], r[i][j]) end end
    -- brightness 2 doubles and clamps
    local f = T.ColorJitter({2, 2})(ml.tensor({{{0.1, 0.3}, {0.6, 1}}}))
    testing.assert_close(f, ml.tensor({{{0.2, 0.6}, {1, 1}}}))
  end)

  it("report bad arguments at the caller's line", function()
    local function err_of(fn)
      local ok, e = pcall(fn)
      assert.is_false(ok)
      return e
    end
    assert.matches("augment_spec.lua:%d+: RandomCrop: size must be an integer or {height, width}",
                   err_of(function() T.RandomCrop("a") end))
    assert.matches("RandomCrop: required crop size %(30, 30%) is larger than the padded image size %(28, 28%)",
                   err_of(function() T.RandomCrop(30)(image(1, {28, 28}, "uint8")) end))
    assert.matches("RandomCrop: padding_mode must be constant, edge, reflect or symmetric",
                   err_of(function() T.RandomCrop(3, {padding_mode = "wrap"}) end))
    assert.matches("ColorJitter: saturation needs colour images",
                   err_of(function() T.ColorJitter(0.1, 0.1, 0.2) end))
    assert.matches("RandomRotation: expected an image %[H, W%] or %[C, H, W%], got shape %[3%]",
                   err_of(function() T.RandomRotation(3)(ml.zeros({3})) end))
    assert.matches("RandomAffine: interpolation must be",
                   err_of(function() T.RandomAffine(3, {interpolation = "cubic"}) end))
    assert.matches("RandomHorizontalFlip: option 'generator' must be an ml.Generator",
                   err_of(function() T.RandomHorizontalFlip(0.5, {generator = 1}) end))
  end)

  it("compose with ToTensor and Normalize, per sample and in the DataLoader's batches", function()
    local x = image(5, {40, 28, 28}, "uint8")
    local y = ml.zeros({40}, {dtype = "int64"})
    local ds = data.TensorDataset(x, y)
    local chain = T.Compose({T.RandomCrop(28, {padding = 2}), T.ToTensor(), T.Normalize(0.5, 0.25)})
    -- a dataset whose first column goes through chain (as MNIST's transform)
    ds._columns[1].chain = {chain.steps[1], chain.steps[2], chain.steps[3]}
    local loader = data.DataLoader(ds, {batch_size = 16})
    ml.manual_seed(11)
    local batches = {}
    for _, b in loader:iter() do batches[#batches + 1] = b[1] end
    local got = ml.cat(batches, 1)
    assert.are.same({40, 1, 28, 28}, got:shape())
    ml.manual_seed(11)
    local one = {}
    for i = 1, 40 do one[i] = chain(x[i]) end
    testing.assert_close(got, ml.stack(one), {rtol = 0, atol = 0})
    assert.matches("Compose%(RandomCrop%(size=%(28, 28%), padding=2%), ToTensor%(%), Normalize", tostring(chain))
  end)
end)

describe("Lua functions in a chain", function()
  local function loader_all(ds, bs)
    local xs, ys = {}, {}
    for _, b in data.DataLoader(ds, {batch_size = bs}):iter() do
      xs[#xs + 1] = b[1]
      ys[#ys + 1] = b[2]
    end
    return ml.cat(xs, 1), ml.cat(ys, 1)
  end

  local function dataset(x, y, tf, ttf)
    local ds = data.TensorDataset(x, y)
    ds._columns[1].chain = {}
    local function steps(t)
      if t == nil then return {} end
      if type(t) == "table" and t.kind == "compose" then return t.steps end
      return {t}
    end
    for i, s in ipairs(steps(tf)) do ds._columns[1].chain[i] = s end
    ds._columns[2].chain = {}
    for i, s in ipairs(steps(ttf)) do ds._columns[2].chain[i] = s end
    return ds
  end

  it("Lambda(fn, {batched = true}) gives the batches fn gives per sample", function()
    local x = image(8, {30, 28, 28}, "uint8")
    local y = ml.arange(30, {dtype = "int64"})
    local per_sample = function(v) return v:float() / 255 - 0.5 end
    local batched = T.Lambda(function(v) return v:float() / 255 - 0.5 end, {batched = true})
    local a = loader_all(dataset(x, y, per_sample), 8)
    local b = loader_all(dataset(x, y, batched), 8)
    testing.assert_close(b, a, {rtol = 0, atol = 0})
    -- one sample goes through as a batch of one
    testing.assert_close(batched(x[3]), per_sample(x[3]), {rtol = 0, atol = 0})
    assert.are.equal("Lambda(batched=True)", tostring(batched))
    assert.are.equal("Lambda()", tostring(T.Lambda(per_sample)))
    local ok, err = pcall(function() T.Lambda(function(v) return 1 end, {batched = true})(x[1]) end)
    assert.matches("Lambda: a batched function must return a batch", err)
  end)

  it("a chain with a function: built-in steps around it on the batch, the same values", function()
    local x = image(9, {21, 28, 28}, "uint8")
    local y = ml.tensor({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6}, {dtype = "int64"})
    local tf = T.Compose({T.ToTensor(), T.Normalize(0.1307, 0.3081), function(v) return v * 2 end,
                          T.Normalize(0.5, 2)})
    local ttf = T.Compose({T.OneHot(10), function(v) return v * 3 end})
    local ds = dataset(x, y, tf, ttf)
    local bx, by = loader_all(ds, 6)
    local sx, sy = {}, {}
    for i = 1, 21 do
      local s = ds[i]
      sx[i], sy[i] = s[1], s[2]
    end
    -- the gathered prefix folds Normalize into the gather: within an ulp
    testing.assert_close(bx, ml.stack(sx))
    testing.assert_close(by, ml.stack(sy), {rtol = 0, atol = 0})
    assert.are.same({21, 1, 28, 28}, bx:shape())
  end)
end)
