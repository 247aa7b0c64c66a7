-- After a kill (tests/crash/run.sh): every metrics.csv reads up to its last
-- complete row, and the last checkpoint loads. Prints the checkpoint's epoch (-1
-- when there is none yet).
--   moonlight check.lua DIR
local ml = require "moonlight"
local history = require "moonlight.history"
local callbacks = require "moonlight.callbacks"
local dir = arg[1]

local logs = dir .. "/logs"
for _, name in ipairs(ml._sys.listdir(logs) or {}) do
  local csv = logs .. "/" .. name .. "/metrics.csv"
  if ml._sys.kind(csv) then
    local h = history.read(csv) -- raises when a row cannot be read
    local last = -1
    for i, row in ipairs(h.rows) do
      -- every row whole: its step, its epoch, and a loss or a val_loss
      assert(math.type(row.step) == "integer" and math.type(row.epoch) == "integer",
        ("%s row %d has no step or epoch"):format(csv, i))
      assert(type(row.loss) == "number" or type(row.val_loss) == "number",
        ("%s row %d has no value"):format(csv, i))
      assert(row.step >= last, ("%s row %d: step %d after %d"):format(csv, i, row.step, last))
      last = row.step
    end
  end
end

local last = dir .. "/ckpt/last.safetensors"
if not ml._sys.kind(last) then
  print("epoch -1")
  return
end
local tensors, state = callbacks.load_checkpoint(last)
local n = 0
for name, t in pairs(tensors) do
  if name:match("^state_dict%.") then
    n = n + 1
    for _, v in ipairs(t:reshape({-1}):totable()) do assert(v == v, name .. " holds a NaN") end
  end
end
assert(n == 4, "the checkpoint has " .. n .. " weights, not 4")
assert(math.type(state.epoch) == "integer" and math.type(state.global_step) == "integer")
assert(state.global_step == (state.epoch + 1) * 8, "epoch and step disagree")
print("epoch " .. state.epoch)
