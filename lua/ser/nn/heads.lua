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
--
-- A frame-level head reads the hidden states' frame sequences instead, x [L + 1, B, T, d] (the layers
-- stacked first, as torch.stack(hidden_states, 0) in s3prl, so that the weighted sum over layers is
-- one GEMM), zero-padded to the batch's longest clip, with each clip's frame count in `lengths`:
--   AttentiveStatsHead(layers, d, classes, { hidden = 256, dropout = 0.3, attention = 128 })
--     learned softmax weights over the layers -> attentive statistics pooling over time (Okabe et
--     al. 2018: e_t = v . tanh(W h_t + b) + k, alpha = softmax over the clip's frames, the
--     alpha-weighted mean and std, 2d) -> the MLP above. forward(x, lengths), embed(x, lengths).
--     The pooling is two batched products (alpha^T h, alpha^T h^2; var = E[h^2] - mean^2, floored
--     at EPS): ~10x faster here than broadcasting alpha over [B, T, d] and summing.
--     { per_layer = true }: the frames are scored on the weighted layers as above, but every layer
--     is pooled with those alphas and the L + 1 layers' means and stds are concatenated
--     ((L + 1) * 2d inputs to the MLP), as ConcatHead does with plain means: the weighted sum
--     keeps one mixture of the layers where the concatenation lets the MLP read each.
--     Parameters: weights, attention.0.* (Linear d -> attention), attention.2.* (Linear attention -> 1),
--     mlp.0.*, mlp.1.*, mlp.4.*: nn.Sequential(Linear, Tanh, Linear) in PyTorch.
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
local function mlp_sizes(self, name, layers, d, classes, opts, more)
  local known = { hidden = true, dropout = true }
  for k in pairs(more or {}) do known[k] = true end
  opts = u.opts(opts, name, known)
  self.layers = u.positive_int(layers, "layers", name)
  self.d = u.positive_int(d, "d", name)
  self.classes = u.positive_int(classes, "classes", name)
  self.hidden = u.positive_int(opts.hidden or 256, "hidden", name)
  self.dropout = opts.dropout or 0.3
  return opts
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

-- The frame-level head (see the header). Padded frames (row t >= lengths[b]) get attention
-- weight exactly 0 (their score is pushed to -1e30 before the softmax), so a clip's output does
-- not depend on what it is batched with or on what the padding holds.
local AttentiveStatsHead = Module.class("AttentiveStatsHead")
function AttentiveStatsHead:init(layers, d, classes, opts)
  opts = mlp_sizes(self, "AttentiveStatsHead", layers, d, classes, opts, { attention = true, per_layer = true })
  self.attention_units = u.positive_int(opts.attention or 128, "attention", "AttentiveStatsHead")
  if opts.per_layer ~= nil and type(opts.per_layer) ~= "boolean" then
    error(("AttentiveStatsHead: per_layer must be true or false, got %s"):format(tostring(opts.per_layer)), 3)
  end
  self.per_layer = opts.per_layer == true
  self:register_parameter("weights", T.zeros(self.layers))
  self:add_module("attention", container.Sequential {
    basic.Linear(self.d, self.attention_units), basic.Tanh(), basic.Linear(self.attention_units, 1) })
  add_mlp(self, (self.per_layer and self.layers or 1) * 2 * self.d)
end

-- The variance floor under the square root (its gradient is 1 / (2 sqrt(v))).
AttentiveStatsHead.EPS = 1e-5

local function frame_input(self, x, lengths)
  local s = x:shape()
  if #s ~= 4 or s[1] ~= self.layers or s[4] ~= self.d then
    error(("%s: expected frame sequences [%d, B, T, %d] (layers, clips, frames, d_model), got [%s]")
      :format(self.__name, self.layers, self.d, table.concat(s, ",")), 4)
  end
  if type(lengths) ~= "table" or #lengths ~= s[2] then
    error(("%s: expected lengths, a list of %d frame counts (one per clip), got %s"):format(self.__name, s[2],
      type(lengths) == "table" and (#lengths .. " entries") or type(lengths)), 4)
  end
  for b, n in ipairs(lengths) do
    if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > s[3] then
      error(("%s: lengths[%d] = %s; expected a whole number of frames in 1..%d"):format(self.__name, b,
        tostring(n), s[3]), 4)
    end
  end
  return s[2], s[3]
end

-- alpha [B, 1, T], h [B, T, d] -> the alpha-weighted mean and std, each [B, d].
local function moments(alpha, h, B, d)
  local mean = alpha:matmul(h)                                                  -- [B, 1, d]
  local var = alpha:matmul(h * h) - mean * mean
  return mean:view(B, d), var:clamp(AttentiveStatsHead.EPS, math.huge):sqrt():view(B, d)
end

-- [L + 1, B, T, d], lengths -> [B, 2d] (per_layer: [B, (L + 1) * 2d]): the attention-weighted
-- mean and std of the weighted layers (of every layer).
function AttentiveStatsHead:pooled(x, lengths)
  local B, Tn = frame_input(self, x, lengths)
  local d, L1 = self.d, self.layers
  local h = self.weights:softmax(1):view(1, L1):matmul(x:contiguous():view(L1, -1)):view(B, Tn, d)
  local bias = {}
  for b = 1, B do
    local row = {}
    for t = 1, Tn do row[t] = t <= lengths[b] and 0 or -1e30 end
    bias[b] = row
  end
  local e = self.attention(h):view(B, Tn) + T.new(bias)
  local alpha = e:softmax(2):view(B, 1, Tn)
  if not self.per_layer then return T.cat({ moments(alpha, h, B, d) }, 2) end
  -- autograd's cat takes at most 8 differentiable tensors: [mean, std] per layer, then the layers
  -- in groups of 8
  local parts = {}
  for l = 1, L1 do parts[l] = T.cat({ moments(alpha, x:select(1, l), B, d) }, 2) end
  while #parts > 1 do
    local merged = {}
    for i = 1, #parts, 8 do merged[#merged + 1] = T.cat(table.move(parts, i, math.min(i + 7, #parts), 1, {}), 2) end
    parts = merged
  end
  return parts[1]
end
function AttentiveStatsHead:embed(x, lengths)
  local h = self:pooled(x, lengths)
  for i = 1, 3 do h = self.mlp:get(i)(h) end
  return h
end
function AttentiveStatsHead:forward(x, lengths)
  return self.mlp(self:pooled(x, lengths))
end
function AttentiveStatsHead:extra_repr()
  return mlp_repr(self) .. (", attention=%d%s"):format(self.attention_units, self.per_layer and ", per_layer=True" or "")
end

M.SuperbHead, M.StatsHead, M.ConcatHead = SuperbHead, StatsHead, ConcatHead
M.AttentiveStatsHead = AttentiveStatsHead
return M
