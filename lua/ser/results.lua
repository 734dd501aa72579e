-- ser.results: the tables of the experiment scripts -- result rows and their means over
-- seeds and folds, results.csv / results.md, per-epoch histories, the final table. Files are
-- written atomically (ser.fs.write).
local fs = require "ser.fs"

local M = {}

-- Sums confusion matrices (tables of rows); nil + cm = a copy of cm.
function M.add_confusion(acc, cm)
  if cm == nil then return acc end
  if type(cm) ~= "table" then cm = cm:totable() end
  acc = acc or {}
  for i, row in ipairs(cm) do
    acc[i] = acc[i] or {}
    for j, v in ipairs(row) do acc[i][j] = (acc[i][j] or 0) + v end
  end
  return acc
end

-- seed: the run's seed (empty on mean rows); *_std: the spread on mean rows.
M.COLUMNS = { "model", "split", "accuracy", "weighted_f1", "macro_f1", "uar", "epochs", "train_seconds", "seed",
  "accuracy_std", "weighted_f1_std" }
local METRICS = { "accuracy", "weighted_f1", "macro_f1", "uar" }

-- The mean of rows (runs over folds and/or seeds), with the spread in *_std
-- fields: the sample standard deviation (n - 1), 0 for a single row.
function M.mean_row(rows, model, split)
  local out = { model = model, split = split or "mean", epochs = 0, train_seconds = 0, runs = #rows }
  for _, k in ipairs(METRICS) do
    local s = 0
    for _, r in ipairs(rows) do s = s + r[k] end
    out[k] = s / #rows
    local d2 = 0
    for _, r in ipairs(rows) do d2 = d2 + (r[k] - out[k]) ^ 2 end
    out[k .. "_std"] = #rows > 1 and math.sqrt(d2 / (#rows - 1)) or 0
  end
  for _, r in ipairs(rows) do
    -- an ensemble row has no epochs of its own
    out.epochs = (out.epochs and r.epochs) and out.epochs + r.epochs / #rows or nil
    out.train_seconds = out.train_seconds + r.train_seconds
  end
  return out
end

-- One mean row per evaluated split: fold rows ("fold1", ...) average into
-- "mean"; with several seeds the val and test rows average into "val mean"
-- and "test mean" (never one into the other).
function M.mean_rows(rows, model)
  local groups, order = {}, {}
  for _, r in ipairs(rows) do
    local key = r.split:match("^fold%d+$") and "mean" or (r.split .. " mean")
    if not groups[key] then groups[key], order[#order + 1] = {}, key end
    table.insert(groups[key], r)
  end
  local out = {}
  for i, key in ipairs(order) do out[i] = M.mean_row(groups[key], model, key) end
  return out
end

-- The rows the comparison chart shows: the mean rows with their spread as
-- error bars when there are any (--folds, --seeds), else every row.
function M.chart_rows(rows)
  local means = {}
  for _, r in ipairs(rows) do
    if r.runs then
      means[#means + 1] = { model = r.model, split = ("%s of %d"):format(r.split, r.runs), accuracy = r.accuracy,
        weighted_f1 = r.weighted_f1, accuracy_sd = r.accuracy_std, weighted_f1_sd = r.weighted_f1_std }
    end
  end
  return #means > 0 and means or rows
end

local function cell(r, k)
  local v = r[k]
  if v == nil then return "" end
  if type(v) ~= "number" then return tostring(v) end
  if k == "seed" then return ("%d"):format(v) end
  if k == "epochs" then return ("%g"):format(v) end
  if k == "train_seconds" then return ("%.1f"):format(v) end
  return ("%.4f"):format(v)
end

function M.csv(rows)
  local lines = { table.concat(M.COLUMNS, ",") }
  for _, r in ipairs(rows) do
    local c = {}
    for i, k in ipairs(M.COLUMNS) do c[i] = cell(r, k) end
    lines[#lines + 1] = table.concat(c, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The final table, aligned for a terminal (columns: default columns).
function M.table(rows, columns)
  columns = columns or M.COLUMNS
  local w = {}
  for i, k in ipairs(columns) do
    w[i] = #k
    for _, r in ipairs(rows) do w[i] = math.max(w[i], #cell(r, k)) end
  end
  local function line(get)
    local c = {}
    for i, k in ipairs(columns) do c[i] = ("%" .. (i <= 2 and "-" or "") .. w[i] .. "s"):format(get(k)) end
    return table.concat(c, "  ")
  end
  local out = { line(function(k) return k end) }
  out[2] = ("-"):rep(#out[1])
  for _, r in ipairs(rows) do out[#out + 1] = line(function(k) return cell(r, k) end) end
  return table.concat(out, "\n")
end

-- <model>_history.csv: every epoch of every training run (seed, fold), so curves of any
-- seed can be drawn again or compared; empty cells where a run has no such value (no
-- validation, train_label_loss only for distilled models).
M.HISTORY_COLUMNS = { "seed", "fold", "epoch", "train_loss", "train_label_loss", "train_acc", "train_f1",
  "val_loss", "val_acc", "val_f1", "lr", "seconds" }

-- runs: list of { seed =, fold = "fold1" or "", history = fit's history }.
function M.history_csv(runs)
  local lines = { table.concat(M.HISTORY_COLUMNS, ",") }
  for _, run in ipairs(runs) do
    for _, row in ipairs(run.history) do
      local c = {}
      for i, k in ipairs(M.HISTORY_COLUMNS) do
        local v = k == "seed" and run.seed or k == "fold" and run.fold or row[k]
        if type(v) ~= "number" then c[i] = v and tostring(v) or ""
        elseif math.type(v) == "integer" or k == "epoch" or k == "seed" then c[i] = ("%d"):format(v)
        else c[i] = ("%.6g"):format(v) end
      end
      lines[#lines + 1] = table.concat(c, ",")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- results.csv and results.md (the table, then the pictures, linked relative
-- to the results folder).
function M.write_results(results, plots, rows, best, models)
  fs.write(results .. "/results.csv", M.csv(rows))
  local rel = M.relative(plots, results)
  local md = { "# Results", "", "| " .. table.concat(M.COLUMNS, " | ") .. " |",
               "|" .. ("---|"):rep(#M.COLUMNS) }
  for _, r in ipairs(rows) do
    local c = {}
    for i, k in ipairs(M.COLUMNS) do c[i] = cell(r, k) end
    md[#md + 1] = "| " .. table.concat(c, " | ") .. " |"
  end
  md[#md + 1] = ""
  md[#md + 1] = ("![Model comparison](%s/model_comparison.png)"):format(rel)
  md[#md + 1] = ""
  md[#md + 1] = ("![UMAP of the %s embeddings](%s/umap_%s.png)"):format(best, rel, best)
  for _, m in ipairs(models) do
    md[#md + 1] = ""
    md[#md + 1] = "## " .. m
    md[#md + 1] = ""
    md[#md + 1] = ("![%s curves](%s/%s_curves.png) ![%s confusion](%s/%s_confusion.png)"):format(m, rel, m, m, rel, m)
    md[#md + 1] = ""
    md[#md + 1] = ("[classification report](%s_report.txt), [per-epoch history](%s_history.csv), checkpoint `%s.safetensors`")
      :format(m, m, m)
  end
  for _, r in ipairs(rows) do
    if r.model == "ensemble" then
      md[#md + 1] = ""
      md[#md + 1] = "## ensemble (the models' class probabilities averaged)"
      md[#md + 1] = ""
      md[#md + 1] = ("![ensemble confusion](%s/ensemble_confusion.png)"):format(rel)
      md[#md + 1] = ""
      md[#md + 1] = "[classification report](ensemble_report.txt)"
      break
    end
  end
  fs.write(results .. "/results.md", table.concat(md, "\n") .. "\n")
end

-- Path of folder `to` as seen from folder `from` (both under the same --out).
function M.relative(to, from)
  local a, b = {}, {}
  for p in to:gmatch("[^/]+") do if p ~= "." then a[#a + 1] = p end end
  for p in from:gmatch("[^/]+") do if p ~= "." then b[#b + 1] = p end end
  local i = 1
  while a[i] and b[i] and a[i] == b[i] do i = i + 1 end
  local parts = {}
  for _ = i, #b do parts[#parts + 1] = ".." end
  for k = i, #a do parts[#parts + 1] = a[k] end
  return #parts > 0 and table.concat(parts, "/") or "."
end

return M
