-- Speaker normalisation of spectral features (loader{normalize = "speaker" | "speaker_bins"},
-- fit{normalize}, compare.lua --norm): features centred and scaled by the statistics of all
-- of one speaker's clips in the part (one pair, or one per bin); the prefetch worker (augmented training) and the
-- cached path (evaluation) agree; the checkpoint records it and predict.lua repeats it.
local ser = require "ser"
local data = ser.data
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local predict_output = dofile(here .. "helpers/predict_output.lua")
local tmp = dofile(here .. "helpers/tmpdir.lua")

data.set_warn(function() end)


-- 3 speakers x 3 classes x 2 clips of 1 s, in memory.
local corpus = data.synthetic{ speakers = 3, per_class = 2, classes = 3, seconds = 1.0, seed = 5 }

local function rows_of(part, speaker)
  local rows = {}
  for i, it in ipairs(part.items) do if it.speaker == speaker then rows[#rows + 1] = i end end
  return rows
end

-- Mean and mean square per bin of one speaker's normalised features.
local function moments(f, spk)
  local s = f:shape()
  local x = require("ser.core.data").gather(f, rows_of(corpus, spk)):contiguous()
  x = x:view(x:shape()[1], s[3], s[4])
  return x:mean(3):mean(1):totable(), (x * x):mean(3):mean(1):totable()
end

describe("loader{normalize = \"speaker\"}", function()
  it("gives every speaker's features zero mean and unit variance over all bins", function()
    local L = data.loader(corpus, { batch = 4, seconds = 1.0, features = "logmel", normalize = "speaker" })
    local f = L:features()
    local F = f:shape()[3]
    for _, spk in ipairs(corpus:speakers()) do
      local mean, sq = moments(f, spk)
      local m, q = 0, 0
      for b = 1, F do m, q = m + mean[b] / F, q + sq[b] / F end
      assert.is_true(math.abs(m) < 1e-3, ("speaker %s mean %g"):format(spk, m))
      assert.is_true(math.abs(q - 1) < 1e-3, ("speaker %s mean square %g"):format(spk, q))
      -- one pair for all bins: the spectral shape stays (bins are not centred one by one)
      local lo, hi = math.huge, -math.huge
      for b = 1, F do lo, hi = math.min(lo, mean[b]), math.max(hi, mean[b]) end
      assert.is_true(hi - lo > 0.5, ("bins keep their relative levels (spread of bin means %g)"):format(hi - lo))
    end
  end)

  it("gives every speaker's features zero mean and unit variance per bin with speaker_bins", function()
    local L = data.loader(corpus, { batch = 4, seconds = 1.0, features = "logmel", normalize = "speaker_bins" })
    local f = L:features()
    local s = f:shape()
    for _, spk in ipairs(corpus:speakers()) do
      local mean, sq = moments(f, spk)
      for b = 1, s[3] do
        assert.is_true(math.abs(mean[b]) < 1e-3, ("speaker %s bin %d mean %g"):format(spk, b, mean[b]))
        -- a bin whose spread is below the floor is scaled by the floor, so its variance is smaller
        assert.is_true(sq[b] < 1 + 1e-3, ("speaker %s bin %d mean square %g"):format(spk, b, sq[b]))
      end
      local total = 0
      for b = 1, s[3] do total = total + sq[b] end
      assert.is_true(total / s[3] > 0.9, "most bins have unit variance")
    end
  end)

  it("keeps the differences between one speaker's clips (unlike the per-clip z-norm)", function()
    local spk = corpus:speakers()[1]
    local rows = rows_of(corpus, spk)
    local L = data.loader(corpus, { batch = 4, seconds = 1.0, features = "logmel", normalize = "speaker" })
    local means = {}
    for i, r in ipairs(rows) do means[i] = L:features():narrow(1, r, 1):mean(4):mean(3):item() end
    table.sort(means)
    assert.is_true(means[#means] - means[1] > 0.1, "clip levels differ after speaker normalisation")
    local C = data.loader(corpus, { batch = 4, seconds = 1.0, features = "logmel" })
    for _, r in ipairs(rows) do
      assert.is_true(math.abs(C:features():narrow(1, r, 1):mean(4):mean(3):item()) < 1e-4, "per-clip z-norm")
    end
  end)

  it("is what the prefetch worker computes, before its masks", function()
    local L = data.loader(corpus, { batch = 5, seconds = 1.0, features = "logmel", normalize = "speaker_bins" })
    local A = data.loader(corpus, { batch = 5, seconds = 1.0, features = "logmel", normalize = "speaker_bins",
      augment = { { "gain", lo = 1, hi = 1 } } })
    local cached = L:features()
    local seen = 0
    for b in A:iter(1) do
      for i, r in ipairs(b.index) do
        local d = (b.x:narrow(1, i, 1) - cached:narrow(1, r, 1)):abs():max()
        assert.is_true(d < 1e-5, ("row %d differs by %g"):format(r, d))
        seen = seen + 1
      end
    end
    assert.are.equal(#corpus.items, seen)
    -- a frequency mask as wide as the spectrogram fills everything with the mask value (0 = the
    -- speaker's mean), not with the un-normalised dB value
    local M = data.loader(corpus, { batch = 5, seconds = 1.0, features = "logmel", normalize = "speaker",
      augment = { { "gain", lo = 1, hi = 1 } }, spec_augment = { freq_masks = 1, freq_width = 64, time_masks = 0 } })
    local masked = 0
    for b in M:iter(1) do
      local x = b.x
      local s = x:shape()
      local zeros = (x:abs():lt(1e-12)):sum():item()
      masked = masked + zeros / (s[2] * s[4])
    end
    assert.is_true(masked > 0, "some bins were masked to the speaker mean")
  end)

  it("uses each part's own speakers (no statistics cross the split)", function()
    local train, val = corpus:split{ by = "speaker", train = { 1, 2 }, val = { 3 } }
    local Lv = data.loader(val, { batch = 4, seconds = 1.0, features = "logmel", normalize = "speaker" })
    local Lall = data.loader(corpus, { batch = 4, seconds = 1.0, features = "logmel", normalize = "speaker" })
    local vm, am = Lv:speaker_stats(), Lall:speaker_stats()
    local first_val = rows_of(corpus, val.items[1].speaker)[1]
    assert.is_true((vm:narrow(1, 1, 1) - am:narrow(1, first_val, 1)):abs():max() < 1e-3)
    assert.are.equal(#train.items, data.loader(train, { seconds = 1.0, features = "logmel",
      normalize = "speaker" }):speaker_stats():shape()[1])
  end)

  it("says what is wrong with bad settings", function()
    assert.has_error(function() data.loader(corpus, { features = "logmel", normalize = "bin" }) end,
      "loader: normalize must be \"clip\", \"speaker\" or \"speaker_bins\", got bin")
    assert.has_error(function() data.loader(corpus, { features = "waveform", normalize = "speaker" }) end,
      "loader: normalize = \"speaker\" needs spectral features (features = \"logmel\" or \"mfcc\")")
    local anon = { items = { { path = "a.wav", y = 1 } }, classes = { "a", "b" } }
    assert.has_error(function() data.loader(anon, { features = "logmel", normalize = "speaker" }) end,
      "loader: normalize = \"speaker\" needs every clip's speaker; clip 1 (a.wav) has none")
    assert.has_error(function()
      data.loader(corpus, { features = "logmel", normalize = "speaker", augment = function(x) return x end })
    end, "loader: normalize = \"speaker\" works with augmentation given as steps or a chain, not a function")
    local model = ser.models.create("cnn2d", { classes = 2 })
    assert.has_error(function()
      ser.train.fit(model, { { x = T.zeros(2, 1, 8, 8), y = { 1, 2 }, classes = { "a", "b" } } },
        { epochs = 1, normalize = "speaker", progress = "quiet" })
    end, "ser.train.fit: normalize = \"speaker\" applies to corpus parts, but the train split is a tensor dataset; "
      .. "give the loader its own normalize option")
    local core = require "ser.core.data"
    local wav = T.zeros(2, 16000)
    assert.has_error(function()
      core.prefetch(wav, { sr = 16000, features = "logmel", norm_mean = T.zeros(2, 64) })
    end)
    local ok, err = pcall(core.prefetch, wav, { sr = 16000, features = "logmel", norm_mean = T.zeros(2, 63),
      norm_scale = T.ones(2, 63) })
    assert.is_false(ok)
    assert.matches("norm_mean must be a contiguous [2, 64] tensor", tostring(err), 1, true)
  end)
end)

describe("fit{normalize = \"speaker\"} and predict.lua", function()
  local it_bin = predict_output.serlua and it or pending
  after_each(tmp.cleanup)

  it_bin("records it in the checkpoint, and predict.lua on a speaker's clips gives fit's validation output", function()
    local dir = tmp.make("norm")
    data.synthetic{ speakers = 3, per_class = 2, classes = 3, seconds = 1.0, seed = 7, out = dir .. "/corpus" }
    local c = data.scan(dir .. "/corpus")
    local train, val = c:split{ by = "speaker", train = { 1, 2 }, val = { 3 } }
    ser.manual_seed(1)
    local model = ser.models.create("cnn2d", { classes = #c.classes })
    local _, _, result = ser.train.fit(model, { train, val }, { epochs = 2, batch = 4, seconds = 1.0,
      normalize = "speaker", classes = c.classes, progress = "quiet", checkpoint = dir .. "/m.safetensors",
      name = "cnn2d" })
    local _, meta = ser.load(dir .. "/m.safetensors")
    assert.are.equal("speaker", meta.normalize)
    local paths = {}
    for _, it in ipairs(val.items) do paths[#paths + 1] = it.path end
    predict_output.assert_matches(dir .. "/m.safetensors", paths, result.splits.val.logits)
  end)
end)
