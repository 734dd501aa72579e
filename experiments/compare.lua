-- The main job: speech emotion recognition models trained on a speaker-independent split
-- and compared. What each model is and how it is trained is a recipe (experiments/recipes/);
-- by default the notebook's three (CNN2D and CRNN on log-mels, CNN1D on the waveform) and,
-- when models/whisper-base exists (`make whisper-base`), a head on the frozen Whisper encoder.
--   serlua experiments/compare.lua                         (data/ravdess, else a synthetic corpus)
--   serlua experiments/compare.lua --recipe experiments/recipes/crnn_best.lua --set epochs=80
--   serlua experiments/compare.lua --quick                 (a one-minute smoke run)
--   mpirun -n 2 serlua experiments/compare.lua ...          (data-parallel; --spread: runs per process)
--   serlua experiments/compare.lua ... --resume             (after an interruption: same flags, plus --resume)
-- Writes OUT/plots/*.png and OUT/results/* (see --help); names are stable.
local ser = require "ser"
local argparse = require "argparse"
local recipe, experiment, fs = ser.recipe, ser.experiment, ser.fs

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local DEFAULT_RECIPES = { "cnn2d", "crnn", "cnn1d", "whisper" }

local parser = argparse("compare.lua", "Train speech emotion recognition models from recipes and compare them.")
  :epilog("Artefacts: plots/<name>_curves.png, <name>_confusion.png, model_comparison.png, umap_<name>.png;\n" ..
          "results/<name>_report.txt, <name>_history.csv (every epoch of every run), <name>.safetensors,\n" ..
          "results.csv, results.md. <name> is the recipe's name (by default its model's: cnn2d, crnn, cnn1d, whisper).\n" ..
          "state/<name>_seed<k>[_fold<i>].safetensors: each run's training state after its last epoch (--resume).\n" ..
          "Every flag below the first block sets a recipe field for every recipe that has it.")
parser:option("--recipe", "A recipe file (experiments/recipes/*.lua); repeat for several. Default: the notebook's " ..
              "three models, experiments/recipes/{cnn2d,crnn,cnn1d}.lua, and whisper.lua when its encoder " ..
              "(models/whisper-base: `make whisper-base`) is there."):count("*"):argname("<file>")
parser:option("--set", "Override a recipe field, dotted: --set optim.lr=3e-4 --set model.hidden=256; repeatable. "
  .. "KEY=default puts a field back to its default (e.g. a recipe's model.layers).")
  :count("*"):argname("<key=value>")
parser:option("--data", "Corpus folder (RAVDESS, CREMA-D, TESS, SAVEE, EMO-DB names or one folder per label). " ..
              "Default: data/ravdess if present, else a synthetic corpus.")
parser:option("--out", "Output folder; PNGs go to OUT/plots, the rest to OUT/results.", ".")
parser:option("--models", "Comma-separated models to train (of the recipes, by model name).")
parser:option("--folds", "Speaker k-fold cross-validation with K folds instead of the fixed split.")
parser:flag("--ensemble", "Also score the ensemble of the trained models (their class probabilities averaged): " ..
            "rows 'ensemble' in the table, plots/ensemble_confusion.png, results/ensemble_report.txt.")
parser:flag("--quick", "Smoke run: tiny synthetic corpus (unless --data), 1 s clips, 2 epochs.")
parser:flag("--spread", "Under mpirun: each process trains whole runs (the seeds x folds) of its own, and rank 0 " ..
            "writes one results table, instead of every process sharing each batch (data-parallel, the default " ..
            "under mpirun; docs/distributed.md).")
parser:flag("--resume", "Continue an interrupted job: give the same flags again plus --resume. Every run continues " ..
            "from its training state in OUT/state (its last completed epoch) and ends with the weights an " ..
            "uninterrupted run would have; finished runs are scored again, not retrained; a state of another " ..
            "run (other recipe, seed, data or process count) is refused. Without it, runs start from scratch " ..
            "and replace their states.")
recipe.add_flags(parser)
local args = ser.cli.parse(parser, arg)   -- `--lr -1` reads -1 as the value
ser.dist.init()   -- under mpirun: every process runs this script; rank 0 prints and writes

-- Every recipe, flag and folder is checked before any training starts.
local function checked(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then parser:error(tostring(r[2])) end
  return table.unpack(r, 2, r.n)
end
local folds = args.folds and math.tointeger(tonumber(args.folds))
if args.folds and not (folds and folds >= 2) then parser:error("--folds must be a whole number >= 2, got " .. args.folds) end
local sets = {}
for i, s in ipairs(args.set) do sets[i] = checked(recipe.parse_set, s) end
local files = #args.recipe > 0 and args.recipe or {}
if #files == 0 then
  for i, name in ipairs(DEFAULT_RECIPES) do files[i] = ("%s/recipes/%s.lua"):format(here, name) end
end
local wanted = args.models and {} or nil
for name in (args.models or ""):gmatch("[^,%s]+") do
  if not recipe.families[name] then
    parser:error(("--models: unknown model '%s' (expected %s)"):format(name, table.concat(DEFAULT_RECIPES, ", ")))
  end
  wanted[name] = true
end
local recipes, by_name, unavailable = {}, {}, {}
for _, file in ipairs(files) do
  local r = checked(recipe.resolve, file, sets, args)
  if args.quick then r = recipe.quick(r) end
  if by_name[r.name] then
    parser:error(("recipes %s and %s are both named '%s' and would write the same files; give one another name "
      .. "(its field `name`) or run them with different --out"):format(by_name[r.name], file, r.name))
  end
  by_name[r.name] = file
  local missing = (not wanted or wanted[r.model.name]) and experiment.unavailable(r)
  if missing and ser.dist.is_root() then print(("note: not training %s: %s"):format(r.name, missing)) end
  if missing then unavailable[#unavailable + 1] = r.name end
  if (not wanted or wanted[r.model.name]) and not missing then recipes[#recipes + 1] = r end
end
if #recipes == 0 then
  parser:error(#unavailable > 0
    and ("--models leaves no recipe to train: %s cannot be trained here (the note above says why)")
      :format(table.concat(unavailable, ", "))
    or "--models leaves no recipe to train")
end
recipes = checked(experiment.order, recipes, folds, function(text)
  if ser.dist.is_root() then print("note: " .. text) end
end)
local data_dir = args.data or (fs.is_dir("data/ravdess") and "data/ravdess") or nil
if data_dir and not fs.is_dir(data_dir) then parser:error(("--data %s is not a folder"):format(data_dir)) end
local plots, results = checked(fs.prepare_output, args.out)   -- creates and test-writes both folders
local seed = math.tointeger(tonumber(args.seed or "")) or 42   -- the corpus's and UMAP's

-- The corpus and its speaker-independent split.
local corpus = checked(experiment.corpus, data_dir, { quick = args.quick, seconds = recipes[1].data.seconds, seed = seed })
local runs = experiment.runs(corpus, folds)
for _, r in ipairs(recipes) do checked(experiment.check, r, corpus, runs) end

-- For each recipe: fit (every seed and run), evaluate, plot, write.
local study = experiment.new{ corpus = corpus, runs = runs, plots = plots, results = results, seed = seed,
                              spread = args.spread, resume = args.resume }
for _, r in ipairs(recipes) do
  -- a training state --resume cannot use (another run's, damaged) is refused with a message that
  -- says why and what to do: printed without a traceback
  local ok, out = xpcall(study.fit, function(e)
    if tostring(e):find("^ser%.train%.fit: the training state") then return { refused = tostring(e) } end
    return debug.traceback(tostring(e), 2)
  end, study, r)
  if not ok then
    if type(out) == "table" then
      io.stderr:write("compare.lua: ", out.refused, "\n")
      os.exit(1)
    end
    error(out, 0)
  end
  study:plot(r, out)
  study:write(r, out)
end

-- The models together, the comparison, the UMAP of the best model and the results table.
if args.ensemble then study:ensemble() end
study:finish()
