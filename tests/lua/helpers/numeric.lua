-- Numeric comparisons for specs: one definition of "the largest difference" and "the error
-- relative to the reference's scale", so that every spec compares equally strictly.
--   num(v)                    a Lua number from a number or a one-element tensor
--   max_abs(t)                max |t| of a tensor or a nested table of numbers
--   max_abs_diff(a, b)        max |a - b|; a and b must have the same shape
--   rel_err(a, b, floor)      max |a - b| / max(max |b|, floor): the floor is explicit, since
--                             specs pick it to suit their scale
--   rel_err_at(a, b, floor)   the same and where it is worst: rel, worst, flat index, a[i], b[i]
--   assert_close(label, got, want, tol[, log])  rel_err_at with floor 1e-30, raising when above
--                             tol; log (print, say) is given a line for every comparison
-- A NaN anywhere makes the result NaN, so that every comparison with a tolerance fails: a
-- comparison that skipped NaNs (math.max does) would let a broken kernel pass.
-- Load with dofile (helpers are not modules on the search path).
local M = {}

local function is_tensor(x) return type(x) == "userdata" end

function M.num(v) return type(v) == "number" and v or v:item() end

-- A tensor or a nested table of numbers as a flat list of Lua numbers and its shape.
local function flatten(x)
  if is_tensor(x) then return x:contiguous():view(-1):totable(), x:shape() end
  assert(type(x) == "table", "numeric: expected a tensor or a table of numbers, got " .. type(x))
  local flat, shape = {}, {}
  local function walk(t, depth)
    if type(t) == "number" then
      assert(depth == #shape + 1, "numeric: a ragged table (a number where a list was expected)")
      flat[#flat + 1] = t
      return
    end
    assert(type(t) == "table", "numeric: a table holding " .. type(t))
    if shape[depth] == nil then shape[depth] = #t end
    assert(shape[depth] == #t, ("numeric: a ragged table (%d entries where %d were expected)"):format(#t,
      shape[depth]))
    for i = 1, #t do walk(t[i], depth + 1) end
  end
  walk(x, 1)
  return flat, shape
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_text(s) return "[" .. table.concat(s, ",") .. "]" end

local function check_shapes(sa, sb)
  assert(same_shape(sa, sb), ("numeric: shapes differ: %s vs %s"):format(shape_text(sa), shape_text(sb)))
end

function M.max_abs(t)
  if is_tensor(t) then
    assert(t:numel() > 0, "numeric: max_abs of an empty tensor")
    return M.num(t:abs():max()) -- the C max returns NaN when there is one
  end
  local m = 0
  for _, v in ipairs((flatten(t))) do
    local a = math.abs(v)
    if a ~= a then return a end
    if a > m then m = a end
  end
  return m
end

-- Worst |a[i] - b[i]| in double precision over the flat elements, with its index and values.
local function worst_of(a, b)
  local x, sa = flatten(a)
  local y, sb = flatten(b)
  check_shapes(sa, sb)
  assert(#y > 0, "numeric: comparing empty tensors")
  local worst, at, scale = 0, 1, 0
  for i = 1, #y do
    local e = math.abs(x[i] - y[i])
    if e ~= e then return e, i, e, x[i], y[i] end
    if e > worst then worst, at = e, i end
    local s = math.abs(y[i])
    if s ~= s then return s, i, s, x[i], y[i] end
    if s > scale then scale = s end
  end
  return worst, at, scale, x[at], y[at]
end

function M.max_abs_diff(a, b)
  if is_tensor(a) and is_tensor(b) then
    check_shapes(a:shape(), b:shape())
    return M.max_abs(a - b)
  end
  return (worst_of(a, b))
end

function M.rel_err(a, b, floor)
  assert(type(floor) == "number", "numeric.rel_err(a, b, floor): the floor is required")
  return M.max_abs_diff(a, b) / math.max(M.max_abs(b), floor)
end

function M.rel_err_at(a, b, floor)
  assert(type(floor) == "number", "numeric.rel_err_at(a, b, floor): the floor is required")
  local worst, at, scale, x, y = worst_of(a, b)
  return worst / math.max(scale, floor), worst, at, x, y
end

function M.assert_close(label, got, want, tol, log)
  local r, worst, at, g, w = M.rel_err_at(got, want, 1e-30)
  if log then
    log(("  %s: max abs err %.3g (relative to max |ref| %.3g) at %d: %.6g vs %.6g"):format(label, worst, r, at, g, w))
  end
  assert(r <= tol, ("%s: relative error %.3g > %.3g (max abs %.3g at %d: %.6g vs %.6g)"):format(label, r, tol, worst,
    at, g, w))
  return r, worst, at, g, w
end

return M
