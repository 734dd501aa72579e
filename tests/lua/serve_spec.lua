-- experiments/serve.lua over HTTP: a running server on an ephemeral port, spoken to with
-- curl. POST /predict gives predict.lua's probabilities for a clip and a window timeline for
-- a long file; the live session (/stream) gives the same windows as /predict for the same
-- samples sent in chunks; bad input (over the size limit, wrong type, garbage audio, bad
-- PCM, unknown paths and methods, a client that stalls) gets a JSON error with its status
-- and the server keeps answering.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local S = dofile(here .. "helpers/serve_server.lua")
local serlua, have = paths.serlua, paths.have_serlua
local have_curl = os.execute("command -v curl >/dev/null 2>&1") == true
if not (have and have_curl) then
  describe("serve.lua", function()
    pending(("needs %s and curl (%s)"):format(serlua, have and "curl is missing" or "serlua is not built"))
  end)
  return
end

local function windows_of(body)
  local out = {}
  for w in body:match('"windows": (%b[])'):gmatch("%b{}") do
    if w:match('"voiced": true') then
      out[#out + 1] = { label = w:match('"label": "(%w+)"'), start = tonumber(w:match('"start": ([%d%.]+)')),
                        probs = w:match('"probabilities": (%b{})') }
    else
      out[#out + 1] = { start = tonumber(w:match('"start": ([%d%.]+)')) }
    end
  end
  return out
end

describe("serve.lua", function()
  local dir, srv, classes, clip, long, ckpt
  setup(function()
    dir = tmp.make("serve")
    ckpt = dir .. "/cnn2d.safetensors"
    classes = S.checkpoint(ser, ckpt)
    clip = dir .. "/clip.wav"
    assert(ser.audio.save(clip, S.voice(ser, 1.5, 140), 16000))
    long = dir .. "/long.wav"
    assert(ser.audio.save(long, S.voice(ser, 6.0, 220, { { 2.5, 4.0 } }), 16000))
    local err
    srv, err = S.start(serlua, ckpt, { "--max-body", "1", "--timeout", "2", "--quiet" }, dir)
    assert(srv, err)
  end)
  teardown(function()
    S.stop(srv)
    tmp.cleanup()
  end)

  it("serves the page and its files, offline (no outside URL in them)", function()
    local status, body, hdr = S.request(srv.url)
    assert.equal(200, status)
    assert.truthy(hdr:lower():find("content-type: text/html", 1, true))
    assert.truthy(body:find("<script src=\"/app.js\">", 1, true))
    for _, f in ipairs { "app.js", "worklet.js", "style.css" } do
      local st, b = S.request(srv.url .. f)
      assert.equal(200, st, f)
      assert.is_nil(b:match("https?://"), f .. " refers to an outside URL")
    end
    local st, info = S.request(srv.url .. "api/info")
    assert.equal(200, st)
    assert.truthy(info:find('"classes": ["neutral", "calm"', 1, true))
    assert.truthy(info:find('"sample_rate": 16000', 1, true))
  end)

  it("POST /predict gives predict.lua's label and probabilities for a clip", function()
    local status, body = S.request(srv.url .. "predict", { method = "POST", file = clip, type = "audio/wav" })
    assert.equal(200, status, body)
    local p = io.popen(("%s experiments/predict.lua %s %s"):format(serlua, S.quote(ckpt), S.quote(clip)))
    local line = p:read("a")
    p:close()
    local label = line:match("\t(%w+)\t")
    assert.equal(label, body:match('^{"confidence": [^,]+, "duration": [^,]+, "label": "(%w+)"'))
    local probs = S.probs(body:match('"probabilities": (%b{})'), classes)
    for _, c in ipairs(classes) do
      local want = tonumber(line:match(c .. " ([%d%.]+)"))
      assert(math.abs(probs[c] - want) < 1e-3, ("%s: served %g, predict.lua %g"):format(c, probs[c], want))
    end
  end)

  it("POST /predict gives a timeline of windows for a long file, silence unvoiced", function()
    local status, body = S.request(srv.url .. "predict", { method = "POST", file = long, type = "audio/x-wav" })
    assert.equal(200, status, body)
    local wins = windows_of(body)
    -- 6 s, windows of 2 s every 0.5 s: starts 0 .. 4
    assert.equal(9, #wins)
    for i, w in ipairs(wins) do assert.near((i - 1) * 0.5, w.start, 1e-6) end
    -- the window at 2.5 .. 4.5 is 1.5 s of silence and 0.5 s of voice: still voiced; none is
    -- silent here, so check the gate on a file that is silent throughout below
    local segs = body:match('"segments": (%b[])')
    assert.truthy(segs:find('"stop": 6', 1, true), segs)
    local silent = dir .. "/silent.wav"
    assert(ser.audio.save(silent, ser.tensor.zeros(16000 * 3), 16000))
    local st2, b2 = S.request(srv.url .. "predict", { method = "POST", file = silent, type = "audio/wav" })
    assert.equal(200, st2, b2)
    for _, w in ipairs(windows_of(b2)) do assert.is_nil(w.label) end
    assert.truthy(b2:find('"segments": []', 1, true))
  end)

  it("a live session (/stream) gives /predict's windows for the same samples sent in chunks", function()
    local _, whole = S.request(srv.url .. "predict", { method = "POST", file = long, type = "audio/wav" })
    local status, opened = S.request(srv.url .. "stream?rate=16000&format=f32", { method = "POST" })
    assert.equal(201, status, opened)
    local id = opened:match('"id": "(%w+)"')
    local x = ser.audio.load(long, { sr = 16000 })
    local n, chunk = x:shape()[1], 4000
    local got = {}
    for a = 1, n, chunk do
      local f = dir .. "/chunk.f32"
      x:narrow(1, a, math.min(chunk, n - a + 1)):contiguous():tofile(f)
      local st, b = S.request(srv.url .. "stream/" .. id, { method = "POST", file = f, type = "application/octet-stream" })
      assert.equal(200, st, b)
      for _, w in ipairs(windows_of(b)) do got[#got + 1] = w end
    end
    local st, last = S.request(srv.url .. "stream/" .. id, { method = "DELETE" })
    assert.equal(200, st, last)
    for _, w in ipairs(windows_of(last)) do got[#got + 1] = w end
    local want = windows_of(whole)
    assert.equal(#want, #got)
    for i = 1, #want do
      assert.equal(want[i].start, got[i].start)
      assert.equal(want[i].label, got[i].label)
      if want[i].probs then
        local a, b = S.probs(want[i].probs, classes), S.probs(got[i].probs, classes)
        for _, c in ipairs(classes) do assert.near(a[c], b[c], 1e-5) end
      end
    end
    -- closed: the id is gone
    assert.equal(404, (S.request(srv.url .. "stream/" .. id, { method = "DELETE" })))
  end)

  it("s16 chunks decode like f32 ones", function()
    -- 2.5 s of a constant 0.25 (int16 8192): windows at 0 and 0.5 s
    local bodies = { s16 = string.rep(string.pack("<i2", 8192), 40000), f32 = string.rep(string.pack("<f", 0.25), 40000) }
    local got = {}
    for format, data in pairs(bodies) do
      local _, opened = S.request(srv.url .. "stream?format=" .. format, { method = "POST" })
      local id = opened:match('"id": "(%w+)"')
      local st, b = S.request(srv.url .. "stream/" .. id, { method = "POST", data = data, type = "application/octet-stream" })
      assert.equal(200, st, b)
      got[format] = windows_of(b)
      S.request(srv.url .. "stream/" .. id, { method = "DELETE" })
    end
    assert.equal(2, #got.s16)
    assert.equal(2, #got.f32)
    for i = 1, 2 do
      local a, b = S.probs(got.s16[i].probs, classes), S.probs(got.f32[i].probs, classes)
      for _, c in ipairs(classes) do assert.near(a[c], b[c], 1e-6) end
    end
  end)

  it("a live session at another rate is resampled to the model's", function()
    local _, opened = S.request(srv.url .. "stream?rate=48000", { method = "POST" })
    local id = assert(opened:match('"id": "(%w+)"'), opened)
    assert.truthy(opened:find('"rate": 48000', 1, true), opened)
    -- 3 s at 48 kHz: the 2 s windows at 0, 0.5 and 1 s of the model's 16 kHz
    local x = ser.audio.resample(ser.audio.load(long, { sr = 16000 }):narrow(1, 1, 48000):contiguous(), 16000, 48000)
    local f = dir .. "/hi.f32"
    x:tofile(f)
    local st, b = S.request(srv.url .. "stream/" .. id, { method = "POST", file = f, type = "application/octet-stream" })
    assert.equal(200, st, b)
    local wins = windows_of(b)
    local _, last = S.request(srv.url .. "stream/" .. id, { method = "DELETE" })
    for _, w in ipairs(windows_of(last)) do wins[#wins + 1] = w end   -- the resampler's delay holds back the end
    assert.equal(3, #wins)
    for i, w in ipairs(wins) do assert.near((i - 1) * 0.5, w.start, 1e-6) end
  end)

  it("refuses bad input with a JSON error and the right status, and keeps serving", function()
    local function check(want, msg_part, url, o)
      local st, body, hdr = S.request(url, o)
      assert.equal(want, st, body)
      assert.truthy(hdr:lower():find("content-type: application/json", 1, true), hdr)
      local msg = body:match('^{"error": "(.*)"}$')
      assert(msg, "not a JSON error: " .. body)
      assert(msg:find(msg_part, 1, true), ("%q does not mention %q"):format(msg, msg_part))
      return hdr
    end
    local big = string.rep("\0", 2 * 1048576)
    check(413, "over the limit of 1048576 bytes", srv.url .. "predict", { method = "POST", data = big, type = "audio/wav" })
    -- chunked upload: no Content-Length to refuse up front, the limit applies while reading
    check(413, "over the limit", srv.url .. "predict",
      { method = "POST", data = big, type = "audio/wav", headers = { "Transfer-Encoding: chunked" } })
    check(415, "'text/plain' is not audio", srv.url .. "predict", { method = "POST", data = "hello", type = "text/plain" })
    check(400, "not audio this server can decode", srv.url .. "predict",
      { method = "POST", data = ("RIFF garbage "):rep(100), type = "audio/wav" })
    check(400, "no body", srv.url .. "predict", { method = "POST", type = "audio/wav", data = "" })
    check(404, "no such path: /nope", srv.url .. "nope")
    local hdr = check(405, "/predict does not take GET", srv.url .. "predict")
    assert.truthy(hdr:find("Allow: POST", 1, true), hdr)
    check(405, "does not take PUT", srv.url .. "stream", { method = "PUT" })
    check(400, "is not a sample rate", srv.url .. "stream?rate=fast", { method = "POST" })
    check(400, "is not a sample rate", srv.url .. "stream?rate=10", { method = "POST" })
    check(400, "expected f32 or s16", srv.url .. "stream?format=u8", { method = "POST" })
    check(404, "no live session", srv.url .. "stream/abc123", { method = "POST", data = "xxxx",
      type = "application/octet-stream" })
    local _, opened = S.request(srv.url .. "stream", { method = "POST" })
    local id = opened:match('"id": "(%w+)"')
    check(400, "not a whole number of f32 samples", srv.url .. "stream/" .. id,
      { method = "POST", data = string.pack("<f", 0.1) .. "xyz", type = "application/octet-stream" })
    check(400, "is expected within [-1, 1]", srv.url .. "stream/" .. id,
      { method = "POST", data = "abcdefgh", type = "application/octet-stream" })
    check(400, "is NaN; samples must be finite", srv.url .. "stream/" .. id,
      { method = "POST", data = string.pack("<ff", 0.5, 0 / 0), type = "application/octet-stream" })
    check(415, "raw PCM", srv.url .. "stream/" .. id, { method = "POST", data = "abcd", type = "audio/wav" })
    S.request(srv.url .. "stream/" .. id, { method = "DELETE" })
    -- still serving
    local st, body = S.request(srv.url .. "predict", { method = "POST", file = clip, type = "audio/wav" })
    assert.equal(200, st, body)
    assert.truthy(S.alive(srv))
  end)

  it("closes a client that stalls mid-body after the time-out, serving others meanwhile", function()
    -- promises 1000 bytes, sends 3, then waits: the server (--timeout 2) must hang up
    local script = ("exec 3<>/dev/tcp/127.0.0.1/%d; printf 'POST /predict HTTP/1.1\\r\\nHost: x\\r\\n" ..
      "Content-Type: audio/wav\\r\\nContent-Length: 1000\\r\\n\\r\\nabc' >&3; s=$(date +%%s%%N); cat <&3 >/dev/null; " ..
      "echo $(( ($(date +%%s%%N) - s) / 1000000 ))"):format(srv.port)
    local out = dir .. "/stall.out"
    os.execute(("timeout 15 bash -c %s > %s 2>&1 &"):format(S.quote(script), S.quote(out)))
    -- others are answered while the stalled connection is open
    for _ = 1, 3 do
      local st = S.request(srv.url .. "api/info", { max_time = 5 })
      assert.equal(200, st)
    end
    local ms
    for _ = 1, 100 do
      local f = io.open(out)
      ms = f and tonumber(f:read("a"):match("(%d+)%s*$"))
      if f then f:close() end
      if ms then break end
      os.execute("sleep 0.1")
    end
    assert(ms, "the stalled connection was not closed within 10 s")
    assert(ms >= 1500 and ms < 6000, ("closed after %d ms; expected about the 2 s time-out"):format(ms))
    assert.equal(200, (S.request(srv.url .. "api/info")))
  end)

  it("says why it cannot start: port in use, a bad host, a checkpoint it cannot run", function()
    local function run(args)
      local p = io.popen(("%s experiments/serve.lua %s 2>&1; echo rc=$?"):format(serlua, args))
      local out = p:read("a")
      p:close()
      return out, tonumber(out:match("rc=(%d+)%s*$"))
    end
    local out, rc = run(("%s --port %d"):format(S.quote(ckpt), srv.port))
    assert.equal(1, rc, out)
    assert.truthy(out:find("another program uses the port", 1, true), out)
    out, rc = run(("%s --port 0 --host no.such.host.invalid"):format(S.quote(ckpt)))
    assert.not_equal(0, rc, out)
    assert.truthy(out:find("cannot listen on 'no.such.host.invalid'", 1, true), out)
    local odd = dir .. "/odd.safetensors"
    assert(ser.save(odd, { w = ser.tensor.ones(2) }, { model = "transformer9000", classes = { "a", "b" } }))
    out, rc = run(S.quote(odd))
    assert.not_equal(0, rc, out)
    assert.truthy(out:find("transformer9000", 1, true), out)
    out, rc = run("--help")
    assert.equal(0, rc, out)
    assert.truthy(out:find("--max-body", 1, true), out)
    -- a speaker-normalised model: refused without the speaker's clips, saying how to give them
    local model, meta = assert(ser.train.load_checkpoint(ckpt))
    local spk = dir .. "/spk.safetensors"
    ser.train.save_checkpoint(spk, model, meta.classes, { seconds = meta.seconds, sr = meta.sr, normalize = "speaker" },
      1, { features = meta.features })
    out, rc = run(("%s --port 0"):format(S.quote(spk)))
    assert.not_equal(0, rc, out)
    assert.truthy(out:find("--speaker-clips", 1, true), out)
    out, rc = run(("%s --port 0 --speaker-clips %s"):format(S.quote(spk), S.quote(dir .. "/no-such-folder")))
    assert.not_equal(0, rc, out)
    assert.truthy(out:find("--speaker-clips " .. dir .. "/no-such-folder", 1, true), out)
    -- with them, the page's scorer is ser.stream's with the same clips
    local spk_model, spk_meta = assert(ser.train.load_checkpoint(spk))
    -- (copies, removed once the app is made: live sessions share its scorer, so they do not read
    -- the clips again)
    local copies = { dir .. "/spk_a.wav", dir .. "/spk_b.wav" }
    for i, p in ipairs { clip, long } do
      assert(ser.audio.save(copies[i], assert(ser.audio.load(p, { sr = 16000 })), 16000))
    end
    local app = ser.serve.app.new(spk_model, spk_meta, { speaker = copies })
    for _, p in ipairs(copies) do assert(os.remove(p)) end
    local wav = assert(ser.audio.load(clip, { sr = 16000 }))
    assert.same(ser.stream.scorer.new(spk_model, spk_meta, { clip, long })(wav), app.score(wav))
    local st = app:stream()
    local windows = st:push(wav)
    for _, w in ipairs(st:finish()) do windows[#windows + 1] = w end
    assert(#windows > 0 and windows[1].raw, "the live session scored no window")
  end)
end)

describe("ser.serve.json", function()
  local json = require("ser.serve.json")
  it("encodes what the API sends, keeping class order and escaping strings", function()
    assert.equal('{"a": 1, "b": [1, 2.5, null], "c": "q\\"\\n\\u0001"}',
      json.encode({ b = { 1, 2.5, 0 / 0 }, a = 1, c = 'q"\n\1' }))
    assert.equal('{"z": 0.5, "a": 0.25}', json.encode(json.object({ "z", "a" }, { a = 0.25, z = 0.5 })))
    assert.equal("[]", json.encode(json.array({})))
    assert.has_error(function() json.encode({ [1.5] = 1, x = 2 }) end)
  end)
end)
