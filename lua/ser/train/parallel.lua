-- The data-parallel step of ser.train.fit under mpirun (docs/distributed.md).
--
-- Every process trains on its share of each global batch. The global objective is
-- the one a single process would minimise on the whole batch: cross-entropy's
-- weighted mean, sum_i w_i l_i / sum_i w_i over ALL the batch's examples. Each
-- process back-propagates its local numerator (its local mean times its local
-- denominator d_r), packs the gradients into one flat block with d_r and a few
-- counters appended, and one allreduce sums everything; dividing by D = sum_r d_r
-- gives every process the same gradient, the one of the global mean. So N
-- processes x batch b take the same step as one process x batch N b (to float
-- rounding), and every process then takes the same optimiser step.
local T = require "ser.core.tensor"
local C = require "ser.core.optim"
local dist = require "ser.dist"

local M = {}

local Step = {}
Step.__index = Step

-- the counters travelling with the gradients: d_r, loss numerator, examples, correct, stop
local EXTRA = 5

-- params: the model's parameters (the optimiser's order); compress: "none", "bf16" or "fp16".
function M.new(params, compress)
  local n = C.grads_numel(params)
  return setmetatable({ params = params, n = n, buf = T.zeros(n + EXTRA), compress = compress or "none",
                        comm_seconds = 0 }, Step)
end

-- The denominator of the local weighted mean: the class weights of the batch's labels
-- summed (cross_entropy with weight), else the number of examples.
function M.denominator(ys, weights)
  if not weights then return #ys end
  local w, d = weights:totable(), 0
  for _, y in ipairs(ys) do d = d + w[y] end
  return d
end

-- After loss_local * d:backward(): sums the gradients and counters over the processes
-- and leaves the global-batch gradient in every parameter. Returns the global loss, the
-- global number of examples and of correct predictions, and whether any process asked
-- to stop. now: a clock, for the time spent communicating.
function Step:reduce(d, loss_local, count, correct, stop, now)
  local buf, n = self.buf, self.n
  C.pack_grads(self.params, buf)
  buf:narrow(1, n + 1, EXTRA):copy_(T.new({ d, loss_local * d, count, correct, stop and 1 or 0 }))
  local t0 = now and now()
  dist.allreduce(buf, self.compress)
  if now then self.comm_seconds = self.comm_seconds + (now() - t0) end
  local s = buf:narrow(1, n + 1, EXTRA):totable()
  -- the counters are exact: compression rounds the gradients only (bf16 would round 1000 + 1)
  if self.compress ~= "none" then
    local exact = T.new({ d, loss_local * d, count, correct, stop and 1 or 0 })
    dist.allreduce(exact)
    s = exact:totable()
  end
  local D = s[1]
  C.unpack_grads(self.params, buf, D ~= 0 and 1 / D or 0)
  return s[2] / D, math.tointeger(s[3]) or s[3], math.tointeger(s[4]) or s[4], s[5] > 0
end

-- The epoch's training predictions of every process as one list of (pred, target)
-- pairs, through a summed confusion matrix (fixed size, one allreduce).
function M.gather_predictions(preds, targets, n_classes)
  local counts = T.zeros(n_classes * n_classes)
  local flat = {}
  for i = 1, n_classes * n_classes do flat[i] = 0 end
  for i = 1, #preds do
    local k = (targets[i] - 1) * n_classes + preds[i]
    flat[k] = flat[k] + 1
  end
  counts:copy_(T.new(flat))
  dist.allreduce(counts)
  local p, t = {}, {}
  for k, c in ipairs(counts:totable()) do
    local y, q = (k - 1) // n_classes + 1, (k - 1) % n_classes + 1
    for _ = 1, math.floor(c + 0.5) do p[#p + 1], t[#t + 1] = q, y end
  end
  return p, t
end

return M
