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

-- read(path) -> {columns = {...}, rows = {{col = number, ...}, ...}, truncated}.
-- The file is CSV per RFC 4180 (quoted cells may hold commas, quotes and line
-- breaks), as the CSVLogger writes it; empty cells are absent from their row.
-- A last line that has no line break and not as many cells as the header is a
-- row a killed writer did not finish: it is left out and `truncated` is true, so
-- a run's log reads up to its last complete row. (A last row with all its cells
-- is kept: a file written by hand may lack the final newline.)
function history.read(path)
  if type(path) ~= "string" then
    util.fail("history.read", "expected the path of a metrics.csv, got %s", util.typename(path))
  end
  local f, err = core._sys.open(path, "rb")
  -- io.open's message already names the path
  if not f then util.fail("history.read", "cannot open %s", tostring(err)) end
  local text = f:read("a")
  f:close()
  local records = util.csv_records(text or "")
  local columns, line = records()
  if not columns then
    if line then util.fail("history.read", "%s %s", path, line) end
    util.fail("history.read", "%s is empty", path)
  end
  local rows, truncated = {}, false
  while true do
    local cells, n, ended = records()
    if not cells then
      if n then util.fail("history.read", "%s %s", path, n) end
      break
    end
    if #cells ~= #columns then
      if not ended then
        truncated = true
        break
      end
      util.fail("history.read", "%s line %d has %d cells, the header %d", path, n, #cells, #columns)
    end
    local row = {}
    for i, c in ipairs(columns) do
      if cells[i] ~= "" then row[c] = cell_value(cells[i]) end
    end
    rows[#rows + 1] = row
  end
  return {columns = columns, rows = rows, truncated = truncated}
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

-- The panel a column is drawn on: its name without a train_/val_/test_ prefix or
-- a _step/_epoch suffix, so that curves logged as users log them share one:
-- loss, loss_step, loss_epoch and val_loss; train_acc and val_acc.
local function panel_name(column)
  local base = column:match("^train_(.+)$") or column:match("^val_(.+)$")
               or column:match("^test_(.+)$") or column
  return base:match("^(.+)_step$") or base:match("^(.+)_epoch$") or base
end
history._panel_name = panel_name

-- panels(h) -> {{title = name, series = {{label = column, x = steps, y = values}}}}:
-- one panel per metric, in the order the columns first name it; finite values
-- only (a NaN or an infinity has no place on an axis), panels without any left out.
function history.panels(h)
  local panels, by_name = {}, {}
  for _, c in ipairs(h.columns) do
    if c ~= "epoch" and c ~= "step" then
      local base = panel_name(c)
      local p = by_name[base]
      if not p then
        p = {title = base, series = {}}
        by_name[base] = p
        panels[#panels + 1] = p
      end
      local xs, ys = {}, {}
      for _, row in ipairs(h.rows) do
        local v = row[c]
        if type(v) == "number" and v - v == 0 and type(row.step) == "number" then
          xs[#xs + 1] = row.step
          ys[#ys + 1] = v
        end
      end
      if #xs > 0 then p.series[#p.series + 1] = {label = c, x = xs, y = ys} end
    end
  end
  local keep = {}
  for _, p in ipairs(panels) do if #p.series > 0 then keep[#keep + 1] = p end end
  return keep
end

-- plot(metrics_csv, png_path): the panels above, each against step, to a PNG.
function history.plot(csv_path, png_path, opts)
  if type(png_path) ~= "string" then
    util.fail("plot", "expected the path of the PNG to write, got %s", util.typename(png_path))
  end
  local keep = history.panels(history.read(csv_path))
  if #keep == 0 then util.fail("plot", "%s has no metric with a step to plot", csv_path) end
  core._plot_png(png_path, keep, opts or {})
  return png_path
end

history._fmt = progress._fmt_metric
return history
