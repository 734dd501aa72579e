-- Emotion heads over the pooled hidden states of a frozen encoder (ser.data.embedding_cache):
-- their input is x [B, L + 1, 2, d], per layer the mean and the std of the clip's frames.
--
--   SuperbHead(layers, d, classes)
--     the SUPERB recipe (Yang et al. 2021): learned softmax weights over the L + 1 layers ->
--     the weighted mean over time (the layers' pooled means weighted; a mean commutes with the
--     weighted sum) -> Linear.  Parameters: weights [L + 1], linear.weight, linear.bias.
--   StatsHead(layers, d, classes, { hidden = 256, dropout = 0.3 })
--     learned softmax weights over the layers -> statistics pooling (the weighted layers' means
--     and stds, concatenated: 2d) -> MLP: Linear(2d, hidden), LayerNorm, ReLU, Dropout,
--     Linear(hidden, classes).  Parameters: weights, mlp.0.*, mlp.1.* (LayerNorm), mlp.4.*.
--     (The std of the weighted sum of layers is not recoverable from per-layer statistics;
--     the weighted sum of the layers' stds stands in for it.)
-- All three take `layers` = L + 1 (the number of hidden states) and have embed(x), the
-- representation before the classifier (SuperbHead: [B, d]; the others: the MLP's hidden [B, hidden]).
local Module = require "ser.nn.module"
local T = require "ser.core.tensor"
local container = require "ser.nn.container"
local basic = require "ser.nn.basic"
local transformer = require "ser.nn.transformer"
local u = require "ser.nn.util"

local M = {}

local function check_input(self, x)
  local s = x:shape()
  if #s ~= 4 or s[2] ~= self.layers or s[3] ~= 2 or s[4] ~= self.d then
    error(("%s: expected pooled hidden states [B, %d, 2, %d] (layers, mean and std, d_model), got [%s]")
      :format(self.__name, self.layers, self.d, table.concat(s, ",")), 3)
  end
  return s[1]
end

-- [B, L + 1, 2, d] -> [B, 2, d]: the layers weighted by softmax(weights).
local function weighted(self, x)
  local w = self.weights:softmax(1):view(1, self.layers, 1, 1)
  return (x * w):sum(2)
end

local SuperbHead = Module.class("SuperbHead")
function SuperbHead:init(layers, d, classes)
  self.layers = u.positive_int(layers, "layers", "SuperbHead")
  self.d = u.positive_int(d, "d", "SuperbHead")
  self.classes = u.positive_int(classes, "classes", "SuperbHead")
  self:register_parameter("weights", T.zeros(self.layers))
  self:add_module("linear", basic.Linear(self.d, self.classes))
end
function SuperbHead:embed(x)
  local B = check_input(self, x)
  return weighted(self, x):narrow(2, 1, 1):reshape(B, self.d)
end
function SuperbHead:forward(x)
  return self.linear(self:embed(x))
end
function SuperbHead:extra_repr()
  return ("layers=%d, d=%d, classes=%d"):format(self.layers, self.d, self.classes)
end

-- StatsHead and ConcatHead: the sizes and options they share, their MLP (Linear(inputs,
-- hidden), LayerNorm, ReLU, Dropout, Linear(hidden, classes): mlp.0, mlp.1, mlp.4) and repr.
local function mlp_sizes(self, name, layers, d, classes, opts)
  opts = u.opts(opts, name, { hidden = true, dropout = true })
  self.layers = u.positive_int(layers, "layers", name)
  self.d = u.positive_int(d, "d", name)
  self.classes = u.positive_int(classes, "classes", name)
  self.hidden = u.positive_int(opts.hidden or 256, "hidden", name)
  self.dropout = opts.dropout or 0.3
end
local function add_mlp(self, inputs)
  self:add_module("mlp", container.Sequential {
    basic.Linear(inputs, self.hidden), transformer.LayerNorm(self.hidden), basic.ReLU(),
    basic.Dropout(self.dropout), basic.Linear(self.hidden, self.classes) })
end
local function mlp_repr(self)
  return ("layers=%d, d=%d, classes=%d, hidden=%d, dropout=%s"):format(self.layers, self.d, self.classes,
    self.hidden, u.pyfloat(self.dropout))
end

local StatsHead = Module.class("StatsHead")
function StatsHead:init(layers, d, classes, opts)
  mlp_sizes(self, "StatsHead", layers, d, classes, opts)
  self:register_parameter("weights", T.zeros(self.layers))
  add_mlp(self, 2 * self.d)
end
function StatsHead:pooled(x)
  local B = check_input(self, x)
  return weighted(self, x):reshape(B, 2 * self.d)
end
function StatsHead:embed(x)
  local h = self:pooled(x)
  for i = 1, 3 do h = self.mlp:get(i)(h) end
  return h
end
function StatsHead:forward(x)
  return self.mlp(self:pooled(x))
end
StatsHead.extra_repr = mlp_repr

-- ConcatHead(layers, d, classes, { hidden = 256, dropout = 0.3 }): every layer's mean and std
-- concatenated ((L + 1) * 2d inputs, no layer weighting) -> the same MLP as StatsHead.
-- Parameters: mlp.0.*, mlp.1.* (LayerNorm), mlp.4.*.
local ConcatHead = Module.class("ConcatHead")
function ConcatHead:init(layers, d, classes, opts)
  mlp_sizes(self, "ConcatHead", layers, d, classes, opts)
  add_mlp(self, self.layers * 2 * self.d)
end
function ConcatHead:pooled(x)
  local B = check_input(self, x)
  return x:reshape(B, self.layers * 2 * self.d)
end
ConcatHead.embed, ConcatHead.forward = StatsHead.embed, StatsHead.forward
ConcatHead.extra_repr = mlp_repr

M.SuperbHead, M.StatsHead, M.ConcatHead = SuperbHead, StatsHead, ConcatHead
return M
