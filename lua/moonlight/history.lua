-- ml.history: a CSVLogger's metrics.csv read back, the per-epoch view the
-- tutorial prints with pandas (`groupby("epoch").last()`), and loss curves drawn
-- to a PNG (cairo, in C).
local core = require "moonlight.core"
local progress = require "moonlight.progress"
local util = require "moonlight.util"

local history = {}

-- a cell as a value: a number when it reads as one (nan, inf and -inf too, as
-- the CSVLogger writes them), else the string
local specials = {nan = 0 / 0, inf = math.huge, ["-inf"] = -math.huge}
local function cell_value(cell)
  local v = tonumber(cell) or specials[cell]
  if v == nil then return cell end
  return math.tointeger(v) or v
end

-- read(path) -> {columns = {...}, rows = {{col = number, ...}, ...}}. The file is
-- CSV per RFC 4180 (quoted cells may hold commas, quotes and line breaks), as the
-- CSVLogger writes it; empty cells are absent from their row.
function history.read(path)
  local f, err = core._sys.open(path, "rb")
  if not f then error("history.read: cannot open " .. path .. ": " .. tostring(err), 2) end
  local text = f:read("a")
  f:close()
  local records = util.csv_records(text or "")
  local columns, line = records()
  if not columns then
    if line then error(("history.read: %s %s"):format(path, line), 2) end
    error("history.read: " .. path .. " is empty", 2)
  end
  local rows = {}
  while true do
    local cells, n = records()
    if not cells then
      if n then error(("history.read: %s %s"):format(path, n), 2) end
      break
    end
    if #cells ~= #columns then
      error(string.format("history.read: %s line %d has %d cells, the header %d", path, n, #cells, #columns), 2)
    end
    local row = {}
    for i, c in ipairs(columns) do
      if cells[i] ~= "" then row[c] = cell_value(cells[i]) end
    end
    rows[#rows + 1] = row
  end
  return {columns = columns, rows = rows}
end

-- per_epoch(h) -> rows, one per epoch: the last value of each column in that epoch
function history.per_epoch(h)
  local by_epoch, order = {}, {}
  for _, row in ipairs(h.rows) do
    local e = row.epoch
    if e ~= nil then
      if not by_epoch[e] then
        by_epoch[e] = {epoch = e}
        order[#order + 1] = e
      end
      for k, v in pairs(row) do by_epoch[e][k] = v end
    end
  end
  table.sort(order)
  local out = {}
  for _, e in ipairs(order) do out[#out + 1] = by_epoch[e] end
  return out
end

-- format_table(rows, columns): a text table like pandas prints, epoch first
function history.format_table(rows, columns)
  local cols = {"epoch"}
  for _, c in ipairs(columns) do if c ~= "epoch" then cols[#cols + 1] = c end end
  local cells, widths = {}, {}
  for j, c in ipairs(cols) do widths[j] = #c end
  for i, row in ipairs(rows) do
    cells[i] = {}
    for j, c in ipairs(cols) do
      local v = row[c]
      local s
      if v == nil or v ~= v then s = "NaN"
      elseif math.type(v) == "integer" then s = tostring(v)
      elseif v ~= 0 and math.abs(v) < 1e-4 then s = string.format("%.6e", v) -- as pandas shows tiny values
      else s = string.format("%.6f", v) end
      cells[i][j] = s
      widths[j] = math.max(widths[j], #s)
    end
  end
  local lines = {}
  local h = {}
  for j, c in ipairs(cols) do h[j] = string.format("%" .. widths[j] .. "s", c) end
  lines[1] = table.concat(h, "  ")
  for i = 1, #rows do
    local r = {}
    for j = 1, #cols do r[j] = string.format("%" .. widths[j] .. "s", cells[i][j]) end
    lines[#lines + 1] = table.concat(r, "  ")
  end
  return table.concat(lines, "\n")
end

-- plot(metrics_csv, png_path): one panel per metric name (train and val_ curves of
-- a metric share a panel), each against step.
function history.plot(csv_path, png_path, opts)
  local h = history.read(csv_path)
  local panels, by_name = {}, {}
  for _, c in ipairs(h.columns) do
    if c ~= "epoch" and c ~= "step" then
      local base = c:gsub("^val_", ""):gsub("^test_", ""):gsub("_step$", ""):gsub("_epoch$", "")
      local p = by_name[base]
      if not p then
        p = {title = base, series = {}}
        by_name[base] = p
        panels[#panels + 1] = p
      end
      local xs, ys = {}, {}
      for _, row in ipairs(h.rows) do
        local v = row[c]
        -- finite numbers only: a NaN or an infinity has no place on an axis
        if type(v) == "number" and v - v == 0 and type(row.step) == "number" then
          xs[#xs + 1] = row.step
          ys[#ys + 1] = row[c]
        end
      end
      if #xs > 0 then p.series[#p.series + 1] = {label = c, x = xs, y = ys} end
    end
  end
  local keep = {}
  for _, p in ipairs(panels) do if #p.series > 0 then keep[#keep + 1] = p end end
  if #keep == 0 then error("plot: " .. csv_path .. " has no metric with a step to plot", 2) end
  core._plot_png(png_path, keep, opts or {})
  return png_path
end

history._fmt = progress._fmt_metric
return history
