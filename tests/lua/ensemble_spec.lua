-- ser.train.ensemble: late fusion of split reports by averaged class probabilities.
local ser = require "ser"

local classes = { "a", "b", "c" }
local function rep(logits, targets) return { logits = logits, targets = targets } end

describe("ser.train.ensemble", function()
  it("averages the models' softmax probabilities and scores their argmax", function()
    local targets = { 1, 2, 3, 3 }
    -- model 1 is sure and right on clips 1-2, wrong on 3-4; model 2 is unsure but right on 3-4
    local m1 = rep({ { 9, 0, 0 }, { 0, 9, 0 }, { 0, 2, 0 }, { 2, 0, 0 } }, targets)
    local m2 = rep({ { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 5 }, { 0, 0, 5 } }, targets)
    local r = ser.train.ensemble({ m1, m2 }, classes)
    assert.are.same({ 1, 2, 3, 3 }, r.predictions)
    assert.are.equal(1, r.accuracy)
    -- the fused row is the mean of the two softmaxes
    local function sm(row)
      local e, s = {}, 0
      for k, v in ipairs(row) do e[k] = math.exp(v); s = s + e[k] end
      for k = 1, #e do e[k] = e[k] / s end
      return e
    end
    local a, b = sm(m1.logits[3]), sm(m2.logits[3])
    for c = 1, 3 do assert.is_true(math.abs(r.probabilities[3][c] - (a[c] + b[c]) / 2) < 1e-12) end
    assert.matches("weighted avg", r.text, 1, true)
    -- alone, model 1 gets half of them
    local p1 = ser.train.argmax_rows(m1.logits)
    assert.are.equal(0.5, ser.metrics.accuracy(p1, targets))
  end)

  it("refuses reports that are not of the same clips", function()
    local m1 = rep({ { 1, 0, 0 }, { 0, 1, 0 } }, { 1, 2 })
    assert.has_error(function() ser.train.ensemble({ m1 }, classes) end,
      "ser.train.ensemble: expected a list of at least 2 split reports (result.splits.val of each model)")
    assert.has_error(function() ser.train.ensemble({ m1, rep({ { 1, 0, 0 } }, { 1 }) }, classes) end,
      "ser.train.ensemble: report 2 covers 1 clips, report 1 covers 2; models must be evaluated on the same clips")
    assert.has_error(function() ser.train.ensemble({ m1, rep({ { 1, 0, 0 }, { 0, 1, 0 } }, { 2, 1 }) }, classes) end,
      "ser.train.ensemble: report 2 has label 2 for clip 1 where report 1 has 1; models must be evaluated on the same "
      .. "clips in the same order")
    assert.has_error(function() ser.train.ensemble({ m1, rep({ { 1, 0 }, { 0, 1 } }, { 1, 2 }) }, classes) end,
      "ser.train.ensemble: report 2 scores 2 classes, report 1 scores 3")
    assert.has_error(function() ser.train.ensemble({ m1, { accuracy = 1 } }, classes) end,
      "ser.train.ensemble: report 2 has no logits and targets (pass result.splits.<split> from ser.train.fit)")
  end)
end)
