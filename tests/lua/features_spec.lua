-- ser.features from Lua: shapes, batch == single, torchaudio parity through
-- the binding (skipped without ../shared/fixtures), option handling.
local ser = require "ser"
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local numeric = dofile(here .. "helpers/numeric.lua")
local fixtures = dofile(here .. "helpers/fixtures.lua")


describe("ser.features", function()
  ser.manual_seed(3)
  local wav = T.randn(3, 16000) * 0.1

  it("converts between Hz and the mel scale (HTK by default, Slaney with htk = false)", function()
    local core = require "ser.core.features"
    assert.near(2595 * math.log(1 + 7600 / 700, 10), core.hz_to_mel(7600), 1e-9)
    assert.near(15, core.hz_to_mel(1000, false), 1e-12)   -- Slaney: linear below 1 kHz, 3 mels per 200 Hz
    for _, hz in ipairs { 60, 440, 1000, 7600 } do
      assert.near(hz, core.mel_to_hz(core.hz_to_mel(hz)), 1e-9)
      assert.near(hz, core.mel_to_hz(core.hz_to_mel(hz, false), false), 1e-9)
    end
  end)

  it("gives [n_mels, frames] for [T] and [B, 1, n_mels, frames] for [B, T]", function()
    assert.are.same({ 64, 63 }, ser.features.logmel(wav:select(1, 1)):shape())
    assert.are.same({ 3, 1, 64, 63 }, ser.features.logmel(wav):shape())
    assert.are.same({ 3, 1, 40, 63 }, ser.features.mfcc(wav):shape())
    assert.are.same({ 3, 1, 20, 63 }, ser.features.mfcc(wav, { n_mfcc = 20 }):shape())
    assert.are.same({ 513, 63 }, ser.features.power(wav:select(1, 2)):shape())
    assert.are.same({ 513, 63, 2 }, ser.features.stft(wav:select(1, 2)):shape())
    assert.are.same({ 64, 513 }, ser.features.melbank():shape())
    assert.are.same({ 128, 257 }, ser.features.melbank{ n_fft = 512, n_mels = 128, mel_scale = "slaney", norm = "slaney" }:shape())
    assert.are.equal(251, ser.features.frames(64000, 256))
  end)

  it("batched rows equal single clips", function()
    local b = ser.features.logmel(wav)
    for i = 1, 3 do
      assert.are.equal(0, numeric.max_abs(b:select(1, i):select(1, 1) - ser.features.logmel(wav:select(1, i))))
    end
  end)

  it("normalised log-mel has mean 0 and unbiased std ~1 per clip", function()
    local m = ser.features.logmel(wav:select(1, 1))
    assert.is_true(math.abs(numeric.num(m:mean())) < 1e-4)
    assert.is_true(math.abs(numeric.num(m:std()) - 1) < 1e-3)
    local raw = ser.features.logmel(wav:select(1, 1), { normalize = false, floor = false })
    assert.is_true(numeric.num(raw:min()) > -100.001)
  end)

  it("znorm gives every clip mean 0 and unbiased std 1, whatever its loudness", function()
    local x = T.randn(4, 1, 2000)
    local loud = x * T.new({ 0.01, 1, 30, 0.5 }):view(4, 1, 1) + 3
    local z = ser.features.znorm(loud)
    assert.are.same({ 4, 1, 2000 }, z:shape())
    for b = 1, 4 do
      local r = z:select(1, b)
      assert.is_true(math.abs(numeric.num(r:mean())) < 1e-5, "mean of clip " .. b)
      assert.is_true(math.abs(numeric.num(r:std()) - 1) < 1e-4, "std of clip " .. b)
    end
    -- loudness no longer matters: a clip and 30x that clip normalise to the same values
    assert.is_true(numeric.max_abs(ser.features.znorm(x * 30) - ser.features.znorm(x)) < 1e-4)
    assert.has_error(function() ser.features.znorm(T.zeros(5)) end,
      "features.znorm: expected [B, ...] with one row per clip, got [5]")
  end)

  it("the models' waveform input is z-normalised in the loader, with or without augmentation", function()
    local s = ser.data.synthetic { speakers = 2, per_class = 1, seconds = 0.25, seed = 1 }
    local batches = require "ser.train.batches"
    local spec = batches.feature_spec("waveform")
    for _, aug in ipairs { false, true } do
      local l = ser.data.loader(s, { features = spec, augment = aug and ser.data.reference_augment or nil })
      local b = l:iter()()
      for i = 1, b.x:shape()[1] do
        local r = b.x:select(1, i)
        assert.is_true(math.abs(numeric.num(r:mean())) < 1e-4)
        -- 1 up to the 1e-6 added to the std (these quiet 0.25 s clips have a std near 3e-4)
        assert.is_true(math.abs(numeric.num(r:std()) - 1) < 1e-2)
      end
      l:close()
    end
    -- the plain loader keeps raw samples
    local raw = ser.data.loader(s, { features = "waveform" }):iter()()
    assert.is_true(numeric.num(raw.x:std()) < 0.5)
    -- predict.lua's path gives what the loader gives
    local wav = ser.data.loader(s, {}):waveforms():narrow(1, 1, 2)
    local via_loader = ser.data.loader(s, { features = spec }):iter()().x:narrow(1, 1, 2)
    local via_transform = require("ser.train").transform(batches.feature_spec("waveform"), wav)
    assert.is_true(numeric.max_abs(via_transform - via_loader) < 1e-6)
    -- and what a checkpoint's loader (embed.lua, ensemble.lua) gives a waveform model
    local ckpt = require("ser.train").checkpoint_loader(s, { input = "waveform" }, { seconds = s.seconds, sr = s.sr })
    assert.is_true(numeric.max_abs(ckpt:iter()().x:narrow(1, 1, 2) - via_loader) < 1e-6)
  end)

  it("power is |stft|^2", function()
    local x = wav:select(1, 3)
    local s, p = ser.features.stft(x), ser.features.power(x)
    local re, im = s:select(3, 1), s:select(3, 2)
    assert.is_true(numeric.max_abs(re * re + im * im - p) < 1e-3 * numeric.max_abs(p))
  end)

  it("matches torchaudio's mel_norm_4s and mfcc_norm_4s", function()
    if not fixtures.have("sig_4s") then
      pending("fixtures not found in " .. fixtures.dir)
      return
    end
    local x = fixtures.load("sig_4s", { 64000 })
    local mel = fixtures.load("mel_norm_4s", { 64, 251 })
    local mf = fixtures.load("mfcc_norm_4s", { 40, 251 })
    local db = fixtures.load("mel_db_4s", { 64, 251 })
    assert.is_true(numeric.max_abs(ser.features.logmel(x) - mel) < 1e-3)
    assert.is_true(numeric.max_abs(ser.features.mfcc(x) - mf) < 1e-3)
    assert.is_true(numeric.max_abs(ser.features.logmel(x, { floor = false, normalize = false }) - db) < 1e-3)
    local pw = fixtures.load("mel_power_4s", { 64, 251 })
    local d = ser.features.amplitude_to_db(pw)
    assert.is_true(numeric.max_abs(d - db) < 1e-3)
  end)

  it("rejects unknown options and impossible settings with the values", function()
    assert.has_error(function() ser.features.logmel(wav, { nmels = 3 }) end)
    assert.has_error(function() ser.features.logmel(wav, { mel_scale = "bark" }) end,
      "features.logmel: mel_scale must be 'htk' or 'slaney', got 'bark'")
    assert.has_error(function() ser.features.logmel(T.zeros(100)) end,
      "features.logmel: signal of 100 samples is too short for n_fft 1024: centred reflect padding needs more than n_fft/2 = 512 samples")
    assert.has_error(function() ser.features.logmel(T.zeros(2, 2, 2000)) end,
      "features.logmel: expected a waveform [T] or a batch [B, T], got [2,2,2000]")
    assert.has_error(function() ser.features.mfcc(wav, { n_mfcc = 80 }) end,
      "features.mfcc: n_mfcc must be in 1..n_mels (64), got 80")
    -- a mel filter between two FFT bins would give a constant channel
    local ok, err = pcall(ser.features.logmel, wav, { n_mels = 128, n_fft = 400 })
    assert.is_false(ok)
    assert.matches("3 of 128 mel filters cover no FFT bin (the lowest such spans 47.8-76.7 Hz; bins are 40.0 Hz "
      .. "apart at n_fft 400 and sr 16000): use fewer mels, a larger n_fft or a higher fmin", err, 1, true)
    assert.has_error(function() ser.features.melbank{ n_mels = 600 } end)
  end)
end)
