-- ser.experiment: the steps of the main job (experiments/compare.lua) as a library, so the
-- script reads as a method section: the corpus, its speaker-independent split, then for each
-- recipe fit, evaluate, plot and write; the ensemble, the comparison and the results last.
--
--   local study = experiment.new{ corpus =, runs =, plots =, results =, seed = }
--   local out = study:fit(recipe)      -- every seed x run: ser.train.fit, rows, reports
--   study:plot(recipe, out); study:write(recipe, out)
--   study:ensemble(); study:finish()
local base = require "ser.core.base"
local eval = require "ser.core.eval"
local data = require "ser.data"
local loader = require "ser.data.loader"
local plot = require "ser.plot"
local recipe = require "ser.recipe"
local results = require "ser.results"
local fs = require "ser.fs"
local train = require "ser.train"
local distill = require "ser.train.distill"
local frozen_encoder = require "ser.frozen_encoder"
local dist = require "ser.dist"

local M = {}

-- Under mpirun every process runs the job; rank 0 alone prints and writes.
local function say(...)
  if dist.is_root() then print(...) end
end

-- The corpus of a run: the folder given, else data/ravdess when present, else a synthetic
-- corpus, announced loudly. quick: one clip per speaker and class. Raises when the folder holds
-- no labelled audio.
function M.corpus(dir, opts)
  local corpus
  if dir then
    local err
    corpus, err = data.scan(dir)
    if not corpus then error(("--data %s: %s"):format(dir, tostring(err)), 0) end
    if opts.quick then corpus = corpus:sample{ per_speaker_class = 1 } end
  else
    say(("!"):rep(72))
    say("!! No corpus given and none at data/ravdess: using a SYNTHETIC corpus.")
    say("!! Results say nothing about real speech. Use --data DIR or `make ravdess`.")
    say(("!"):rep(72))
    corpus = data.synthetic{ speakers = 24, per_class = opts.quick and 1 or 4, seconds = opts.seconds, seed = opts.seed }
  end
  say(corpus:summary())
  return corpus
end

-- The runs of a corpus: its speaker-independent split ({ name = "", train, val, test }), or
-- with folds = K one run per speaker fold ({ name = "fold1", train, val }, ...).
function M.runs(corpus, folds)
  local runs = {}
  if folds then
    for i, f in ipairs(corpus:folds{ by = "speaker", k = folds }) do runs[#runs + 1] = { name = "fold" .. i, f.train, f.val } end
  else
    local tr, val, test = corpus:split{ by = "speaker" }
    runs[1] = { name = "", tr, val, test }
  end
  return runs
end

-- The recipes in training order (folds: --folds K or nil): a recipe whose distill.from names
-- another recipe of the job comes after it (otherwise the given order is kept). A teacher
-- that is not in the job (not trained here: its encoder's weights are missing, or --models
-- left it out) leaves its student without distillation, announced with note(text); the
-- student's recipe then says so (its distill field is dropped, or keeps only its teacher
-- checkpoints). Raises on a recipe that teaches itself, a circle of teachers, --folds (the
-- folds of a recipe share one checkpoint, so a fold's teacher could not be found), and a
-- student seed its teacher lacks.
function M.order(recipes, folds, note)
  local by_name = {}
  for _, r in ipairs(recipes) do by_name[r.name] = r end
  local keep = {}
  for _, r in ipairs(recipes) do
    local from = r.distill and r.distill.from
    if from == r.name then error(("recipe %s: distill.from names the recipe itself"):format(r.name), 0) end
    if from and not by_name[from] then
      note(("not distilling %s from %s: %s is not trained in this job%s"):format(r.name, from, from,
        r.distill.teachers and " (its teacher checkpoints still teach)" or ""))
      r.distill.from = nil
      if not r.distill.teachers then r.distill = nil end
    elseif from then
      if folds then
        error(("recipe %s: distill.from cannot be combined with --folds (a recipe's folds share one checkpoint, so "
          .. "each fold's teacher could not be told apart)"):format(r.name), 0)
      end
      local has = {}
      for _, seed in ipairs(by_name[from].seeds) do has[seed] = true end
      for _, seed in ipairs(r.seeds) do
        if not has[seed] then
          error(("recipe %s: distill.from %s, which has no run of seed %d (its seeds: %s); give both the same seeds")
            :format(r.name, from, seed, table.concat(by_name[from].seeds, ", ")), 0)
        end
      end
    end
    keep[#keep + 1] = r
  end
  local ordered, placed, visiting = {}, {}, {}
  local function place(r)
    if placed[r.name] then return end
    if visiting[r.name] then error(("recipes: distill.from goes round in a circle through %s"):format(r.name), 0) end
    visiting[r.name] = true
    local from = r.distill and r.distill.from
    if from then place(by_name[from]) end
    placed[r.name], ordered[#ordered + 1] = true, r
  end
  for _, r in ipairs(keep) do place(r) end
  return ordered
end

-- Checks what a recipe needs of the corpus before any training: its teachers (files,
-- classes, the speakers each run holds out, with consistent teaching the inputs). A teacher
-- of the job itself (distill.from) is checked when it has been trained, by fit.
function M.check(r, corpus, runs)
  local d = r.distill
  if not d or not d.teachers then return end
  local opts = { teachers = d.teachers, alpha = d.alpha, temperature = d.temperature, consistent = d.consistent }
  local ok, err = pcall(function()
    local t = distill.check(opts, corpus.classes)
    for _, run in ipairs(runs) do distill.check_speakers(t, { run[2], run[3] }) end
    if t.consistent then   -- the model's training inputs, as fit's loader will prepare them
      distill.check_inputs(t, loader.loader(runs[1][1], { features = recipe.feature_spec(r), seconds = r.data.seconds,
        sr = r.data.sr, trim = recipe.trim(r), normalize = recipe.loader_options(r).normalize }))
    end
  end)
  if not ok then error(("recipe %s: distill.teachers: %s"):format(r.file or r.name,
    tostring(err):gsub("^ser%.train%.fit: distill: ", "")), 0) end
end

local Study = {}
Study.__index = Study

-- Whether a recipe's model can be built here: nil, or what is missing and how to get it (the
-- whisper family without its encoder's weights).
function M.unavailable(r)
  if r.model.name ~= "whisper" then return nil end
  return frozen_encoder.check(r.model.encoder)
end

-- o: corpus, runs, plots, results (folders), seed (UMAP's), cache (the embedding cache of
-- pretrained-encoder models; default OUT/cache/embeddings beside OUT/results), spread
-- (under mpirun: each process trains whole runs of its own, see Study:fit), resume (continue
-- every run from its training state in OUT/state, see Study:state_path).
function M.new(o)
  local out = ((o.results or "."):match("^(.*)/[^/]+$") or ".")
  local cache = o.cache or (out .. "/cache/embeddings")
  return setmetatable({ corpus = o.corpus, runs = o.runs, plots = o.plots, results = o.results, seed = o.seed,
                        cache = cache, rows = {}, names = {}, fused = {}, best = nil, spread = o.spread, trained = {},
                        states = o.states or (out .. "/state"), resume = o.resume == true }, Study)
end

-- The training state of one run (ser.train.state): written after every epoch, read by --resume.
-- One file per recipe, seed and fold, so no two runs (nor two processes of --spread) share one.
function Study:state_path(r, seed, run)
  return ("%s/%s_seed%d%s.safetensors"):format(self.states, r.name, seed, run.name ~= "" and ("_" .. run.name) or "")
end

-- The checkpoint of a recipe's seed (per seed when it has several; nil: the stable name).
function Study:checkpoint(r, seed)
  local several = #r.seeds > 1
  return ("%s/%s%s.safetensors"):format(self.results, r.name, (several and seed) and ("_seed%d"):format(seed) or "")
end

-- Trains the recipe once per seed and run and evaluates every model: rows of the results
-- table, classification reports, histories, the confusion matrix (summed over the folds of
-- the first seed) and the best seed's checkpoint under the stable name.
--
-- Under mpirun the runs are trained data-parallel, one after another, by every process
-- together; with spread, run j (seeds x folds, in order) is trained whole by process
-- (j - 1) % N alone, and the runs' histories and results are then gathered on every
-- process, so what follows is the same as after a serial loop.
function Study:fit(r)
  local classes = self.corpus.classes
  local out = { rows = {}, reports = {}, histories = {}, confusion = nil, best = nil }
  self.names[#self.names + 1] = r.name
  self.several = self.several or #r.seeds > 1
  local jobs = {}
  for si, seed in ipairs(r.seeds) do
    for _, run in ipairs(self.runs) do jobs[#jobs + 1] = { si = si, seed = seed, run = run } end
  end
  local rank, size = dist.rank(), dist.size()
  local spread = self.spread and size > 1
  -- every process writing states (rank 0; each of --spread) needs the folder
  if dist.is_root() or spread then fs.mkdir_p(self.states, "training states") end
  local done = {}
  for j, job in ipairs(jobs) do
    if not spread or (j - 1) % size == rank then
      local seed, run = job.seed, job.run
      base.manual_seed(seed)
      local model = recipe.build_model(r, #classes)
      local o = recipe.fit_options(r, seed)
      o.classes, o.embeddings, o.checkpoint = classes, true, self:checkpoint(r, seed)
      if o.distill then self:add_teacher(r, seed, o.distill) end
      o.state, o.resume = self:state_path(r, seed, run), self.resume
      if spread then o.data_parallel = false end
      local what = ("training %s, seed %d%s"):format(r.name, seed, run.name ~= "" and (", " .. run.name) or "")
      if not spread then say(("== %s: %s"):format(what, recipe.title(r))) end
      dist.activity(what)
      -- a family may train on something else than the corpus parts (cached encoder features)
      local prepare = recipe.families[r.model.name].prepare
      local parts = prepare and prepare(r, model, run, { cache = self.cache, log = say, collective = not spread }) or run
      local _, history, result = train.fit(model, parts, o)
      done[#done + 1] = { j = j, history = history, result = result }
    end
  end
  if spread then
    local all = {}
    for _, list in ipairs(dist.allgather_values(done)) do
      for _, d in ipairs(list) do all[d.j] = d end
    end
    done = all
  end
  for j, job in ipairs(jobs) do
    local si, seed, run = job.si, job.seed, job.run
    local history, result = done[j].history, done[j].result
    out.histories[#out.histories + 1] = { seed = seed, fold = run.name, history = history }
    if si == 1 then out.confusion = results.add_confusion(out.confusion, result.confusion) end
    for _, split in ipairs { "val", "test" } do
      local s = result.splits[split]
      if s then self:add(r, out, run, split, s, seed, result) end
    end
    if not self.best or result.weighted_f1 > self.best.result.weighted_f1 then
      self.best = { name = r.name, result = result }
    end
    if not out.best or result.weighted_f1 > out.best.f1 then out.best = { f1 = result.weighted_f1, seed = seed } end
  end
  if #self.runs > 1 or #r.seeds > 1 then
    for _, m in ipairs(results.mean_rows(out.rows, r.name)) do self.rows[#self.rows + 1] = m end
  end
  -- with several seeds the stable name <name>.safetensors holds the best seed's checkpoint
  if #r.seeds > 1 and dist.is_root() then fs.copy(self:checkpoint(r, out.best.seed), self:checkpoint(r, nil)) end
  self.trained[r.name] = r
  -- the next recipe's model starts from a clean slate: this one's dead tensors and the
  -- allocator's cached blocks go back to the system, so the job's peak memory is one model's,
  -- not the sum of the blocks every model left behind (docs/engine.md, "Memory of the main job")
  collectgarbage()
  collectgarbage()
  base.empty_cache()
  return out
end

-- fit's distill options of one seed of recipe r: its teacher of the job (distill.from: that
-- recipe's checkpoint of the same seed, trained before r, see M.order) joins its teacher
-- checkpoints, and a teacher on a frozen encoder reads this job's embedding cache.
function Study:add_teacher(r, seed, d)
  local from = r.distill.from
  if from then
    local teacher = self.trained[from]
    if not teacher then error(("recipe %s: its teacher %s has not been trained yet (ser.experiment.order puts "
      .. "teachers first)"):format(r.name, from), 0) end
    local list = {}
    for i, t in ipairs(d.teachers or {}) do list[i] = t end
    list[#list + 1] = self:checkpoint(teacher, seed)
    d.teachers = list
  end
  d.cache = self.cache
end

-- One evaluated split of one run: its row, its report, and its place in the ensemble.
function Study:add(r, out, run, split, s, seed, result)
  local label = run.name ~= "" and run.name or split
  local row = { model = r.name, split = label, accuracy = s.accuracy, weighted_f1 = s.weighted_f1,
                macro_f1 = s.macro_f1, uar = s.uar, epochs = result.epochs, train_seconds = result.train_seconds,
                seed = seed }
  self.rows[#self.rows + 1], out.rows[#out.rows + 1] = row, row
  local key = ("%d\0%s"):format(seed, label)
  local f = self.fused[key]
  if not f then
    f = { row = { split = label, seed = seed, train_seconds = 0 } }
    self.fused[key], self.fused[#self.fused + 1] = f, f
  end
  f[#f + 1] = s
  f.row.train_seconds = f.row.train_seconds + result.train_seconds
  out.reports[#out.reports + 1] = ("== %s, %s split, seed %d (best epoch %d; %s)\n%s"):format(recipe.title(r), label,
    seed, result.best_epoch, result.stop_reason, s.text)
end

-- The curves (of the first seed and fold; <name>_history.csv holds every run) and the confusion matrix.
function Study:plot(r, out)
  if not dist.is_root() then return end
  plot.curves(out.histories[1].history, { title = recipe.title(r), out = ("%s/%s_curves.png"):format(self.plots, r.name) })
  plot.confusion(out.confusion, self.corpus.classes, { title = recipe.title(r),
    out = ("%s/%s_confusion.png"):format(self.plots, r.name) })
end

function Study:write(r, out)
  if not dist.is_root() then return end
  fs.write(("%s/%s_report.txt"):format(self.results, r.name), table.concat(out.reports, "\n"))
  fs.write(("%s/%s_history.csv"):format(self.results, r.name), results.history_csv(out.histories))
end

-- The ensemble of the recipes' models (mean class probabilities) per seed and split.
function Study:ensemble()
  if #self.names < 2 or not dist.is_root() then return end
  local confusion, reports, rows = nil, {}, {}
  local first_seed = self.fused[1] and self.fused[1].row.seed
  for _, f in ipairs(self.fused) do
    local e = train.ensemble(f, self.corpus.classes)
    local row = f.row
    row.model, row.accuracy, row.weighted_f1, row.macro_f1, row.uar = "ensemble", e.accuracy, e.weighted_f1, e.macro_f1, e.uar
    self.rows[#self.rows + 1], rows[#rows + 1] = row, row
    if row.seed == first_seed then confusion = results.add_confusion(confusion, e.confusion) end
    reports[#reports + 1] = ("== Ensemble of %s (mean probability), %s split, seed %d\n%s"):format(
      table.concat(self.names, " + "), row.split, row.seed, e.text)
  end
  if #self.runs > 1 or self.several then
    for _, m in ipairs(results.mean_rows(rows, "ensemble")) do self.rows[#self.rows + 1] = m end
  end
  plot.confusion(confusion, self.corpus.classes, { title = "Ensemble (" .. table.concat(self.names, " + ") .. ")",
    out = self.plots .. "/ensemble_confusion.png" })
  fs.write(self.results .. "/ensemble_report.txt", table.concat(reports, "\n"))
end

-- The comparison chart, the UMAP of the best model's embeddings, results.csv / results.md
-- and the final table.
function Study:finish()
  if not dist.is_root() then return end
  local best = self.best
  plot.comparison(results.chart_rows(self.rows), { out = self.plots .. "/model_comparison.png" })
  if best.result.embeddings then
    local xy = eval.umap(best.result.embeddings, { seed = self.seed })
    plot.scatter(xy, best.result.targets, self.corpus.classes, { title = ("UMAP of %s embeddings (%s split)")
      :format(best.name:upper(), best.result.split), out = self.plots .. "/umap_" .. best.name .. ".png" })
  end
  results.write_results(self.results, self.plots, self.rows, best.name, self.names)
  print(results.table(self.rows))
  if #self.runs == 1 and not best.result.splits.test then
    print("note: the test split is empty (no test speakers in this corpus); the table shows validation results.")
  end
end

return M
