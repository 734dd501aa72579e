-- ser.audio from Lua: load/save round trips, load_many (list, errors, stack),
-- the decode cache, resample against torchaudio's fixture (skipped without
-- ../shared), and argument errors. Test files are written here.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local T = ser.tensor
local numeric = dofile(here .. "helpers/numeric.lua")
local fixtures = dofile(here .. "helpers/fixtures.lua")


local function tone(n, hz, sr, amp)
  local v = {}
  for i = 1, n do v[i] = amp * math.sin(2 * math.pi * hz * (i - 1) / sr) end
  return T.new(v)
end

describe("ser.audio", function()
  local dir
  setup(function() dir = tmp.make("audio") end)
  teardown(tmp.cleanup)

  it("saves and loads WAV (float, exact) and FLAC (16-bit)", function()
    local x = tone(8000, 440, 16000, 0.5)
    assert.is_true(ser.audio.save(dir .. "/a.wav", x, 16000))
    local w, sr = ser.audio.load(dir .. "/a.wav")
    assert.are.equal(16000, sr)
    assert.are.same({ 8000 }, w:shape())
    assert.are.equal(0, numeric.max_abs(w - x))
    ser.audio.save(dir .. "/a.flac", x, 16000)
    local f = ser.audio.load(dir .. "/a.flac", { cache = false })
    assert.is_true(numeric.max_abs(f - x) < 1 / 32768 + 1e-7)
    local info = ser.audio.info(dir .. "/a.flac")
    assert.are.equal(8000, info.frames)
    assert.are.equal(0.5, info.seconds)
    assert.matches("FLAC", info.format)
  end)

  it("resamples, fixes the length and mixes stereo to mono", function()
    local st = T.new{ tone(4800, 1000, 48000, 0.5):totable(), tone(4800, 1000, 48000, 0.25):totable() }
    ser.audio.save(dir .. "/st.wav", st, 48000)
    local w, sr = ser.audio.load(dir .. "/st.wav", { sr = 16000, seconds = 0.25 })
    assert.are.equal(16000, sr)
    assert.are.same({ 4000 }, w:shape())
    -- average of the channels: amplitude 0.375 in the first 0.1 s, zeros after
    local mid = numeric.max_abs(w:narrow(1, 200, 1200))
    assert.is_true(math.abs(mid - 0.375) < 0.01, "peak " .. mid)
    assert.are.equal(0, numeric.max_abs(w:narrow(1, 1700, 2300)))
    local both = ser.audio.load(dir .. "/st.wav", { mono = false })
    assert.are.same({ 2, 4800 }, both:shape())
  end)

  it("load_many returns tensors, messages for failures, or one stacked matrix", function()
    ser.audio.cache_clear()
    local paths = {}
    for i = 1, 4 do
      paths[i] = ("%s/m%d.wav"):format(dir, i)
      ser.audio.save(paths[i], tone(16000 + 1000 * i, 200 * i, 16000, 0.3), 16000)
    end
    local list, errs = ser.audio.load_many(paths, { seconds = 1 })
    assert.is_nil(errs)
    for i = 1, 4 do assert.are.same({ 16000 }, list[i]:shape()) end
    local m, sr = ser.audio.load_many(paths, { seconds = 1, stack = true })
    assert.are.same({ 4, 16000 }, m:shape())
    assert.are.equal(16000, sr)
    assert.are.equal(0, numeric.max_abs(m:select(1, 3) - list[3]))
    local stats = ser.audio.cache_stats()
    assert.are.equal(4, stats.entries)
    assert.are.equal(0, stats.hits) -- a stacked matrix is the caller's copy: no cache unless asked
    m = ser.audio.load_many(paths, { seconds = 1, stack = true, cache = true })
    assert.are.equal(0, numeric.max_abs(m:select(1, 3) - list[3]))
    stats = ser.audio.cache_stats()
    assert.are.equal(4, stats.entries)
    assert.are.equal(4, stats.hits)
    paths[5] = dir .. "/missing.wav"
    list, errs = ser.audio.load_many(paths, { seconds = 1 })
    assert.are.equal("string", type(list[5]))
    assert.matches("missing.wav", errs[5])
    local none, msg = ser.audio.load_many(paths, { seconds = 1, stack = true })
    assert.is_nil(none)
    assert.matches("1 of 5 files failed; first: cannot open '.*missing.wav'", msg)
  end)

  it("files that will not decode give nil and a message naming them", function()
    local f = io.open(dir .. "/text.wav", "w")
    f:write("not audio\n")
    f:close()
    local w, msg = ser.audio.load(dir .. "/text.wav")
    assert.is_nil(w)
    assert.matches("cannot decode '.*text.wav'", msg)
    w, msg = ser.audio.load(dir)
    assert.is_nil(w)
    assert.matches("is a directory", msg)
  end)

  it("bad arguments raise", function()
    assert.has_error(function() ser.audio.load(dir .. "/a.wav", { sr = -1 }) end)
    assert.has_error(function() ser.audio.load(dir .. "/a.wav", { secs = 4 }) end,
      "audio.load: unknown option 'secs' (expected sr, mono, seconds, offset, normalize, cache, stack)")
    assert.has_error(function() ser.audio.save(dir .. "/x.mp4", T.zeros(10), 16000) end)
    assert.has_error(function() ser.audio.resample(T.zeros(10), 48000, 16000, { method = "linear" }) end,
      "audio.resample: method must be 'sinc' (torchaudio) or 'soxr', got 'linear'")
  end)

  it("resample(sinc) matches torchaudio's fixture", function()
    if not fixtures.have("resample_in_48k") then
      pending("fixtures not found in " .. fixtures.dir)
      return
    end
    local x = fixtures.load("resample_in_48k", { 24000 })
    local want = fixtures.load("resample_out_16k", { 8000 })
    local y = ser.audio.resample(x, 48000, 16000)
    assert.are.same({ 8000 }, y:shape())
    assert.is_true(numeric.max_abs(y - want) < 1e-5)
    -- batched rows give the same result; soxr is available too
    local yb = ser.audio.resample(T.stack{ x, x }, 48000, 16000)
    assert.are.equal(0, numeric.max_abs(yb:select(1, 2) - y))
    assert.are.same({ 8000 }, ser.audio.resample(x, 48000, 16000, { method = "soxr" }):shape())
  end)
end)
