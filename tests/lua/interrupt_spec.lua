-- Ctrl-C during Trainer:fit (issue 17, 3b): the first SIGINT finishes the current
-- step, saves a checkpoint, flushes the logger, prints a message and exits with
-- 130; a second one exits at once; the checkpoint resumes mid-epoch to the same
-- numbers as a run that was never stopped. Under the CLI and under a stock lua5.4.
-- (ml_request_stop, the embedding API's way, is tests/c/test_stop.c.)
local ml = require "moonlight"
local U = require "test_util"
local tmpdir, read_file = U.tmpdir, U.read_file

local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"
local build_dir = os.getenv("MOONLIGHT_BUILD_DIR") or "build"
local lua = "LUA_CPATH='" .. build_dir .. "/?.so;;' lua5.4"

-- The training script: a small regression, shuffled batches (so a resume must
-- draw the same order), SIGINT sent to itself at chosen steps. The SIGINT goes
-- through io.popen: os.execute (system()) would have the parent ignore it.
-- arg: dir, then "kill:<step>[,<step>]" (after those steps; a step twice: two
-- Ctrl-C), "epoch:<e>" (in epoch e's on_train_epoch_end) or "-", then "last" to
-- resume.
local SCRIPT = [[
local ml = require "moonlight"
local nn, data = ml.nn, ml.data
local dir, kills, resume = arg[1], arg[2], arg[3]
local at = {}
for s in (kills:match("^kill:(.*)") or ""):gmatch("%d+") do at[#at + 1] = tonumber(s) end
local at_epoch = tonumber(kills:match("^epoch:(%d+)"))
ml.manual_seed(1)
local x, y = ml.randn({48, 3}), ml.randn({48, 1})
local Net = nn.Module:extend("Net")
function Net:init() self.fc = nn.Linear(3, 1); self.drop = nn.Dropout(0.2) end
function Net:training_step(b)
  local l = ml.F.mse_loss(self.fc(self.drop(b[1])), b[2])
  self:log("loss", l)
  return l
end
function Net:validation_step(b) self:log("val_loss", ml.F.mse_loss(self.fc(b[1]), b[2])) end
function Net:configure_optimizers() return ml.optim.Adam(self:parameters(), {lr = 0.05}) end
local signal = {on_train_epoch_end = function(_, trainer)
  if trainer.current_epoch == at_epoch then io.popen("kill -INT $PPID"):close() end
end}
function signal.on_train_batch_end(_, trainer)
  for i, s in ipairs(at) do
    if trainer.global_step == s then
      -- two steps given as "a,a": a second Ctrl-C while the first is pending
      local twice = at[i + 1] == s
      io.popen("kill -INT $PPID" .. (twice and "; sleep 0.2; kill -INT $PPID" or "")):close()
      return
    end
  end
end
local loader = data.DataLoader(data.TensorDataset(x, y), {batch_size = 8, shuffle = true})
local val = data.DataLoader(data.TensorDataset(x, y), {batch_size = 16})
local tr = ml.Trainer({max_epochs = 4, logger = ml.loggers.CSVLogger(dir, {name = "run"}),
                       log_every_n_steps = 1, enable_progress_bar = false, enable_model_summary = false,
                       callbacks = {signal, ml.callbacks.ModelCheckpoint({dirpath = dir .. "/ckpt"})}})
local model = Net()
tr:fit(model, loader, val, {ckpt_path = resume ~= "-" and resume or nil})
local w = model.fc.weight:totable()[1]
print(string.format("done step=%d interrupted=%s weights=%a,%a,%a,%a", tr.global_step, tostring(tr.interrupted),
  w[1], w[2], w[3], model.fc.bias:item()))
]]

local script_path = os.tmpname() .. ".lua"
do
  local f = assert(io.open(script_path, "w"))
  f:write(SCRIPT)
  f:close()
end

-- runs the script with interp; returns stdout, stderr, the shell's status
local function run(interp, dir, kills, resume)
  local err = os.tmpname()
  local p = io.popen(("%s %s %s %s %s 2>%s; echo \"rc=$?\""):format(interp, script_path, dir, kills,
                                                                    resume or "-", err))
  local out = p:read("a")
  p:close()
  local stderr = read_file(err)
  os.remove(err)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), stderr, rc
end

local reference -- the weights of a run that was never stopped
local function weights_of(out) return out:match("weights=(%S+)") end

describe("Ctrl-C during fit", function()
  setup(function()
    local out, err, rc = run(bin, tmpdir(), "-")
    assert.are.equal(0, rc, err)
    assert.matches("done step=24 interrupted=false", out)
    reference = weights_of(out)
  end)

  it("under the CLI: finishes the step, saves, flushes, says so and exits 130; the checkpoint resumes", function()
    local dir = tmpdir()
    local out, err, rc = run(bin, dir, "kill:9")
    assert.are.equal(130, rc, err)
    assert.is_nil(out:find("done"), out)
    -- one line, no traceback
    assert.are.equal("moonlight: fit: stopped by Ctrl-C (SIGINT) at epoch 1, step 9; checkpoint saved to " ..
      dir .. "/ckpt/interrupted.safetensors (resume with fit(model, ..., {ckpt_path = \"last\"}))\n", err)
    -- the logger's rows up to the last step, and hparams.yaml
    local h = require("moonlight.history").read(dir .. "/run/version_0/metrics.csv")
    assert.are.equal(8, h.rows[#h.rows].step)
    assert.is_false(h.truncated)
    assert.are.equal("{}\n", read_file(dir .. "/run/version_0/hparams.yaml"))
    local _, state = require("moonlight.callbacks").load_checkpoint(dir .. "/ckpt/interrupted.safetensors")
    assert.are.equal(9, state.global_step)
    assert.are.equal(1, state.epoch)
    assert.are.equal(3, state.batches_done)
    -- resumed inside epoch 1: the same batches, the same numbers as never stopped
    local out2, err2, rc2 = run(bin, dir, "-", "last")
    assert.are.equal(0, rc2, err2)
    assert.matches("done step=24 interrupted=false", out2)
    assert.are.equal(reference, weights_of(out2))
  end)

  it("stops at an epoch's end, or before the next epoch, and resumes there", function()
    -- step 12 is epoch 1's last: stopped after it, before validation and the epoch's end;
    -- "epoch:1": asked in epoch 1's on_train_epoch_end, stopped before epoch 2
    for _, case in ipairs({{"kill:12", 1, 6}, {"epoch:1", 2, 0}}) do
      local dir = tmpdir()
      local _, err, rc = run(bin, dir, case[1])
      assert.are.equal(130, rc, err)
      local _, state = require("moonlight.callbacks").load_checkpoint(dir .. "/ckpt/interrupted.safetensors")
      assert.are.equal(12, state.global_step)
      assert.are.same({case[2], case[3]}, {state.epoch, state.batches_done})
      local out2, err2, rc2 = run(bin, dir, "-", "last")
      assert.are.equal(0, rc2, err2)
      assert.are.equal(reference, weights_of(out2), case[1])
    end
  end)

  it("exits at once on a second Ctrl-C", function()
    local dir = tmpdir()
    local out, _, rc = run(bin, dir, "kill:5,5")
    assert.are.equal(130, rc) -- killed by SIGINT: the shell says 128 + 2
    assert.is_nil(out:find("done"))
    assert.is_nil(ml._sys.kind(dir .. "/ckpt/interrupted.safetensors"))
  end)

  it("exits at once when no fit runs", function()
    local p = io.popen(bin .. " -e 'io.popen(\"kill -INT $PPID\"):close(); print(\"still here\")' 2>&1; echo \"rc=$?\"")
    local out = p:read("a")
    p:close()
    assert.matches("^rc=130", out)
  end)

  it("under a stock lua5.4: saves, then lets lua5.4 raise its 'interrupted!'", function()
    local dir = tmpdir()
    local out, err, rc = run(lua, dir, "kill:9")
    assert.are.equal(1, rc, err)
    assert.is_nil(out:find("done"))
    assert.matches("^fit: stopped by Ctrl%-C %(SIGINT%) at epoch 1, step 9; checkpoint saved to ", err)
    assert.matches("interrupted!", err, 1, true)
    local out2, err2, rc2 = run(lua, dir, "-", "last")
    assert.are.equal(0, rc2, err2)
    assert.are.equal(reference, weights_of(out2))
    -- and after fit, lua5.4's own handler is back: a second run's double Ctrl-C
    local out3, _, rc3 = run(lua, tmpdir(), "kill:5,5")
    assert.are.equal(1, rc3)
    assert.is_nil(out3:find("done"))
  end)
end)
