-- Argument helpers shared by the layer classes: PyTorch accepts `3` or `{3, 3}`
-- for a 2-d kernel; errors name the layer and the bad value.
local T = require "ser.core.tensor"
local base = require "ser.core.base"
local options = require "ser.options"

local M = {}

-- A tensor argument, or an error naming what it should be (at the caller's caller).
function M.check_tensor(x, what)
  if not T.is_tensor(x) then error(("%s must be a tensor, got %s"):format(what, type(x)), 3) end
  return x
end

-- U(-bound, bound) from the generator behind ser.manual_seed.
function M.uniform(shape, bound)
  return T.empty(shape):uniform_(-bound, bound)
end

-- In-place copy outside autograd (loading weights is not a graph op). A source of another
-- shape but the same size (PyTorch's 0-d num_batches_tracked into our [1]) is reshaped first.
function M.copy_into(dst, src)
  local ds, ss = dst:shape(), src:shape()
  if table.concat(ds, ",") ~= table.concat(ss, ",") then src = src:reshape(ds) end
  base.no_grad(function() dst:copy_(src) end)
end

-- `min` (optional): the smallest allowed value (1 for kernels, strides and
-- dilations, 0 for padding), so a layer that could never run is refused when built.
function M.tuple(v, n, what, layer, min)
  if type(v) == "number" then
    if v ~= math.floor(v) then error(("%s: %s must be a whole number, got %s"):format(layer, what, v), 3) end
    if min and v < min then error(("%s: %s must be at least %d, got %s"):format(layer, what, min, v), 3) end
    local t = {}
    for i = 1, n do t[i] = v end
    return t
  end
  if type(v) ~= "table" or #v ~= n then
    error(("%s: %s must be a number or a table of %d numbers, got %s"):format(layer, what, n, tostring(v)), 3)
  end
  for i = 1, n do
    if type(v[i]) ~= "number" or v[i] ~= math.floor(v[i]) then
      error(("%s: %s[%d] must be a whole number, got %s"):format(layer, what, i, tostring(v[i])), 3)
    end
    if min and v[i] < min then
      error(("%s: %s[%d] must be at least %d, got %s"):format(layer, what, i, min, v[i]), 3)
    end
  end
  return { table.unpack(v, 1, n) }
end

function M.positive_int(v, what, layer)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 then
    error(("%s: %s must be a positive whole number, got %s"):format(layer, what, tostring(v)), 3)
  end
  return math.tointeger(v)
end

function M.opts(o, layer, allowed)
  if o == nil then return {} end
  if type(o) ~= "table" then error(("%s: options must be a table, got %s"):format(layer, type(o)), 3) end
  return options.check(o, allowed, layer, 3)
end

-- PyTorch's tuple repr: (3, 3) and (9,)
function M.pytuple(t)
  if #t == 1 then return "(" .. t[1] .. ",)" end
  return "(" .. table.concat(t, ", ") .. ")"
end

function M.pybool(b)
  return b and "True" or "False"
end

-- Formats floats like Python's repr for the values layers show (1e-05, 0.1).
function M.pyfloat(x)
  if x == math.floor(x) and math.abs(x) < 1e15 then return ("%.1f"):format(x) end
  local s = ("%.17g"):format(x)
  for p = 1, 17 do
    local c = ("%." .. p .. "g"):format(x)
    if tonumber(c) == x then s = c break end
  end
  return s
end

return M
