-- ser.nn: nn.Module and the layer classes, with PyTorch's names, constructor
-- arguments, parameter names and default initialisation.
--   local nn = require "ser.nn"
--   local m = nn.Sequential{ nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU() }
local Module = require "ser.nn.module"

Module.summary = require "ser.nn.summary"

local nn = { Module = Module, functional = require "ser.nn.functional" }
for _, part in ipairs { "container", "conv", "norm", "pool", "basic", "rnn", "transformer", "heads" } do
  for name, cls in pairs(require("ser.nn." .. part)) do nn[name] = cls end
end

-- True when v is an nn module instance.
function nn.is_module(v)
  local mt = getmetatable(v)
  return type(v) == "table" and type(mt) == "table" and mt.named_modules == Module.named_modules
end

return nn
