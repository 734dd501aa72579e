-- Sequential (children named "0", "1", ... as in PyTorch, so
-- state_dict keys match) and small glue modules the models need.
local Module = require "ser.nn.module"

local Sequential = Module.class("Sequential")
-- nn.Sequential{ layer, layer, ... } or nn.Sequential(layer, layer, ...)
function Sequential:init(...)
  local layers = ...
  if select("#", ...) ~= 1 or getmetatable(layers) ~= nil or type(layers) ~= "table" then
    layers = { ... }
  end
  for i, m in ipairs(layers) do self:add_module(tostring(i - 1), m) end
end
function Sequential:add(m)
  return self:add_module(tostring(#self._children), m)
end
function Sequential:len()
  return #self._children
end
-- 1-based access in Lua: seq:get(1) is child "0".
function Sequential:get(i)
  local name = self._children[i]
  if name == nil then
    error(("Sequential:get: index %s out of range 1..%d"):format(tostring(i), #self._children), 2)
  end
  return self[name]
end
-- A BatchNorm directly followed by a ReLU runs as one fused op
-- (BatchNorm:forward_relu), unless either module's forward has been replaced
-- on the instance (summary() does that to record each layer's output).
local function fuses_with_relu(m, nxt)
  return nxt ~= nil and m.forward_relu ~= nil and m.forward == m._forward_fused_with_relu and nxt.__name == "ReLU" and
    rawget(m, "forward") == nil and rawget(nxt, "forward") == nil
end

-- also for models that run a BatchNorm and a ReLU outside a Sequential (ser.models.CRNN)
Sequential.fuses_with_relu = fuses_with_relu

function Sequential:forward(x)
  local ch, i = self._children, 1
  while i <= #ch do
    local m, nxt = self[ch[i]], ch[i + 1] and self[ch[i + 1]]
    if fuses_with_relu(m, nxt) then
      x = m:forward_relu(x)
      i = i + 2
    else
      x = m(x)
      i = i + 1
    end
  end
  return x
end

-- Mean over one dimension (1-based, negative from the end), dropping it.
local Mean = Module.class("Mean")
function Mean:init(dim)
  self.dim = dim
end
function Mean:forward(x)
  return x:mean(self.dim)
end
function Mean:extra_repr()
  return "dim=" .. tostring(self.dim)
end

-- Permute(1, 3, 2): reorders dimensions (1-based).
local Permute = Module.class("Permute")
function Permute:init(...)
  self.dims = { ... }
end
function Permute:forward(x)
  return x:permute(table.unpack(self.dims))
end
function Permute:extra_repr()
  return table.concat(self.dims, ", ")
end

-- Lambda(fn, name): wraps a function with no parameters as a module.
local Lambda = Module.class("Lambda")
function Lambda:init(fn, name)
  if type(fn) ~= "function" then error("Lambda: expected a function, got " .. type(fn), 2) end
  self.fn = fn
  self.label = name or "fn"
end
function Lambda:forward(...)
  return self.fn(...)
end
function Lambda:extra_repr()
  return self.label
end

return { Sequential = Sequential, Mean = Mean, Permute = Permute, Lambda = Lambda }
