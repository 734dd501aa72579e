-- The main job: train CNN2D and CRNN on log-mels and CNN1D on the waveform
-- with speaker-independent splits, then compare them.
--   serlua experiments/compare.lua --data ../shared/data/ravdess16k
--   serlua experiments/compare.lua --quick          (a one-minute smoke run)
-- Writes OUT/plots/*.png and OUT/results/* (see --help); names are stable.
local ser = require "ser"
local argparse = require "argparse"
local files = require "ser.train.files"
local distill = require "ser.train.distill"
local batches = require "ser.train.batches"

local parser = argparse("compare.lua", "Train CNN2D, CRNN and CNN1D for speech emotion recognition and compare them.")
  :epilog("Artefacts: plots/<model>_curves.png, <model>_confusion.png, model_comparison.png, umap_<model>.png;\n" ..
          "results/<model>_report.txt, <model>_history.csv (every epoch of every run), <model>.safetensors,\n" ..
          "results.csv, results.md.")
parser:option("--data", "Corpus folder (RAVDESS, CREMA-D, TESS, SAVEE, EMO-DB names or one folder per label). " ..
              "Default: data/ravdess if present, else a synthetic corpus.")
parser:option("--out", "Output folder; PNGs go to OUT/plots, the rest to OUT/results.", ".")
parser:option("--epochs", "Maximum epochs per model.", "35"):convert(tonumber)
parser:option("--batch", "Batch size.", "8"):convert(tonumber)
parser:option("--seconds", "Clip length in seconds (pad or trim).", "4.0"):convert(tonumber)
parser:option("--lr", "Peak learning rate (OneCycle).", "1e-3"):convert(tonumber)
parser:option("--weight-decay", "AdamW weight decay.", "1e-4"):convert(tonumber)
parser:option("--models", "Comma-separated models to train.", "cnn2d,crnn,cnn1d")
parser:option("--trim", "Cut each clip's leading and trailing silence (frames more than TRIM dB below " ..
              "its loudest) before taking the --seconds window; 0 keeps the clip as recorded.", "0")
  :argname("<dB>"):convert(tonumber)
parser:option("--seed", "Random seed (weights, shuffling, augmentation).", "42"):convert(tonumber)
parser:option("--seeds", "Comma-separated seeds (e.g. 1,2,3): train each model once per seed and add " ..
              "the mean and spread to the table. Overrides --seed.")
parser:option("--folds", "Speaker k-fold cross-validation with K folds instead of the fixed split."):convert(tonumber)
parser:option("--patience", "Early-stopping patience in epochs.", "10"):convert(tonumber)
parser:option("--augment", "Training augmentation: reference (gain, noise, pitch, SpecAugment masks), " ..
              "speed (reference + speed perturbation and time shift) or none.", "reference")
  :choices { "reference", "speed", "none" }
parser:option("--mixup", "mixup strength: blend each training example with another, weight ~ Beta(A, A); 0 = off.",
              "0"):argname("<A>"):convert(tonumber)
parser:option("--ema", "Validate, keep and save an exponential moving average of the weights with this decay " ..
              "(e.g. 0.999); 0 = off.", "0"):argname("<decay>"):convert(tonumber)
parser:option("--norm", "Log-mel normalisation: clip (each clip z-normalised, the notebook's), speaker (z-normalised " ..
              "with one mean and std over all of that speaker's clips in its split, so a clip keeps its level " ..
              "relative to the speaker's others) or speaker_bins (the same per mel bin). No labels are used. " ..
              "CNN1D's waveform is z-normalised per clip either way.", "clip")
  :choices { "clip", "speaker", "speaker_bins" }
parser:flag("--ensemble", "Also score the ensemble of the trained models (their class probabilities averaged): " ..
            "rows 'ensemble' in the table, plots/ensemble_confusion.png, results/ensemble_report.txt.")
parser:flag("--crnn-batchnorm", "CRNN with a BatchNorm after each convolution (not in the notebook's CRNN).")
parser:option("--crnn-dropout", "CRNN with dropout of this probability before its classifier (0 = none, the " ..
              "notebook's).", "0"):argname("<p>"):convert(tonumber)
parser:option("--crnn-feature-dropout", "CRNN with dropout of this probability on the convolutional features its " ..
              "BiLSTM reads (0 = none, the notebook's).", "0"):argname("<p>"):convert(tonumber)
parser:option("--mels", "Mel bands of the log-mel models' input (n_fft 1024, hop 256, 20-7600 Hz).", "64")
  :argname("<n>"):convert(tonumber)
parser:option("--crnn-hidden", "Hidden units per direction of CRNN's BiLSTM.", "128"):argname("<n>"):convert(tonumber)
-- flatten is the default: over three seeds it raised CRNN from 59.4 to 66.7 % and made CNN2D
-- learn in far fewer epochs (docs/train.md); --freq mean gives the notebook's layers.
parser:option("--freq", "What the log-mel models keep of the frequency axis after their convolutions: flatten " ..
              "(each channel per frequency band: CNN2D's classifier sees 8 bands, CRNN's BiLSTM every remaining " ..
              "frequency) or mean (over frequency, the notebook's layers).", "flatten"):choices { "mean", "flatten" }
parser:option("--crnn-time", "How CRNN summarises the BiLSTM over time: mean (the notebook's) or stats " ..
              "(mean and standard deviation).", "mean"):choices { "mean", "stats" }
parser:option("--distill", "Comma-separated checkpoints of trained teachers (e.g. several CRNN seeds): every model " ..
              "also learns their averaged, softened class probabilities (knowledge distillation). Teachers must " ..
              "have been trained on this run's training speakers only; that is checked.")
  :argname("<ckpts>")
parser:option("--distill-alpha", "Share of the teachers' soft targets in the loss (0-1).", "0.5")
  :argname("<a>"):convert(tonumber)
parser:option("--distill-temperature", "Temperature that softens the teachers' probabilities.", "2")
  :argname("<T>"):convert(tonumber)
parser:flag("--distill-consistent", "The teachers label every training batch as the student sees it (augmented, " ..
            "mixed with --mixup) instead of each clip once, unaugmented: one teacher pass per batch; teachers must " ..
            "read the same inputs as the model.")
parser:flag("--amp", "Mixed precision (bfloat16 GEMMs).")
parser:flag("--quick", "Smoke run: tiny synthetic corpus (unless --data), 1 s clips, 2 epochs.")
-- ser.cli.parse: `--lr -1` reads -1 as the value (plain argparse takes it for an option).
local args = require("ser.cli").parse(parser, arg)

-- Validate everything before any training starts.
local function bad(msg) parser:error(msg) end
for _, k in ipairs { "epochs", "batch", "patience", "crnn_hidden", "mels" } do
  local v = args[k]
  if not v or v < 1 or v ~= math.floor(v) then bad(("--%s must be a whole number >= 1"):format((k:gsub("_", "-")))) end
  args[k] = math.tointeger(v)   -- "--mels 64.0" reads as a float; sizes (recorded in checkpoints) are integers
end
-- Three poolings halve the mel axis: CRNN's BiLSTM reads the mels/8 rows left (--freq flatten).
-- How many mels the FFT bins can carry is ser.features' rule, asked here before any training.
if args.mels < 8 or (args.freq == "flatten" and args.mels % 8 ~= 0) then
  bad("--mels must be a whole number >= 8, a multiple of 8 with --freq flatten")
end
local mels_ok, mels_err = pcall(ser.features.melbank, { n_mels = args.mels })
if not mels_ok then bad(("--mels %d: %s"):format(args.mels, mels_err)) end
if not args.seconds or args.seconds <= 0 then bad("--seconds must be a number > 0") end
if not args.lr or args.lr <= 0 then bad("--lr must be a number > 0") end
if not args.weight_decay or args.weight_decay < 0 then bad("--weight-decay must be a number >= 0") end
if not args.seed then bad("--seed must be a number") end
local seeds = { args.seed }
if args.seeds then
  seeds = {}
  for word in args.seeds:gmatch("[^,%s]+") do
    local v = math.tointeger(tonumber(word))
    if not v then bad(("--seeds: '%s' is not a whole number"):format(word)) end
    seeds[#seeds + 1] = v
  end
  if #seeds == 0 then bad("--seeds is empty") end
end
if not args.mixup or args.mixup < 0 then bad("--mixup must be a number >= 0 (0 = off)") end
if not args.ema or args.ema < 0 or args.ema >= 1 then bad("--ema must be a decay in [0, 1) (0 = off)") end
for _, k in ipairs { "crnn_dropout", "crnn_feature_dropout" } do
  if not args[k] or args[k] < 0 or args[k] >= 1 then
    bad(("--%s must be a probability in [0, 1)"):format((k:gsub("_", "-"))))
  end
end
if not args.distill_alpha or args.distill_alpha < 0 or args.distill_alpha > 1 then
  bad("--distill-alpha must be a number in [0, 1]")
end
if not args.distill_temperature or args.distill_temperature <= 0 then bad("--distill-temperature must be a number > 0") end
if not args.trim or args.trim < 0 then bad("--trim must be a number of dB > 0 (or 0 for no trimming)") end
if args.folds and (args.folds < 2 or args.folds ~= math.floor(args.folds)) then bad("--folds must be a whole number >= 2") end
local model_names = {}
for name in args.models:gmatch("[^,%s]+") do
  if not ser.models.by_name[name] then bad(("--models: unknown model '%s' (expected cnn2d, crnn, cnn1d)"):format(name)) end
  model_names[#model_names + 1] = name
end
if #model_names == 0 then bad("--models is empty") end
if args.quick then args.epochs, args.seconds = math.min(args.epochs, 2), 1.0 end
local data_dir = args.data or (files.is_dir("data/ravdess") and "data/ravdess") or nil
if data_dir and not files.is_dir(data_dir) then bad(("--data %s is not a folder"):format(data_dir)) end
local ok, plots, results = pcall(files.prepare_output, args.out)   -- creates and test-writes both folders
if not ok then bad(plots) end

-- The corpus and its speaker-independent split.
local corpus
if data_dir then
  corpus = ser.data.scan(data_dir)
  if args.quick then corpus = corpus:sample{ per_speaker_class = 1 } end
else
  print(("!"):rep(72))
  print("!! No corpus given and none at data/ravdess: using a SYNTHETIC corpus.")
  print("!! Results say nothing about real speech. Use --data DIR or `make ravdess`.")
  print(("!"):rep(72))
  corpus = ser.data.synthetic{ speakers = 24, per_class = args.quick and 1 or 4, seconds = args.seconds,
                               seed = args.seed }
end
print(corpus:summary())

local runs = {}   -- { name = "fold1"/"", train, val, test }
if args.folds then
  for i, f in ipairs(corpus:folds{ by = "speaker", k = args.folds }) do
    runs[#runs + 1] = { name = "fold" .. i, f.train, f.val }
  end
else
  local train, val, test = corpus:split{ by = "speaker" }
  runs[1] = { name = "", train, val, test }
end

-- The model options the flags give; the --crnn-* flags (and --mels, which sizes CRNN's
-- BiLSTM) only for CRNN.
local function model_options(name)
  local o = { classes = #corpus.classes, freq = name ~= "cnn1d" and args.freq or nil }
  if name == "crnn" then
    o.batchnorm, o.dropout, o.feature_dropout = args.crnn_batchnorm, args.crnn_dropout, args.crnn_feature_dropout
    o.time, o.hidden, o.mels = args.crnn_time, args.crnn_hidden, args.mels
  end
  return o
end

-- The features fit's loader computes for a model input (64 log-mels unless --mels), and the
-- silence trimming the flags ask for.
local function features_for(input)
  return input == "logmel" and { kind = "logmel", n_mels = args.mels } or input
end
local function trim_option() return args.trim > 0 and args.trim or nil end

-- --distill: teachers checked before any training (files, classes, the speakers each run holds out).
local distill_opts
if args.distill then
  local teachers = {}
  for path in args.distill:gmatch("[^,]+") do teachers[#teachers + 1] = path end
  distill_opts = { teachers = teachers, alpha = args.distill_alpha, temperature = args.distill_temperature,
                   consistent = args.distill_consistent }
  local checked, err = pcall(function()
    local d = distill.check(distill_opts, corpus.classes)
    for _, run in ipairs(runs) do distill.check_speakers(d, { run[2], run[3] }) end
    if d.consistent then   -- each model's training inputs, as fit's loader will prepare them
      for _, name in ipairs(model_names) do
        local input = ser.models.create(name, model_options(name)).input
        distill.check_inputs(d, ser.data.loader(runs[1][1], { features = batches.feature_spec(features_for(input)),
          seconds = args.seconds,
          trim = trim_option(), normalize = batches.normalize_for(input, args.norm) }))
      end
    end
  end)
  if not checked then bad((err:gsub("^ser%.train%.fit: distill: ", "--distill: "))) end
  if args.mixup > 0 and not args.distill_consistent then
    bad("--distill and --mixup cannot be combined without --distill-consistent")
  end
elseif args.distill_consistent then
  bad("--distill-consistent needs --distill")
end

local TITLES = { cnn2d = "CNN2D (log-mel)", crnn = "CRNN (log-mel)", cnn1d = "CNN1D (waveform)" }
local rows, best = {}, nil
local fused = {}   -- --ensemble: per (seed, run, split) the split reports of every model, in order
local several = #seeds > 1
for _, name in ipairs(model_names) do
  local confusion, reports, model_rows, model_best, histories = nil, {}, {}, nil, {}
  local function checkpoint(seed)   -- per seed with --seeds; nil: the stable name
    return ("%s/%s%s.safetensors"):format(results, name, (several and seed) and ("_seed%d"):format(seed) or "")
  end
  for si, seed in ipairs(seeds) do
    for _, run in ipairs(runs) do
      ser.manual_seed(seed)
      local model = ser.models.create(name, model_options(name))
      local _, history, result = ser.train.fit(model, run, {
        epochs = args.epochs, batch = args.batch, lr = args.lr, weight_decay = args.weight_decay, seed = seed,
        amp = args.amp, patience = args.patience, seconds = args.seconds,
        features = features_for(model.input), augment = args.augment, trim = trim_option(), normalize = args.norm,
        mixup = args.mixup, ema = args.ema > 0 and args.ema or false, distill = distill_opts,
        classes = corpus.classes, embeddings = true, name = name, checkpoint = checkpoint(seed),
      })
      histories[#histories + 1] = { seed = seed, fold = run.name, history = history }
      if si == 1 then                             -- with --folds: summed over the folds of the first seed
        confusion = files.add_confusion(confusion, result.confusion)
      end
      for _, split in ipairs { "val", "test" } do
        local r = result.splits[split]
        if r then
          local label = run.name ~= "" and run.name or split
          local row = { model = name, split = label, accuracy = r.accuracy, weighted_f1 = r.weighted_f1,
                        macro_f1 = r.macro_f1, uar = r.uar, epochs = result.epochs,
                        train_seconds = result.train_seconds, seed = seed }
          rows[#rows + 1], model_rows[#model_rows + 1] = row, row
          local key = ("%d\0%s"):format(seed, label)
          if not fused[key] then
            fused[key] = { row = { split = label, seed = seed, train_seconds = 0 } }
            fused[#fused + 1] = fused[key]
          end
          table.insert(fused[key], r)
          fused[key].row.train_seconds = fused[key].row.train_seconds + result.train_seconds
          reports[#reports + 1] = ("== %s, %s split, seed %d (best epoch %d; %s)\n%s"):format(TITLES[name], label,
            seed, result.best_epoch, result.stop_reason, r.text)
        end
      end
      if not best or result.weighted_f1 > best.result.weighted_f1 then best = { name = name, result = result } end
      if not model_best or result.weighted_f1 > model_best.f1 then model_best = { f1 = result.weighted_f1, seed = seed } end
    end
  end
  if args.folds or several then
    for _, m in ipairs(files.mean_rows(model_rows, name)) do rows[#rows + 1] = m end
  end
  -- with --seeds the stable name <model>.safetensors holds the best seed's checkpoint
  if several then files.copy(checkpoint(model_best.seed), checkpoint(nil)) end
  -- the curves are the first seed's (first fold's); <model>_history.csv holds every run
  ser.plot.curves(histories[1].history, { title = TITLES[name], out = plots .. "/" .. name .. "_curves.png" })
  ser.plot.confusion(confusion, corpus.classes, { title = TITLES[name], out = plots .. "/" .. name .. "_confusion.png" })
  files.write(results .. "/" .. name .. "_report.txt", table.concat(reports, "\n"))
  files.write(results .. "/" .. name .. "_history.csv", files.history_csv(histories))
end

if args.ensemble and #model_names > 1 then
  local confusion, reports, ens_rows = nil, {}, {}
  for _, f in ipairs(fused) do
    local r = ser.train.ensemble(f, corpus.classes)
    local row = f.row
    row.model, row.accuracy, row.weighted_f1, row.macro_f1, row.uar =
      "ensemble", r.accuracy, r.weighted_f1, r.macro_f1, r.uar
    rows[#rows + 1], ens_rows[#ens_rows + 1] = row, row
    if row.seed == seeds[1] then confusion = files.add_confusion(confusion, r.confusion) end
    reports[#reports + 1] = ("== Ensemble of %s (mean probability), %s split, seed %d\n%s"):format(
      table.concat(model_names, " + "), row.split, row.seed, r.text)
  end
  if args.folds or several then
    for _, m in ipairs(files.mean_rows(ens_rows, "ensemble")) do rows[#rows + 1] = m end
  end
  ser.plot.confusion(confusion, corpus.classes, { title = "Ensemble (" .. table.concat(model_names, " + ") .. ")",
    out = plots .. "/ensemble_confusion.png" })
  files.write(results .. "/ensemble_report.txt", table.concat(reports, "\n"))
end

ser.plot.comparison(files.chart_rows(rows), { out = plots .. "/model_comparison.png" })
if best.result.embeddings then
  local xy = ser.umap(best.result.embeddings, { seed = args.seed })
  ser.plot.scatter(xy, best.result.targets, corpus.classes, { title = ("UMAP of %s embeddings (%s split)")
    :format(best.name:upper(), best.result.split), out = plots .. "/umap_" .. best.name .. ".png" })
end
files.write_results(results, plots, rows, best.name, model_names)
print(files.table(rows))
if not args.folds and not best.result.splits.test then
  print("note: the test split is empty (no test speakers in this corpus); the table shows validation results.")
end
