-- Every recipe file of experiments/recipes/ runs through compare.lua --quick (one seed, one
-- epoch, on a small written corpus), and a checkpoint is enough to score again: predict.lua,
-- given only the checkpoint (its recipe in the metadata), reproduces compare.lua's validation
-- accuracy; with the recipe taken out of the metadata (a checkpoint from before recipes) the
-- same predictions come from the flat fields.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local job = dofile(here .. "helpers/quick_job.lua")
local it_bin = job.built and it or pending
local san = dofile(here .. "helpers/sanitized.lua")
-- Training every recipe is minutes under the sanitizers; there the smoke run (scripts/smoke.sh:
-- three models, distillation, the ensemble) and the next case's training stand for it.
local it_recipes = job.built and san.plain_it(it, pending, "training every recipe") or pending

-- predict.lua's label per file, as a table path -> label.
local function predict(ckpt, paths)
  local labels, out, rc = job.predict(ckpt, paths)
  assert.are.equal(0, rc, out)
  return labels, out
end

describe("experiments/recipes", function()
  teardown(tmp.cleanup)
  local dir, corpus, encoder

  setup(function()
    dir = tmp.make("recipes")
    corpus = dir .. "/corpus"
    -- the whisper recipes run on a small random encoder (the real ones need `make whisper-base`);
    -- 3 layers: the fine-tuning recipes train the top 2 blocks from the cached hidden state below them
    encoder = dir .. "/whisper-random"
    random_whisper(encoder, { layers = 3, d_model = 64 })
    -- three classes keep the runs short; the split needs all 24 speakers (1-16, 17-20, 21-24)
    job.corpus(corpus)
  end)

  it_recipes("each runs with --quick, and predict.lua reproduces the scores from a checkpoint alone", function()
    local p = io.popen("ls experiments/recipes/*.lua")
    local files = {}
    for path in p:lines() do files[#files + 1] = path end
    p:close()
    assert.is_true(#files >= 7)
    table.sort(files, function(a, b)   -- the distilled recipe last: it learns from crnn_fd's checkpoint
      return (a:find("distilled") and 1 or 0) < (b:find("distilled") and 1 or 0) or
        ((a:find("distilled") and 1 or 0) == (b:find("distilled") and 1 or 0) and a < b)
    end)
    local teacher
    for _, file in ipairs(files) do
      local name = file:match("([^/]+)%.lua$")
      local out_dir = dir .. "/" .. name
      local extra = name == "crnn_distilled" and (" --set distill.teachers=" .. teacher) or ""
      if name:match("^whisper") then extra = " --encoder " .. encoder end
      local out, rc = job.compare(("--recipe %s --data %s --out %s --seed 1 --set epochs=1%s")
        :format(file, corpus, out_dir, extra))
      assert.are.equal(0, rc, file .. ":\n" .. out)
      local r = ser.recipe.resolve(file)
      local ckpt = ("%s/results/%s.safetensors"):format(out_dir, r.name)
      local _, meta = assert(ser.load(ckpt))
      assert.are.equal(r.model.name, meta.recipe.model.name, file)
      assert.are.same({ 1 }, meta.recipe.seeds)
      assert.are.equal(1, meta.recipe.epochs)
      if name == "crnn_fd" then teacher = ckpt end
      if name == "crnn_distilled" then assert.are.same({ teacher }, meta.recipe.distill.teachers) end
    end
  end)

  it_bin("a checkpoint with or without its recipe scores the validation clips as compare.lua did", function()
    local out_dir = dir .. "/crnn_best"     -- written by the test above
    local ckpt = out_dir .. "/results/crnn.safetensors"
    if not io.open(ckpt, "rb") then
      local out, rc = job.compare(("--recipe experiments/recipes/crnn_best.lua --data %s --out %s --seed 1 --set epochs=1")
        :format(corpus, out_dir))
      assert.are.equal(0, rc, out)
    end
    -- the validation clips: actors 17-20 of the written corpus, accuracy and weighted F1 as in results.csv
    local _, paths = job.val(corpus)
    assert.are.equal(12, #paths)
    local _, labels = job.assert_reproduces(ckpt, corpus, out_dir .. "/results/results.csv", "crnn")
    -- the same checkpoint without meta.recipe: the older flat fields give the same predictions
    local sd, meta = assert(ser.load(ckpt))
    assert.is_table(meta.recipe)
    meta.recipe, meta.format = nil, nil   -- (format: written by ser.save itself)
    local old = dir .. "/old.safetensors"
    assert(ser.save(old, sd, meta))
    local old_labels = predict(old, paths)
    assert.are.same(labels, old_labels)
  end)
end)
