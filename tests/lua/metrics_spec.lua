-- ser.metrics against scikit-learn 1.2.1: the classification_report text
-- byte for byte, averages and the zero-division rules, trustworthiness, errors.
-- Expected strings and numbers were produced with sklearn.metrics (see docs/umap.md).
local ser = require "ser"
local T = ser.tensor
local M = ser.metrics

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-12) end

-- y_true/y_pred of the sklearn calls, 1-based here
local target = { 1, 2, 3, 2, 2, 1, 3 }
local pred = { 1, 2, 3, 3, 2, 1, 1 }
local names = { "neutral", "calm", "happy" }

describe("ser.metrics", function()
  it("prints classification_report exactly as scikit-learn", function()
    local r = M.report(pred, target, names)
    assert.equal("              precision    recall  f1-score   support\n\n"
      .. "     neutral       0.67      1.00      0.80         2\n"
      .. "        calm       1.00      0.67      0.80         3\n"
      .. "       happy       0.50      0.50      0.50         2\n\n"
      .. "    accuracy                           0.71         7\n"
      .. "   macro avg       0.72      0.72      0.70         7\n"
      .. "weighted avg       0.76      0.71      0.71         7\n", r.text)
    assert.equal(r.text, tostring(r))
    local r3 = M.report(pred, target, names, { digits = 3 })
    assert.equal("              precision    recall  f1-score   support\n\n"
      .. "     neutral      0.667     1.000     0.800         2\n"
      .. "        calm      1.000     0.667     0.800         3\n"
      .. "       happy      0.500     0.500     0.500         2\n\n"
      .. "    accuracy                          0.714         7\n"
      .. "   macro avg      0.722     0.722     0.700         7\n"
      .. "weighted avg      0.762     0.714     0.714         7\n", r3.text)
  end)

  it("aligns UTF-8 class names by characters, as Python does", function()
    local r = M.report({ 1, 2, 1, 1 }, { 1, 2, 2, 1 }, { "überraschung-überrascht", "ärger" })
    assert.equal("                         precision    recall  f1-score   support\n\n"
      .. "überraschung-überrascht       0.67      1.00      0.80         2\n"
      .. "                  ärger       1.00      0.50      0.67         2\n\n"
      .. "               accuracy                           0.75         4\n"
      .. "              macro avg       0.83      0.75      0.73         4\n"
      .. "           weighted avg       0.83      0.75      0.73         4\n", r.text)
  end)

  it("computes the averages of sklearn's precision_recall_fscore_support", function()
    local r = M.report(pred, target, names)
    assert.truthy(close(r.accuracy, 5 / 7))
    assert.truthy(close(r.weighted_f1, 0.7142857142857143))
    assert.truthy(close(r.macro_f1, 0.7000000000000001))
    assert.truthy(close(r.uar, 0.7222222222222222))
    assert.same({ 2, 3, 2 }, r.per_class.support)
    assert.same({ { 2, 0, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, r.confusion)
    assert.same(names, r.classes)
    assert.truthy(close(M.accuracy(pred, target), 5 / 7))
    assert.truthy(close(M.f1(pred, target, 3), 0.7142857142857143))
    assert.truthy(close(M.f1(pred, target, 3, { average = "macro" }), 0.7000000000000001))
    assert.truthy(close(M.uar(pred, target, 3), 0.7222222222222222))
  end)

  it("uses 0 for never-predicted and absent classes, and says micro avg then", function()
    -- class 3 (fearful) never occurs in pred or target
    local t = { 1, 2, 2, 4, 4, 4 }
    local p = { 1, 2, 1, 4, 2, 4 }
    local r = M.report(p, t, { "angry", "sad", "fearful", "surprised" })
    assert.equal("              precision    recall  f1-score   support\n\n"
      .. "       angry       0.50      1.00      0.67         1\n"
      .. "         sad       0.50      0.50      0.50         2\n"
      .. "     fearful       0.00      0.00      0.00         0\n"
      .. "   surprised       1.00      0.67      0.80         3\n\n"
      .. "   micro avg       0.67      0.67      0.67         6\n"
      .. "   macro avg       0.50      0.54      0.49         6\n"
      .. "weighted avg       0.75      0.67      0.68         6\n", r.text)
    assert.truthy(close(r.weighted_f1, 0.6777777777777777))
    assert.truthy(close(r.macro_f1, 0.49166666666666664))
    assert.truthy(close(r.uar, 0.5416666666666666))
    assert.equal(0, r.per_class.precision[3])
    assert.equal(0, r.per_class.recall[3])
    -- a class that is in the targets but never predicted: precision 0, recall 0
    local r2 = M.report({ 1, 1, 1 }, { 1, 2, 2 }, 2)
    assert.same({ 1 / 3, 0 }, r2.per_class.precision)
    assert.same({ 1, 0 }, r2.per_class.recall)
    assert.same({ "1", "2" }, r2.classes)
  end)

  it("accepts tensors as well as Lua arrays", function()
    local r = M.report(T.new(pred), T.new(target), names)
    assert.equal(M.report(pred, target, names).text, r.text)
    assert.same({ { 2, 0, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, M.confusion(T.new(pred), target, 3))
    assert.same({ { 2, 0, 0 }, { 0, 2, 1 }, { 1, 0, 1 } }, M.confusion(pred, target)) -- count from the ids
    -- a strided view (a column of a [7, 2] tensor) and a [7, 1] column
    local both = T.new({ pred, target }):transpose(1, 2)
    assert.equal(M.accuracy(pred, target), M.accuracy(both:select(2, 1), both:select(2, 2)))
    assert.equal(M.accuracy(pred, target), M.accuracy(T.new(pred):view(7, 1), target))
    local pc = M.per_class(pred, target, 3)
    assert.truthy(close(pc.precision[1], 2 / 3))
  end)

  it("rejects bad input with what was wrong", function()
    assert.error_matches(function() M.accuracy({ 1, 2 }, { 1 }) end,
      "metrics.accuracy: 2 predictions but 1 targets; expected the same count", nil, true)
    assert.error_matches(function() M.accuracy({}, {}) end, "metrics.accuracy: no samples (pred and target are empty)", nil, true)
    assert.error_matches(function() M.report({ 1, 0 }, { 1, 1 }, names) end,
      "metrics.report: pred[2] is 0; expected a whole class id >= 1", nil, true)
    assert.error_matches(function() M.report({ 1, 2.5 }, { 1, 1 }, names) end,
      "metrics.report: pred[2] is 2.5; expected a whole class id >= 1", nil, true)
    assert.error_matches(function() M.report({ 1, 4 }, { 1, 1 }, names) end,
      "confusion: pred[2] is 4; expected a class id 1..3", nil, true)
    assert.error_matches(function() M.report(pred, target, names, { digits = -1 }) end,
      "metrics.report: option 'digits' must be a whole number 0..12, got -1", nil, true)
    assert.error_matches(function() M.f1(pred, target, 3, { average = "micro" }) end,
      "metrics.f1: average is 'micro'; expected 'weighted' or 'macro'", nil, true)
    -- raised at the caller's line, not inside metrics.lua
    local ok, err = pcall(function() M.accuracy("abc", target) end)
    assert.is_false(ok)
    assert.truthy(err:find("metrics_spec.lua:%d+: metrics.accuracy: pred must be a Lua array or a tensor of class ids, got string"))
  end)

  it("measures trustworthiness and kNN recall of an embedding", function()
    -- sklearn.manifold.trustworthiness on these 10 points: 0.475, 0.538..., 0.66, 0.6928...
    local X = { { 0.1, 0.3 }, { 1.2, 0.05 }, { 2.3, 1.1 }, { 4.05, 0.2 }, { 0.15, 3.3 }, { 5.2, 4.9 },
                { 3.1, 2.75 }, { 1.05, 4.4 }, { 2.6, 3.9 }, { 4.43, 2.21 } }
    local Y = { { 0 }, { 3.17 }, { 1.31 }, { 7.73 }, { 2.29 }, { 6.41 }, { 5.13 }, { 4.07 }, { 8.59 }, { 9.83 } }
    assert.truthy(close(M.trustworthiness(X, Y, 1), 0.475))
    assert.truthy(close(M.trustworthiness(T.new(X), T.new(Y), 4), 0.6928571428571428))
    assert.truthy(close(M.trustworthiness(X, X, 4), 1))
    assert.truthy(close(M.knn_recall(X, X, 3), 1))
    assert.error_matches(function() M.trustworthiness(X, Y, 5) end,
      "trustworthiness: k = 5 must be in 1..4 (less than n / 2 for n = 10)", nil, true)
    assert.error_matches(function() M.trustworthiness(X, { { 1 }, { 2 } }, 1) end,
      "trustworthiness: X has 10 rows but Y has 2; expected one embedding row per input row", nil, true)
    assert.error_matches(function() M.trustworthiness(T.zeros(10), Y, 1) end,
      "trustworthiness: X must be 2-D [n, features], got shape [10]", nil, true)
  end)
end)
