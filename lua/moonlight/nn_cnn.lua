-- ml.nn's convolution, pooling and batch-norm layers (issue 16): Conv1d, Conv2d,
-- ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d,
-- BatchNorm2d, with PyTorch's constructor arguments, parameter and buffer names,
-- default initialisation, train()/eval() behaviour and reprs. nn.lua installs
-- them (require "moonlight.nn_cnn"(nn)); the math is one C call per forward
-- (src/lua/conv.c, pool.c, batchnorm.c).
local core = require "moonlight.core"
local util = require "moonlight.util"

local is_tensor = core.is_tensor

local function pybool(b) return b and "True" or "False" end

-- n integers from an integer or a table of n integers (PyTorch's _pair / _single)
local function ntuple(fname, what, v, n)
  if math.type(v) == "integer" then
    local t = {}
    for i = 1, n do t[i] = v end
    return t
  end
  if type(v) == "table" and not is_tensor(v) and #v == n then
    local t = {}
    for i = 1, n do
      if math.type(v[i]) ~= "integer" then break end
      t[i] = v[i]
    end
    if #t == n then return t end
  end
  util.fail(fname, "%s must be an integer or a table of %d integers, got %s", what, n,
            type(v) == "table" and "a table" or tostring(v))
end

-- PyTorch's repr of a tuple: (3, 3), (3,)
local function tuple_repr(t)
  if type(t) ~= "table" then return tostring(t) end
  if #t == 1 then return "(" .. t[1] .. ",)" end
  return "(" .. table.concat(t, ", ") .. ")"
end

local function hw(v) -- a number or {h, w}: h, w
  if type(v) == "table" then return v[1], v[2] end
  return v, v
end

local function all_equal(t, v) -- t a number or a tuple
  if type(t) ~= "table" then return t == v end
  for _, x in ipairs(t) do if x ~= v then return false end end
  return true
end

local function check_count(fname, what, v, positive)
  if math.type(v) ~= "integer" or v < 0 or (positive and v == 0) then
    util.fail(fname, "%s must be a %s integer, got %s", what, positive and "positive" or "non-negative",
              tostring(v))
  end
end

return function(nn)
  local Module, guarded = nn.Module, nn._guarded
  local check_options = util.check_options

  ----------------------------------------------------------------------------
  -- convolutions
  ----------------------------------------------------------------------------

  -- nn.Conv1d / nn.Conv2d / nn.ConvTranspose2d(in_channels, out_channels, kernel_size,
  --   {stride = 1, padding = 0, dilation = 1, groups = 1, bias = true,
  --    padding_mode = "zeros", output_padding = 0 (transposed only), dtype, device})
  local function conv_class(name, nd, transposed, fn)
    local C = Module:extend(name)
    local fname = "nn." .. name
    local spec = {stride = true, padding = true, dilation = true, groups = "integer", bias = "boolean",
                  padding_mode = "string", dtype = "string", device = "string"}
    if transposed then spec.output_padding = true end

    function C:init(in_channels, out_channels, kernel_size, opts)
      check_count(fname, "in_channels", in_channels, true)
      check_count(fname, "out_channels", out_channels, true)
      opts = check_options(fname, opts, spec)
      local groups = opts.groups or 1
      if groups < 1 then util.fail(fname, "groups must be a positive integer, got %d", groups) end
      if in_channels % groups ~= 0 then util.fail(fname, "in_channels must be divisible by groups (%d, %d)", in_channels, groups) end
      if out_channels % groups ~= 0 then util.fail(fname, "out_channels must be divisible by groups (%d, %d)", out_channels, groups) end
      local k = ntuple(fname, "kernel_size", kernel_size, nd)
      local stride = ntuple(fname, "stride", opts.stride or 1, nd)
      local dilation = ntuple(fname, "dilation", opts.dilation or 1, nd)
      local padding = opts.padding or 0
      if type(padding) == "string" then
        if transposed or (padding ~= "same" and padding ~= "valid") then
          util.fail(fname, "padding must be %s, got '%s'", transposed and "an integer or a table of integers"
                    or "an integer, a table of integers, 'same' or 'valid'", padding)
        end
        if padding == "same" and not all_equal(stride, 1) then
          util.fail(fname, "padding='same' is not supported for strided convolutions")
        end
      else
        padding = ntuple(fname, "padding", padding, nd)
      end
      local pm = opts.padding_mode or "zeros"
      if pm ~= "zeros" then
        util.fail(fname, "padding_mode '%s' is not supported (only 'zeros')", pm)
      end
      self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
      self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
      self.padding_mode, self.transposed = pm, transposed
      self.output_padding = ntuple(fname, "output_padding", opts.output_padding or 0, nd)
      -- weight [out, in / groups, k...] ([in, out / groups, k...] transposed), and
      -- kaiming_uniform(a = sqrt(5)): U(+-1 / sqrt(fan_in)), fan_in = shape[2] * prod(k)
      local shape = transposed and {in_channels, out_channels // groups} or {out_channels, in_channels // groups}
      for i = 1, nd do shape[#shape + 1] = k[i] end
      local w = core.zeros(shape, {dtype = opts.dtype})
      nn.init.kaiming_uniform_(w, {a = math.sqrt(5)})
      if opts.device then w = w:to(opts.device) end
      self.weight = nn.Parameter(w)
      nn.init._default_bias(self, out_channels, nn.init._fan_in(w), opts)
      -- the options handed to F on every call, made once
      local fo = {stride = stride, padding = padding, dilation = dilation, groups = groups}
      if transposed then fo.output_padding = self.output_padding end
      self._fopts = fo
    end

    function C:forward(x)
      local params = rawget(self, "_params").map
      return guarded(self, fn, x, params.weight, params.bias, self._fopts)
    end

    function C:extra_repr()
      local s = ("%d, %d, kernel_size=%s, stride=%s"):format(self.in_channels, self.out_channels,
        tuple_repr(self.kernel_size), tuple_repr(self.stride))
      local p = self.padding
      if type(p) == "string" then s = s .. ", padding=" .. p
      elseif not all_equal(p, 0) then s = s .. ", padding=" .. tuple_repr(p) end
      if not all_equal(self.dilation, 1) then s = s .. ", dilation=" .. tuple_repr(self.dilation) end
      if not all_equal(self.output_padding, 0) then
        s = s .. ", output_padding=" .. tuple_repr(self.output_padding)
      end
      if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
      if rawget(self, "_params").map.bias == nil then s = s .. ", bias=False" end
      return s
    end

    nn[name] = C
    return C
  end

  conv_class("Conv1d", 1, false, core.conv1d)
  conv_class("Conv2d", 2, false, core.conv2d)
  conv_class("ConvTranspose2d", 2, true, core.conv_transpose2d)

  ----------------------------------------------------------------------------
  -- pooling
  ----------------------------------------------------------------------------

  local function int_or_pair(fname, what, v)
    if math.type(v) == "integer" then return v end
    return ntuple(fname, what, v, 2)
  end

  -- nn.MaxPool2d(kernel_size, {stride = kernel_size, padding = 0, dilation = 1,
  --              return_indices = false, ceil_mode = false})
  local MaxPool2d = Module:extend("MaxPool2d")
  nn.MaxPool2d = MaxPool2d
  function MaxPool2d:init(kernel_size, opts)
    opts = check_options("nn.MaxPool2d", opts, {stride = true, padding = true, dilation = true,
                                                return_indices = "boolean", ceil_mode = "boolean"})
    self.kernel_size = int_or_pair("nn.MaxPool2d", "kernel_size", kernel_size)
    self.stride = int_or_pair("nn.MaxPool2d", "stride", opts.stride or kernel_size)
    self.padding = int_or_pair("nn.MaxPool2d", "padding", opts.padding or 0)
    self.dilation = int_or_pair("nn.MaxPool2d", "dilation", opts.dilation or 1)
    self.return_indices, self.ceil_mode = opts.return_indices == true, opts.ceil_mode == true
    self._fopts = {stride = self.stride, padding = self.padding, dilation = self.dilation,
                   ceil_mode = self.ceil_mode, return_indices = self.return_indices}
  end
  local max_pool2d = core.max_pool2d
  function MaxPool2d:forward(x)
    if self.return_indices then return max_pool2d(x, self.kernel_size, self._fopts) end
    return guarded(self, max_pool2d, x, self.kernel_size, self._fopts)
  end
  -- every window holds an input element: no padding, or no dilation (a dilated
  -- window can lie wholly in the padding); nn.Sequential asks (lua/moonlight/nn.lua)
  function MaxPool2d:_windows_hold_input()
    return all_equal(self.padding, 0) or all_equal(self.dilation, 1)
  end
  -- kh, kw when the windows tile the input (kernel == stride, no padding, dilation 1,
  -- floor mode, no indices asked for), as batch_norm_max_pool2d pools; else nil.
  -- nn.Sequential asks
  function MaxPool2d:_tiling_kernel()
    if self.return_indices or self.ceil_mode or not all_equal(self.padding, 0)
        or not all_equal(self.dilation, 1) then
      return nil
    end
    local kh, kw = hw(self.kernel_size)
    local sh, sw = hw(self.stride)
    if kh ~= sh or kw ~= sw then return nil end
    return kh, kw
  end
  function MaxPool2d:extra_repr()
    return ("kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s"):format(
      tuple_repr(self.kernel_size), tuple_repr(self.stride), tuple_repr(self.padding),
      tuple_repr(self.dilation), pybool(self.ceil_mode))
  end

  -- nn.AvgPool2d(kernel_size, {stride = kernel_size, padding = 0, ceil_mode = false,
  --              count_include_pad = true})
  local AvgPool2d = Module:extend("AvgPool2d")
  nn.AvgPool2d = AvgPool2d
  function AvgPool2d:init(kernel_size, opts)
    opts = check_options("nn.AvgPool2d", opts, {stride = true, padding = true, ceil_mode = "boolean",
                                                count_include_pad = "boolean"})
    self.kernel_size = int_or_pair("nn.AvgPool2d", "kernel_size", kernel_size)
    self.stride = int_or_pair("nn.AvgPool2d", "stride", opts.stride or kernel_size)
    self.padding = int_or_pair("nn.AvgPool2d", "padding", opts.padding or 0)
    self.ceil_mode = opts.ceil_mode == true
    self.count_include_pad = opts.count_include_pad ~= false
    self._fopts = {stride = self.stride, padding = self.padding, ceil_mode = self.ceil_mode,
                   count_include_pad = self.count_include_pad}
  end
  local avg_pool2d = core.avg_pool2d
  function AvgPool2d:forward(x) return guarded(self, avg_pool2d, x, self.kernel_size, self._fopts) end
  function AvgPool2d:extra_repr()
    return ("kernel_size=%s, stride=%s, padding=%s"):format(tuple_repr(self.kernel_size),
      tuple_repr(self.stride), tuple_repr(self.padding))
  end

  -- nn.AdaptiveAvgPool2d(output_size): an integer or {oh, ow}
  local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
  nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d
  function AdaptiveAvgPool2d:init(output_size)
    self.output_size = int_or_pair("nn.AdaptiveAvgPool2d", "output_size", output_size)
  end
  local adaptive_avg_pool2d = core.adaptive_avg_pool2d
  function AdaptiveAvgPool2d:forward(x) return guarded(self, adaptive_avg_pool2d, x, self.output_size) end
  function AdaptiveAvgPool2d:extra_repr() return "output_size=" .. tuple_repr(self.output_size) end

  ----------------------------------------------------------------------------
  -- batch norm
  ----------------------------------------------------------------------------

  -- nn.BatchNorm1d / nn.BatchNorm2d(num_features, {eps = 1e-5, momentum = 0.1,
  --   affine = true, track_running_stats = true, dtype, device}); momentum = false
  --   is PyTorch's momentum=None (a cumulative average: 1 / num_batches_tracked)
  local batch_norm, batch_norm_max_pool2d = core.batch_norm, core._batch_norm_max_pool2d
  local function bn_class(name, ranks, rank_text)
    local C = Module:extend(name)
    local fname = "nn." .. name
    function C:init(num_features, opts)
      check_count(fname, "num_features", num_features, true)
      opts = check_options(fname, opts, {eps = "number", momentum = "number|boolean", affine = "boolean",
                                         track_running_stats = "boolean", dtype = "string", device = "string"})
      if opts.momentum == true then util.fail(fname, "momentum must be a number, or false for a cumulative average") end
      self.num_features = num_features
      self.eps = opts.eps or 1e-5
      self.momentum = opts.momentum == nil and 0.1 or opts.momentum -- false: None
      self.affine = opts.affine ~= false
      self.track_running_stats = opts.track_running_stats ~= false
      local function vec(v)
        local t = core.full({num_features}, v, {dtype = opts.dtype})
        if opts.device then t = t:to(opts.device) end
        return t
      end
      if self.affine then
        self.weight = nn.Parameter(vec(1))
        self.bias = nn.Parameter(vec(0))
      end
      if self.track_running_stats then
        self:register_buffer("running_mean", vec(0))
        self:register_buffer("running_var", vec(1))
        local nbt = core.tensor(0, {dtype = "int64"})
        if opts.device then nbt = nbt:to(opts.device) end
        self:register_buffer("num_batches_tracked", nbt)
      end
    end

    function C:forward(x)
      if not is_tensor(x) then util.fail(fname, "expected a tensor input, got %s", type(x)) end
      if not ranks[x:dim()] then
        error(("%s: expected %s input, got %d-D input %s"):format(self:_short_name(), rank_text, x:dim(),
              "[" .. table.concat(x:shape(), ", ") .. "]"), 2)
      end
      return guarded(self, batch_norm, x, self:_call_args())
    end

    -- the running statistics and options of one call (num_batches_tracked counted)
    function C:_call_args()
      local factor = self.momentum or 0.0
      local buffers = rawget(self, "_buffers").map
      if self.training and self.track_running_stats then
        local nbt = buffers.num_batches_tracked
        if nbt then
          nbt:add_(1)
          if not self.momentum then factor = 1.0 / nbt:item() end
        end
      end
      local rm, rv = buffers.running_mean, buffers.running_var
      local bn_training = self.training or (rm == nil and rv == nil)
      if self.training and not self.track_running_stats then rm, rv = nil, nil end
      local params = rawget(self, "_params").map
      return rm, rv, {weight = params.weight, bias = params.bias, training = bn_training,
                      momentum = factor, eps = self.eps}
    end

    -- nn.Sequential's BatchNorm2d + MaxPool2d({kh, kw}) with tiling windows, as one op
    -- (lua/moonlight/nn.lua); x is 4-D
    function C:_forward_max_pool(x, kh, kw)
      local rm, rv, o = self:_call_args()
      return guarded(self, batch_norm_max_pool2d, x, rm, rv, o, kh, kw)
    end

    function C:extra_repr()
      return ("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s"):format(self.num_features,
        util.format_number(self.eps), self.momentum and util.format_number(self.momentum) or "None",
        pybool(self.affine), pybool(self.track_running_stats))
    end

    nn[name] = C
    return C
  end

  bn_class("BatchNorm1d", {[2] = true, [3] = true}, "2D or 3D")
  bn_class("BatchNorm2d", {[4] = true}, "4D")
end
