-- ser.model_names through ser.models.load: checkpoints of serlua's old layout
-- (tests/data/old_layout, written before CRNN and CNN1D took the notebook's names) load
-- into today's models with every tensor where it belongs and the logits that version
-- computed; a state_dict without metadata is described from its names and shapes.
local ser = require "ser"
require "ser.core.audio"   -- pins ser.so (see models_spec.lua)
local T = ser.tensor

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local old = here .. "../data/old_layout/"

local function input(shape)   -- as tests/data/old_layout/make.lua made it
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local v = {}
  for i = 1, n do v[i] = math.sin(i * 0.37) + 0.5 * math.cos(i * 0.011) end
  return T.new(v):view(shape)
end

describe("checkpoints of serlua's old layout", function()
  after_each(tmp.cleanup)

  for _, c in ipairs {
    { "crnn", { 2, 1, 64, 48 }, { ["features.0.weight"] = "cnn.0.weight", ["features.3.bias"] = "cnn.3.bias",
      ["features.6.weight"] = "cnn.6.weight", ["fc.weight"] = "head.0.weight", ["fc.bias"] = "head.0.bias",
      ["rnn.weight_hh_l0_reverse"] = "rnn.weight_hh_l0_reverse" } },
    { "crnn_bn_stats", { 2, 1, 64, 48 }, { ["features.4.weight"] = "cnn.3.weight", ["features.8.bias"] = "cnn.6.bias",
      ["features.1.running_mean"] = "cnn_bn.0.running_mean", ["features.5.running_var"] = "cnn_bn.1.running_var",
      ["features.9.weight"] = "cnn_bn.2.weight", ["features.9.num_batches_tracked"] = "cnn_bn.2.num_batches_tracked",
      ["fc.weight"] = "head.0.weight" } },
    { "cnn1d", { 2, 1, 4000 }, { ["features.0.weight"] = "net.0.weight", ["features.10.running_var"] = "net.10.running_var",
      ["features.9.weight"] = "net.9.weight", ["classifier.2.weight"] = "fc.2.weight", ["classifier.2.bias"] = "fc.2.bias" } },
  } do
    local name, shape, spots = c[1], c[2], c[3]
    it(name .. " loads with today's names, every tensor in place, and gives the old logits", function()
      local path = old .. name .. ".safetensors"
      local raw, meta = assert(ser.load(path))
      local model, meta2 = ser.models.load(path)
      assert(model, meta2)
      assert.are.same({ "neutral", "happy", "sad", "angry" }, meta2.classes)
      local sd = model:state_dict()
      local n_old, n_new = 0, 0
      for _ in pairs(raw) do n_old = n_old + 1 end
      for _ in pairs(sd) do n_new = n_new + 1 end
      assert.are.equal(n_old, n_new)
      for from, to in pairs(spots) do
        assert(raw[from], "fixture lacks " .. from)
        assert(sd[to], "model lacks " .. to)
        assert.are.equal(0, numeric.max_abs_diff(raw[from], sd[to]))
      end
      for k in pairs(sd) do assert.is_nil(k:match("^features%.") or k:match("^classifier%.") or k:match("^fc%.weight")) end
      local want = T.fromfile(old .. name .. "_logits.f32", { 2, 4 })
      local got = ser.no_grad(function() return model(input(shape)) end)
      local d = numeric.max_abs_diff(got, want)
      assert(d < 1e-5, ("%s: logits off by %g from those serlua computed in the old layout"):format(name, d))
      assert.are.equal(meta.model, meta2.model)
    end)
  end

  it("load without their metadata too: the old names are recognised and renamed", function()
    for _, c in ipairs { { "crnn", { 2, 1, 64, 48 } }, { "crnn_bn_stats", { 2, 1, 64, 48 } }, { "cnn1d", { 2, 1, 4000 } } } do
      local raw = assert(ser.load(old .. c[1] .. ".safetensors"))
      local path = tmp.make("names") .. "/bare.safetensors"
      assert(ser.save(path, raw))
      local model, meta = ser.models.load(path, { classes = { "neutral", "happy", "sad", "angry" } })
      assert(model, meta)
      local want = T.fromfile(old .. c[1] .. "_logits.f32", { 2, 4 })
      local d = numeric.max_abs_diff(ser.no_grad(function() return model(input(c[2])) end), want)
      assert(d < 1e-5, ("%s without metadata: logits off by %g"):format(c[1], d))
    end
  end)

  it("are refused clearly when a file has both an old name and the new one it maps to", function()
    local raw = assert(ser.load(old .. "crnn.safetensors"))
    raw["head.0.bias"] = raw["fc.bias"]
    local path = tmp.make("names") .. "/both.safetensors"
    assert(ser.save(path, raw, { model = "crnn", classes = { "a", "b", "c", "d" }, hidden = 8 }))
    local m, err = ser.models.load(path)
    assert.is_nil(m)
    assert.matches("both 'head.0.bias' and a tensor that was renamed to it", err, 1, true)
  end)
end)

describe("a state_dict without serlua's metadata", function()
  after_each(tmp.cleanup)

  local function bare(model)
    local path = tmp.make("bare") .. "/m.safetensors"
    assert(ser.save(path, model:state_dict()))   -- only the tensors, as PyTorch would write them
    return path
  end

  for _, c in ipairs {
    { "CNN2D", function() return ser.models.CNN2D{ classes = 8 } end, { 2, 1, 64, 32 }, { model = "cnn2d" } },
    { "CNN2D flatten", function() return ser.models.CNN2D{ classes = 5, freq = "flatten" } end, { 2, 1, 64, 32 },
      { model = "cnn2d", freq = "flatten" } },
    { "CRNN", function() return ser.models.CRNN{ classes = 8, hidden = 16 } end, { 2, 1, 64, 32 },
      { model = "crnn", hidden = 16 } },
    { "CRNN with every option that changes parameters", function()
      return ser.models.CRNN{ classes = 6, hidden = 8, batchnorm = true, freq = "flatten", mels = 32, time = "stats" } end,
      { 2, 1, 32, 32 }, { model = "crnn", hidden = 8, batchnorm = true, freq = "flatten", mels = 32, time = "stats" } },
    { "CNN1D", function() return ser.models.CNN1D{ classes = 8 } end, { 2, 1, 2000 }, { model = "cnn1d" } },
    { "CNN1D stats", function() return ser.models.CNN1D{ classes = 8, time = "stats" } end, { 2, 1, 2000 },
      { model = "cnn1d", time = "stats" } },
    { "CNN1D with context blocks and stats", function() return ser.models.CNN1D{ classes = 8, time = "stats",
      context_blocks = 2 } end, { 2, 1, 2000 }, { model = "cnn1d", time = "stats", context_blocks = 2 } },
    { "CNN1D with a context block", function() return ser.models.CNN1D{ classes = 8, context_blocks = 1 } end,
      { 2, 1, 2000 }, { model = "cnn1d", context_blocks = 1 } },
    { "CNN1D with the filterbank front end and stats", function() return ser.models.CNN1D{ classes = 8,
      frontend = "filterbank", time = "stats" } end, { 2, 1, 2000 }, { model = "cnn1d", frontend = "filterbank", time = "stats" } },
    { "CNN2D stats", function() return ser.models.CNN2D{ classes = 8, time = "stats" } end, { 2, 1, 64, 32 },
      { model = "cnn2d", time = "stats" } },
    { "CNN2D flatten stats", function() return ser.models.CNN2D{ classes = 4, freq = "flatten", time = "stats" } end,
      { 2, 1, 64, 32 }, { model = "cnn2d", freq = "flatten", time = "stats" } },
  } do
    it(c[1] .. " is described from its names and shapes and gives the same logits", function()
      ser.manual_seed(8)
      local m = c[2]()
      m:eval()
      local back, meta = ser.models.load(bare(m))
      assert(back, meta)
      for k, v in pairs(c[4]) do assert.are.equal(v, meta[k], k) end
      assert.is_true(meta.classes_assumed)
      local n = m.classes
      assert.are.equal(n, #meta.classes)
      if n == 8 then assert.are.same(require("ser.model_names").RAVDESS, meta.classes) end
      if n ~= 8 then assert.are.equal("class" .. n, meta.classes[n]) end
      -- the notebook's inputs: its log-mel, or for CNN1D the raw waveform
      assert.are.equal(m.input, meta.features.kind)
      assert.is_nil(meta.features.normalize)
      local x = T.randn(c[3])
      assert.are.equal(0, numeric.max_abs_diff(m(x), back(x)))
    end)
  end

  it("takes class names given, and says what is wrong with a bad list or foreign names", function()
    local path = bare(ser.models.CNN1D{ classes = 3 })
    local m, meta = ser.models.load(path, { classes = { "x", "y", "z" } })
    assert(m, meta)
    assert.are.same({ "x", "y", "z" }, meta.classes)
    assert.is_nil(meta.classes_assumed)
    local none, err = ser.models.load(path, { classes = { "x", "y" } })
    assert.is_nil(none)
    assert.matches("the model has 3 outputs, but 2 class names were given", err, 1, true)
    local p2 = tmp.make("bare") .. "/other.safetensors"
    assert(ser.save(p2, { ["encoder.weight"] = T.ones(2, 2), ["decoder.bias"] = T.ones(2) }))
    none, err = ser.models.load(p2)
    assert.is_nil(none)
    assert.matches("none of the seed models' .* it has 2 tensors: decoder.bias, encoder.weight", err)
    assert.matches("other.safetensors", err, 1, true)
  end)
end)
