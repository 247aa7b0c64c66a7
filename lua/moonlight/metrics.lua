-- ml.metrics: torchmetrics' functional metrics and their stateful objects.
--
-- Functional: accuracy, precision, recall, f1_score, confusion_matrix, auroc,
-- mean_squared_error, mean_absolute_error; each returns a 0-dim tensor (or a
-- per-class tensor with average = "none"). Stateful: ml.metrics.Accuracy{...} and
-- friends with update(preds, target), compute(), reset(), and m(preds, target)
-- for update + the batch's value. The counting runs in C (src/lua/metrics.c).
local core = require "moonlight.core"
local check_options = require("moonlight.util").check_options

local metrics = {}

-- task, num_classes and average are checked by check_task, with their values
local classification_options = {task = true, num_classes = true, threshold = "number", average = true,
                                top_k = "integer", ignore_index = "integer", multidim_average = true,
                                num_labels = true, validate_args = true}

local function check_task(fname, opts)
  local task = opts.task
  if task ~= "binary" and task ~= "multiclass" then
    error(string.format("%s: task must be \"binary\" or \"multiclass\" (as in torchmetrics), got %s",
      fname, tostring(task)), 3)
  end
  if task == "multiclass" and (math.type(opts.num_classes) ~= "integer" or opts.num_classes < 2) then
    error(fname .. ": task=\"multiclass\" needs num_classes (an integer >= 2), got " .. tostring(opts.num_classes), 3)
  end
  local avg = opts.average
  if avg ~= nil and avg ~= "micro" and avg ~= "macro" and avg ~= "weighted" and avg ~= "none" then
    error(fname .. ": average must be \"micro\", \"macro\", \"weighted\" or \"none\", got " .. tostring(avg), 3)
  end
  return task
end

local function in_unit_interval(t)
  return t:min():item() >= 0 and t:max():item() <= 1
end

-- Binary preds as 0/1 ids: probabilities (or logits, through a sigmoid) over a threshold.
local function binary_ids(preds, threshold)
  if preds.dtype == "float32" or preds.dtype == "float64" then
    local p = preds
    if not in_unit_interval(p) then p = p:sigmoid() end
    return p:gt(threshold):long()
  end
  return preds:long()
end

-- Multiclass preds as class ids: scores [N, C, ...] through argmax over dim 2.
local function multiclass_ids(fname, preds, target, num_classes)
  if preds.dtype == "float32" or preds.dtype == "float64" then
    if preds:dim() < 2 or preds:size(2) ~= num_classes then
      error(string.format("%s: float preds must be scores [N, %d], got [%s]", fname, num_classes,
        table.concat(preds:shape(), ", ")), 3)
    end
    local ids = preds:argmax(2)
    return ids
  end
  return preds
end

local function check_target(fname, target)
  if not core.is_tensor(target) then error(fname .. ": target must be a tensor, got " .. type(target), 3) end
  if target.dtype == "float32" or target.dtype == "float64" then
    error(fname .. ": target must hold integer class ids (int64, or uint8), got " .. target.dtype ..
      " (one-hot targets: use target:argmax(2))", 3)
  end
end

-- The confusion matrix [C, C] (rows: target, columns: prediction) for the task.
local function confusion(fname, preds, target, opts)
  if not core.is_tensor(preds) then error(fname .. ": preds must be a tensor, got " .. type(preds), 3) end
  check_target(fname, target)
  local task = check_task(fname, opts)
  if task == "binary" then
    return core._confusion(binary_ids(preds, opts.threshold or 0.5), target, 2, opts.ignore_index, fname)
  end
  return core._confusion(multiclass_ids(fname, preds, target, opts.num_classes), target,
    opts.num_classes, opts.ignore_index, fname)
end

-- tp, fp, fn per class (Lua arrays) from a confusion matrix
local function stats(cm)
  local m = cm:totable()
  local c = #m
  local tp, fp, fn = {}, {}, {}
  for k = 1, c do
    tp[k], fp[k], fn[k] = m[k][k], 0, 0
    for j = 1, c do
      if j ~= k then
        fp[k] = fp[k] + m[j][k]
        fn[k] = fn[k] + m[k][j]
      end
    end
  end
  return tp, fp, fn
end

local function safe_div(a, b) return b == 0 and 0 or a / b end

-- score_fn(tp, fp, fn) per class, reduced as torchmetrics reduces it.
local function reduce_scores(task, average, tp, fp, fn, score_fn)
  if task == "binary" then
    return core.tensor(score_fn(tp[2], fp[2], fn[2]))
  end
  average = average or "micro"
  if average == "micro" then
    local s_tp, s_fp, s_fn = 0, 0, 0
    for k = 1, #tp do s_tp, s_fp, s_fn = s_tp + tp[k], s_fp + fp[k], s_fn + fn[k] end
    return core.tensor(score_fn(s_tp, s_fp, s_fn))
  end
  local scores = {}
  for k = 1, #tp do scores[k] = score_fn(tp[k], fp[k], fn[k]) end
  if average == "none" then return core.tensor(scores) end
  local num, den = 0, 0
  for k = 1, #tp do
    local w
    if average == "weighted" then w = tp[k] + fn[k]
    else w = (tp[k] + fp[k] + fn[k] == 0) and 0 or 1 end -- classes never seen don't count
    num = num + w * scores[k]
    den = den + w
  end
  return core.tensor(safe_div(num, den))
end

local function recall_of(tp, _, fn) return safe_div(tp, tp + fn) end
local function precision_of(tp, fp) return safe_div(tp, tp + fp) end
local function f1_of(tp, fp, fn) return safe_div(2 * tp, 2 * tp + fp + fn) end

local function classification(fname, score_fn)
  return function(preds, target, opts)
    opts = opts or {}
    check_options(fname, opts, classification_options)
    local cm = confusion(fname, preds, target, opts)
    local tp, fp, fn = stats(cm)
    return reduce_scores(opts.task, opts.average, tp, fp, fn, score_fn)
  end
end

metrics.precision = classification("precision", precision_of)
metrics.recall = classification("recall", recall_of)
metrics.f1_score = classification("f1_score", f1_of)

function metrics.accuracy(preds, target, opts)
  opts = opts or {}
  check_options("accuracy", opts, classification_options)
  local task = check_task("accuracy", opts)
  local k = opts.top_k or 1
  if task == "multiclass" and k > 1 then
    check_target("accuracy", target)
    if (opts.average or "micro") ~= "micro" then
      error("accuracy: top_k > 1 is supported with average=\"micro\"", 2)
    end
    local correct, total = core._topk_correct(preds, target, k, opts.ignore_index)
    return core.tensor(safe_div(correct, total))
  end
  local cm = confusion("accuracy", preds, target, opts)
  if task == "binary" then
    local m = cm:totable()
    local total = m[1][1] + m[1][2] + m[2][1] + m[2][2]
    return core.tensor(safe_div(m[1][1] + m[2][2], total))
  end
  local tp, fp, fn = stats(cm)
  return reduce_scores(task, opts.average, tp, fp, fn, recall_of)
end

function metrics.confusion_matrix(preds, target, opts)
  opts = opts or {}
  check_options("confusion_matrix", opts, {task = true, num_classes = true, threshold = "number",
                                           normalize = true, ignore_index = true})
  local cm = confusion("confusion_matrix", preds, target, opts)
  local norm = opts.normalize
  if norm == nil or norm == "none" then return cm end
  local f = cm:double()
  local d
  if norm == "true" then d = f:sum(2, true)
  elseif norm == "pred" then d = f:sum(1, true)
  elseif norm == "all" then d = f:sum()
  else error("confusion_matrix: normalize must be \"true\", \"pred\", \"all\" or \"none\", got " .. tostring(norm), 2) end
  -- rows or columns with no samples give 0, as torchmetrics
  local safe = core.where(d:eq(0), 1, d)
  return (f / safe):float()
end

function metrics.auroc(preds, target, opts)
  opts = opts or {}
  check_options("auroc", opts, {task = true, num_classes = true, average = true, thresholds = true,
                                ignore_index = true, max_fpr = true})
  local task = check_task("auroc", opts)
  if opts.thresholds ~= nil then error("auroc: only exact computation (thresholds = nil) is supported", 2) end
  local p, t = preds, target
  if core.is_tensor(p) then
    if p.dtype ~= "float32" and p.dtype ~= "float64" then
      error("auroc: preds must be float scores or probabilities, got " .. p.dtype, 2)
    end
    check_target("auroc", t)
    if task == "multiclass" then
      if p:dim() ~= 2 or p:size(2) ~= opts.num_classes then
        error(string.format("auroc: multiclass preds must be [N, %d], got [%s]", opts.num_classes,
          table.concat(p:shape(), ", ")), 2)
      end
      if not in_unit_interval(p) then p = p:softmax(2) end
    end
  end
  local r = core._auroc(p, t)
  if task == "binary" then return core.tensor(r) end
  local avg = opts.average or "macro"
  if avg == "none" then return core.tensor(r) end
  local sum, n = 0, 0
  local support
  if avg == "weighted" then
    support = {}
    local tt = core.is_tensor(t) and t:totable() or nil
    for k = 1, #r do support[k] = 0 end
    for _, chunk in ipairs(tt and {tt} or {}) do
      for _, y in ipairs(chunk) do support[y + 1] = (support[y + 1] or 0) + 1 end
    end
  end
  for k, v in ipairs(r) do
    if v == v then -- classes with no positive (or no negative) sample are left out
      local w = support and support[k] or 1
      sum, n = sum + w * v, n + w
    end
  end
  return core.tensor(n > 0 and sum / n or 0 / 0)
end

function metrics.mean_squared_error(preds, target)
  return ((preds - target):square()):mean():detach()
end

function metrics.mean_absolute_error(preds, target)
  return ((preds - target):abs()):mean():detach()
end

------------------------------------------------------------------------------
-- Stateful metrics: accumulate over batches, compute once
------------------------------------------------------------------------------

local Metric = {}
Metric.__index = Metric
Metric.__call = function(self, preds, target)
  self:update(preds, target)
  return self:_batch_value(preds, target)
end

local function metric_class(name, init, update, compute, batch)
  local cls = setmetatable({}, {__index = Metric, __call = function(c, opts)
    local o = setmetatable({opts = opts or {}}, c)
    init(o)
    return o
  end})
  cls.__index = cls
  cls.__call = Metric.__call
  cls.__name = name
  cls.update = update
  cls.compute = compute
  cls.reset = init
  cls._batch_value = batch
  cls.__tostring = function(self) return name .. "()" end
  return cls
end

local function score_fn_of(fname)
  if fname == "precision" then return precision_of end
  if fname == "f1_score" then return f1_of end
  return recall_of
end

local function confusion_metric(name, fname, fn)
  return metric_class(name,
    function(self) self.cm = nil; self.correct, self.total = 0, 0 end,
    function(self, preds, target)
      local opts = self.opts
      if fname == "accuracy" and (opts.top_k or 1) > 1 then
        local c, t = core._topk_correct(preds, target, opts.top_k, opts.ignore_index)
        self.correct, self.total = self.correct + c, self.total + t
        return
      end
      local cm = confusion(fname, preds, target, opts)
      self.cm = self.cm and (self.cm + cm) or cm
    end,
    function(self)
      local opts = self.opts
      if fname == "accuracy" and (opts.top_k or 1) > 1 then return core.tensor(safe_div(self.correct, self.total)) end
      if not self.cm then error(name .. ": compute() called before update()", 2) end
      if fname == "confusion_matrix" then return self.cm end
      if fname == "accuracy" and opts.task == "binary" then
        local m = self.cm:totable()
        return core.tensor(safe_div(m[1][1] + m[2][2], m[1][1] + m[1][2] + m[2][1] + m[2][2]))
      end
      local tp, fp, fn = stats(self.cm)
      return reduce_scores(opts.task, opts.average, tp, fp, fn, score_fn_of(fname))
    end,
    function(self, preds, target) return fn(preds, target, self.opts) end)
end

metrics.Accuracy = confusion_metric("Accuracy", "accuracy", metrics.accuracy)
metrics.Precision = confusion_metric("Precision", "precision", metrics.precision)
metrics.Recall = confusion_metric("Recall", "recall", metrics.recall)
metrics.F1Score = confusion_metric("F1Score", "f1_score", metrics.f1_score)
metrics.ConfusionMatrix = confusion_metric("ConfusionMatrix", "confusion_matrix", metrics.confusion_matrix)

metrics.AUROC = metric_class("AUROC",
  function(self) self.preds, self.targets = {}, {} end,
  function(self, preds, target)
    local p = preds:detach()
    if self.opts.task == "multiclass" and not in_unit_interval(p) then p = p:softmax(2) end
    self.preds[#self.preds + 1] = p
    self.targets[#self.targets + 1] = target
  end,
  function(self)
    if #self.preds == 0 then error("AUROC: compute() called before update()", 2) end
    local r = core._auroc(self.preds, self.targets)
    if self.opts.task == "binary" then return core.tensor(r) end
    if self.opts.average == "none" then return core.tensor(r) end
    local sum, n = 0, 0
    for _, v in ipairs(r) do if v == v then sum, n = sum + v, n + 1 end end
    return core.tensor(n > 0 and sum / n or 0 / 0)
  end,
  function(self, preds, target) return metrics.auroc(preds, target, self.opts) end)

local function mean_error(name, f)
  return metric_class(name,
    function(self) self.sum, self.n = 0, 0 end,
    function(self, preds, target)
      self.sum = self.sum + f(preds, target):sum():item()
      self.n = self.n + preds:numel()
    end,
    function(self) return core.tensor(safe_div(self.sum, self.n)) end,
    function(_, preds, target) return f(preds, target):mean():detach() end)
end
metrics.MeanSquaredError = mean_error("MeanSquaredError", function(p, t) return (p - t):square():detach() end)
metrics.MeanAbsoluteError = mean_error("MeanAbsoluteError", function(p, t) return (p - t):abs():detach() end)

return metrics
