-- tests/lua/helpers/numeric.lua, which every parity spec compares through: a NaN never passes,
-- shapes must agree (no broadcasting hides a wrong shape), the rel_err floor is explicit.
local ser = require "ser"
local T = ser.tensor
local numeric = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/numeric.lua")

describe("spec helper numeric", function()
  local nan = 0 / 0

  it("gives max |a - b| for tensors, nested tables and a mix", function()
    local a, b = T.new { { 1, -2 }, { 3, 4 } }, T.new { { 1, -2.5 }, { 3, 4.25 } }
    assert.are.equal(0.5, numeric.max_abs_diff(a, b))
    assert.are.equal(0.5, numeric.max_abs_diff({ { 1, -2 }, { 3, 4 } }, b))
    assert.are.equal(0.5, numeric.max_abs_diff(a, { { 1, -2.5 }, { 3, 4.25 } }))
    assert.are.equal(4.25, numeric.max_abs(b))
    assert.are.equal(3, numeric.max_abs { { 1 }, { -3 } })
    assert.are.equal(0.25 / 4.25, numeric.rel_err(T.new { 4 }, T.new { 4.25 }, 1e-30))
    assert.are.equal(0.25 / 10, numeric.rel_err(T.new { 4 }, T.new { 4.25 }, 10))
  end)

  it("lets no NaN through, wherever it stands", function()
    for _, v in ipairs { { nan, 1, 2 }, { 1, nan, 2 }, { 1, 2, nan } } do
      assert.is_true(numeric.max_abs(T.new(v)) ~= numeric.max_abs(T.new(v)))
      assert.is_true(numeric.max_abs(v) ~= numeric.max_abs(v))
      local d = numeric.max_abs_diff(T.new(v), T.new { 1, 1, 2 })
      assert.is_false(d <= 1e9)
      assert.is_false(numeric.max_abs_diff(v, { 1, 1, 2 }) <= 1e9)
      assert.is_false(numeric.rel_err(T.new { 1, 1, 2 }, T.new(v), 1e-30) <= 1e9)
      assert.is_false(numeric.rel_err_at(T.new(v), T.new { 1, 1, 2 }, 1e-30) <= 1e9)
      assert.has_error(function() numeric.assert_close("x", T.new(v), T.new { 1, 1, 2 }, 1e9) end)
    end
  end)

  it("refuses different shapes, ragged tables, empty tensors and a missing floor", function()
    assert.has_error(function() numeric.max_abs_diff(T.new { 1, 2, 3 }, T.new { { 1, 2, 3 } }) end,
      "numeric: shapes differ: [3] vs [1,3]")
    assert.has_error(function() numeric.max_abs_diff(T.new { 1, 2 }, { 1, 2, 3 }) end,
      "numeric: shapes differ: [2] vs [3]")
    assert.has_error(function() numeric.max_abs_diff({ { 1, 2 }, { 3 } }, { { 1, 2 }, { 3, 4 } }) end)
    assert.has_error(function() numeric.max_abs(T.zeros(0)) end, "numeric: max_abs of an empty tensor")
    assert.has_error(function() numeric.rel_err(T.new { 1 }, T.new { 1 }) end,
      "numeric.rel_err(a, b, floor): the floor is required")
  end)

  it("names the worst element: relative error, its size, its flat index and both values", function()
    local r, worst, at, g, w = numeric.rel_err_at(T.new { 1, 5, 3 }, T.new { 1, 4, -8 }, 1e-30)
    assert.are.same({ 11 / 8, 11, 3, 3, -8 }, { r, worst, at, g, w })
    local ok, msg = pcall(numeric.assert_close, "clip 1", T.new { 1, 5 }, T.new { 1, 4 }, 0.1)
    assert.is_false(ok)
    assert.matches("clip 1: relative error 0.25 > 0.1 %(max abs 1 at 2: 5 vs 4%)", msg)
    assert.are.equal(0, numeric.assert_close("same", T.new { 1, 5 }, T.new { 1, 5 }, 0))
  end)
end)
