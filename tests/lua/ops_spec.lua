-- The ops' Lua API: results on hand-checked values, dims and positions, and the
-- messages of bad input (every error names the function, the shapes, what was
-- expected).
local ml = require "moonlight"
local T = ml.testing

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function long(t) return ml.tensor(t, {dtype = "int64"}) end

describe("ops", function()
  it("broadcast numbers on either side", function()
    local x = ml.tensor({1, 2, 4})
    T.assert_close(2 - x, {1, 0, -2})
    T.assert_close(x / 2, {0.5, 1, 2})
    T.assert_close(8 / x, {8, 4, 2})
    T.assert_close(x ^ 2, {1, 4, 16})
    assert.are.equal("float32", (x * 2).dtype)
  end)

  it("reduces with dims and keepdim", function()
    local x = ml.tensor({{1, 5, 3}, {7, 2, 9}})
    T.assert_close(x:sum(1), {8, 7, 12})
    T.assert_close(x:sum(-1, true), {{9}, {18}})
    assert.are.same({2, 1}, x:mean(2, true):shape())
    local v, i = x:max(2)
    T.assert_close(v, {5, 9})
    assert.are.same({1, 2}, i:totable()) -- 0-based positions, as torch
    assert.are.same({1, 0, 1}, x:argmax(1):totable())
    assert.are.equal(9, x:max():item())
  end)

  it("gathers and selects with 0-based index values and 1-based dims", function()
    local x = ml.tensor({{1, 2, 3}, {4, 5, 6}})
    T.assert_close(x:gather(2, long({{2, 0}, {1, 1}})), {{3, 1}, {5, 5}})
    T.assert_close(ml.gather(x, 1, long({{1, 0, 1}})), {{4, 2, 6}})
    T.assert_close(x:index_select(2, long({2, 0})), {{3, 1}, {6, 4}})
    T.assert_close(ml.index_select(x, -2, long({1})), {{4, 5, 6}})
    T.assert_close(x:scatter_add(2, long({{0, 0}, {2, 1}}), ml.tensor({{1, 1}, {1, 1}})),
                   {{3, 2, 3}, {4, 6, 7}})
    T.assert_close(x:index_add(1, long({1, 1}), ml.ones({2, 3})), {{1, 2, 3}, {6, 7, 8}})
  end)

  it("one_hot gives int64 rows, inferring the class count", function()
    local y = ml.one_hot(long({0, 2}))
    assert.are.equal("int64", y.dtype)
    assert.are.same({{1, 0, 0}, {0, 0, 1}}, y:totable())
    assert.are.same({2, 4}, ml.F.one_hot(long({0, 2}), 4):shape())
    assert.are.same({2, 2, 3}, ml.one_hot(long({{0, 1}, {2, 2}}), 3):shape())
  end)

  it("works on transposed and sliced views", function()
    local x = ml.arange(12):view({3, 4})
    local t = x:t()
    assert.is_false(t:is_contiguous())
    T.assert_close(t:sum(2), {12, 15, 18, 21})
    T.assert_close(t:matmul(ml.ones({3})), {12, 15, 18, 21})
    T.assert_close(t:softmax(1):sum(1), {1, 1, 1})
    T.assert_close(x:narrow(2, 2, 2):gather(2, long({{1}, {0}, {1}})), {{2}, {5}, {10}})
    T.assert_close(t:index_select(1, long({3})), {{3, 7, 11}})
  end)

  it("softmax rows sum to one and log_softmax is its log", function()
    local x = ml.randn({4, 5})
    T.assert_close(x:softmax(2):sum(2), ml.ones({4}))
    T.assert_close(x:log_softmax(2), x:softmax(2):log())
    T.assert_close(x:logsumexp(2), x:exp():sum(2):log())
  end)

  it("logsumexp of a row with a NaN is NaN, as torch (an all-NaN row too)", function()
    local nan, inf = 0 / 0, math.huge
    for _, dt in ipairs({"float32", "float64"}) do
      local rows = ml.tensor({{nan, nan}, {-inf, nan}, {inf, nan}, {nan, 1}, {inf, inf}, {-inf, -inf}},
                             {dtype = dt})
      for _, r in ipairs({rows:logsumexp(2):totable(), rows:t():logsumexp(1):totable()}) do
        for i = 1, 4 do assert.is_true(r[i] ~= r[i], dt .. " row " .. i) end
        assert.are.same({inf, -inf}, {r[5], r[6]})
      end
    end
  end)

  it("casts NaN and out-of-range floats to integers as torch on x86", function()
    -- torch 1.13: float -> int64 truncates, NaN and values outside [-2^63, 2^63) give
    -- INT64_MIN; float -> uint8 goes through int64 and keeps the low 8 bits
    local x = {0 / 0, 1 / 0, -1 / 0, 1e20, -1e20, 300.7, -1.5, 255.9, 256, -0.5, 511, -257, 1e10}
    local min = math.mininteger
    for _, dt in ipairs({"float32", "float64"}) do
      local t = ml.tensor(x, {dtype = dt})
      assert.are.same({min, min, min, min, min, 300, -1, 255, 256, 0, 511, -257, 10000000000},
                      t:long():totable())
      assert.are.same({0, 0, 0, 0, 0, 44, 255, 255, 0, 0, 255, 255, 0}, t:byte():totable())
      local strided = ml.tensor({x, x}, {dtype = dt}):t():byte():t():totable()
      assert.are.same(t:byte():totable(), strided[2])
    end
    local big = ml.tensor({3000000001, -3000000001, 2 ^ 40 + 3}, {dtype = "float64"})
    assert.are.same({1, 255, 3}, big:byte():totable())
    -- a fill value is a scalar conversion, which torch checks ("value cannot be
    -- converted to type int64_t without overflow"), unlike a tensor's cast
    assert.has_error(function() ml.full({1}, 0 / 0, {dtype = "int64"}) end,
                     "full: the value (nan) cannot be converted to int64")
    assert.error_matches(function() ml.full({1}, 300.7, {dtype = "uint8"}) end, "^full: .*uint8")
  end)

  it("exp is accurate over float32's whole range", function()
    local x = ml.tensor({-100, -87.5, -20, -1e-3, 0, 1e-3, 1, 20, 88, 89, 1 / 0, -1 / 0, 0 / 0})
    local want = {}
    for i, v in ipairs(x:totable()) do want[i] = math.exp(v) end
    want[9] = math.exp(88) -- fits float32
    want[10] = math.huge   -- overflows
    T.assert_close(x:exp(), ml.tensor(want), {rtol = 2.5e-7, atol = 1e-44, equal_nan = true})
  end)
end)

describe("op errors", function()
  it("wrong argument types", function()
    assert.matches("argument 2 must be a tensor or a number, got string",
                   err_of(function() return ml.tensor({1}) + "x" end))
    assert.matches("matmul: argument 2 must be a tensor, got table",
                   err_of(function() return ml.tensor({1}):matmul({1}) end))
    assert.matches("gather: index must be an int64 tensor of 0%-based positions, got float32",
                   err_of(function() return ml.ones({2, 2}):gather(1, ml.zeros({2, 2})) end))
    assert.matches("softmax: dim is required",
                   err_of(function() return ml.ones({2}):softmax() end))
  end)

  it("shapes that do not broadcast", function()
    assert.matches("mul: shapes %[2, 3%] and %[2%] cannot be broadcast %(dim 2: 3 vs 2%)",
                   err_of(function() return ml.ones({2, 3}) * ml.ones({2}) end))
    assert.matches("where: shapes %[3%] and %[4%] cannot be broadcast",
                   err_of(function() return ml.where(ml.ones({3}):gt(0), ml.ones({3}), ml.ones({4})) end))
  end)

  it("matmul inner dims", function()
    assert.matches("matmul: shapes %[2, 3%] and %[4, 5%] cannot be multiplied %(inner dims 3 and 4 differ%)",
                   err_of(function() return ml.ones({2, 3}):matmul(ml.ones({4, 5})) end))
    assert.matches("matmul: shapes %[3%] and %[4%] cannot be multiplied",
                   err_of(function() return ml.ones({3}):matmul(ml.ones({4})) end))
    assert.matches("linear: input %[2, 3%] does not end in in_features 4 %(weight %[5, 4%]%)",
                   err_of(function() return ml.linear(ml.ones({2, 3}), ml.ones({5, 4})) end))
  end)

  it("reshape and view to a wrong size, view of a non-contiguous tensor", function()
    assert.matches("reshape: shape %[4, 2%] is invalid for input of size 6 %(shape %[2, 3%]%)",
                   err_of(function() return ml.ones({2, 3}):reshape({4, 2}) end))
    assert.matches("view: shape %[%-1, 4%] is invalid for input of size 6",
                   err_of(function() return ml.ones({2, 3}):view({-1, 4}) end))
    assert.matches("view: size and strides of the tensor %(shape %[3, 2%]%) are not compatible",
                   err_of(function() return ml.ones({2, 3}):t():view({6}) end))
    assert.are.same({6}, ml.ones({2, 3}):t():reshape({6}):shape())
  end)

  it("dims out of range", function()
    assert.matches("sum: dim 3 out of range for a 2%-dim tensor",
                   err_of(function() return ml.ones({2, 3}):sum(3) end))
    assert.matches("gather: dim %-3 out of range for a 2%-dim tensor",
                   err_of(function() return ml.ones({2, 3}):gather(-3, long({{0}})) end))
    assert.matches("softmax: dim 0 out of range",
                   err_of(function() return ml.ones({2, 3}):softmax(0) end))
  end)

  it("index values out of range", function()
    assert.matches("gather: index 12 out of range for dim 2 of size 10",
                   err_of(function() return ml.ones({2, 10}):gather(2, long({{12}, {0}})) end))
    assert.matches("gather: index %-1 out of range for dim 1 of size 2",
                   err_of(function() return ml.ones({2, 10}):gather(1, long({{-1}})) end))
    assert.matches("index_select: index 3 out of range for dim 1 of size 3",
                   err_of(function() return ml.ones({3, 2}):index_select(1, long({0, 3})) end))
    assert.matches("index: position 4 out of range for dim 1 of size 3",
                   err_of(function() return ml.ones({3, 2})[4] end))
    assert.matches("one_hot: class 5 out of range for 3 classes",
                   err_of(function() return ml.one_hot(long({0, 5}), 3) end))
    assert.matches("one_hot: class values must be non%-negative, got %-2",
                   err_of(function() return ml.one_hot(long({-2, 1})) end))
  end)

  it("index shapes", function()
    assert.matches("gather: index of shape %[2%] has 1 dims, the input of shape %[2, 3%] has 2",
                   err_of(function() return ml.ones({2, 3}):gather(1, long({0, 1})) end))
    assert.matches("gather: index of shape %[3, 1%] is larger than the input of shape %[2, 3%] in dim 1",
                   err_of(function() return ml.ones({2, 3}):gather(2, long({{0}, {0}, {0}})) end))
    assert.matches("index_select: index must be 1%-D, got shape %[1, 1%]",
                   err_of(function() return ml.ones({2, 3}):index_select(1, long({{0}})) end))
    assert.matches("scatter_add: src of shape %[1%] must have the index's shape %[2%]",
                   err_of(function() return ml.ones({3}):scatter_add(1, long({0, 1}), ml.ones({1})) end))
  end)
end)
