-- Scoring a trained model: ser.train.evaluate (logits, targets, loss, embeddings over a
-- loader, without gradients) and ser.train.report (ser.metrics.report of one evaluation),
-- used by fit, by distillation's teachers and by the scoring scripts.
local base = require "ser.core.base"
local T = require "ser.tensor"
local metrics = require "ser.metrics"
local batches = require "ser.train.batches"

local M = {}

-- Index of the largest value of each row (1-based).
function M.argmax_rows(rows)
  local pred = {}
  for i, r in ipairs(rows) do
    local best, bi = -math.huge, 1
    for c, v in ipairs(r) do
      if v > best then best, bi = v, c end
    end
    pred[i] = bi
  end
  return pred
end

-- The penultimate representation: model:embed(x) when the model has one,
-- else for a Sequential the output of every layer but the last.
function M.embed(model, x)
  if type(model.embed) == "function" then return model:embed(x) end
  if model.__name == "Sequential" and model:len() >= 2 then
    for i = 1, model:len() - 1 do x = model:get(i)(x) end
    return x
  end
  error(("ser.train: %s has no embed(x) method, so embeddings cannot be computed"):format(model.__name), 0)
end

-- Runs the model over a loader without gradients; returns logits rows,
-- targets, mean loss, and embeddings rows when asked.
function M.evaluate(model, loader, criterion, opts)
  opts = opts or {}
  model:eval()
  local logits, targets, embeds, loss_sum, n = {}, {}, {}, 0, 0
  base.no_grad(function()
    for b in batches.iterate(loader, 0) do
      local out = model(b.x)
      local rows = out:totable()
      local ys = batches.labels(b.y)
      if criterion then
        loss_sum = loss_sum + criterion(out, b.y):item() * #ys
      end
      for i = 1, #rows do
        logits[#logits + 1] = rows[i]
        targets[#targets + 1] = ys[i]
      end
      n = n + #ys
      if opts.embeddings then
        for _, r in ipairs(M.embed(model, b.x):totable()) do embeds[#embeds + 1] = r end
      end
    end
  end)
  return { logits = logits, targets = targets, loss = n > 0 and loss_sum / n or nil,
           embeddings = opts.embeddings and embeds or nil, n = n }
end

-- Metrics of one evaluation: ser.metrics.report plus predictions and logits.
function M.report(ev, classes)
  local pred = M.argmax_rows(ev.logits)
  local r = metrics.report(pred, ev.targets, classes)
  r.predictions, r.targets, r.logits, r.loss = pred, ev.targets, ev.logits, ev.loss
  if ev.embeddings then r.embeddings = T.new(ev.embeddings) end
  return r
end

return M
