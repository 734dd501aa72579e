-- ser.stream and experiments/stream.lua (issue 21 item 4): the C front end (PCM decoding, the
-- streaming resampler against one-shot resampling, windows cut from a fixed ring), the
-- segmenter on made-up voice activity, and end to end with a model trained here: a long file
-- of clips of known classes with silences between gives one segment per clip, its boundaries
-- within 0.5 s and its label predict.lua's for the clip; stdin gives the same; a PCM stream
-- cut inside a sample, bad options and memory over a long input.
local ser = require "ser"
local T = ser.tensor
local cs = require "ser.core.stream"
local segments = require "ser.stream.segments"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")

ser.data.set_warn(function() end)

local serlua = paths.serlua
local it_bin = paths.have_serlua and it or pending

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Output and exit status of a shell command (stderr folded in unless split).
local function run(cmd, split)
  local p = io.popen(cmd .. (split and "" or " 2>&1") .. "; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)\n?$"))
  return out:gsub("rc=%d+\n?$", ""), rc
end

local function parse_segments(out)
  local segs = {}
  for s, e, label, conf in out:gmatch("([%d%.]+) ([%d%.]+) (%S+) ([%d%.]+)\n") do
    segs[#segs + 1] = { start = tonumber(s), stop = tonumber(e), label = label, confidence = tonumber(conf) }
  end
  return segs
end

-- All windows of x (at in_rate) through a core stream, pushed in blocks of `block` samples.
local function windows_of(x, in_rate, rate, window, hop, block)
  local st = cs.new { in_rate = in_rate, rate = rate, window = window, hop = hop }
  local out = {}
  local function drain()
    while true do
      local w, s = st:next_window()
      if not w then return end
      out[#out + 1] = { w = w, start = s }
    end
  end
  local n, off = x:shape()[1], 1
  while off <= n do
    local piece = x:narrow(1, off, math.min(block, n - off + 1))
    local i = 1
    while i <= piece:shape()[1] do
      i = i + st:push(piece, i)
      drain()
    end
    off = off + piece:shape()[1]
  end
  while st:finish() do drain() end
  drain()
  return out, st
end

describe("ser.core.stream", function()
  it("decodes little-endian s16 and f32 PCM, averages channels and keeps an incomplete frame's bytes", function()
    local bytes = string.pack("<i2i2i2i2i2", 0, 16384, -32768, 32767, 7)
    local x, used = cs.pcm_decode(bytes, "s16", 1)
    assert.are.same({ 0, 0.5, -1, 32767 / 32768, 7 / 32768 }, x:totable())
    assert.are.equal(10, used)
    x, used = cs.pcm_decode(bytes, "s16", 2)   -- two stereo frames, one s16 left over
    assert.are.same({ 0.25, (-1 + 32767 / 32768) / 2 }, x:totable())
    assert.are.equal(8, used)
    x, used = cs.pcm_decode(string.pack("<ff", 0.25, -2.5) .. "\1\2", "f32", 1)
    assert.are.same({ 0.25, -2.5 }, x:totable())
    assert.are.equal(8, used)
    x, used = cs.pcm_decode("\1", "s16", 1)
    assert.are.same({ 0 }, x:shape())
    assert.are.equal(0, used)
    assert.has_error(function() cs.pcm_decode(string.pack("<ff", 1, 0 / 0), "f32", 1) end,
      "pcm_decode: pcm: f32 sample at byte 4 of this block is NaN; samples must be finite")
    assert.has_error(function() cs.pcm_decode("ab", "u8", 1) end, 'pcm_decode: format must be "s16" or "f32", got "u8"')
    assert.has_error(function() cs.pcm_decode("ab", "s16", 0) end, "pcm_decode: channels must be 1..64, got 0")
  end)

  it("cuts windows every hop from the stream, and a last shorter one over the tail", function()
    local x = T.arange(0, 1050)
    local ws = windows_of(x, 16000, 16000, 300, 100, 77)
    -- full windows start at 0, 100, ..., 700; the tail 800..1049 is the last
    assert.are.equal(9, #ws)
    for k, w in ipairs(ws) do
      assert.are.equal((k - 1) * 100, w.start)
      local len = k < 9 and 300 or 250
      assert.are.same({ len }, w.w:shape())
      assert.are.equal(w.start, w.w:totable()[1])
      assert.are.equal(w.start + len - 1, w.w:totable()[len])
    end
    -- a stream that ends where a full window does needs no tail window
    assert.are.equal(8, #windows_of(T.arange(0, 1000), 16000, 16000, 300, 100, 1000))
    -- shorter than one window: one window of all of it
    ws = windows_of(T.arange(0, 50), 16000, 16000, 300, 100, 7)
    assert.are.equal(1, #ws)
    assert.are.same({ 50 }, ws[1].w:shape())
    -- nothing in: no window
    assert.are.equal(0, #windows_of(T.zeros(0), 16000, 16000, 300, 100, 7))
  end)

  it("resamples as loading does: the streamed windows equal one-shot libsoxr output", function()
    ser.manual_seed(3)
    local x = T.randn(44100 * 3) * 0.1
    for _, rates in ipairs { { 44100, 16000 }, { 8000, 16000 }, { 22050, 16000 } } do
      local xin = x:narrow(1, 1, rates[1] * 3)
      local ref = ser.audio.resample(xin, rates[1], rates[2], { method = "soxr" })
      local ws, st = windows_of(xin, rates[1], rates[2], 16000, 4000, 1234)
      assert.are.equal(ref:shape()[1], st:samples())
      local worst = 0
      for _, w in ipairs(ws) do
        local len = w.w:shape()[1]
        worst = math.max(worst, (w.w - ref:narrow(1, w.start + 1, len)):abs():max())
      end
      assert.is_true(worst == 0, ("%d -> %d Hz: worst difference %g"):format(rates[1], rates[2], worst))
    end
  end)

  it("takes only what its ring holds: a long push waits for the windows to be taken", function()
    local st = cs.new { in_rate = 16000, rate = 16000, window = 1000, hop = 500 }
    local taken = st:push(T.zeros(100000))
    assert.is_true(taken < 100000 and taken >= 1000, "took " .. taken)
    assert.are.equal(0, st:push(T.zeros(10)))   -- full until a window goes
    assert.is_truthy(st:next_window())
    assert.is_true(st:push(T.zeros(10)) > 0)
  end)

  it("refuses bad samples, options and use after finish with messages", function()
    assert.has_error(function() cs.new { in_rate = 16000, rate = 16000, window = 100, hop = 200 } end,
      "stream.new: stream: hop must be 1..100 samples (at most the window), got 200")
    assert.has_error(function() cs.new { in_rate = 10, rate = 16000, window = 100, hop = 20 } end,
      "stream.new: stream: input rate must be 1000..768000 Hz, got 10")
    assert.has_error(function() cs.new { in_rate = 16000, rate = 16000, windwo = 100 } end)
    local st = cs.new { in_rate = 16000, rate = 16000, window = 100, hop = 50 }
    assert.has_error(function() st:push(T.new { 0, 1 / 0 }) end,
      "stream:push: stream: sample 2 of this push is infinite; samples must be finite")
    assert.has_error(function() st:push(T.zeros(2, 2)) end, "stream:push: expected a 1-D tensor of samples, got 2 dimensions")
    st:finish()
    assert.has_error(function() st:push(T.zeros(2)) end, "stream:push: stream: push after finish (the input has ended)")
    st:close()
    assert.has_error(function() st:samples() end, "stream: the stream is closed")
  end)

  it("gives each frame's level in dBFS", function()
    local x = T.cat({ T.zeros(160), T.ones(160) * 0.1, T.ones(80) }, 1)
    local db = cs.frame_db(x, 160):totable()
    assert.are.equal(3, #db)
    assert.are.equal(-120, db[1])
    assert.is_true(math.abs(db[2] + 20) < 1e-4)
    assert.is_true(math.abs(db[3]) < 1e-6)
  end)
end)

describe("ser.stream.segments", function()
  -- frames of 0.1 s; windows every 0.5 s centred at 0.25, 0.75, ...
  local function run_timeline(voiced, labels, o)
    o = o or {}
    local seg = segments.new { classes = { "a", "b" }, frame = 0.1, hop = 0.5, smooth = o.smooth or 1,
      min_silence = o.min_silence or 0.5, min_segment = o.min_segment or 1.0 }
    local flags = {}
    for i = 1, #voiced do flags[i] = voiced:sub(i, i) == "x" end
    seg:frames(0, flags)
    local out = {}
    for k = 1, #labels do
      local c = labels:sub(k, k)
      local p = c == "a" and { 0.9, 0.1 } or c == "b" and { 0.2, 0.8 } or nil
      local _, closed = seg:window((k - 1) * 0.5 + 0.25, p, 10)
      for _, s in ipairs(closed) do out[#out + 1] = s end
    end
    for _, s in ipairs(seg:finish()) do out[#out + 1] = s end
    return out
  end

  it("takes boundaries from the voice activity and labels from the windows within", function()
    -- speech 1.0-3.0 s (a) and 4.0-6.0 s (b), a silence of 1 s between
    local out = run_timeline("..........xxxxxxxxxxxxxxxxxxxx..........xxxxxxxxxxxxxxxxxxxx..........",
                             "--aaaa--bbbb--")
    assert.are.equal(2, #out)
    assert.are.same({ 1.0, 3.0, "a" }, { out[1].start, out[1].stop, out[1].label })
    assert.are.same({ 4.0, 6.0, "b" }, { out[2].start, out[2].stop, out[2].label })
    assert.is_true(math.abs(out[1].confidence - 0.9) < 1e-9)
  end)

  it("bridges pauses shorter than min_silence and splits a region where the label changes for long enough", function()
    -- one region 0-6 s with a 0.3 s pause; labels a a a a b b b b a(1 cell) b b b
    local out = run_timeline("xxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                             "aaaabbbbabbb")
    assert.are.equal(2, #out)
    assert.are.same({ 0, 2.0, "a" }, { out[1].start, out[1].stop, out[1].label })
    assert.are.same({ 2.0, 6.0, "b" }, { out[2].start, out[2].stop, out[2].label })
  end)

  it("gives an unsteady start the label that follows, and no segment to a region without a scored window", function()
    local out = run_timeline("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..........xx..........", "baaaaa--x---")
    assert.are.equal(1, #out)
    assert.are.same({ 0, 3.0, "a" }, { out[1].start, out[1].stop, out[1].label })
  end)
end)

describe("ser.stream with a model", function()
  local dir, ckpt, corpus_dir
  setup(function()
    if not paths.have_serlua then return end
    dir = tmp.make("stream")
    corpus_dir = dir .. "/corpus"
    local c = ser.data.synthetic { speakers = 3, per_class = 6, classes = 3, seconds = 2.0, seed = 3, out = corpus_dir }
    local train = ser.data.scan(corpus_dir, { quiet = true }):split { by = "speaker", train = { 1, 2 }, val = { 3 },
      quiet = true }
    -- one thread: the same weights whatever SER_NUM_THREADS the test run has
    local threads = ser.num_threads()
    ser.set_num_threads(1)
    ser.manual_seed(1)
    ckpt = dir .. "/cnn2d.safetensors"
    -- trained with random shifts of up to 1 s: a stream's windows hold speech anywhere in them.
    -- No validation part: the checkpoint is the last epoch's model. Picked by the 9 validation
    -- clips' score it was sometimes an early epoch's, unsure of every clip (0.43 for the top
    -- class), when rounding (another instruction-set level) moved the run a little.
    ser.train.fit(ser.models.create("cnn2d", { classes = #c.classes }), { train }, { epochs = 16, lr = 3e-3,
      augment = { { "shift", seconds = 1.0, p = 1 } }, batch = 8, seconds = 2.0, classes = c.classes,
      progress = "quiet", checkpoint = ckpt, name = "cnn2d" })
    ser.set_num_threads(threads)
  end)
  teardown(tmp.cleanup)

  -- The command line of stream.lua on the model trained here, one thread.
  local function stream(args)
    return ("SER_NUM_THREADS=1 %s experiments/stream.lua %s %s"):format(serlua, q(ckpt), args)
  end

  -- A long file: 3 s of silence, then each clip followed by 1.5 s of silence. Returns the path
  -- and each clip's place { path, start, stop }.
  local function long_file(paths, name)
    local parts, places, t = { T.zeros(48000) }, {}, 3.0
    for _, p in ipairs(paths) do
      local w = assert(ser.audio.load(p, { sr = 16000 }))
      local n = w:shape()[1]
      places[#places + 1] = { path = p, start = t, stop = t + n / 16000 }
      parts[#parts + 1] = w
      parts[#parts + 1] = T.zeros(24000)
      t = t + n / 16000 + 1.5
    end
    local out = dir .. "/" .. name
    assert(ser.audio.save(out, T.cat(parts, 1), 16000))
    return out, places
  end

  -- predict.lua's label of each clip, and its runner-up with the margin between their probabilities
  local function predict_labels(paths)
    local out, rc = run(("%s experiments/predict.lua %s %s"):format(serlua, q(ckpt), table.concat(paths, " ")))
    assert.are.equal(0, rc, out)
    local labels = {}
    for path, label, probs in out:gmatch("([^\t\n]+)\t([^\t\n]+)\t([^\n]*)") do
      local ranked = {}
      for name, p in probs:gmatch("(%S+) ([%d.]+)") do ranked[#ranked + 1] = { name = name, p = tonumber(p) } end
      table.sort(ranked, function(a, b) return a.p > b.p end)
      labels[path] = { label = label, second = ranked[2].name, margin = ranked[1].p - ranked[2].p }
    end
    return labels
  end

  local function held_out_clips()
    local paths = {}
    for _, code in ipairs { "01", "02", "03", "02", "01", "03", "03" } do
      paths[#paths + 1] = ("%s/Actor_03/03-01-%s-01-01-01-03.wav"):format(corpus_dir, code)
    end
    return paths
  end

  it_bin("gives one segment per clip of a long file: boundaries within 0.5 s, the label predict.lua gives the clip", function()
    local paths = held_out_clips()
    local long, places = long_file(paths, "long.wav")
    local labels = predict_labels(paths)
    -- the clips are 2 s: --min-segment 3 keeps each clip one segment, labelled by the mean of its
    -- windows (splits by label inside speech are the segmenter specs' business; a model's first
    -- windows over a clip's onset see little of it)
    local out, rc = run(stream(("%s --window 2 --min-segment 3 --csv %s"):format(q(long), q(dir .. "/windows.csv"))))
    assert.are.equal(0, rc, out)
    local segs = parse_segments(out)
    assert.are.equal(#places, #segs, out)
    local sure = 0
    for i, p in ipairs(places) do
      local s = segs[i]
      assert.is_true(math.abs(s.start - p.start) <= 0.5 and math.abs(s.stop - p.stop) <= 0.5,
        ("clip %d at %.2f-%.2f s, segment %.2f-%.2f s\n%s"):format(i, p.start, p.stop, s.start, s.stop, out))
      -- a clip the model is sure of gets predict.lua's label; where predict.lua's top two classes
      -- are close (the generator's neutral and calm are as alike as RAVDESS's), the mean over
      -- windows that each see part of the clip may fall to the runner-up (builds that round
      -- differently, e.g. the sanitizer's -O1, train a slightly different model)
      local want = labels[p.path]
      if want.margin >= 0.15 then
        assert.are.equal(want.label, s.label, ("clip %d (%s)\n%s"):format(i, p.path, out))
        sure = sure + 1
      else
        assert.is_true(s.label == want.label or s.label == want.second,
          ("clip %d (%s): segment %s, predict.lua %s (runner-up %s, margin %.3f)\n%s"):format(i, p.path, s.label,
            want.label, want.second, want.margin, out))
      end
    end
    assert.is_true(sure >= 3, ("only %d of %d clips had a clear label: the model trained here is too unsure to check"):format(sure, #places))
    -- the CSV: a header and one row per window (hop 0.5 s over the file), unvoiced ones unscored
    local rows, unvoiced = {}, 0
    for line in io.lines(dir .. "/windows.csv") do rows[#rows + 1] = line end
    assert.are.equal("start,stop,voiced,label,confidence,neutral,calm,happy,raw_neutral,raw_calm,raw_happy", rows[1])
    for i = 2, #rows do if rows[i]:match("^[%d.]+,[%d.]+,0,,") then unvoiced = unvoiced + 1 end end
    assert.is_true(#rows > 40 and unvoiced > 0, ("%d rows, %d unvoiced"):format(#rows - 1, unvoiced))
    assert.is_nil(io.open(dir .. "/windows.csv.tmp", "rb"))
  end)

  -- Real speech: RAVDESS clips (leading and trailing silence trimmed at 30 dB below the clip's
  -- loudest frame, as ser.audio.trim does) with 1.5 s of silence between. The model here was
  -- trained on generated audio, so its labels for speech mean nothing: this checks the voice
  -- activity on speech, one segment per clip (--min-segment 100: no splits by label) with its
  -- boundaries within 0.5 s of the clip's.
  local ravdess = "../shared/data/ravdess16k"
  it_bin("finds each RAVDESS clip of a long file as one segment, its boundaries within 0.5 s", function()
    if not ser.fs.is_dir(ravdess) then pending(ravdess .. " is absent: real speech not checked") return end
    local parts, places, t = { T.zeros(48000) }, {}, 3.0
    for _, a in ipairs { 5, 12 } do
      for _, e in ipairs { "01", "02", "03", "04", "05", "06", "07", "08" } do
        local p = ("%s/Actor_%02d/03-01-%s-%s-01-01-%02d.flac"):format(ravdess, a, e, e == "01" and "01" or "02", a)
        local y = ser.audio.trim(assert(ser.audio.load(p, { sr = 16000 })), { top_db = 30 })
        local n = y:shape()[1]
        places[#places + 1] = { path = p, start = t, stop = t + n / 16000 }
        parts[#parts + 1] = y
        parts[#parts + 1] = T.zeros(24000)
        t = t + n / 16000 + 1.5
      end
    end
    local long = dir .. "/ravdess.wav"
    assert(ser.audio.save(long, T.cat(parts, 1), 16000))
    local out, rc = run(stream(q(long) .. " --window 2 --min-segment 100"))
    assert.are.equal(0, rc, out)
    local segs = parse_segments(out)
    assert.are.equal(#places, #segs, out)
    for i, p in ipairs(places) do
      assert.is_true(math.abs(segs[i].start - p.start) <= 0.5 and math.abs(segs[i].stop - p.stop) <= 0.5,
        ("%s at %.2f-%.2f s, segment %.2f-%.2f s"):format(p.path, p.start, p.stop, segs[i].start, segs[i].stop))
    end
  end)

  it_bin("reads raw PCM on stdin (s16, f32, stereo) with the same segments as the file", function()
    local long = long_file(held_out_clips(), "long2.wav")
    local file_out = run(stream(q(long) .. " --window 2 --min-segment 3"))
    -- the file's samples as raw PCM: f32 exactly, stereo by duplicating each sample
    local w = assert(ser.audio.load(long, { sr = 0 })):totable()
    local f32, stereo = {}, {}
    for i, v in ipairs(w) do f32[i] = string.pack("<f", v); stereo[i] = string.pack("<ff", v, v) end
    local f = io.open(dir .. "/long.f32", "wb"); f:write(table.concat(f32)); f:close()
    f = io.open(dir .. "/long2.f32", "wb"); f:write(table.concat(stereo)); f:close()
    for _, case in ipairs { { "long.f32", "--format f32" }, { "long2.f32", "--format f32 --channels 2" } } do
      local out, rc = run(stream(("- --rate 16000 --window 2 --min-segment 3 %s < %s"):format(case[2],
        q(dir .. "/" .. case[1]))))
      assert.are.equal(0, rc, out)
      assert.are.equal(file_out, out)
    end
    -- s16 at 8 kHz: resampled to the model's 16 kHz; the same clips and labels, boundaries within
    -- 0.25 s (what was above 4 kHz is gone, so the quiet onsets cross the gate's level later)
    local s16 = {}
    local w8 = ser.audio.resample(T.new(w), 16000, 8000, { method = "soxr" }):totable()
    for i, v in ipairs(w8) do s16[i] = string.pack("<i2", math.max(-32768, math.min(32767, math.floor(v * 32768 + 0.5)))) end
    f = io.open(dir .. "/long.s16", "wb"); f:write(table.concat(s16)); f:close()
    local out, rc = run(stream("- --rate 8000 --window 2 --min-segment 3 < " .. q(dir .. "/long.s16")))
    assert.are.equal(0, rc, out)
    -- The labels are compared where the file's label is clear (mean top probability >= 0.5): this
    -- small model has near ties (0.44 against 0.43), which the band-limited input may flip, as may
    -- another instruction-set level's rounding of its training (SER_ISA=avx2 did).
    local a, b = parse_segments(file_out), parse_segments(out)
    assert.are.equal(#a, #b, out)
    local clear = 0
    for i = 1, #a do
      if a[i].confidence >= 0.5 then
        assert.are.equal(a[i].label, b[i].label, file_out .. "\n" .. out)
        clear = clear + 1
      end
      assert.is_true(math.abs(a[i].start - b[i].start) <= 0.25 and math.abs(a[i].stop - b[i].stop) <= 0.25,
        file_out .. "\n" .. out)
    end
    assert.is_true(clear >= 2, "fewer than two clear labels to compare:\n" .. file_out)
  end)

  it_bin("reports a PCM stream that stops inside a sample, after the segments before it", function()
    local long = long_file(held_out_clips(), "long3.wav")
    local w = assert(ser.audio.load(long, { sr = 0 })):narrow(1, 1, 16000 * 6):totable()
    local s16 = {}
    for i, v in ipairs(w) do s16[i] = string.pack("<i2", math.floor(v * 32767)) end
    local f = io.open(dir .. "/cut.s16", "wb"); f:write(table.concat(s16), "\7"); f:close()
    local out, rc = run(("%s experiments/stream.lua %s - --window 2 --min-segment 3 < %s 2>%s"):format(serlua, q(ckpt),
      q(dir .. "/cut.s16"), q(dir .. "/err.txt")), true)
    assert.are.equal(1, rc)
    assert.are.equal(1, #parse_segments(out), out)
    local err = io.open(dir .. "/err.txt"):read("a")
    assert.are.equal("ser.stream: the PCM input ended inside a frame: 1 byte left over after 96000 whole frames " ..
      "(s16 with 1 channel is 2 bytes a frame); the stream was cut short or --format/--channels do not match it\n", err)
  end)

  it_bin("prints JSON lines for programs", function()
    local long = long_file(held_out_clips(), "long4.wav")
    local out, rc = run(stream(q(long) .. " --window 2 --min-segment 3 --json"), true)
    assert.are.equal(0, rc, out)
    local windows, segs = 0, 0
    for line in out:gmatch("[^\n]+") do
      local kind = line:match('"type":"(%a+)"')
      assert.is_truthy(kind, line)
      if kind == "window" then windows = windows + 1 else segs = segs + 1 end
      if kind == "segment" then
        assert.is_truthy(line:match('^{"confidence":[%d.]+,"label":"%a+","probs":{"calm":[%d.e-]+,"happy":[%d.e-]+,' ..
          '"neutral":[%d.e-]+},"start":[%d.]+,"stop":[%d.]+,"type":"segment"}$'), line)
      end
    end
    assert.are.equal(7, segs)
    assert.is_true(windows > 40)
  end)

  it_bin("refuses bad options and input with messages that say what is expected", function()
    local cases = {
      { "- --format u8", "--format must be s16 or f32, got 'u8'" },
      { "- --channels 0", "--channels must be 1..64, got 0" },
      { "- --window 0", "window must be a number of seconds in 0.01..2" },
      { "- --window 5", "(the model's clip length: it sees no more), got 5" },
      { "- --hop 3 --window 2", "hop must be a number of seconds in 0.01..window (2), got 3" },
      { "- --vad-db loud", "--vad-db must be a number, got 'loud'" },
      { "- --smooth 1.5", "--smooth must be a whole number, got '1.5'" },
      { "- --rate 10", "rate must be a sample rate in Hz, 1000..768000, got 10" },
      { dir .. "/absent.wav", "absent.wav" },
      { corpus_dir .. "/Actor_01/03-01-01-01-01-01-01.wav --rate 8000", "--rate, --format and --channels describe raw PCM" },
    }
    for _, c in ipairs(cases) do
      local out, rc = run(("%s experiments/stream.lua %s %s < /dev/null"):format(serlua, q(ckpt), c[1]))
      assert.are_not.equal(0, rc, c[1] .. "\n" .. out)
      assert.is_truthy(out:find(c[2], 1, true), c[1] .. ": " .. out)
      assert.is_nil(out:find("traceback", 1, true), out)
    end
    local out, rc = run(("%s experiments/stream.lua %s %s"):format(serlua, q(dir .. "/absent.safetensors"), q(ckpt)))
    assert.are_not.equal(0, rc)
    assert.is_truthy(out:find("absent.safetensors", 1, true), out)
    out, rc = run(("%s experiments/stream.lua --help"):format(serlua))
    assert.are.equal(0, rc)
    assert.is_truthy(out:find("Usage: stream.lua", 1, true), out)
    -- the library: misspelt options, bad samples, speaker-normalised models
    local model, meta = assert(ser.train.load_checkpoint(ckpt))
    assert.has_error(function() ser.stream.new(model, meta, { widnow = 2 }) end)
    local st = ser.stream.new(model, meta, { window = 2 })
    assert.has_error(function() st:push("loud") end,
      "ser.stream: push expects a float tensor [N] or an array of numbers, got string")
    assert.has_error(function() st:push(T.zeros(2, 3)) end,
      "ser.stream: push expects one channel of samples, a tensor [N]; got shape [2,3]")
    local w1 = st:push({ 0, 0.5, -0.5 })
    assert.are.same({}, w1)
    st:finish()
    assert.has_error(function() st:push({ 0 }) end, "ser.stream: push after finish (the stream has ended)")
    local spk = {}
    for k, v in pairs(meta) do spk[k] = v end
    spk.recipe, spk.normalize = nil, "speaker"
    assert.has_error(function() ser.stream.new(model, spk) end)
    local ok, err = pcall(ser.stream.new, model, spk)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("speaker normalisation", 1, true), err)
  end)

  it_bin("keeps its memory fixed over a long input (1 and 10 minutes of audio)", function()
    local model, meta = assert(ser.train.load_checkpoint(ckpt))
    local clip = assert(ser.audio.load(corpus_dir .. "/Actor_03/03-01-03-01-01-01-03.wav", { sr = 16000 }))
    local block = T.cat({ clip, T.zeros(16000 * 8) }, 1)   -- 10 s: 2 s of sound, 8 s of silence
    local st = ser.stream.new(model, meta, { window = 2, hop = 1 })
    local function minutes(m)
      for _ = 1, 6 * m do st:push(block) end
      collectgarbage(); collectgarbage()
      return ser.memory(), collectgarbage("count")
    end
    local c1, l1 = minutes(1)
    local c10, l10 = minutes(9)
    assert.is_true(st:seconds() == 600)
    -- the C side holds the same blocks; Lua's heap (windows, segments in flight) stays put
    assert.is_true(c10 <= c1 + 64 * 1024, ("C memory %d bytes after 1 min, %d after 10"):format(c1, c10))
    assert.is_true(l10 <= l1 + 512, ("Lua memory %.0f KB after 1 min, %.0f KB after 10"):format(l1, l10))
  end)
end)

-- Speaker-normalised models given the speaker's clips: a window's probabilities are
-- predict.lua's for a file holding that window, given with the same clips as one speaker (the
-- file names say no speaker, so predict.lua groups them all).
describe("ser.stream with a speaker-normalised model and the speaker's clips", function()
  local dir, clips, window_file, window
  local random_whisper = dofile(here .. "helpers/whisper_random.lua")
  setup(function()
    if not paths.have_serlua then return end
    dir = tmp.make("stream_spk")
    local c = ser.data.synthetic { speakers = 1, per_class = 2, classes = 3, seconds = 2.0, seed = 5, out = dir .. "/c" }
    clips = {}
    for i, it in ipairs(ser.data.scan(dir .. "/c", { quiet = true }).items) do
      clips[i] = ("%s/clip%d.wav"):format(dir, i)
      assert(ser.audio.save(clips[i], assert(ser.audio.load(it.path, { sr = 16000 })), 16000))
    end
    assert(#clips == 2 * #c.classes)
    -- the window: a clip's second half and silence, as saved and read back (the file predict.lua reads)
    local w = assert(ser.audio.load(clips[1], { sr = 16000 }))
    window_file = dir .. "/window.wav"
    assert(ser.audio.save(window_file, T.cat({ w:narrow(1, 16001, 16000), T.zeros(8000) }, 1), 16000))
    window = assert(ser.audio.load(window_file, { sr = 16000 }))
  end)
  teardown(tmp.cleanup)

  -- predict.lua's probabilities for the window file among the clips, and the scorer's
  local function both(ckpt)
    -- (its note that 7 clips are few for a speaker's statistics, on stderr, is left out)
    local out, rc = run(("SER_NUM_THREADS=1 %s experiments/predict.lua --digits 7 %s %s %s 2>/dev/null"):format(serlua,
      q(ckpt), table.concat(clips, " "), window_file), true)
    assert.are.equal(0, rc, out)
    local want = {}
    for p in out:match(window_file:gsub("%p", "%%%0") .. "\t[^\t]+\t([^\n]*)"):gmatch("%s(%d%.%d+)") do
      want[#want + 1] = tonumber(p)
    end
    local model, meta = assert(ser.train.load_checkpoint(ckpt))
    local score = ser.stream.scorer.new(model, meta, clips)
    return want, score(window)
  end

  local function assert_close(want, got)
    assert.are.equal(#want, #got)
    local worst, top = 0, 0
    for k = 1, #want do worst, top = math.max(worst, math.abs(want[k] - got[k])), math.max(top, want[k]) end
    assert(worst <= 1e-5, ("the stream's probabilities differ from predict.lua's by %.3g"):format(worst))
    assert(top > 0.4 and top < 1 - 1e-4, ("top probability %.4f: too flat or saturated to compare"):format(top))
  end

  local function sharpen(model, names, scale)
    ser.no_grad(function()
      local sd = model:state_dict()
      for _, n in ipairs(names) do sd[n]:copy_(sd[n] * scale) end
    end)
  end

  for _, norm in ipairs { "speaker", "speaker_bins" } do
    it_bin("a CNN2D with normalize = \"" .. norm .. "\"", function()
      ser.manual_seed(11)
      local model = ser.models.create("cnn2d", { classes = 3 })
      sharpen(model, { "classifier.5.weight" }, 30)
      local ckpt = ("%s/cnn2d_%s.safetensors"):format(dir, norm)
      ser.train.save_checkpoint(ckpt, model, { "neutral", "happy", "sad" }, { seconds = 2, sr = 16000, normalize = norm },
        1, { features = { kind = "logmel" } })
      assert_close(both(ckpt))
    end)
  end

  it_bin("a whisper-family model with speaker_norm (concat head on a small random encoder)", function()
    local enc = dir .. "/enc"
    random_whisper(enc, { layers = 2, d_model = 64 })
    local r = ser.recipe.resolve({ model = { name = "whisper", encoder = enc, head = "concat", hidden = 32,
      speaker_norm = true, layers = { 1, 2 } }, data = { seconds = 2 } })
    ser.manual_seed(12)
    local model = ser.recipe.build_model(r, 3)
    sharpen(model, { "head.mlp.4.weight" }, 8)
    model:eval()
    local ckpt = dir .. "/whisper_spk.safetensors"
    ser.train.save_checkpoint(ckpt, model, { "neutral", "happy", "sad" },
      { seconds = 2, sr = 16000, meta = { recipe = ser.recipe.to_meta(r) } }, 1, {})
    assert_close(both(ckpt))
    -- stream.lua takes them as --speaker-clips (a folder or files)
    os.execute(("mkdir -p %s/spk && cp %s %s/spk/"):format(q(dir), table.concat(clips, " "), q(dir)))
    local out, rc = run(("SER_NUM_THREADS=1 %s experiments/stream.lua --speaker-clips %s %s %s"):format(serlua,
      q(dir .. "/spk"), q(ckpt), q(window_file)))
    assert.are.equal(0, rc, out)
    out, rc = run(("%s experiments/stream.lua %s %s"):format(serlua, q(ckpt), q(window_file)))
    assert.are_not.equal(0, rc)
    assert.is_truthy(out:find("--speaker-clips", 1, true), out)
    out, rc = run(("%s experiments/stream.lua --speaker-clips %s %s %s"):format(serlua, q(dir .. "/none"), q(ckpt),
      q(window_file)))
    assert.are_not.equal(0, rc)
    assert.is_truthy(out:find("--speaker-clips " .. dir .. "/none", 1, true), out)
  end)

  it_bin("streams of one speaker share a prepared scorer, which read the speaker's clips once", function()
    ser.manual_seed(14)
    local model = ser.models.create("cnn2d", { classes = 3 })
    sharpen(model, { "classifier.5.weight" }, 30)
    local ckpt = dir .. "/cnn2d_shared.safetensors"
    ser.train.save_checkpoint(ckpt, model, { "neutral", "happy", "sad" }, { seconds = 2, sr = 16000, normalize = "speaker" },
      1, { features = { kind = "logmel" } })
    local m, meta = assert(ser.train.load_checkpoint(ckpt))
    -- copies of the clips, gone once the scorer is prepared: the streams must not read them
    os.execute(("mkdir -p %s/gone"):format(q(dir)))
    local copies = {}
    for i, c in ipairs(clips) do
      copies[i] = ("%s/gone/clip%d.wav"):format(dir, i)
      assert(ser.audio.save(copies[i], assert(ser.audio.load(c, { sr = 16000 })), 16000))
    end
    local shared = ser.stream.scorer.prepare(m, meta, copies)
    for _, c in ipairs(copies) do assert(os.remove(c)) end
    local function probs(o)
      local st = ser.stream.new(m, meta, o)
      local windows = st:push(T.cat({ window, window }, 1))
      local more = st:finish()
      for _, w in ipairs(more) do windows[#windows + 1] = w end
      local out = {}
      for _, w in ipairs(windows) do if w.raw then out[#out + 1] = w.raw end end
      return out
    end
    local want = probs { speaker = clips, window = 1.5, hop = 0.5 }
    assert(#want >= 3, "too few scored windows to compare: " .. #want)
    for _ = 1, 2 do assert.same(want, probs { scorer = shared, window = 1.5, hop = 0.5 }) end
    -- refused: a scorer and clips together, another model's scorer, something else
    local ok, err = pcall(ser.stream.new, m, meta, { scorer = shared, speaker = clips })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("not both", 1, true), err)
    local other = assert(ser.train.load_checkpoint(ckpt))
    ok, err = pcall(ser.stream.new, other, meta, { scorer = shared })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("prepared for another model", 1, true), err)
    ok, err = pcall(ser.stream.new, m, meta, { scorer = function() end })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("ser.stream.scorer.prepare", 1, true), err)
  end)

  it_bin("refuses the speaker's clips for a model trained without speaker normalisation, and a bad clip", function()
    ser.manual_seed(13)
    local ckpt = dir .. "/plain.safetensors"
    ser.train.save_checkpoint(ckpt, ser.models.create("cnn2d", { classes = 3 }), { "neutral", "happy", "sad" },
      { seconds = 2, sr = 16000 }, 1, { features = { kind = "logmel" } })
    local model, meta = assert(ser.train.load_checkpoint(ckpt))
    local ok, err = pcall(ser.stream.scorer.new, model, meta, clips)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("trained without speaker normalisation", 1, true), err)
    local spk_ckpt = dir .. "/spk_bad_clip.safetensors"
    ser.train.save_checkpoint(spk_ckpt, model, { "neutral", "happy", "sad" }, { seconds = 2, sr = 16000,
      normalize = "speaker" }, 1, { features = { kind = "logmel" } })
    local spk, spk_meta = assert(ser.train.load_checkpoint(spk_ckpt))
    ok, err = pcall(ser.stream.scorer.new, spk, spk_meta, { clips[1], dir .. "/missing.wav" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("the speaker's clip 2 (" .. dir .. "/missing.wav)", 1, true), err)
  end)
end)
