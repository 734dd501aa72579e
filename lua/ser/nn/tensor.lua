-- The few tensor operations the nn layer needs, in one place, so layers read
-- as architecture and the binding's names are looked up once.
local T = require "ser.core.tensor"

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
  return T.uniform(shape, -bound, bound)
end

function M.zeros(shape) return T.zeros(shape) end
function M.ones(shape) return T.ones(shape) end

function M.zero_grad(p)
  p:zero_grad()
end

-- In-place copy with no autograd record (loading weights is not a graph op).
function M.copy_into(dst, src)
  dst:copy_(src)
end

-- Runs fn with autograd recording off.
function M.no_grad(fn)
  return T.no_grad(fn)
end

function M.add_scalar_(x, v)
  x:add_(v)
end

return M
