-- A Lightning/tqdm-style progress bar. On a terminal it redraws in place; when
-- stdout is not a terminal (CI, a pipe, a file) it prints one line when a bar
-- closes, with no escape codes.
local core = require "moonlight.core"
local sys = core._sys

local Bar = {}
Bar.__index = Bar

local progress = {}

local function fmt_time(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, (s % 3600) // 60, s % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, sec) end
  return string.format("%02d:%02d", m, sec)
end

local function fmt_metric(v)
  if type(v) ~= "number" then return tostring(v) end
  if math.type(v) == "integer" then return tostring(v) end
  local a = math.abs(v)
  if a ~= 0 and (a < 1e-3 or a >= 1e5) then return string.format("%.3g", v) end
  return string.format("%.3f", v)
end

-- progress.new(description, total, {enabled = true, leave = true, stream = stdout})
function progress.new(desc, total, opts)
  opts = opts or {}
  local self = setmetatable({}, Bar)
  self.desc = desc
  self.total = total
  self.n = 0
  self.start = sys.clock()
  self.last_draw = 0
  self.enabled = opts.enabled ~= false
  self.leave = opts.leave ~= false
  self.stream = opts.stream or sys.stdout -- also where a sandbox has no io
  self.tty = sys.isatty(1)
  self.postfix = {}
  return self
end

-- metrics: an ordered list of {name, value}
function Bar:set_postfix(pairs_list) self.postfix = pairs_list end
-- fn() -> the postfix list, called only when the bar is drawn (drawing is rare;
-- training steps are not)
function Bar:set_postfix_fn(fn) self.postfix_fn = fn end

function Bar:line()
  local elapsed = sys.clock() - self.start
  local rate = self.n > 0 and elapsed > 0 and self.n / elapsed or 0
  local parts = {}
  if self.postfix_fn then self.postfix = self.postfix_fn() end
  for _, kv in ipairs(self.postfix) do parts[#parts + 1] = kv[1] .. "=" .. fmt_metric(kv[2]) end
  local postfix = #parts > 0 and (", " .. table.concat(parts, ", ")) or ""
  local rate_s = rate >= 1 and string.format("%.2fit/s", rate) or
                 (rate > 0 and string.format("%.2fs/it", 1 / rate) or "?it/s")
  local total = self.total
  if total and total > 0 then
    local frac = math.min(self.n / total, 1)
    local width = 10
    local filled = math.floor(frac * width)
    local bar = string.rep("█", filled) .. string.rep(" ", width - filled)
    local remaining = rate > 0 and (total - self.n) / rate or math.huge
    return string.format("%s: %3d%%|%s| %d/%d [%s<%s, %s%s]", self.desc, math.floor(frac * 100),
      bar, self.n, total, fmt_time(elapsed), fmt_time(remaining), rate_s, postfix)
  end
  return string.format("%s: %d [%s, %s%s]", self.desc, self.n, fmt_time(elapsed), rate_s, postfix)
end

function Bar:update(k)
  self.n = self.n + (k or 1)
  if not (self.enabled and self.tty) then return end
  local now = sys.clock()
  -- redraw at most ~10 times a second: drawing is not free
  if now - self.last_draw < 0.1 and self.n ~= self.total then return end
  self.last_draw = now
  self.stream:write("\r", self:line(), "\27[K")
  self.stream:flush()
end

function Bar:close()
  if not self.enabled then return end
  if self.tty then
    if self.leave then
      self.stream:write("\r", self:line(), "\27[K\n")
    else
      self.stream:write("\r\27[K")
    end
  elseif self.leave then
    self.stream:write(self:line(), "\n")
  end
  self.stream:flush()
end

progress._fmt_metric = fmt_metric
return progress
