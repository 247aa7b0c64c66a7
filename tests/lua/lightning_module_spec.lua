-- The LightningModule side of nn.Module (self:log, self:log_dict,
-- self:save_hyperparameters) is defined in nn.lua: it exists before ml.Trainer is
-- loaded (issue 17, 1b: it used to be patched in by loading trainer.lua).
local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"

local function run_script(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local p = io.popen(bin .. " " .. path .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  os.remove(path)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc
end

describe("the LightningModule methods of nn.Module", function()
  it("work in a fresh process before ml.Trainer is touched", function()
    local out, rc = run_script([[
local ml = require "moonlight"
local Net = ml.nn.Module:extend("Net")
function Net:init(h) self:save_hyperparameters({hidden = h}) end
local net = Net(3)
print("hidden", net.hparams.hidden)
print("trainer loaded", package.loaded["moonlight.trainer"] ~= nil)
print("log", type(ml.nn.Module.log), type(ml.nn.Module.log_dict))
]])
    assert.are.equal(0, rc, out)
    assert.matches("hidden\t3\n", out, 1, true)
    assert.matches("trainer loaded\tfalse\n", out, 1, true)
    assert.matches("log\tfunction\tfunction\n", out, 1, true)
  end)

  it("say what is wrong when used outside a Trainer or with bad arguments", function()
    local ml = require "moonlight"
    local m = ml.nn.Linear(1, 1)
    local ok, e = pcall(function() m:log("x", 1) end)
    assert.is_false(ok)
    assert.matches("log: self:log can only be called inside a step or hook run by a Trainer", e, 1, true)
    assert.matches("lightning_module_spec.lua:%d+:", e)
    ok, e = pcall(function() m:log_dict(5) end)
    assert.is_false(ok)
    assert.matches("log_dict: expected a table of name -> value, got number", e, 1, true)
    ok, e = pcall(function() m:save_hyperparameters("hidden") end)
    assert.is_false(ok)
    assert.matches("save_hyperparameters: expected a table of name -> value, got string", e, 1, true)
    m:save_hyperparameters()
    assert.are.same({}, m.hparams)
  end)

  it("reach the logger's hparams.yaml through fit", function()
    local ml = require "moonlight"
    local Net = ml.nn.Module:extend("HNet")
    function Net:init(h)
      self:save_hyperparameters({hidden = h, name = "a: b"})
      self.lin = ml.nn.Linear(2, 1)
    end
    function Net:forward(x) return self.lin(x) end
    function Net:training_step(batch)
      local loss = self(batch[1]):square():mean()
      self:log_dict({loss = loss, ["a,b"] = 1})
      return loss
    end
    function Net:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end
    local dir = os.tmpname()
    os.remove(dir)
    local logger = ml.loggers.CSVLogger(dir, {name = "h"})
    local trainer = ml.Trainer({max_epochs = 1, logger = logger, log_every_n_steps = 1,
                                enable_checkpointing = false, enable_progress_bar = false,
                                enable_model_summary = false})
    trainer:fit(Net(4), ml.data.DataLoader(ml.data.TensorDataset(ml.ones({4, 2})), {batch_size = 2}))
    local f = assert(io.open(logger.log_dir .. "/hparams.yaml"))
    assert.are.equal('hidden: 4\nname: "a: b"\n', f:read("a"))
    f:close()
    local h = require("moonlight.history").read(logger.metrics_file)
    assert.are.same({"a,b", "epoch", "loss", "step"}, h.columns)
    assert.are.equal(1, h.rows[1]["a,b"])
  end)
end)
