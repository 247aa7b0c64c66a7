-- Soak: the reference model (tests/lua/reference_model.lua, the tutorial's
-- 784-64-32-10 MLP with its custom MSE) trained for many steps in one process
-- through ml.Trainer, as the reference experiment runs it (MNIST, Adam 1e-3, batch
-- 128, validation every epoch, a CSVLogger, the default ModelCheckpoint), with no
-- collectgarbage() anywhere. Samples the resident set (/proc/self/status: VmRSS
-- and its anonymous part, RssAnon) and the Lua heap every --every steps; after
-- --warmup steps the RSS must stay within --tolerance of its smallest sample
-- (issue 17: 5 %). Prints one line per sample and a summary line; exits 1 when
-- the RSS grew past the tolerance.
--
--   build/moonlight scripts/bench/soak_train.lua [--steps 20000] [--warmup 2000]
--       [--every 1000] [--tolerance 0.05] [--data data/mnist] [--logs DIR]
--
--   SOAK steps=20000 rss_min_kb=... rss_max_kb=... spread_pct=... rss_slope_kb_per_1000=...
--        anon_min_kb=... anon_max_kb=... anon_slope_kb_per_1000=...
--        lua_min_kb=... lua_max_kb=... lua_slope_kb_per_1000=... seconds=... ok=true
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data

local opts = {steps = 20000, warmup = 2000, every = 1000, tolerance = 0.05, data = "data/mnist",
              logs = "logs/soak", seed = 0}
do
  local i = 1
  while arg and arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or opts[k] == nil or arg[i + 1] == nil then
      io.stderr:write("usage: soak_train.lua [--steps N] [--warmup N] [--every N] [--tolerance F] " ..
                      "[--data DIR] [--logs DIR] [--seed N]\n")
      os.exit(2)
    end
    opts[k] = math.tointeger(tonumber(arg[i + 1])) or tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 2
  end
end
ml.manual_seed(opts.seed)

-- the model the specs share (run from the repository's root)
local ref = dofile("tests/lua/reference_model.lua")
local function custom_loss(y_pred, y_true) return ml.mean(ml.square(y_pred - y_true)) end
local function custom_error(y_pred, y_true) return ml.abs(ml.mean(y_true - y_pred)) end
local Soak = ref.myModel:extend("Soak")
function Soak:training_step(batch)
  local y_pred = self.layers(batch[1])
  local loss = custom_loss(y_pred, batch[2])
  self:log_dict({loss = loss, error = custom_error(y_pred, batch[2])})
  return loss
end
function Soak:validation_step(batch)
  local y_pred = self.layers(batch[1])
  self:log_dict({val_loss = custom_loss(y_pred, batch[2]), val_error = custom_error(y_pred, batch[2])})
end
function Soak:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-3}) end

local function have(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
if not have(opts.data .. "/train-images-idx3-ubyte") and not have(opts.data .. "/train-images-idx3-ubyte.gz") then
  io.stderr:write("soak_train: no MNIST in " .. opts.data .. " (scripts/get-data fetches it): skipped\n")
  os.exit(77)
end
local T = data.transforms
local train = data.MNIST(opts.data, {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})
local test = data.MNIST(opts.data, {train = false, transform = T.ToTensor(), target_transform = T.OneHot(10)})
local train_loader = data.DataLoader(train, {batch_size = 128, shuffle = true})
local test_loader = data.DataLoader(test, {batch_size = 128})

-- the resident set, and its anonymous part (the heaps: what a leak grows; the
-- rest is mapped files, MNIST's pages among them, which the kernel may drop and
-- fault in again)
local function rss_kb()
  local total, anon
  for line in io.lines("/proc/self/status") do
    total = total or tonumber(line:match("^VmRSS:%s*(%d+)"))
    anon = anon or tonumber(line:match("^RssAnon:%s*(%d+)"))
  end
  return total, anon
end

local samples = {}
local sampler = {}
function sampler.on_train_batch_end(_, trainer)
  local step = trainer.global_step
  if step % opts.every == 0 then
    -- reading the count does not collect
    local rss, anon = rss_kb()
    local s = {step = step, rss = rss, anon = anon, lua = collectgarbage("count")}
    samples[#samples + 1] = s
    print(string.format("step %6d  rss %8d KB  anon %8d KB  lua heap %8.0f KB", s.step, s.rss, s.anon, s.lua))
    io.stdout:flush()
  end
end

local start = ml._sys.clock()
local trainer = ml.Trainer({max_steps = opts.steps, max_epochs = -1, enable_progress_bar = false,
                            enable_model_summary = false, callbacks = {sampler},
                            logger = ml.loggers.CSVLogger(opts.logs, {name = "soak"})})
trainer:fit(Soak(), train_loader, test_loader)
local seconds = ml._sys.clock() - start

-- after the warm-up: the spread of the RSS and the least-squares slopes
local after = {}
for _, s in ipairs(samples) do if s.step > opts.warmup then after[#after + 1] = s end end
if #after < 2 then
  io.stderr:write("soak_train: fewer than two samples after the warm-up; raise --steps\n")
  os.exit(2)
end
local function stats(key)
  local lo, hi, n = math.huge, -math.huge, #after
  local mx, my = 0, 0
  for _, s in ipairs(after) do
    lo, hi = math.min(lo, s[key]), math.max(hi, s[key])
    mx, my = mx + s.step / n, my + s[key] / n
  end
  local sxy, sxx = 0, 0
  for _, s in ipairs(after) do
    sxy = sxy + (s.step - mx) * (s[key] - my)
    sxx = sxx + (s.step - mx) ^ 2
  end
  return lo, hi, sxy / sxx * 1000
end
local rlo, rhi, rslope = stats("rss")
local alo, ahi, aslope = stats("anon")
local llo, lhi, lslope = stats("lua")
local spread = (rhi - rlo) / rlo
local ok = spread <= opts.tolerance
print(string.format("SOAK steps=%d rss_min_kb=%d rss_max_kb=%d spread_pct=%.2f rss_slope_kb_per_1000=%.2f " ..
  "anon_min_kb=%d anon_max_kb=%d anon_slope_kb_per_1000=%.2f " ..
  "lua_min_kb=%.0f lua_max_kb=%.0f lua_slope_kb_per_1000=%.2f seconds=%.1f ok=%s",
  trainer.global_step, rlo, rhi, spread * 100, rslope, alo, ahi, aslope, llo, lhi, lslope, seconds, tostring(ok)))
os.exit(ok and 0 or 1)
