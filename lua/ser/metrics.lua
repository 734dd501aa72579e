-- ser.metrics: classification metrics and embedding quality, with scikit-learn's definitions.
--
-- Predictions and targets are 1-based class ids, given as Lua arrays or tensors.
-- Per-class figures follow sklearn.metrics.precision_recall_fscore_support with
-- labels = 1..n_classes and zero_division = 0 (a class never predicted has
-- precision 0; a class absent from the targets has recall 0 and support 0), and
-- the averages include every class. report().text is laid out like
-- sklearn.metrics.classification_report(..., digits = 2).
local core = require "ser.core.eval"
local T = require "ser.core.tensor"

local M = {}

local THIS = debug.getinfo(1, "S").source

-- Raises at the caller's line: the first stack level outside this file.
local function fail(fname, fmt, ...)
  local level = 2
  while debug.getinfo(level, "S") and debug.getinfo(level, "S").source == THIS do level = level + 1 end
  error(("metrics.%s: " .. fmt):format(fname, ...), level)
end

-- Class ids as a Lua array (validated: whole numbers >= 1).
local function ids(x, fname, what)
  if T.is_tensor(x) then
    x = x:reshape(-1):totable() -- any layout (a column of a matrix, a transposed view)
  elseif type(x) ~= "table" then
    fail(fname, "%s must be a Lua array or a tensor of class ids, got %s", what, type(x))
  end
  for i = 1, #x do
    local v = x[i]
    if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
      fail(fname, "%s[%d] is %s; expected a whole class id >= 1", what, i, tostring(v))
    end
  end
  return x
end

local function pair(pred, target, fname)
  local p, t = ids(pred, fname, "pred"), ids(target, fname, "target")
  if #p ~= #t then fail(fname, "%d predictions but %d targets; expected the same count", #p, #t) end
  if #p == 0 then fail(fname, "no samples (pred and target are empty)") end
  return p, t
end

-- Number of classes: #class_names, the number given, or the largest id seen.
local function class_count(p, t, classes, fname)
  if type(classes) == "table" then
    if #classes == 0 then fail(fname, "class_names is empty") end
    return #classes
  elseif type(classes) == "number" then
    if classes < 1 or classes ~= math.floor(classes) then
      fail(fname, "n_classes must be a whole number >= 1, got %s", tostring(classes))
    end
    return classes
  elseif classes ~= nil then
    fail(fname, "class_names must be a table of names or a class count, got %s", type(classes))
  end
  local k = 0
  for i = 1, #p do k = math.max(k, p[i], t[i]) end
  return k
end

--- Fraction of predictions equal to the target.
function M.accuracy(pred, target)
  local p, t = pair(pred, target, "accuracy")
  local hit = 0
  for i = 1, #p do if p[i] == t[i] then hit = hit + 1 end end
  return hit / #p
end

--- Counts [true class][predicted class], n_classes x n_classes (default: the largest id seen).
function M.confusion(pred, target, n_classes)
  local p, t = pair(pred, target, "confusion")
  local k = class_count(p, t, n_classes, "confusion")
  return core.confusion(p, t, k)
end

local function safe_div(a, b) return b > 0 and a / b or 0 end

-- Per-class precision, recall, F1 and support from a confusion matrix.
local function per_class(conf)
  local k = #conf
  local out = { precision = {}, recall = {}, f1 = {}, support = {} }
  for c = 1, k do
    local tp, support, predicted = conf[c][c], 0, 0
    for j = 1, k do
      support = support + conf[c][j]
      predicted = predicted + conf[j][c]
    end
    local p, r = safe_div(tp, predicted), safe_div(tp, support)
    out.precision[c], out.recall[c], out.support[c] = p, r, support
    out.f1[c] = safe_div(2 * p * r, p + r)
  end
  return out
end

local function mean(xs)
  local s = 0
  for i = 1, #xs do s = s + xs[i] end
  return s / #xs
end

local function weighted(xs, w)
  local s, total = 0, 0
  for i = 1, #xs do s, total = s + xs[i] * w[i], total + w[i] end
  return safe_div(s, total)
end

--- precision, recall, f1 and support per class: { precision = {...}, recall = {...}, f1 = {...}, support = {...} }.
function M.per_class(pred, target, n_classes)
  local p, t = pair(pred, target, "per_class")
  return per_class(core.confusion(p, t, class_count(p, t, n_classes, "per_class")))
end

--- F1 averaged over classes: opts.average = "weighted" (default) or "macro".
function M.f1(pred, target, n_classes, opts)
  local average = opts and opts.average or "weighted"
  local p, t = pair(pred, target, "f1")
  local pc = per_class(core.confusion(p, t, class_count(p, t, n_classes, "f1")))
  if average == "weighted" then return weighted(pc.f1, pc.support) end
  if average == "macro" then return mean(pc.f1) end
  fail("f1", "average is '%s'; expected 'weighted' or 'macro'", tostring(average))
end

--- Unweighted average recall (= macro recall, sklearn's balanced accuracy over all classes).
function M.uar(pred, target, n_classes)
  local p, t = pair(pred, target, "uar")
  return mean(per_class(core.confusion(p, t, class_count(p, t, n_classes, "uar"))).recall)
end

-- Characters, not bytes, as Python's len() counts them (class names may be UTF-8).
local function chars(str) return utf8.len(str) or #str end

-- Right-aligns str in w characters (string.format pads by bytes).
local function rjust(str, w) return (" "):rep(math.max(0, w - chars(str))) .. str end

-- sklearn's classification_report text.
local function report_text(r, names, digits, heading)
  local width = chars("weighted avg")
  for i = 1, #names do width = math.max(width, chars(names[i])) end
  width = math.max(width, digits)
  local num = "%9." .. digits .. "f"
  local lines = { (" "):rep(width) .. " " .. (" %9s"):rep(4):format("precision", "recall", "f1-score", "support"), "" }
  local row = "%s " .. (" " .. num):rep(3) .. " %9d"
  local pc = r.per_class
  for c = 1, #names do
    lines[#lines + 1] = row:format(rjust(names[c], width), pc.precision[c], pc.recall[c], pc.f1[c], pc.support[c])
  end
  lines[#lines + 1] = ""
  if heading == "accuracy" then
    lines[#lines + 1] = ("%s  %9s %9s " .. num .. " %9d"):format(rjust("accuracy", width), "", "", r.accuracy, r.n)
  else
    lines[#lines + 1] = row:format(rjust("micro avg", width), r.accuracy, r.accuracy, r.accuracy, r.n)
  end
  lines[#lines + 1] = row:format(rjust("macro avg", width), r.macro_precision, r.uar, r.macro_f1, r.n)
  lines[#lines + 1] = row:format(rjust("weighted avg", width), r.weighted_precision, r.weighted_recall,
    r.weighted_f1, r.n)
  return table.concat(lines, "\n") .. "\n"
end

local report_mt = { __tostring = function(r) return r.text end }

--- Everything about one evaluation. class_names: names (their count is the class count),
--- a class count, or nil (largest id seen). opts.digits (2) sets the text's precision.
--- Returns { accuracy, weighted_f1, macro_f1, uar, macro_precision, weighted_precision,
--- weighted_recall, n, per_class = {precision, recall, f1, support}, confusion, classes, text };
--- tostring(report) is the text.
function M.report(pred, target, class_names, opts)
  local p, t = pair(pred, target, "report")
  local k = class_count(p, t, class_names, "report")
  local digits = opts and opts.digits or 2
  if type(digits) ~= "number" or digits < 0 or digits > 12 or digits ~= math.floor(digits) then
    fail("report", "option 'digits' must be a whole number 0..12, got %s", tostring(digits))
  end
  local names = {}
  for c = 1, k do
    names[c] = type(class_names) == "table" and tostring(class_names[c]) or tostring(c)
  end
  local conf = core.confusion(p, t, k)
  local pc = per_class(conf)
  local hit = 0
  for c = 1, k do hit = hit + conf[c][c] end
  local r = {
    n = #p, accuracy = hit / #p, per_class = pc, confusion = conf, classes = names,
    macro_precision = mean(pc.precision), uar = mean(pc.recall), macro_f1 = mean(pc.f1),
    weighted_precision = weighted(pc.precision, pc.support),
    weighted_recall = weighted(pc.recall, pc.support),
    weighted_f1 = weighted(pc.f1, pc.support),
  }
  -- sklearn prints an "accuracy" line only when every listed class occurs in
  -- pred or target; otherwise the same figure as "micro avg" P/R/F1.
  local seen = {}
  for i = 1, #p do seen[p[i]], seen[t[i]] = true, true end
  local all_seen = true
  for c = 1, k do all_seen = all_seen and seen[c] == true end
  r.text = report_text(r, names, digits, all_seen and "accuracy" or "micro")
  return setmetatable(r, report_mt)
end

--- Trustworthiness of the embedding Y of X at k neighbours (sklearn.manifold.trustworthiness,
--- euclidean, exact ranks). X [n, d] and Y [n, e]: tensors or tables of rows. k defaults to 5.
function M.trustworthiness(X, Y, k)
  return core.trustworthiness(X, Y, k or 5)
end

--- Mean fraction of each point's k nearest input neighbours that stay among its k nearest in Y.
function M.knn_recall(X, Y, k)
  return core.knn_recall(X, Y, k or 15)
end

return M
