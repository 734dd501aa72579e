-- ser.recipe: defaults, validation messages (field, allowed values, source), overrides,
-- the flag mapping, the round trip through checkpoint metadata (also from checkpoints written
-- before recipes), and a model family added without touching compare.lua.
local ser = require "ser"
local recipe = require "ser.recipe"
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("ser.recipe", function()
  after_each(tmp.cleanup)

  it("fills the defaults the main job trained with before recipes existed", function()
    local r = recipe.resolve("experiments/recipes/crnn_notebook.lua")
    local o = recipe.fit_options(r, 42)
    -- what compare.lua passed to ser.train.fit for CRNN without flags
    for k, v in pairs { epochs = 35, batch = 8, lr = 1e-3, weight_decay = 1e-4, seed = 42, amp = false, patience = 10,
                        seconds = 4.0, augment = "reference", normalize = "clip", mixup = 0, ema = false,
                        label_smoothing = 0.1, schedule = "onecycle", name = "crnn" } do
      assert.are.equal(v, o[k], k)
    end
    assert.is_nil(o.trim)
    assert.is_nil(o.distill)
    assert.are.same({ kind = "logmel", n_mels = 64 }, o.features)
    assert.are.same({ name = "crnn", freq = "flatten", hidden = 128, time = "mean", dropout = 0, feature_dropout = 0,
                      batchnorm = false }, r.model)
    local m = recipe.build_model(r, 8)
    assert.are.equal(128, m.hidden)
    assert.are.equal(64, m.mels)
    assert.are.equal("flatten", m.freq)
    local w = recipe.resolve("experiments/recipes/cnn1d_notebook.lua")
    assert.are.same({ kind = "waveform", normalize = true }, recipe.fit_options(w, 1).features)
  end)

  it("validates every recipe file and names its model", function()
    local p = io.popen("ls experiments/recipes/*.lua")
    local n = 0
    for path in p:lines() do
      local r = recipe.resolve(path)
      assert.is_truthy(recipe.families[r.model.name], path)
      n = n + 1
    end
    p:close()
    assert.is_true(n >= 7, "found " .. n .. " recipes")
  end)

  it("the main job's default recipes are the best measured ones with the epochs the budget leaves", function()
    -- what experiments/recipes/{cnn2d,crnn,cnn1d}.lua say of themselves: equal to the longer
    -- recipe in every field but the epochs, the patience, the seeds and the changes measured
    -- at the default's epochs (CNN2D's statistics pooling, CNN1D's filterbank front end with the
    -- weight EMA's BatchNorm statistics recomputed: docs/results.md)
    for _, c in ipairs { { "cnn2d", "cnn2d_best", 50, { "model.time=stats" } }, { "crnn", "crnn_fd", 60 },
                         { "cnn1d", "cnn1d_best", 25, { "model.frontend=filterbank", "ema_bn=recompute",
                                                        "ema_bn_batches=30" } } } do
      local default = recipe.resolve(("experiments/recipes/%s.lua"):format(c[1]))
      local sets = {}
      for i, s in ipairs(c[4] or {}) do sets[i] = recipe.parse_set(s) end
      local best = recipe.resolve(("experiments/recipes/%s.lua"):format(c[2]), sets)
      assert.are.equal(c[3], default.epochs, c[1])
      assert.are.same({ 42 }, default.seeds, c[1])
      for _, r in ipairs { default, best } do r.epochs, r.early_stopping, r.seeds, r.file = nil, nil, nil, nil end
      assert.are.same(best, default, c[1])
    end
    -- the whisper row: the concat head of whisper_concat.lua (its name and seeds apart)
    local w, concat = recipe.resolve("experiments/recipes/whisper.lua"), recipe.resolve("experiments/recipes/whisper_concat.lua")
    assert.are.equal("whisper", w.name)
    for _, r in ipairs { w, concat } do r.name, r.seeds, r.file = nil, nil, nil end
    assert.are.same(concat, w)
  end)

  it("refuses bad fields with the field, the allowed values, what was given and where it came from", function()
    local base = { model = { name = "crnn" } }
    local function bad(over, msg)
      local r = recipe.copy(base)
      for k, v in pairs(over) do recipe.set_path(r, k, v) end
      assert.matches(msg, err_of(recipe.validate, r, "recipe t.lua"), 1, true)
    end
    bad({ ["model.name"] = "resnet" }, "recipe t.lua: model.name must be one of cnn1d, cnn2d, crnn, whisper, got \"resnet\"")
    bad({ ["epochs"] = 0 }, "recipe t.lua: epochs must be a whole number >= 1, got 0")
    bad({ ["optim.lr"] = -1 }, "optim.lr must be a number > 0, got -1")
    bad({ ["augment"] = "heavy" }, "augment must be one of \"reference\", \"speed\", \"none\", got \"heavy\"")
    bad({ ["model.dropout"] = 1 }, "model.dropout must be a probability in [0, 1), got 1")
    bad({ ["model.time"] = "max" }, "model.time must be one of \"mean\", \"stats\", got \"max\"")
    assert.matches("model.context_blocks must be a whole number >= 0, got -1",
      err_of(recipe.validate, { model = { name = "cnn1d", context_blocks = -1 } }), 1, true)
    bad({ ["seeds"] = { 1, 2.5 } }, "seeds must be a non-empty list of whole numbers, got {1, 2.5}")
    bad({ ["features.n_mels"] = 12 }, "features.n_mels must be a whole number >= 8, a multiple of 8 with model.freq = \"flatten\", got 12")
    bad({ ["optim.momentum"] = 0.9 }, "recipe t.lua: unknown field 'optim.momentum'; the fields are amp, augment, batch,")
    bad({ ["model.heads"] = 4 }, "unknown field 'model.heads' (fields of model crnn: batchnorm, dropout, feature_dropout, freq, hidden, time)")
    bad({ ["distill.alpha"] = 0.3 }, "distill.alpha set without distill.teachers")
    bad({ ["distill.teachers"] = { "t.safetensors" }, mixup = 0.2 },
      "distillation and mixup cannot be combined unless distill.consistent = true")
    bad({ ["ema_bn"] = "fresh", ema = 0.999 }, 'ema_bn must be one of "average", "recompute", got "fresh"')
    bad({ ["ema_bn_batches"] = -1 }, "ema_bn_batches must be a whole number >= 0, got -1")
    -- --set ema=0 turns the default CNN1D's EMA off alone: its ema_bn fields then do nothing
    assert.are.equal(false, recipe.fit_options(recipe.resolve("experiments/recipes/cnn1d.lua",
      { recipe.parse_set("ema=0") }), 1).ema)
    assert.are.equal("recompute", recipe.validate(recipe.copy { model = { name = "crnn" }, ema = 0.999, ema_bn = "recompute" }).ema_bn)
    assert.are.equal("average", recipe.validate(recipe.copy(base)).ema_bn)
    assert.are.equal("recompute", recipe.fit_options(recipe.validate { model = { name = "crnn" }, ema = 0.999,
      ema_bn = "recompute" }, 1).ema_bn)
    -- feature options are ser.features', whose parser refuses unknown ones (before any training)
    assert.matches("recipe crnn: features: features.melbank: unknown option 'hop_len' (expected sr, n_fft, hop,",
      err_of(recipe.resolve, { model = { name = "crnn" }, features = { hop_len = 160 } }), 1, true)
    assert.are.equal(160, recipe.resolve({ model = { name = "crnn" }, features = { hop = 160 } }).features.hop)
    -- a model field of the family only: CNN2D has no hidden units
    assert.matches("unknown field 'model.hidden' (fields of model cnn2d: freq, time)",
      err_of(recipe.validate, { model = { name = "cnn2d", hidden = 64 } }), 1, true)
  end)

  it("applies --set overrides and flags by dotted key, parsed by the field's kind", function()
    local r = recipe.resolve("experiments/recipes/crnn_notebook.lua", { recipe.parse_set("optim.lr=3e-4"),
      recipe.parse_set("model.hidden = 256"), recipe.parse_set("seeds=1,2,3"), recipe.parse_set("amp=true"),
      recipe.parse_set("distill.teachers=a.safetensors,b.safetensors") })
    assert.are.equal(3e-4, r.optim.lr)
    assert.are.equal(256, r.model.hidden)
    assert.are.same({ 1, 2, 3 }, r.seeds)
    assert.is_true(r.amp)
    assert.are.same({ "a.safetensors", "b.safetensors" }, r.distill.teachers)
    assert.are.equal(0.5, r.distill.alpha)   -- the distill defaults come with the teachers
    -- "default" puts a field back to its default, so a recipe's list can be unset
    local d = recipe.resolve("experiments/recipes/crnn_best.lua", { recipe.parse_set("epochs=default"),
      recipe.parse_set("ema=default") })
    assert.are.same({ 35, 0 }, { d.epochs, d.ema })
    local wl = recipe.resolve({ model = { name = "whisper", encoder = "enc", layers = { -2, -1 } } },
      { recipe.parse_set("model.layers=default") })
    assert.is_nil(wl.model.layers)
    assert.matches("--set epochs: expected key=value", err_of(recipe.parse_set, "epochs"), 1, true)
    assert.matches("--set optim.lrr=1: optim.lrr names no recipe field",
      err_of(recipe.resolve, "experiments/recipes/crnn_notebook.lua", { recipe.parse_set("optim.lrr=1") }), 1, true)
    assert.matches("epochs must be a whole number >= 1, got \"many\" (from --set epochs=many)",
      err_of(recipe.resolve, "experiments/recipes/crnn_notebook.lua", { recipe.parse_set("epochs=many") }), 1, true)
    -- the flags: one table; --crnn-* only for CRNN, --mels only for log-mel models
    local args = { epochs = "3", crnn_hidden = "32", mels = "32", seed = "7" }
    local c = recipe.resolve("experiments/recipes/crnn_notebook.lua", {}, args)
    assert.are.same({ 3, 32, 32, { 7 } }, { c.epochs, c.model.hidden, c.features.n_mels, c.seeds })
    local w = recipe.resolve("experiments/recipes/cnn1d_notebook.lua", {}, args)
    assert.are.same({ 3, "waveform", { 7 } }, { w.epochs, w.features.kind, w.seeds })
    assert.is_nil(w.features.n_mels)
    assert.matches("model.hidden must be a whole number >= 1, got 0 (from --crnn-hidden 0)",
      err_of(recipe.resolve, "experiments/recipes/crnn_notebook.lua", {}, { crnn_hidden = "0" }), 1, true)
  end)

  it("loads recipe files and says what is wrong with a bad one", function()
    local dir = tmp.make("recipe")
    local function file(name, text)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
      return dir .. "/" .. name
    end
    assert.matches("the file must return a table, got number", err_of(recipe.load, file("n.lua", "return 3")), 1, true)
    assert.matches("recipe " .. dir .. "/s.lua:", err_of(recipe.load, file("s.lua", "return {")), 1, true)
    assert.matches("cannot open", err_of(recipe.load, dir .. "/missing.lua"), 1, true)
    -- a recipe file runs without the library's globals: plain data
    assert.matches("attempt to", err_of(recipe.load, file("g.lua", "return { epochs = math.floor(3.5) }")), 1, true)
  end)

  it("round-trips through checkpoint metadata, and maps checkpoints written before recipes", function()
    local r = recipe.resolve("experiments/recipes/crnn_best.lua", { recipe.parse_set("model.hidden=16") })
    local dir = tmp.make("recipe")
    local classes = { "a", "b", "c" }
    ser.manual_seed(1)
    local model = recipe.build_model(r, #classes)
    local o = recipe.fit_options(r, 1)
    ser.train.save_checkpoint(dir .. "/m.safetensors", model, classes, o, 1, { features = o.features })
    local _, meta = assert(ser.load(dir .. "/m.safetensors"))
    assert.are.same(recipe.to_meta(r), meta.recipe)
    local back = ser.train.checkpoint_recipe(meta)
    assert.are.same(recipe.to_meta(r), recipe.to_meta(back))
    local loaded, _, features = assert(ser.train.load_checkpoint(dir .. "/m.safetensors"))
    assert.are.equal(16, loaded.hidden)
    assert.are.equal("stats", loaded.time)
    assert.are.same({ kind = "logmel", n_mels = 64, sr = 16000 }, features)
    -- an older checkpoint: flat fields only; no freq recorded means the notebook's layers
    local old = recipe.from_meta({ model = "crnn", classes = classes, hidden = 32, seconds = 1.0,
      features = { kind = "logmel", n_mels = 32 }, normalize = "speaker" })
    assert.are.same({ name = "crnn", freq = "mean", time = "mean", hidden = 32, dropout = 0, feature_dropout = 0,
      batchnorm = false }, old.model)
    assert.are.same({ 32, 1.0, "speaker" }, { old.features.n_mels, old.data.seconds, old.data.normalize })
    local wave = recipe.from_meta({ model = "CNN1D", classes = classes })
    assert.are.same({ kind = "waveform" }, wave.features)
    assert.are.same({ name = "cnn1d", time = "mean", context_blocks = 0, frontend = "conv" }, wave.model)
    local fb = recipe.from_meta({ model = "cnn1d", classes = classes, frontend = "filterbank" })
    assert.are.equal("filterbank", fb.model.frontend)
    -- CNN1D's context blocks from --set (an integer, as its kind says) through a checkpoint
    local c1 = recipe.resolve("experiments/recipes/cnn1d_best.lua", { recipe.parse_set("model.context_blocks=2") })
    assert.are.equal(2, c1.model.context_blocks)
    assert.are.equal("integer", math.type(c1.model.context_blocks))
    local m1 = recipe.build_model(c1, #classes)
    assert.are.equal(2, m1.context_blocks)
    local o1 = recipe.fit_options(c1, 1)
    ser.train.save_checkpoint(dir .. "/c.safetensors", m1, classes, o1, 1, { features = o1.features })
    local c1_back = assert(ser.train.load_checkpoint(dir .. "/c.safetensors"))
    assert.are.equal(2, c1_back.context_blocks)
    assert.are.equal(2, recipe.from_meta({ model = "cnn1d", classes = classes, context_blocks = 2 }).model.context_blocks)
    assert.matches("model (metadata) must be one of cnn1d, cnn2d, crnn, whisper, got \"resnet\"",
      err_of(recipe.from_meta, { model = "resnet" }), 1, true)
    assert.matches("features from a Lua function",
      err_of(recipe.from_meta, { model = "cnn2d", features = { kind = "function" } }), 1, true)
  end)

  it("takes a new model family without any change to compare.lua", function()
    local nn = ser.nn
    recipe.register_family("tiny_test", { input = "logmel", title = "Tiny (test)",
      fields = { width = { kind = "posint", default = 4, help = "units" } },
      build = function(r, classes)
        return nn.Sequential{ nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, r.model.width), nn.ReLU(),
                              nn.Linear(r.model.width, classes) }
      end })
    local r = recipe.resolve({ model = { name = "tiny_test", width = 6 } }, { recipe.parse_set("epochs=2") })
    assert.are.equal(6, r.model.width)
    assert.are.equal("logmel", r.features.kind)
    assert.are.equal(2, r.epochs)
    assert.are.same({ 6, 1 }, recipe.build_model(r, 3):get(3).weight:shape())   -- [out, in]
    assert.matches("model.width must be a whole number >= 1, got 0",
      err_of(recipe.resolve, { model = { name = "tiny_test", width = 0 } }), 1, true)
    recipe.families.tiny_test = nil
  end)
end)
