-- ser.train.ensemble(reports, classes) -> report
--
-- Late fusion: models evaluated on the same clips (the split reports of ser.train.fit,
-- result.splits.val / .test, which carry logits and targets in clip order) are combined
-- by averaging their class probabilities (softmax of each model's logits, equal weights),
-- and the average is scored like a single model: ser.metrics.report of its argmax, with
-- .probabilities (rows) and .predictions added. Models that err differently (a log-mel
-- CNN and a waveform CNN) can make fewer errors together -- on RAVDESS not reliably
-- (docs/train.md) -- so compare.lua --ensemble reports it beside the models, not instead.
local metrics = require "ser.metrics"

local M = {}

local function softmax_row(row)
  local m = -math.huge
  for _, v in ipairs(row) do m = math.max(m, v) end
  local out, s = {}, 0
  for k, v in ipairs(row) do out[k] = math.exp(v - m); s = s + out[k] end
  for k = 1, #out do out[k] = out[k] / s end
  return out
end

function M.ensemble(reports, classes)
  if type(reports) ~= "table" or #reports < 2 then
    error("ser.train.ensemble: expected a list of at least 2 split reports (result.splits.val of each model)", 2)
  end
  local first = reports[1]
  for i, r in ipairs(reports) do
    if type(r) ~= "table" or type(r.logits) ~= "table" or type(r.targets) ~= "table" then
      error(("ser.train.ensemble: report %d has no logits and targets (pass result.splits.<split> from ser.train.fit)")
        :format(i), 2)
    end
    if #r.targets ~= #first.targets then
      error(("ser.train.ensemble: report %d covers %d clips, report 1 covers %d; models must be evaluated on the same clips")
        :format(i, #r.targets, #first.targets), 2)
    end
    for k, y in ipairs(r.targets) do
      if y ~= first.targets[k] then
        error(("ser.train.ensemble: report %d has label %s for clip %d where report 1 has %s; models must be evaluated "
          .. "on the same clips in the same order"):format(i, tostring(y), k, tostring(first.targets[k])), 2)
      end
    end
  end
  local probs, pred = {}, {}
  for k = 1, #first.targets do
    local sum
    for i, r in ipairs(reports) do
      local p = softmax_row(r.logits[k])
      if sum and #p ~= #sum then
        error(("ser.train.ensemble: report %d scores %d classes, report 1 scores %d"):format(i, #p, #sum), 2)
      end
      sum = sum or {}
      for c, v in ipairs(p) do sum[c] = (sum[c] or 0) + v / #reports end
    end
    local best = 1
    for c = 2, #sum do if sum[c] > sum[best] then best = c end end
    probs[k], pred[k] = sum, best
  end
  local r = metrics.report(pred, first.targets, classes)
  r.probabilities, r.predictions, r.targets = probs, pred, first.targets
  return r
end

return M
