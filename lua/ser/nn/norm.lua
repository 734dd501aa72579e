-- BatchNorm1d / BatchNorm2d: weight 1, bias 0, running_mean 0, running_var 1,
-- num_batches_tracked (a float tensor here; PyTorch stores int64, and the
-- value carries across either way). Train mode normalises with the batch
-- statistics and updates the running ones (momentum 0.1, unbiased variance);
-- eval mode uses the running statistics.
local Module = require "ser.nn.module"
local F = require "ser.nn.functional"
local T = require "ser.core.tensor"
local base = require "ser.core.base"
local u = require "ser.nn.util"

local ALLOWED = { eps = true, momentum = true, affine = true, track_running_stats = true }

local function make(name, ranks)
  local BN = Module.class(name)
  function BN:init(num_features, opts)
    opts = u.opts(opts, name, ALLOWED)
    self.num_features = u.positive_int(num_features, "num_features", name)
    self.eps = opts.eps or 1e-5
    self.momentum = opts.momentum or 0.1
    self.affine = opts.affine ~= false
    self.track_running_stats = opts.track_running_stats ~= false
    local c = { self.num_features }
    self:register_parameter("weight", self.affine and T.ones(c) or nil)
    self:register_parameter("bias", self.affine and T.zeros(c) or nil)
    if self.track_running_stats then
      self:register_buffer("running_mean", T.zeros(c))
      self:register_buffer("running_var", T.ones(c))
      self:register_buffer("num_batches_tracked", T.zeros({ 1 }))
    end
  end

  local function run(self, x, fn)
    local nd = #x:shape()
    if not ranks[nd] then
      error(("%s(%d): expected a %s input, got shape [%s]"):format(name, self.num_features,
        ranks.text, table.concat(x:shape(), ",")), 3)
    end
    local use_batch = self.training or not self.track_running_stats
    if self.training and self.track_running_stats then
      base.no_grad(function() self.num_batches_tracked:add_(1) end)
    end
    return fn(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch, self.momentum, self.eps)
  end

  function BN:forward(x)
    return run(self, x, F.batch_norm)
  end

  -- relu(self:forward(x)) as one op (F.batch_norm_relu: one pass, no
  -- intermediate tensor, same values and gradients); nn.Sequential calls it
  -- for a BatchNorm followed by a ReLU.
  function BN:forward_relu(x)
    return run(self, x, F.batch_norm_relu)
  end
  BN._forward_fused_with_relu = BN.forward -- a subclass that overrides forward is not fused

  function BN:extra_repr()
    return ("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s"):format(self.num_features,
      u.pyfloat(self.eps), u.pyfloat(self.momentum), u.pybool(self.affine), u.pybool(self.track_running_stats))
  end
  return BN
end

return {
  BatchNorm1d = make("BatchNorm1d", { [2] = true, [3] = true, text = "2-d [N,C] or 3-d [N,C,L]" }),
  BatchNorm2d = make("BatchNorm2d", { [4] = true, text = "4-d [N,C,H,W]" }),
}
