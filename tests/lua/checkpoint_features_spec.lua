-- The features a model was trained on travel in its checkpoint (meta.features: kind and the
-- options given, e.g. n_mels), so that ensemble.lua, embed.lua and predict.lua compute the
-- same ones; checkpoints without the record (older ones, models trained on tensors) keep
-- the default features of their input; a Lua function's features are recorded as such and
-- refused by those scripts.
local ser = require "ser"
local ser_train = require "ser.train"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local predict_output = dofile(here .. "helpers/predict_output.lua")
local tmp = dofile(here .. "helpers/tmpdir.lua")   -- temporary folders, removed after each test

ser.data.set_warn(function() end)


describe("checkpoint feature records", function()
  after_each(tmp.cleanup)
  local it_bin = predict_output.serlua and it or pending

  it_bin("records fit's feature options, and every scoring path computes the same features", function()
    local dir = tmp.make("features")
    ser.data.synthetic{ speakers = 3, per_class = 2, classes = 3, seconds = 1.0, seed = 3, out = dir .. "/corpus" }
    local c = ser.data.scan(dir .. "/corpus")
    local train, val = c:split{ by = "speaker", train = { 1, 2 }, val = { 3 } }
    ser.manual_seed(1)
    local model = ser.models.create("cnn2d", { classes = #c.classes })
    local spec = { kind = "logmel", n_mels = 32, n_fft = 512, hop = 128 }
    local ckpt = dir .. "/m.safetensors"
    local _, _, result = ser.train.fit(model, { train, val }, { epochs = 2, batch = 4, seconds = 1.0,
      features = spec, classes = c.classes, progress = "quiet", checkpoint = ckpt, name = "cnn2d" })
    local loaded, meta = assert(ser.models.load(ckpt))
    assert.are.same(spec, meta.features)
    -- ensemble.lua's and embed.lua's loader: 32 mels, 126 frames of hop 128, fit's validation logits
    local loader = ser_train.checkpoint_loader(val, loaded, meta)
    assert.are.same({ #val.items, 1, 32, 126 }, loader:iter()().x:shape())
    local ev = ser.train.evaluate(loaded, loader)
    for i, row in ipairs(result.splits.val.logits) do
      for k, v in ipairs(row) do assert.is_true(math.abs(v - ev.logits[i][k]) < 1e-4) end
    end
    -- predict.lua, one file at a time
    local paths = {}
    for _, it in ipairs(val.items) do paths[#paths + 1] = it.path end
    predict_output.assert_matches(ckpt, paths, result.splits.val.logits)
  end)

  it("keeps the default features of the model's input for checkpoints without the record", function()
    assert.are.same({ kind = "logmel", sr = 16000 }, ser_train.checkpoint_features({ input = "logmel" }, { sr = 16000 }))
    assert.are.same({ kind = "waveform", normalize = true },
      ser_train.checkpoint_features({ input = "waveform" }, { sr = 16000 }))
    -- a recorded spec is computed at the checkpoint's rate unless it names its own
    assert.are.same({ kind = "mfcc", n_mfcc = 20, sr = 8000 },
      ser_train.checkpoint_features({ input = "logmel" }, { sr = 8000, features = { kind = "mfcc", n_mfcc = 20 } }))
  end)

  it("records nothing for a model trained on tensors (its features were computed elsewhere)", function()
    local dir = tmp.make("features")
    local T = ser.tensor
    ser.manual_seed(2)
    local x = T.randn(8, 1, 16, 16)
    local y = { 1, 2, 1, 2, 1, 2, 1, 2 }
    ser.train.fit(ser.models.create("cnn2d", { classes = 2 }), { { x = x, y = y, classes = { "a", "b" } } },
      { epochs = 1, batch = 4, progress = "quiet", checkpoint = dir .. "/t.safetensors" })
    local _, meta = ser.load(dir .. "/t.safetensors")
    assert.is_nil(meta.features)
  end)

  it_bin("records a Lua function's features as such, and the scoring scripts refuse the checkpoint", function()
    local dir = tmp.make("features")
    ser.data.synthetic{ speakers = 2, per_class = 1, classes = 2, seconds = 0.5, seed = 4, out = dir .. "/corpus" }
    local c = ser.data.scan(dir .. "/corpus")
    local train, val = c:split{ by = "speaker", train = { 1 }, val = { 2 } }
    local ckpt = dir .. "/f.safetensors"
    local function logmel(wav) return ser.features.logmel(wav) end
    ser.train.fit(ser.models.create("cnn2d", { classes = #c.classes }), { train, val }, { epochs = 1, batch = 2,
      seconds = 0.5, features = logmel, classes = c.classes, progress = "quiet", checkpoint = ckpt, name = "cnn2d" })
    local model, meta = assert(ser.models.load(ckpt))
    assert.are.same({ kind = "function" }, meta.features)
    assert.has_error(function() ser_train.checkpoint_features(model, meta) end,
      "the model was trained on features from a Lua function (fit{features = fn}), which a checkpoint cannot "
      .. "record; score it with ser.train.evaluate and a loader given the same function")
    local wav = val.items[1].path
    for _, cmd in ipairs { ("experiments/predict.lua %s %s"):format(ckpt, wav),
                           ("experiments/embed.lua %s %s --out %s/u.png"):format(ckpt, dir .. "/corpus", dir),
                           ("experiments/ensemble.lua --data %s %s %s"):format(dir .. "/corpus", ckpt, ckpt) } do
      local p = io.popen(("%s %s 2>&1; echo \"rc=$?\""):format(predict_output.serlua, cmd))
      local out = p:read("a")
      p:close()
      assert.matches("features from a Lua function", out, 1, true)
      assert.is_nil(out:match("rc=0"), cmd .. " succeeded")
      assert.is_nil(out:find("traceback", 1, true), cmd .. " crashed:\n" .. out)
    end
  end)

  it("refuses a checkpoint whose feature record is damaged, saying what it expected", function()
    local dir = tmp.make("features")
    local model = ser.models.create("cnn2d", { classes = 2 })
    for _, bad in ipairs { "logmel", { kind = "spectrogram" } } do
      ser.save(dir .. "/b.safetensors", model:state_dict(), { model = "cnn2d", classes = { "a", "b" }, features = bad })
      local m, err = ser.models.load(dir .. "/b.safetensors")
      assert.is_nil(m)
      assert.matches("features = .*expected a table whose kind is waveform, logmel, mfcc or function", err)
    end
  end)
end)
