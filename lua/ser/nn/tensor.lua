-- The few tensor operations the nn layer needs, in one place, so layers read
-- as architecture and the binding's names are looked up once.
local T = require "ser.core.tensor"
local base = require "ser.core.base"

local M = { T = T }

function M.is(x)
  return T.is_tensor(x)
end

function M.check(x, what)
  if not T.is_tensor(x) then error(("%s must be a tensor, got %s"):format(what, type(x)), 3) end
  return x
end

function M.numel(x)
  return x:numel()
end

-- U(-bound, bound) from the generator behind ser.manual_seed.
function M.uniform(shape, bound)
  return T.empty(shape):uniform_(-bound, bound)
end

function M.zeros(shape) return T.zeros(shape) end
function M.ones(shape) return T.ones(shape) end

function M.zero_grad(p)
  p:zero_grad()
end

-- Runs fn with autograd recording off.
function M.no_grad(fn, ...)
  return base.no_grad(fn, ...)
end

-- In-place copy outside autograd (loading weights is not a graph op). A
-- source of another shape but the same size (PyTorch's 0-d
-- num_batches_tracked into our [1]) is reshaped first.
function M.copy_into(dst, src)
  local ds, ss = dst:shape(), src:shape()
  if table.concat(ds, ",") ~= table.concat(ss, ",") then src = src:reshape(ds) end
  base.no_grad(function() dst:copy_(src) end)
end

function M.add_scalar_(x, v)
  base.no_grad(function() x:add_(v) end)
end

return M
