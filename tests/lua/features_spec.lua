-- ser.features from Lua: shapes, batch == single, torchaudio parity through
-- the binding (skipped without ../shared/fixtures), option handling.
local ser = require "ser"
local T = ser.tensor

local fixtures = os.getenv("SER_FIXTURES") or "../shared/fixtures"
local function have(name)
  local f = io.open(fixtures .. "/" .. name .. ".f32", "rb")
  if f then f:close() return true end
  return false
end

local function num(x) return type(x) == "number" and x or x:item() end

local function max_abs(t)
  local m = 0
  for _, v in ipairs(t:contiguous():view(-1):totable()) do m = math.max(m, math.abs(v)) end
  return m
end

describe("ser.features", function()
  ser.manual_seed(3)
  local wav = T.randn(3, 16000) * 0.1

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
      assert.are.equal(0, max_abs(b:select(1, i):select(1, 1) - ser.features.logmel(wav:select(1, i))))
    end
  end)

  it("normalised log-mel has mean 0 and unbiased std ~1 per clip", function()
    local m = ser.features.logmel(wav:select(1, 1))
    assert.is_true(math.abs(num(m:mean())) < 1e-4)
    assert.is_true(math.abs(num(m:std()) - 1) < 1e-3)
    local raw = ser.features.logmel(wav:select(1, 1), { normalize = false, floor = false })
    assert.is_true(num(raw:min()) > -100.001)
  end)

  it("power is |stft|^2", function()
    local x = wav:select(1, 3)
    local s, p = ser.features.stft(x), ser.features.power(x)
    local re, im = s:select(3, 1), s:select(3, 2)
    assert.is_true(max_abs(re * re + im * im - p) < 1e-3 * max_abs(p))
  end)

  it("matches torchaudio's mel_norm_4s and mfcc_norm_4s", function()
    if not have("sig_4s") then
      pending("fixtures not found in " .. fixtures)
      return
    end
    local x = T.fromfile(fixtures .. "/sig_4s.f32", { 64000 })
    local mel = T.fromfile(fixtures .. "/mel_norm_4s.f32", { 64, 251 })
    local mf = T.fromfile(fixtures .. "/mfcc_norm_4s.f32", { 40, 251 })
    local db = T.fromfile(fixtures .. "/mel_db_4s.f32", { 64, 251 })
    assert.is_true(max_abs(ser.features.logmel(x) - mel) < 1e-3)
    assert.is_true(max_abs(ser.features.mfcc(x) - mf) < 1e-3)
    assert.is_true(max_abs(ser.features.logmel(x, { floor = false, normalize = false }) - db) < 1e-3)
    local pw = T.fromfile(fixtures .. "/mel_power_4s.f32", { 64, 251 })
    local d = ser.features.amplitude_to_db(pw)
    assert.is_true(max_abs(d - db) < 1e-3)
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
  end)
end)
