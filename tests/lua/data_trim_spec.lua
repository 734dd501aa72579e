-- The loader's trim option: each clip's silence is cut (ser.audio.trim) and the
-- speech centred in the `seconds` window; ser.train.fit records the setting in
-- the checkpoint so predict.lua trims the same way.
local ser = require "ser"
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")
local T = ser.tensor

-- 16 kHz: `lead` s of digital silence, `len` s of a 300 Hz tone, then silence to `total` s.
local function padded_tone(lead, len, total)
  local v = {}
  for i = 1, math.floor(total * 16000) do
    local t = (i - 1) / 16000
    v[i] = (t >= lead and t < lead + len) and 0.4 * math.sin(2 * math.pi * 300 * t) or 0
  end
  return T.new(v)
end

local function loud_span(row)
  local first, last
  for i, v in ipairs(row) do
    if math.abs(v) > 1e-3 then first = first or i; last = i end
  end
  return first, last
end

describe("loader trim", function()
  local dir, corpus
  setup(function()
    dir = tmp.make("trim")
    local items = {}
    for k, lead in ipairs { 0.2, 1.5, 3.0 } do
      local path = ("%s/clip%d.wav"):format(dir, k)
      assert(ser.audio.save(path, padded_tone(lead, 0.5, 4.0), 16000))
      items[k] = { path = path, label = k % 2 == 0 and "happy" or "sad", speaker = k }
    end
    corpus = ser.data.corpus(items)
  end)
  teardown(tmp.cleanup)

  it("centres the non-silent part wherever it was recorded", function()
    local l = ser.data.loader(corpus, { seconds = 1.0, trim = 30 })
    local w = l:waveforms()
    assert.are.same({ 3, 16000 }, w:shape())
    for k = 1, 3 do
      local first, last = loud_span(w:select(1, k):totable())
      -- the 0.5 s tone (8000 samples) sits in the middle, within a trim frame
      assert.is_true(math.abs(first - 4000) <= 1024, ("clip %d starts at %d"):format(k, first))
      assert.is_true(math.abs(last - 12000) <= 1024, ("clip %d ends at %d"):format(k, last))
    end
    -- without trim the window is the first second: only clip 1 has its tone there
    local plain = ser.data.loader(corpus, { seconds = 1.0 }):waveforms()
    assert.is_nil((loud_span(plain:select(1, 2):totable())))
  end)

  it("keeps the middle of speech longer than the window", function()
    local l = ser.data.loader(corpus, { seconds = 0.25, trim = true })
    local row = l:waveforms():select(1, 2):totable()
    local first, last = loud_span(row)
    assert.are.same({ 1, 4000 }, { first, last })
  end)

  it("gives trim_window the same result for one waveform (predict.lua's path)", function()
    local l = ser.data.loader(corpus, { seconds = 1.0, trim = 30 })
    local wav = ser.audio.load(corpus.items[2].path, { sr = 16000, seconds = ser.data.trim_lookahead(1.0) })
    local one = ser.data.trim_window(wav, 16000, ser.data.trim_options(30))
    assert.are.same(l:waveforms():select(1, 2):totable(), one:totable())
  end)

  it("refuses bad settings when the loader is made", function()
    assert.has_error(function() ser.data.loader(corpus, { trim = 0 }) end,
      "loader: trim top_db must be a number > 0 (dB below the loudest frame), got 0")
    assert.has_error(function() ser.data.loader(corpus, { trim = "yes" }) end,
      "loader: trim must be true, a top_db number or {top_db =, frame_length =, hop_length =}, got string")
    assert.has_error(function() ser.data.loader(corpus, { trim = { top = 3 } }) end,
      "loader: trim: unknown field 'top' (expected top_db, frame_length, hop_length)")
    assert.has_error(function() ser.data.loader(corpus, { trim = { hop_length = 0.5 } }) end,
      "loader: trim hop_length must be a whole number of samples >= 1, got 0.5")
    assert.has_error(function() ser.data.loader(corpus, { trim = { frame_length = "big" } }) end,
      "loader: trim frame_length must be a whole number of samples >= 1, got big")
  end)

  it("names the bad file and where its chunk sits when a trimmed decode fails", function()
    local bad = dir .. "/not-audio.wav"
    local f = assert(io.open(bad, "wb"))
    f:write("this is text, not a wav")
    f:close()
    local items = { corpus.items[1], { path = bad, label = "sad", speaker = 9 } }
    local l = ser.data.loader(ser.data.corpus(items), { seconds = 1.0, trim = 30 })
    local ok, err = pcall(l.waveforms, l)
    assert.is_false(ok)
    assert.matches("1 of 2 files (clips 1-2 of 2, decoded in chunks for trim) did not decode", err, 1, true)
    assert.matches("not-audio.wav", err, 1, true)
  end)

  it("is recorded in the checkpoint by ser.train.fit", function()
    local s = ser.data.synthetic { speakers = 4, per_class = 1, seconds = 0.5, seed = 3 }
    local train, val = s:split { by = "speaker", train = { 1, 2, 3 }, val = { 4 }, test = {} }
    local model = ser.models.CNN2D { classes = #s.classes }
    ser.train.fit(model, { train, val }, { epochs = 1, batch = 8, progress = "quiet", seconds = 0.5,
      trim = 25, augment = "none", classes = s.classes, checkpoint = dir .. "/m.safetensors" })
    local _, meta = ser.load(dir .. "/m.safetensors")
    assert.are.same({ top_db = 25, frame_length = 1024, hop_length = 256 }, meta.trim)
  end)
end)
