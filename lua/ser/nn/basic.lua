-- Linear, Dropout, Flatten and the activations.
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local u = require "ser.nn.util"

local Linear = Module.class("Linear")
-- kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); the bias uses the same bound.
function Linear:init(in_features, out_features, opts)
  opts = u.opts(opts, "Linear", { bias = true })
  self.in_features = u.positive_int(in_features, "in_features", "Linear")
  self.out_features = u.positive_int(out_features, "out_features", "Linear")
  local bound = 1 / math.sqrt(self.in_features)
  self:register_parameter("weight", u.uniform({ self.out_features, self.in_features }, bound))
  self:register_parameter("bias", opts.bias ~= false and u.uniform({ self.out_features }, bound) or nil)
end
function Linear:forward(x)
  return F.linear(x, self.weight, self.bias)
end
function Linear:extra_repr()
  return ("in_features=%d, out_features=%d, bias=%s"):format(self.in_features, self.out_features,
    u.pybool(self.bias ~= nil))
end

local Dropout = Module.class("Dropout")
function Dropout:init(p)
  p = p == nil and 0.5 or p
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(("Dropout: p must be a probability in [0, 1], got %s"):format(tostring(p)), 2)
  end
  self.p = p
end
function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  return F.dropout(x, self.p, true)
end
function Dropout:extra_repr()
  return ("p=%s, inplace=False"):format(u.pyfloat(self.p))
end

-- Flatten(start_dim, end_dim) with 1-based dims; the default (2, -1) keeps the
-- batch dimension, like PyTorch's Flatten(1, -1).
local Flatten = Module.class("Flatten")
function Flatten:init(start_dim, end_dim)
  self.start_dim = start_dim or 2
  self.end_dim = end_dim or -1
end
function Flatten:forward(x)
  return F.flatten(x, self.start_dim, self.end_dim)
end
function Flatten:extra_repr()
  local function py(d) return d > 0 and d - 1 or d end
  return ("start_dim=%d, end_dim=%d"):format(py(self.start_dim), py(self.end_dim))
end

local ReLU = Module.class("ReLU")
function ReLU:forward(x)
  return F.relu(x)
end

local Tanh = Module.class("Tanh")
function Tanh:forward(x)
  return F.tanh(x)
end

local LeakyReLU = Module.class("LeakyReLU")
function LeakyReLU:init(negative_slope)
  self.negative_slope = negative_slope or 0.01
end
function LeakyReLU:forward(x)
  return F.leaky_relu(x, self.negative_slope)
end
function LeakyReLU:extra_repr()
  return "negative_slope=" .. u.pyfloat(self.negative_slope)
end

-- x * x elementwise (a filterbank's energy; PyTorch writes it inline, x ** 2).
local Square = Module.class("Square")
function Square:forward(x)
  return x * x
end

-- log(x + eps) elementwise (log compression of an energy; eps keeps silence finite).
local Log = Module.class("Log")
function Log:init(eps)
  eps = eps or 0
  if type(eps) ~= "number" or not (eps >= 0 and eps < math.huge) then
    error(("Log: eps must be a finite number >= 0, got %s"):format(tostring(eps)), 3)
  end
  self.eps = eps
end
function Log:forward(x)
  return (self.eps > 0 and x + self.eps or x):log()
end
function Log:extra_repr()
  return "eps=" .. u.pyfloat(self.eps)
end

return { Linear = Linear, Dropout = Dropout, Flatten = Flatten, ReLU = ReLU, Tanh = Tanh, LeakyReLU = LeakyReLU,
         Square = Square, Log = Log }
