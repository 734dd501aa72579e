-- The `ser` table. C modules and Lua modules are loaded on first use, so
-- `require "ser"` stays cheap and a script pays only for what it touches.
local ser = ...
if type(ser) ~= "table" then ser = {} end

local base = require "ser.core.base"
for k, v in pairs(base) do ser[k] = v end
ser.tensor = require "ser.tensor"

-- name in `ser` -> module (or {module, field}) loaded on first access.
-- Each area adds its line here.
local lazy = {
  nn = "ser.nn",
  models = "ser.models",
  train = "ser.train",
  data = "ser.data",
  audio = "ser.core.audio",
  features = "ser.core.features",
  augment = "ser.augment",
  plot = "ser.plot",
  umap = { "ser.core.eval", "umap" },
  metrics = "ser.metrics",
  recipe = "ser.recipe",
  experiment = "ser.experiment",
  results = "ser.results",
  fs = "ser.fs",
  options = "ser.options",
  cli = "ser.cli",
  optim = "ser.optim",
  save = { "ser.core.checkpoint", "save" },
  load = { "ser.core.checkpoint", "load" },
  set_amp = { "ser.core.nn_cnn", "set_amp" },
  pretrained = "ser.pretrained",
  dist = "ser.dist",
  graph = "ser.graph",
  onnx = "ser.onnx",
  serve = "ser.serve",
  stream = "ser.stream",
}
ser._lazy = lazy

return setmetatable(ser, {
  __index = function(t, key)
    local spec = lazy[key]
    if spec == nil then return nil end
    local value
    if type(spec) == "table" then
      value = require(spec[1])[spec[2]]
    else
      value = require(spec)
    end
    rawset(t, key, value)
    return value
  end,
})
