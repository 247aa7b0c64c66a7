-- nn's convolution, pooling and batch-norm layers (issue 16): PyTorch's reprs,
-- parameter and buffer names, shapes and initialisation, BatchNorm's train/eval
-- behaviour and running statistics, the errors a user meets, torchinfo's summary
-- of the MNIST CNN, the MaxPool2d(2) paths against a reference, and bits that do
-- not depend on the thread count.
local ml = require "moonlight"
local nn, F, T = ml.nn, ml.F, ml.testing
local err = require("test_util").err

describe("conv layers", function()
  it("print as PyTorch's", function()
    assert.are.equal("Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
                     tostring(nn.Conv2d(1, 16, 3, {padding = 1})))
    assert.are.equal("Conv1d(3, 4, kernel_size=(3,), stride=(2,), bias=False)",
                     tostring(nn.Conv1d(3, 4, 3, {stride = 2, bias = false})))
    assert.are.equal("ConvTranspose2d(4, 6, kernel_size=(3, 2), stride=(2, 2), output_padding=(1, 1), groups=2)",
                     tostring(nn.ConvTranspose2d(4, 6, {3, 2}, {stride = 2, output_padding = 1, groups = 2})))
    assert.are.equal("Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, dilation=(2, 2))",
                     tostring(nn.Conv2d(2, 4, 3, {padding = "same", dilation = 2})))
  end)

  it("have PyTorch's parameter shapes and kaiming-uniform (a = sqrt 5) bounds", function()
    ml.manual_seed(1)
    local c = nn.Conv2d(6, 8, {3, 2}, {groups = 2})
    assert.are.same({8, 3, 3, 2}, c.weight:shape())
    assert.are.same({8}, c.bias:shape())
    local bound = 1 / math.sqrt(3 * 3 * 2)
    assert.is_true(c.weight:abs():max():item() <= bound)
    assert.is_true(c.weight:abs():max():item() > bound * 0.8)
    assert.is_true(c.bias:abs():max():item() <= bound)
    local t = nn.ConvTranspose2d(4, 6, 3, {groups = 2})
    assert.are.same({4, 3, 3, 3}, t.weight:shape())
    assert.are.same({6}, t.bias:shape())
    assert.is_true(t.weight:abs():max():item() <= 1 / math.sqrt(27))
    assert.are.same({5, 2, 4}, nn.Conv1d(2, 5, 4).weight:shape())
    local names = {}
    for name in nn.Conv2d(1, 2, 3):named_parameters() do names[#names + 1] = name end
    assert.are.same({"weight", "bias"}, names)
  end)

  it("run F with their options; unbatched inputs too", function()
    ml.manual_seed(2)
    local c = nn.Conv2d(3, 4, 3, {stride = 2, padding = 1})
    local x = ml.randn({2, 3, 9, 8})
    T.assert_close(c(x), F.conv2d(x, c.weight, c.bias, {stride = 2, padding = 1}))
    assert.are.same({2, 4, 5, 4}, c(x):shape())
    T.assert_close(c(x[1]), c(x)[1], {rtol = 1e-6, atol = 1e-6})
    assert.are.same({4, 7}, nn.Conv1d(3, 4, 3)(ml.randn({3, 9})):shape())
    assert.are.same({2, 6, 11, 8}, nn.ConvTranspose2d(4, 6, 3, {stride = 2, padding = 1, output_padding = {0, 1}})
      (ml.randn({2, 4, 6, 4})):shape())
  end)
end)

describe("bad input names the function, the shapes and what was expected", function()
  it("a channel mismatch: the expected in_channels and what came", function()
    local e = err(nn.Conv2d(3, 8, 3), ml.zeros({2, 5, 8, 8}))
    assert.matches("Conv2d%(3, 8, .*got input %[2, 5, 8, 8%]", e)
    assert.matches("in_channels = 3 channels", e)
    assert.matches("got 5 channels", e)
    e = err(F.conv1d, ml.zeros({1, 4, 9}), ml.zeros({2, 3, 3}))
    assert.matches("conv1d: expected input with in_channels = 3 channels.*got 4 channels", e)
  end)
  it("a 3-D input into Conv2d: the rank expected", function()
    local e = err(nn.Conv2d(1, 16, 3), ml.zeros({128, 28, 28}))
    assert.matches("conv2d: expected a 4%-D input %[N, C, H, W%] or an unbatched 3%-D one %[C, H, W%] with C = in_channels = 1", e)
    assert.matches("its C is 128", e)
    e = err(nn.Conv2d(1, 16, 3), ml.zeros({28, 28}))
    assert.matches("expected a 4%-D input %[N, C, H, W%] %(or an unbatched 3%-D one %[C, H, W%]%), got 2%-D %[28, 28%]", e)
  end)
  it("a kernel larger than the padded input", function()
    local e = err(F.conv2d, ml.zeros({1, 1, 4, 2}), ml.zeros({2, 1, 3, 3}), nil, {padding = {0, 0}})
    assert.matches("conv2d: kernel size 3 %(dilated: 3%) is larger than the padded input size 2 %(width 2", e)
    assert.matches("input %[1, 1, 4, 2%], weight %[2, 1, 3, 3%]", e)
    e = err(F.max_pool2d, ml.zeros({1, 1, 2, 2}), 3)
    assert.matches("max_pool2d: input %[1, 1, 2, 2%] is too small for kernel_size 3x3", e)
  end)
  it("groups that do not divide the channels", function()
    assert.matches("nn.Conv2d: in_channels must be divisible by groups %(3, 2%)", err(nn.Conv2d, 3, 4, 3, {groups = 2}))
    assert.matches("nn.Conv2d: out_channels must be divisible by groups %(5, 2%)", err(nn.Conv2d, 4, 5, 3, {groups = 2}))
    assert.matches("conv2d: groups 4 must divide out_channels 6",
                   err(F.conv2d, ml.zeros({1, 4, 5, 5}), ml.zeros({6, 1, 3, 3}), nil, {groups = 4}))
  end)
  it("options", function()
    assert.matches("conv2d: unknown option 'strid'", err(F.conv2d, ml.zeros({1, 1, 5, 5}), ml.zeros({1, 1, 3, 3}), nil,
                                                         {strid = 2}))
    assert.matches('conv2d: padding = "same" needs stride 1',
                   err(F.conv2d, ml.zeros({1, 1, 5, 5}), ml.zeros({1, 1, 3, 3}), nil, {stride = 2, padding = "same"}))
    assert.matches("conv_transpose2d: output_padding 2 must be smaller than either stride 2 or dilation 1",
                   err(F.conv_transpose2d, ml.zeros({1, 1, 3, 3}), ml.zeros({1, 1, 3, 3}), nil,
                       {stride = 2, output_padding = 2}))
    assert.matches("max_pool2d: padding 2 must be between 0 and half the kernel size 3",
                   err(F.max_pool2d, ml.zeros({1, 1, 5, 5}), 3, {padding = 2}))
    assert.matches("conv2d: input, weight and bias need one floating dtype, got float64, float32",
                   err(F.conv2d, ml.zeros({1, 1, 5, 5}, {dtype = "float64"}), ml.zeros({1, 1, 3, 3})))
  end)
  it("batch norm", function()
    assert.matches("BatchNorm2d%(3, .*%): expected 4D input, got 3%-D input %[2, 3, 4%]",
                   err(nn.BatchNorm2d(3), ml.zeros({2, 3, 4})))
    assert.matches("expected 2D or 3D input, got 4%-D", err(nn.BatchNorm1d(3), ml.zeros({2, 3, 4, 4})))
    assert.matches("batch_norm: expected more than 1 value per channel when training, got input %[1, 3%]",
                   err(F.batch_norm, ml.zeros({1, 3}), nil, nil, {training = true}))
    assert.matches("batch_norm: weight must be %[3%]", err(F.batch_norm, ml.zeros({2, 3}), nil, nil,
                                                         {weight = ml.ones({4}), training = true}))
  end)
end)

describe("pooling layers", function()
  it("print as PyTorch's and default the stride to the kernel", function()
    assert.are.equal("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)", tostring(nn.MaxPool2d(2)))
    assert.are.equal("AvgPool2d(kernel_size=(3, 2), stride=1, padding=1)",
                     tostring(nn.AvgPool2d({3, 2}, {stride = 1, padding = 1})))
    assert.are.equal("AdaptiveAvgPool2d(output_size=(5, 7))", tostring(nn.AdaptiveAvgPool2d({5, 7})))
    assert.are.same({2, 3, 3, 4}, nn.MaxPool2d(2)(ml.randn({2, 3, 7, 8})):shape())
    assert.are.same({3, 1, 1}, nn.AdaptiveAvgPool2d(1)(ml.randn({3, 5, 4})):shape())
  end)
  it("a dilated window wholly in the padding: -inf, position -1, no gradient", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      ml.manual_seed(3)
      local x = ml.randn({1, 16, 1, 2}, {dtype = dtype}):requires_grad_(true)
      -- one window a plane, at columns -1 and 2 of a 2-wide input: both outside
      local y, idx = F.max_pool2d(x, {1, 2}, {stride = 1, padding = {0, 1}, dilation = {1, 3}, return_indices = true})
      assert.are.same({1, 16, 1, 1}, y:shape())
      assert.are.equal(-math.huge, y:max():item())
      assert.are.equal(-1, idx:max():item())
      assert.are.equal(-1, idx:min():item())
      y:backward(ml.ones(y:shape(), {dtype = dtype})) -- wrote out of the plane before
      assert.are.equal(0, x.grad:abs():sum():item())
    end
  end)
  it("MaxPool2d returns PyTorch's indices with return_indices", function()
    local y, idx = nn.MaxPool2d(2, {return_indices = true})(ml.tensor({{{{1, 5}, {3, 2}}}}))
    assert.are.equal(5, y:item())
    assert.are.equal(1, idx:item())
    assert.are.equal("int64", idx.dtype)
  end)
  it("max_pool2d without a graph keeps no positions, and gives them when asked", function()
    ml.manual_seed(6)
    for _, k in ipairs({2, 3}) do
      local x = ml.randn({2, 3, 9, 10})
      local y, idx = F.max_pool2d(x:detach():requires_grad_(true), k, {return_indices = true})
      local y_inf = ml.no_grad(function() return F.max_pool2d(x, k) end)
      local y2, idx2 = ml.no_grad(function() return F.max_pool2d(x, k, {return_indices = true}) end)
      T.assert_close(y_inf, y:detach(), {rtol = 0, atol = 0})
      T.assert_close(y2, y:detach(), {rtol = 0, atol = 0})
      assert.are.equal(0, idx2:ne(idx):sum():item())
    end
  end)
  -- F.max_pool2d(x, 2) on a leaf of x's values, and the same pooling made of views
  -- and max on another: the leaves (fast path, reference) and the outputs.
  local function pool2_and_reference(x)
    local xp, xr = x:detach():requires_grad_(true), x:detach():requires_grad_(true)
    local n, c, h, w = x:size(1), x:size(2), x:size(3) // 2 * 2, x:size(4) // 2 * 2
    local crop = xr:narrow(3, 1, h):narrow(4, 1, w):contiguous()
    local ref = crop:view({n, c, h // 2, 2, w // 2, 2}):permute({1, 2, 3, 5, 4, 6}):contiguous()
      :view({n, c, h // 2, w // 2, 4}):max(5)
    return xp, xr, F.max_pool2d(xp, 2), ref
  end
  it("MaxPool2d(2): the fast paths agree with a reference made of views and max, NaN and ties included", function()
    ml.manual_seed(4)
    for _, shape in ipairs({{3, 5, 28, 28}, {2, 2, 14, 14}, {1, 3, 6, 40}, {2, 1, 9, 7}}) do
      local x = (ml.randn(shape) * 2):long():float() -- ties
      x = x / x:ne(3):float() * 0 + x          -- NaN where x was 3
      local _, _, y, ref = pool2_and_reference(x)
      T.assert_close(y, ref, {equal_nan = true, rtol = 0, atol = 0})
    end
  end)
  it("MaxPool2d(2): the fast paths' gradients agree with the reference's, odd sizes included", function()
    ml.manual_seed(5)
    for _, shape in ipairs({{3, 5, 28, 28}, {2, 2, 14, 14}, {1, 3, 6, 40}, {2, 1, 9, 7}, {1, 1, 35, 3}}) do
     for _, double in ipairs({false, true}) do
      local x = ml.randn(shape) -- no ties: one maximum per window
      if double then x = x:double() end
      local xp, xr, y, ref = pool2_and_reference(x)
      local g = ml.randn(y:shape())
      y:backward(g)
      ref:backward(g)
      T.assert_close(xp.grad, xr.grad, {rtol = 0, atol = 0})
     end
    end
  end)
end)

describe("nn.Sequential's ReLU then MaxPool2d", function()
  -- The pair runs pooling first, ReLU on its output (lua/moonlight/nn.lua): the
  -- same bits as the two in order, forward and gradient, with NaN, zeros, ties and
  -- windows with nothing above 0.
  it("gives the same output and gradient as the two in order", function()
    ml.manual_seed(8)
    for _, opts in ipairs({{2}, {3, {stride = 2, padding = 1}}, {2, {ceil_mode = true}}}) do
      for _, inplace in ipairs({false, true}) do
        local x = (ml.randn({2, 3, 9, 11}) * 2):long():float() - 0.5 * ml.randn({2, 3, 9, 11}):gt(1):float()
        x = x / x:ne(2):float() * 0 + x -- NaN where x was 2
        local xs, xr = x:detach():requires_grad_(true), x:detach():requires_grad_(true)
        local seq = nn.Sequential(nn.Identity(), nn.ReLU({inplace = inplace}), nn.MaxPool2d(opts[1], opts[2]))
        local y = seq(xs)
        local ref = F.max_pool2d(F.relu(xr), opts[1], opts[2])
        T.assert_close(y, ref, {equal_nan = true, rtol = 0, atol = 0})
        local g = ml.randn(y:shape())
        y:backward(g)
        ref:backward(g)
        T.assert_close(xs.grad, xr.grad, {equal_nan = true, rtol = 0, atol = 0})
      end
    end
  end)
  it("keeps the order where a dilated window can lie wholly in the padding", function()
    local x = ml.tensor({{{{-1.0}}}})
    local y = nn.Sequential(nn.Identity(), nn.ReLU(), nn.MaxPool2d(2, {stride = 1, padding = 1, dilation = 2}))(x)
    local ref = F.max_pool2d(F.relu(x), 2, {stride = 1, padding = 1, dilation = 2})
    T.assert_close(y, ref, {rtol = 0, atol = 0})
    assert.are.equal(-math.huge, y:max():item())
  end)
  it("keeps the order when a hook watches either layer", function()
    local seen
    local seq = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    seq[1]:register_forward_hook(function(_, _, out) seen = out:shape() end)
    local y = seq(ml.randn({1, 2, 8, 8}))
    assert.are.same({1, 2, 8, 8}, seen)
    assert.are.same({1, 2, 4, 4}, y:shape())
  end)
end)

describe("nn.Sequential's BatchNorm2d then MaxPool2d", function()
  -- A BatchNorm2d followed by a MaxPool2d with tiling windows (a ReLU between them
  -- or not) runs as one op that never stores the normalised input (lua/moonlight/nn.lua,
  -- src/ops/batchnorm.h). Against the same layers run apart (a hook on the BatchNorm2d
  -- keeps them apart): the output and running statistics bit for bit, NaN and ties
  -- included; the gradients to rounding (their sums run in another order).
  local function pair(relu, pool_args, dtype, affine, track)
    local function make()
      ml.manual_seed(3)
      local bn = nn.BatchNorm2d(4, {affine = affine, track_running_stats = track, dtype = dtype})
      if affine then
        bn.weight:detach():copy_(ml.rand({4}):to(dtype) + 0.5)
        bn.bias:detach():copy_(ml.randn({4}):to(dtype))
      end
      local mods = {bn}
      if relu then mods[#mods + 1] = nn.ReLU() end
      mods[#mods + 1] = nn.MaxPool2d(table.unpack(pool_args))
      return nn.Sequential(table.unpack(mods))
    end
    local fused, apart = make(), make()
    apart[1]:register_forward_hook(function() end)
    return fused, apart
  end
  local function compare(fused, apart, x, train, dtype)
    fused:train(train)
    apart:train(train)
    local xf, xa = x:detach():requires_grad_(true), x:detach():requires_grad_(true)
    local yf, ya = fused(xf), apart(xa)
    T.assert_close(yf, ya, {equal_nan = true, rtol = 0, atol = 0})
    local g = ml.randn(yf:shape()):to(dtype)
    yf:backward(g)
    ya:backward(g)
    local tol = dtype == "float64" and 1e-12 or 2e-5
    T.assert_close(xf.grad, xa.grad, {equal_nan = true, rtol = tol, atol = tol})
    local bf, ba = fused[1], apart[1]
    if bf.weight then
      T.assert_close(bf.weight.grad, ba.weight.grad, {equal_nan = true, rtol = tol, atol = tol})
      T.assert_close(bf.bias.grad, ba.bias.grad, {equal_nan = true, rtol = tol, atol = tol})
    end
    if bf.running_mean then
      T.assert_close(bf.running_mean, ba.running_mean, {rtol = 0, atol = 0})
      T.assert_close(bf.running_var, ba.running_var, {rtol = 0, atol = 0})
      assert.are.equal(ba.num_batches_tracked:item(), bf.num_batches_tracked:item())
    end
    return yf
  end
  it("gives the layers' output and running statistics, and their gradients to rounding", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, relu in ipairs({true, false}) do
        for _, pool_args in ipairs({{2}, {{3, 2}}, {3, {stride = 3}}}) do
          for _, affine in ipairs({true, false}) do
            for _, train in ipairs({true, false}) do
              local fused, apart = pair(relu, pool_args, dtype, affine, true)
              ml.manual_seed(5)
              for _, shape in ipairs({{3, 4, 9, 11}, {1, 4, 8, 6}, {2, 4, 3, 3}}) do
                compare(fused, apart, ml.randn(shape):to(dtype) * 2 + 1, train, dtype)
              end
            end
          end
        end
      end
    end
  end)
  it("runs as one op, and apart when a layer is watched or the windows do not tile", function()
    local x = ml.randn({2, 4, 8, 8})
    local fused = nn.Sequential(nn.BatchNorm2d(4), nn.MaxPool2d(2))
    assert.are.equal("BatchNormMaxPool2dBackward", tostring(fused(x:detach():requires_grad_(true)).grad_fn))
    for _, args in ipairs({{2, {stride = 1}}, {2, {padding = 1}}, {2, {ceil_mode = true}},
                           {3, {dilation = 2}}, {2, {return_indices = true}}}) do
      local seq = nn.Sequential(nn.BatchNorm2d(4), nn.MaxPool2d(table.unpack(args)))
      local y = seq(x:detach():requires_grad_(true))
      assert.are_not.equal("BatchNormMaxPool2dBackward", tostring(y.grad_fn))
    end
    -- without a graph (no window codes kept) the same values
    for _, pool in ipairs({2, 3}) do
      local a, b = nn.Sequential(nn.BatchNorm2d(4), nn.MaxPool2d(pool)), nn.Sequential(nn.BatchNorm2d(4), nn.MaxPool2d(pool))
      b[1]:register_forward_hook(function() end)
      a:eval()
      b:eval()
      ml.no_grad(function() T.assert_close(a(x), b(x), {rtol = 0, atol = 0}) end)
    end
    local watched = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    local seen
    watched[2]:register_forward_hook(function(_, _, out) seen = out:shape() end)
    watched(x)
    assert.are.same({2, 4, 8, 8}, seen)
  end)
  it("without running statistics, with NaN and ties", function()
    local fused, apart = pair(true, {2}, "float32", true, false)
    local x = (ml.randn({2, 4, 6, 8}) * 2):long():float()
    x = x / x:ne(2):float() * 0 + x -- NaN where x was 2: the channel's statistics too
    compare(fused, apart, x, true, "float32")
    for _, pool_args in ipairs({{2}, {3}, {{2, 3}}}) do -- the 2 x 2 path and the general one
      local f2, a2 = pair(false, pool_args, "float32", true, true)
      compare(f2, a2, x, false, "float32") -- eval: only the NaN elements' windows are NaN
      compare(f2, a2, (ml.randn({2, 4, 6, 8}) * 1.5):long():float(), true, "float32") -- ties
    end
  end)
  it("eval without running statistics, momentum = false, an inplace ReLU, a frozen input", function()
    local function make(bn_opts, inplace)
      ml.manual_seed(4)
      return nn.Sequential(nn.BatchNorm2d(4, bn_opts), nn.ReLU({inplace = inplace}), nn.MaxPool2d(2))
    end
    for _, case in ipairs({{{track_running_stats = false}, false, false},
                           {{momentum = false}, true, true}, {{momentum = false}, false, true}}) do
      local fused, apart = make(case[1], case[2]), make(case[1], case[2])
      apart[1]:register_forward_hook(function() end)
      for _, train in ipairs({case[3], case[3], false}) do -- twice: the cumulative average moves
        compare(fused, apart, ml.randn({3, 4, 7, 9}) * 3, train, "float32")
      end
    end
    -- only the weight and bias need gradients
    local fused, apart = pair(false, {2}, "float32", true, true)
    local x = ml.randn({2, 4, 6, 6})
    local yf, ya = fused(x), apart(x)
    local g = ml.randn(yf:shape())
    yf:backward(g)
    ya:backward(g)
    T.assert_close(fused[1].weight.grad, apart[1].weight.grad, {rtol = 2e-5, atol = 2e-5})
    T.assert_close(fused[1].bias.grad, apart[1].bias.grad, {rtol = 2e-5, atol = 2e-5})
  end)
  it("leaves a window larger than the planes to MaxPool2d's error", function()
    local seq = nn.Sequential(nn.BatchNorm2d(2), nn.MaxPool2d(3))
    local e = err(function() seq(ml.randn({1, 2, 2, 5})) end)
    assert.truthy(e:find("MaxPool2d", 1, true), e)
  end)
end)

describe("batch norm layers", function()
  it("have PyTorch's parameters, buffers, state dict and repr", function()
    local bn = nn.BatchNorm2d(3)
    local keys, dtypes = {}, {}
    for k, v in pairs(bn:state_dict()) do keys[#keys + 1] = k; dtypes[#dtypes + 1] = v.dtype end
    assert.are.same({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}, keys)
    assert.are.same({"float32", "float32", "float32", "float32", "int64"}, dtypes)
    assert.are.same({}, bn.num_batches_tracked:shape())
    T.assert_close(bn.weight, ml.ones({3}))
    T.assert_close(bn.running_var, ml.ones({3}))
    assert.are.equal("BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)", tostring(bn))
    assert.are.equal("BatchNorm1d(5, eps=0.001, momentum=None, affine=False, track_running_stats=True)",
                     tostring(nn.BatchNorm1d(5, {eps = 1e-3, momentum = false, affine = false})))
    local names = {}
    for k in pairs(nn.BatchNorm1d(2, {affine = false, track_running_stats = false}):state_dict()) do names[#names + 1] = k end
    assert.are.same({}, names)
  end)

  it("normalises with the batch and updates the running statistics in train mode, uses them in eval mode", function()
    ml.manual_seed(5)
    local bn = nn.BatchNorm2d(3)
    local x = ml.randn({4, 3, 5, 5}) * 3 + 1
    local y = bn(x)
    local mean = x:mean(4, true):mean(3, true):mean(1, true)
    local var = ((x - mean) ^ 2):mean(4, true):mean(3, true):mean(1, true)
    T.assert_close(y, (x - mean) / (var + 1e-5):sqrt(), {rtol = 1e-4, atol = 1e-5})
    assert.are.equal(1, bn.num_batches_tracked:item())
    T.assert_close(bn.running_mean, mean:view({3}) * 0.1, {rtol = 1e-5, atol = 1e-6})
    T.assert_close(bn.running_var, var:view({3}) * (100 / 99) * 0.1 + 0.9, {rtol = 1e-5, atol = 1e-6})
    bn:eval()
    local before = bn.running_mean:clone()
    local ye = bn(x)
    T.assert_close(ye, (x - bn.running_mean:view({1, 3, 1, 1})) / (bn.running_var:view({1, 3, 1, 1}) + 1e-5):sqrt(),
                   {rtol = 1e-5, atol = 1e-5})
    T.assert_close(bn.running_mean, before)
    assert.are.equal(1, bn.num_batches_tracked:item())
  end)

  it("momentum = false is a cumulative average (PyTorch's momentum=None)", function()
    ml.manual_seed(6)
    local bn = nn.BatchNorm1d(2, {momentum = false})
    local a, b = ml.randn({8, 2}), ml.randn({8, 2}) + 2
    bn(a); bn(b)
    T.assert_close(bn.running_mean, (a:mean(1) + b:mean(1)) / 2, {rtol = 1e-5, atol = 1e-6})
    assert.are.equal(2, bn.num_batches_tracked:item())
  end)

  it("without running statistics uses the batch in eval mode too", function()
    local bn = nn.BatchNorm1d(2, {track_running_stats = false})
    bn:eval()
    local x = ml.tensor({{1, 2}, {3, 6}})
    T.assert_close(bn(x), ml.tensor({{-1, -1}, {1, 1}}), {rtol = 1e-4, atol = 1e-4})
  end)
end)

describe("ml.summary", function()
  it("prints torchinfo 1.7's table for the MNIST CNN", function()
    local m = nn.Sequential(nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    local s = ml.summary(m, {input_size = {8, 1, 28, 28}})
    -- by torchinfo's rules: a conv's mult-adds are its params x N x OH x OW, other
    -- layers' params x N; the pass size is twice the outputs of layers with params
    local expected = [[
==========================================================================================
Layer (type:depth-idx)                   Output Shape              Param #
==========================================================================================
Sequential                               [8, 10]                   --
├─Conv2d: 1-1                            [8, 16, 28, 28]           160
├─BatchNorm2d: 1-2                       [8, 16, 28, 28]           32
├─ReLU: 1-3                              [8, 16, 28, 28]           --
├─MaxPool2d: 1-4                         [8, 16, 14, 14]           --
├─Conv2d: 1-5                            [8, 32, 14, 14]           4,640
├─BatchNorm2d: 1-6                       [8, 32, 14, 14]           64
├─ReLU: 1-7                              [8, 32, 14, 14]           --
├─MaxPool2d: 1-8                         [8, 32, 7, 7]             --
├─Flatten: 1-9                           [8, 1568]                 --
├─Linear: 1-10                           [8, 128]                  200,832
├─ReLU: 1-11                             [8, 128]                  --
├─Dropout: 1-12                          [8, 128]                  --
├─Linear: 1-13                           [8, 10]                   1,290
==========================================================================================
Total params: 207,018
Trainable params: 207,018
Non-trainable params: 0
Total mult-adds (M): 9.90
==========================================================================================
Input size (MB): 0.03
Forward/backward pass size (MB): 2.42
Params size (MB): 0.83
Estimated Total Size (MB): 3.27
==========================================================================================]]
    assert.are.equal(expected, tostring(s))
    assert.are.equal(160 * 6272 + 32 * 8 + 4640 * 1568 + 64 * 8 + 200832 * 8 + 1290 * 8, s.total_mult_adds)
    assert.are.equal(2 * 4 * 8 * (2 * 16 * 784 + 2 * 32 * 196 + 128 + 10), s.total_output_bytes)
  end)
end)

describe("conv2d's paths", function()
  -- Stride 1 with an output as wide as the input takes the shifted planes: float32
  -- products read straight from the planes where the CPU has AVX-512 (src/cpu/conv.c),
  -- else im2col and col2im by flat copies (src/cpu/conv_t.h); the same convolution over
  -- an input padded by F.pad and no padding of its own takes the general loops. The
  -- output sums the same terms in the same order: the same bits. The gradients from
  -- the planes sum in another order (the input's over (channel, tap) in one chain
  -- where col2im adds each tap's sum; the weight's a sample in one chain where the
  -- general product goes by blocks of 128 positions): float32 rounding apart.
  it("the shifted planes agree with the general loops", function()
    ml.manual_seed(11)
    local cases = {
      {x = {3, 4, 14, 14}, w = {5, 4, 3, 3}, pad = {1, 1}},
      {x = {2, 1, 28, 28}, w = {16, 1, 3, 3}, pad = {1, 1}},
      {x = {2, 3, 7, 9}, w = {4, 3, 5, 5}, pad = {2, 2}},
      {x = {2, 2, 6, 8}, w = {3, 2, 3, 3}, pad = {2, 2}, dilation = 2},
      {x = {1, 2, 5, 6}, w = {2, 2, 1, 3}, pad = {0, 1}},
      {x = {2, 2, 2, 3}, w = {3, 2, 5, 5}, pad = {2, 2}},   -- planes with no row inside
      {x = {1, 1, 1, 1}, w = {2, 1, 3, 3}, pad = {1, 1}},
      {x = {2, 4, 5, 5}, w = {6, 2, 3, 3}, pad = {1, 1}, groups = 2},
      {x = {2, 2, 4, 4}, w = {3, 2, 3, 3}, pad = {3, 1}},   -- taller output than input
      {x = {2, 20, 6, 7}, w = {70, 20, 3, 3}, pad = {1, 1}}, -- several panels, many rows
    }
    for _, c in ipairs(cases) do
      local x0, w0, g0 = ml.randn(c.x), ml.randn(c.w), nil
      local function run(shifted)
        local x = x0:detach():requires_grad_(true)
        local w = w0:detach():requires_grad_(true)
        local b = ml.randn({c.w[1]}):requires_grad_(true)
        local o = {dilation = c.dilation or 1, groups = c.groups or 1}
        local y
        if shifted then
          o.padding = c.pad
          y = F.conv2d(x, w, b, o)
        else
          y = F.conv2d(F.pad(x, {c.pad[2], c.pad[2], c.pad[1], c.pad[1]}), w, b, o)
        end
        g0 = g0 or ml.randn(y:shape())
        y:backward(g0)
        return {y:detach(), x.grad, w.grad, b.grad}
      end
      local s = T.seeded(function() return run(true) end, 5)
      local r = T.seeded(function() return run(false) end, 5)
      T.assert_close(s[1], r[1], {rtol = 0, atol = 0})
      -- up to 630 terms a gradient element (70 channels x 9 taps): 1e-4 (a wrong mask
      -- or padded copy is off by whole terms, O(1))
      T.assert_close(s[2], r[2], {rtol = 1e-4, atol = 1e-4})
      T.assert_close(s[3], r[3], {rtol = 1e-4, atol = 1e-4})
      T.assert_close(s[4], r[4], {rtol = 1e-6, atol = 1e-5})
    end
  end)
end)

describe("conv_transpose2d's stride-1 same-size path", function()
  -- With stride 1 and the output as large as the input, conv_transpose2d's forward is the
  -- input gradient of a convolution that takes the shifted planes (float32, AVX-512) and
  -- its weight gradient the windows product; float64 takes the general loops: the two
  -- agree to float32 rounding, forward and every gradient.
  it("agrees with the float64 general loops", function()
    ml.manual_seed(12)
    for _, c in ipairs({{x = {2, 6, 7, 9}, w = {6, 5, 3, 3}, o = {padding = 1}},
                        {x = {2, 4, 6, 6}, w = {4, 3, 3, 3}, o = {padding = 2, dilation = 2, groups = 2}},
                        {x = {1, 18, 5, 8}, w = {18, 2, 5, 5}, o = {padding = 2}}}) do
      local x0, w0, b0 = ml.randn(c.x), ml.randn(c.w), ml.randn({c.w[2] * (c.o.groups or 1)})
      local function run(dtype)
        local x = x0:to(dtype):detach():requires_grad_(true)
        local w = w0:to(dtype):detach():requires_grad_(true)
        local b = b0:to(dtype):detach():requires_grad_(true)
        local y = F.conv_transpose2d(x, w, b, c.o)
        assert.are.same(c.x[3], y:shape()[3])
        y:backward(ml.ones(y:shape()):to(dtype) * 0.5 + y:detach() * 0.1)
        return {y:detach():float(), x.grad:float(), w.grad:float(), b.grad:float()}
      end
      local s, r = run("float32"), run("float64")
      for i = 1, 4 do T.assert_close(s[i], r[i], {rtol = 1e-4, atol = 1e-4}) end
    end
  end)
end)

describe("determinism", function()
  it("conv, pooling and batch norm give the same bits on 1 and on 2 threads", function()
    local function run()
      ml.manual_seed(7)
      local x = ml.randn({40, 3, 12, 12}, {requires_grad = true})
      local w = ml.randn({8, 3, 3, 3}, {requires_grad = true})
      local b = ml.randn({8}, {requires_grad = true})
      local rm, rv = ml.zeros({8}), ml.ones({8})
      local y = F.max_pool2d(F.batch_norm(F.conv2d(x, w, b, {padding = 1}), rm, rv, {training = true}), 2)
      y:backward(ml.randn(y:shape()))
      return {y:detach(), x.grad, w.grad, b.grad, rm, rv}
    end
    local saved = ml.get_num_threads()
    ml.set_num_threads(1)
    local one = run()
    ml.set_num_threads(2)
    local two = run()
    ml.set_num_threads(saved)
    for i = 1, #one do T.assert_close(two[i], one[i], {rtol = 0, atol = 0}) end
  end)
end)
