-- Checkpoints scored together on a corpus's evaluation split, each alone and as an ensemble
-- (their class probabilities averaged, ser.train.ensemble) -- for models trained in separate
-- runs, each with its own recipe:
--   serlua experiments/ensemble.lua --data ../shared/data/ravdess16k \
--       runs/cnn2d/results/cnn2d.safetensors runs/crnn/results/crnn.safetensors
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("ensemble.lua", "Score checkpoints from compare.lua alone and as an ensemble (mean class " ..
  "probabilities) on the speaker-independent evaluation split of a corpus.")
parser:argument("checkpoints", "Two or more .safetensors checkpoints written by compare.lua / ser.train.fit."):args("2+")
parser:option("--data", "Corpus folder (default: data/ravdess).")
parser:option("--split", "Part to score: val or test (default: test when it has clips, else val).")
  :choices { "val", "test" }
parser:option("--out", "Also write OUT/ensemble_report.txt and OUT/ensemble_confusion.png.")
local args = parser:parse(arg)

local data_dir = args.data or "data/ravdess"
if not ser.fs.is_dir(data_dir) then parser:error(("--data %s is not a folder"):format(data_dir)) end
local models = {}
for i, path in ipairs(args.checkpoints) do
  local model, meta = ser.train.load_checkpoint(path)
  if not model then parser:error(meta) end
  models[i] = { path = path, model = model, meta = meta }
end
local classes = models[1].meta.classes
for _, m in ipairs(models) do
  if table.concat(m.meta.classes, ",") ~= table.concat(classes, ",") then
    parser:error(("%s predicts %s but %s predicts %s; an ensemble needs the same classes in the same order")
      :format(m.path, table.concat(m.meta.classes, ","), models[1].path, table.concat(classes, ",")))
  end
end

local corpus = ser.data.scan(data_dir)
local _, val, test = corpus:split{ by = "speaker" }
local split = args.split or (#test.items > 0 and "test" or "val")
local part = split == "test" and test or val
if #part.items == 0 then parser:error(("the %s split of %s is empty"):format(split, data_dir)) end
part.classes = classes   -- score in the checkpoints' class order

local rows, reports = {}, {}
for i, m in ipairs(models) do
  local loader = ser.train.checkpoint_loader(part, m.model, m.meta)
  reports[i] = ser.train.report(ser.train.evaluate(m.model, loader), classes)
  rows[i] = { model = m.path:match("([^/]+)%.safetensors$") or m.path, split = split }
end
local seen = {}
for _, r in ipairs(rows) do seen[r.model] = (seen[r.model] or 0) + 1 end
for i, r in ipairs(rows) do if seen[r.model] > 1 then r.model = models[i].path end end -- same names: full paths
local fused = ser.train.ensemble(reports, classes)
rows[#rows + 1] = { model = "ensemble", split = split }
reports[#reports + 1] = fused
for i, r in ipairs(rows) do
  local rep = reports[i]
  r.accuracy, r.weighted_f1, r.macro_f1, r.uar = rep.accuracy, rep.weighted_f1, rep.macro_f1, rep.uar
end
print(ser.results.table(rows, { "model", "split", "accuracy", "weighted_f1", "macro_f1", "uar" }))
if args.out then
  local ok, plots, results = pcall(ser.fs.prepare_output, args.out)
  if not ok then parser:error(plots) end
  ser.fs.write(results .. "/ensemble_report.txt", ("== Ensemble of %s (mean probability), %s split\n%s")
    :format(table.concat(args.checkpoints, " + "), split, fused.text))
  ser.plot.confusion(fused.confusion, classes, { title = "Ensemble", out = plots .. "/ensemble_confusion.png" })
  print(("wrote %s/ensemble_report.txt and %s/ensemble_confusion.png"):format(results, plots))
end
