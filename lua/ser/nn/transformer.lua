-- LayerNorm, GELU and MultiheadAttention: the parts of a transformer encoder
-- layer, with PyTorch's names and defaults; MultiheadAttention keeps Hugging
-- Face's parameter names (q_proj, k_proj, v_proj, out_proj, as in
-- WhisperAttention), so pretrained weights load by name.
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local T = require "ser.core.tensor"
local u = require "ser.nn.util"
local Linear = require("ser.nn.basic").Linear

-- LayerNorm(dim, {eps = 1e-5, elementwise_affine = true}) over the last dim;
-- dim may also be given as {dim} (PyTorch's normalized_shape).
local LayerNorm = Module.class("LayerNorm")
function LayerNorm:init(dim, opts)
  opts = u.opts(opts, "LayerNorm", { eps = true, elementwise_affine = true })
  if type(dim) == "table" then
    if #dim ~= 1 then
      error(("LayerNorm: normalized_shape has %d entries; only the last dim is supported ({dim})"):format(#dim), 2)
    end
    dim = dim[1]
  end
  self.normalized_shape = u.positive_int(dim, "normalized_shape", "LayerNorm")
  self.eps = opts.eps or 1e-5
  if type(self.eps) ~= "number" or self.eps < 0 or self.eps ~= self.eps then
    error(("LayerNorm: eps must be a number >= 0, got %s"):format(tostring(opts.eps)), 2)
  end
  self.elementwise_affine = opts.elementwise_affine ~= false
  local c = { self.normalized_shape }
  self:register_parameter("weight", self.elementwise_affine and T.ones(c) or nil)
  self:register_parameter("bias", self.elementwise_affine and T.zeros(c) or nil)
end
function LayerNorm:forward(x)
  return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
end
function LayerNorm:extra_repr()
  return ("(%d,), eps=%s, elementwise_affine=%s"):format(self.normalized_shape, u.pyfloat(self.eps),
    u.pybool(self.elementwise_affine))
end

-- GELU({approximate = "none"}): the exact erf form, PyTorch's default.
local GELU = Module.class("GELU")
function GELU:init(opts)
  opts = u.opts(opts, "GELU", { approximate = true })
  self.approximate = opts.approximate or "none"
  if self.approximate ~= "none" then
    error(("GELU: approximate = '%s' is not supported; expected 'none' (the exact erf form)"):format(
      tostring(self.approximate)), 2)
  end
end
function GELU:forward(x)
  return F.gelu(x)
end
function GELU:extra_repr()
  return "approximate='none'"
end

-- MultiheadAttention(embed_dim, num_heads, {bias = true, k_bias = <bias>, scale = 1/sqrt(head_dim)})
-- on [B, T, embed_dim] inputs (batch first). Whisper's k_proj has no bias: k_bias = false.
--   y = mha(x, {lengths = {T1, T2, ...}})           self-attention; keys past each length are masked
--   y = mha(x, {key_value = memory, lengths = ...}) cross-attention; lengths count memory's rows
local MultiheadAttention = Module.class("MultiheadAttention")
function MultiheadAttention:init(embed_dim, num_heads, opts)
  opts = u.opts(opts, "MultiheadAttention", { bias = true, k_bias = true, scale = true })
  self.embed_dim = u.positive_int(embed_dim, "embed_dim", "MultiheadAttention")
  self.num_heads = u.positive_int(num_heads, "num_heads", "MultiheadAttention")
  if self.embed_dim % self.num_heads ~= 0 then
    error(("MultiheadAttention: embed_dim %d is not divisible by num_heads %d"):format(self.embed_dim,
      self.num_heads), 2)
  end
  self.head_dim = self.embed_dim // self.num_heads
  self.scale = opts.scale or 1 / math.sqrt(self.head_dim)
  if type(self.scale) ~= "number" or self.scale ~= self.scale or math.abs(self.scale) == math.huge then
    error(("MultiheadAttention: scale must be a finite number, got %s"):format(tostring(opts.scale)), 2)
  end
  local bias = opts.bias ~= false
  local k_bias = opts.k_bias
  if k_bias == nil then k_bias = bias end
  self.bias, self.k_bias = bias, k_bias and true or false
  local d = self.embed_dim
  -- Hugging Face's order (WhisperAttention): k, v, q, out
  self:add_module("k_proj", Linear(d, d, { bias = self.k_bias }))
  self:add_module("v_proj", Linear(d, d, { bias = bias }))
  self:add_module("q_proj", Linear(d, d, { bias = bias }))
  self:add_module("out_proj", Linear(d, d, { bias = bias }))
end

function MultiheadAttention:forward(x, opts)
  opts = u.opts(opts, "MultiheadAttention", { lengths = true, key_value = true })
  local shape = T.is_tensor(x) and x:shape() or nil
  if not shape or #shape ~= 3 or shape[3] ~= self.embed_dim then
    error(("MultiheadAttention(%d, %d heads): input must be [B, T, %d], got %s"):format(self.embed_dim,
      self.num_heads, self.embed_dim, shape and "[" .. table.concat(shape, ",") .. "]" or type(x)), 2)
  end
  local kv = opts.key_value or x
  local q = self.q_proj(x)
  local k = self.k_proj(kv)
  local v = self.v_proj(kv)
  local a = F.scaled_dot_product_attention(q, k, v, { lengths = opts.lengths, heads = self.num_heads,
    scale = self.scale })
  return self.out_proj(a)
end

function MultiheadAttention:extra_repr()
  return ("embed_dim=%d, num_heads=%d, bias=%s, k_bias=%s"):format(self.embed_dim, self.num_heads,
    u.pybool(self.bias), u.pybool(self.k_bias))
end

return { LayerNorm = LayerNorm, GELU = GELU, MultiheadAttention = MultiheadAttention }
