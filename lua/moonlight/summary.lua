-- ml.summary(model, {input_size = {8, 1, 28, 28}}): torchinfo's summary table
-- (torchinfo 1.7.2's layout and arithmetic). Runs one forward on zeros under
-- no_grad in eval mode, with forward hooks on every module recording what each
-- layer returned.
local core = require "moonlight.core"
local nn = require "moonlight.nn"
local util = require "moonlight.util"

local M = {}
local is_tensor = core.is_tensor

local COLUMNS = {
  input_size = "Input Shape", output_size = "Output Shape", num_params = "Param #",
  mult_adds = "Mult-Adds", trainable = "Trainable",
}

-- 1234567 -> "1,234,567"
local function commas(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  local out = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  if out:sub(1, 1) == "," then out = out:sub(2) end
  return sign .. out
end
M._commas = commas

local function ulen(s) return utf8.len(s) or #s end

local function pad(s, w)
  local n = ulen(s)
  if n >= w then return s end
  return s .. string.rep(" ", w - n)
end

local function prod(t)
  local p = 1
  for _, v in ipairs(t) do p = p * v end
  return p
end

local function elem_bytes(t)
  local dt = t.dtype
  if dt == "float64" or dt == "int64" then return 8 end
  if dt == "uint8" then return 1 end
  return 4
end

-- torchinfo's calculate_size: a tensor's shape; for a table, its first tensor's
local function size_of(v)
  if is_tensor(v) then return v:shape(), elem_bytes(v) end
  if type(v) == "table" and not nn.is_module(v) and v[1] ~= nil then return size_of(v[1]) end
  return {}, 0
end

local function shape_repr(s)
  if #s == 0 then return "--" end
  return "[" .. table.concat(s, ", ") .. "]"
end

local function get_children(list, i)
  local out = {}
  for j = i + 1, #list do
    if list[j].depth <= list[i].depth then break end
    out[#out + 1] = list[j]
  end
  return out
end

local function leftover_params(info)
  local n = info.num_params
  for _, c in ipairs(info.children) do
    if not c.is_recursive then
      n = n - (c.is_leaf and c.num_params or leftover_params(c))
    end
  end
  return n
end

local function leftover_trainable(info)
  local n = info.trainable_params
  for _, c in ipairs(info.children) do
    if not c.is_recursive then
      n = n - (c.is_leaf and c.trainable_params or leftover_trainable(c))
    end
  end
  return n
end

local function new_info(var_name, module, depth, parent)
  local info = {
    var_name = var_name, module = module, depth = depth, parent = parent,
    class_name = module:_get_name(), is_leaf = #module:children() == 0,
    num_params = 0, trainable_params = 0, param_bytes = 0, output_bytes = 0, macs = 0,
    input_size = {}, output_size = {}, children = {}, is_recursive = false, executed = false,
  }
  for _, p in ipairs(module:parameters()) do
    local n = p:numel()
    info.num_params = info.num_params + n
    info.param_bytes = info.param_bytes + n * elem_bytes(p)
    if p.requires_grad then info.trainable_params = info.trainable_params + n end
  end
  return info
end

local function calculate_macs(info)
  for name, p in info.module:named_parameters() do
    local n = p:numel()
    if name == "weight" or name == "bias" then
      if info.class_name:find("Conv", 1, true) then
        local s = info.output_size
        local k = s[1] or 1
        for i = 3, #s do k = k * s[i] end
        info.macs = info.macs + n * k
      else
        info.macs = info.macs + (info.output_size[1] or 0) * n
      end
    elseif name:find("weight", 1, true) or name:find("bias", 1, true) then
      info.macs = info.macs + (info.output_size[1] or 1) * (info.output_size[2] or 1) * n
    end
  end
end

local function trainable_str(info)
  if info.num_params == 0 then return "--" end
  if info.trainable_params == 0 then return "False" end
  if info.num_params == info.trainable_params then return "True" end
  return "Partial"
end

local function params_str(info, at_max_depth)
  if info.num_params == 0 then return "--" end
  if info.is_recursive then return "(recursive)" end
  if at_max_depth or info.is_leaf then
    local s = commas(info.num_params)
    return info.trainable_params > 0 and s or "(" .. s .. ")"
  end
  local left = leftover_params(info)
  return left > 0 and commas(left) or "--"
end

local function macs_str(info, at_max_depth)
  if info.macs <= 0 then return "--" end
  if info.is_leaf then return commas(info.macs) end
  if at_max_depth then
    local s = 0
    for _, c in ipairs(info.children) do if c.is_leaf then s = s + c.macs end end
    return commas(s)
  end
  return "--"
end

-- torchinfo 1.7.2's add_missing_container_layers: a container never called itself
-- (a ModuleList, as in TransformerEncoder.layers) gets its row, inserted before
-- the first called layer under it, with its parameters counted. The loop walks
-- the growing list by position, as torchinfo's enumerate does.
local function add_missing_container_layers(list)
  local listed = {}
  for _, info in ipairs(list) do listed[info.module] = true end
  local current = {}
  local idx = 1
  while idx <= #list do
    local info, rel = list[idx], 0
    local hierarchy, p = {}, info.parent
    while p and p.depth > 0 do
      hierarchy[p.depth] = p
      p = p.parent
    end
    for d = 1, info.depth - 1 do
      local h = hierarchy[d]
      if (current[d] == nil or current[d].module ~= h.module) and h ~= list[idx + rel - 1] then
        h.is_recursive = listed[h.module] == true
        table.insert(list, idx + rel, h)
        listed[h.module] = true
        current[d] = h
        rel = rel + 1
      end
    end
    current[info.depth] = info
    local d = info.depth + 1
    while current[d] do
      current[d] = nil
      d = d + 1
    end
    idx = idx + 1
  end
end

local Summary = {}
Summary.__index = Summary

local function start_str(depth)
  if depth == 0 then return "" end
  if depth == 1 then return "├─" end
  return string.rep("│    ", depth - 1) .. "└─"
end

function Summary:_row(name, values)
  local line = pad(name, self.layer_name_width) .. " "
  for _, c in ipairs(self.col_names) do line = line .. pad(values[c] or "", self.col_width) .. " " end
  return (line:gsub("%s+$", "")) .. "\n"
end

local function fmt2(v) return string.format("%.2f", v) end

function Summary:__tostring()
  local width = #self.col_names * self.col_width + self.layer_name_width
  local div = string.rep("=", width)
  local parts = {div, "\n", self:_row("Layer (type:depth-idx)", COLUMNS), div, "\n"}
  for _, info in ipairs(self.summary_list) do
    if info.depth <= self.max_depth then
      local at_max = info.depth == self.max_depth
      local name = info.class_name
      if info.depth > 0 then name = name .. ": " .. info.depth .. "-" .. info.depth_index end
      parts[#parts + 1] = self:_row(start_str(info.depth) .. name, {
        input_size = shape_repr(info.input_size), output_size = shape_repr(info.output_size),
        num_params = params_str(info, at_max), mult_adds = macs_str(info, at_max),
        trainable = trainable_str(info),
      })
    end
  end
  parts[#parts + 1] = div .. "\n"
  parts[#parts + 1] = ("Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n"):format(
    commas(self.total_params), commas(self.trainable_params), commas(self.non_trainable_params))
  if self.has_input then
    local m, unit = self.total_mult_adds, "M"
    if m >= 1e12 then unit, m = "T", m / 1e12
    elseif m >= 1e9 then unit, m = "G", m / 1e9
    else m = m / 1e6 end
    -- torchinfo 1.7.2's format_output_num: a whole number without decimals
    local shown = m == math.floor(m) and commas(math.tointeger(m) or m) or fmt2(m)
    parts[#parts + 1] = ("Total mult-adds (%s): %s\n%s\n"):format(unit, shown, div)
    parts[#parts + 1] = ("Input size (MB): %s\nForward/backward pass size (MB): %s\n"
      .. "Params size (MB): %s\nEstimated Total Size (MB): %s\n"):format(
      fmt2(self.input_size_mb), fmt2(self.forward_backward_pass_size_mb),
      fmt2(self.params_size_mb), fmt2(self.estimated_total_size_mb))
  end
  parts[#parts + 1] = div
  return table.concat(parts)
end

-- input_size is checked below, with its shape
local allowed = {input_size = true, input_data = "tensor|table", depth = "integer", col_names = "table",
                 col_width = "integer", dtypes = "table", device = "string"}

-- summary(model, {input_size = {8, 1, 28, 28} | {{...}, {...}}, input_data = x | {x, y},
--                 depth = 3, col_names = {"output_size", "num_params"}, col_width = 25,
--                 dtypes = {"float32", ...}, device = the model's})
function M.summary(model, opts)
  if not nn.is_module(model) then
    error(("summary: expected an nn.Module, got %s"):format(type(model)), 2)
  end
  opts = util.check_options("summary", opts, allowed)
  if opts.input_size and opts.input_data then
    error("summary: give input_size or input_data, not both", 2)
  end
  -- the inputs
  local inputs
  if opts.input_data ~= nil then
    inputs = is_tensor(opts.input_data) and {opts.input_data} or opts.input_data
  elseif opts.input_size ~= nil then
    local sizes = opts.input_size
    if type(sizes) ~= "table" or #sizes == 0 then
      error("summary: input_size must be a shape such as {8, 1, 28, 28} (or a list of shapes)", 2)
    end
    if type(sizes[1]) == "number" then sizes = {sizes} end
    -- torchinfo's default device: the model's (its first parameter's), else the CPU
    local params = model:parameters()
    local device = opts.device or (params[1] and params[1].device) or "cpu"
    inputs = {}
    for i, s in ipairs(sizes) do
      for _, d in ipairs(s) do
        if math.type(d) ~= "integer" or d <= 0 then
          error(("summary: input_size %d has a dim that is not a positive integer: %s"):format(i,
                tostring(d)), 2)
        end
      end
      local dt = opts.dtypes and opts.dtypes[i] or "float32"
      inputs[i] = core.zeros(s, {dtype = dt, device = device})
    end
  end
  local col_names = opts.col_names or (inputs and {"output_size", "num_params"} or {"num_params"})
  for _, c in ipairs(col_names) do
    if not COLUMNS[c] then error(("summary: column '%s' is not a valid column name"):format(tostring(c)), 2) end
  end

  -- hooks on every module (torchinfo's apply_hooks: depth-first, in child order)
  local summary_list, seen_ids, hooks = {}, {}, {}
  local infos = {}
  local function visit(var_name, m, depth, parent_info)
    local placeholder = new_info(var_name, m, depth, parent_info)
    infos[m] = placeholder
    if not inputs then
      summary_list[#summary_list + 1] = placeholder
    else
      if hooks[m] then for _, h in ipairs(hooks[m]) do h.remove() end end
      hooks[m] = {
        m:register_forward_pre_hook(function(mod)
          local info = new_info(var_name, mod, depth, parent_info)
          info.is_recursive = seen_ids[mod] == true
          summary_list[#summary_list + 1] = info
          seen_ids[mod] = true
          infos[mod] = info
        end),
        m:register_forward_hook(function(mod, args, out)
          local info = infos[mod]
          info.input_size = size_of(args)
          local size, eb = size_of(out)
          info.output_size = size
          info.output_bytes = eb * prod(size)
          info.executed = true
          calculate_macs(info)
        end),
      }
    end
    for name, child in m:named_children() do visit(name, child, depth + 1, infos[m]) end
  end
  visit(model:_get_name(), model, 0, nil)

  local total_input = 0
  if inputs then
    for _, x in ipairs(inputs) do total_input = total_input + x:numel() * elem_bytes(x) end
    local was_training = model.training
    model:eval()
    local ok, err = pcall(core.no_grad, function() return model(table.unpack(inputs)) end)
    for _, hs in pairs(hooks) do for _, h in ipairs(hs) do h.remove() end end
    model:train(was_training)
    if not ok then
      local done = {}
      for _, info in ipairs(summary_list) do
        if info.executed then done[#done + 1] = info.class_name end
      end
      error(("summary: the forward pass failed (executed layers up to: [%s]): %s"):format(
            table.concat(done, ", "), tostring(err)), 2)
    end
  end

  add_missing_container_layers(summary_list)

  -- depth indices and children
  local idx = {}
  for i, info in ipairs(summary_list) do
    idx[info.depth] = (idx[info.depth] or 0) + 1
    info.depth_index = idx[info.depth]
    info.children = get_children(summary_list, i)
  end

  -- torchinfo's ModelStatistics
  local s = setmetatable({summary_list = summary_list, col_names = col_names,
                          col_width = opts.col_width or 25, max_depth = opts.depth or 3,
                          layer_name_width = 40, has_input = inputs ~= nil}, Summary)
  local total_params, trainable, param_bytes, output_bytes, macs = 0, 0, 0, 0, 0
  for _, info in ipairs(summary_list) do
    if info.is_leaf then
      macs = macs + info.macs
      -- (1.7.2 counts a recursive layer's outputs too: each call has its own)
      if info.num_params > 0 then output_bytes = output_bytes + info.output_bytes * 2 end
      if not info.is_recursive then
        total_params = total_params + info.num_params
        param_bytes = param_bytes + info.param_bytes
        trainable = trainable + info.trainable_params
      end
    elseif not info.is_recursive then
      total_params = total_params + math.max(leftover_params(info), 0)
      trainable = trainable + math.max(leftover_trainable(info), 0)
    end
  end
  local max_len = 0
  for _, info in ipairs(summary_list) do
    local title = info.class_name
    if info.depth > 0 then title = title .. ": " .. info.depth .. "-" .. info.depth_index end
    max_len = math.max(max_len, ulen(title) + info.depth * 5 + 1)
  end
  if max_len >= s.layer_name_width then s.layer_name_width = math.ceil(max_len / 5) * 5 end

  s.total_params, s.trainable_params = total_params, trainable
  s.non_trainable_params = total_params - trainable
  s.total_mult_adds = macs
  s.total_input_bytes, s.total_output_bytes, s.total_param_bytes = total_input, output_bytes, param_bytes
  s.input_size_mb = total_input / 1e6
  s.forward_backward_pass_size_mb = output_bytes / 1e6
  s.params_size_mb = param_bytes / 1e6
  s.estimated_total_size_mb = (total_input + output_bytes + param_bytes) / 1e6
  s.total_mult_adds_m = macs / 1e6
  return s
end

return M
