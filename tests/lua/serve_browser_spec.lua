-- serve.lua's page in a real browser: headless Chromium (Debian's chromium + chromedriver,
-- `scripts/install-deps.sh --browser`) driven over WebDriver by helpers/serve_browser.mjs.
-- The page uploads a file and shows /predict's label for it; then it records from a fake
-- microphone fed by a WAV (--use-file-for-fake-audio-capture) through its AudioWorklet
-- and live session: the samples it sent are the clip's (loudness, length), and its
-- timeline shows, window by window, the labels the checkpoint gives those samples.
-- SER_SERVE_SCREENSHOT=docs/img/serve.png also saves a picture of the page.
-- Skipped, with the reason, when chromium, chromedriver or node is missing.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local S = dofile(here .. "helpers/serve_server.lua")
local serlua = paths.serlua
local san = dofile(here .. "helpers/sanitized.lua")

-- The server's C side (libmicrohttpd, the sessions) is checked sanitized by serve_spec.lua;
-- here the work is Chromium's and node's.
if san.on then
  describe("serve.lua in a browser", function()
    pending(san.why("the browser test"))
  end)
  return
end

local missing = {}
if not paths.have_serlua then missing[#missing + 1] = serlua end
for _, tool in ipairs { "chromium", "chromedriver", "node", "curl" } do
  if os.execute("command -v " .. tool .. " >/dev/null 2>&1") ~= true then missing[#missing + 1] = tool end
end
if #missing > 0 then
  describe("serve.lua in a browser", function()
    pending("needs " .. table.concat(missing, ", ") .. " (scripts/install-deps.sh --browser installs them)")
  end)
  return
end

local function run_browser(url, file, mic, seconds, sent, screenshot)
  local p = io.popen(("node %s %s %s %s %d %s %s 2>&1"):format(S.quote(here .. "helpers/serve_browser.mjs"), S.quote(url),
    S.quote(file), S.quote(mic), seconds, S.quote(sent), screenshot and S.quote(screenshot) or ""))
  local out = p:read("a")
  p:close()
  local r = {}
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do r[k] = v end
  return r, out
end

local function split(s)
  local t = {}
  for x in (s or ""):gmatch("[^,]+") do t[#t + 1] = x end
  return t
end

-- window labels ("-" when silent) from answers of /stream
local function window_labels(body, out)
  for w in body:match('"windows": (%b[])'):gmatch("%b{}") do
    out[#out + 1] = w:match('"label": "(%w+)"') or "-"
  end
end

describe("serve.lua in a browser", function()
  local dir, srv
  teardown(function()
    S.stop(srv)
    tmp.cleanup()
  end)

  it("shows /predict's label for a file, and for the microphone the checkpoint's labels of what it sent", function()
    dir = tmp.make("serve-browser")
    local ckpt = dir .. "/cnn2d.safetensors"
    S.checkpoint(ser, ckpt)
    -- the microphone's sound: three RAVDESS clips with pauses when ../shared has them, else a
    -- made-up voice with a pause; the uploaded file: the first clip, or the made-up voice
    local mic, file = dir .. "/mic.wav", nil
    local ravdess = "../shared/data/ravdess16k/Actor_18/"
    local clips = { "03-01-05-02-01-01-18.flac", "03-01-04-02-01-01-18.flac", "03-01-03-02-02-01-18.flac" }
    local rf = io.open(ravdess .. clips[1], "rb")
    if rf then
      rf:close()
      local parts = {}
      for _, c in ipairs(clips) do
        parts[#parts + 1] = assert(ser.audio.load(ravdess .. c, { sr = 16000 }))
        parts[#parts + 1] = ser.tensor.zeros(8000)
      end
      assert(ser.audio.save(mic, ser.tensor.cat(parts, 1), 16000))
      file = ravdess .. clips[1]
    else
      print("serve_browser_spec: ../shared/data/ravdess16k is absent; the microphone plays a made-up voice")
      assert(ser.audio.save(mic, S.voice(ser, 6.0, 140, { { 2.5, 3.5 } }), 16000))
      file = mic
    end
    local err
    srv, err = S.start(serlua, ckpt, { "--quiet" }, dir)
    assert(srv, err)

    local _, body = S.request(srv.url .. "predict", { method = "POST", file = file, type = "audio/flac" })
    local file_label = assert(body:match('"label": "(%w+)"'), body)

    local sent = dir .. "/sent.f32"
    local r, out = run_browser(srv.url, file, mic, 6, sent, os.getenv("SER_SERVE_SCREENSHOT"))
    assert(r.file_label, "the browser run failed:\n" .. out)
    -- the file: exactly /predict's label
    assert.equal(file_label, r.file_label)
    assert.equal("live", r.live_source, out)

    -- the microphone: what the page sent is the clip (its loudness, at least 4 s of it) ...
    local x = ser.tensor.fromfile(sent, { tonumber(r.live_sent_bytes) // 4 })
    local n = x:shape()[1]
    assert(n >= 4 * 16000, ("the page sent %d samples in 6 s of recording"):format(n))
    local function rms(t) return t:pow(2):mean():item() ^ 0.5 end
    local ref = assert(ser.audio.load(mic, { sr = 16000 }))
    local ratio = rms(x) / rms(ref:narrow(1, 1, math.min(n, ref:shape()[1])))
    assert(ratio > 0.5 and ratio < 2, ("the page sent audio at %.2f times the clip's loudness"):format(ratio))
    -- ... and the page shows, window by window, the labels the checkpoint gives those samples
    local _, opened = S.request(srv.url .. "stream", { method = "POST" })
    local id = assert(opened:match('"id": "(%w+)"'), opened)
    local want = {}
    for a = 1, n, 16000 do
      local f = dir .. "/chunk.f32"
      x:narrow(1, a, math.min(16000, n - a + 1)):contiguous():tofile(f)
      local st, b = S.request(srv.url .. "stream/" .. id, { method = "POST", file = f, type = "application/octet-stream" })
      assert.equal(200, st, b)
      window_labels(b, want)
    end
    local _, last = S.request(srv.url .. "stream/" .. id, { method = "DELETE" })
    window_labels(last, want)
    assert.are.equal(table.concat(want, ","), r.live_windows, out)
    local last_voiced
    for _, l in ipairs(want) do if l ~= "-" then last_voiced = l end end
    assert.equal(last_voiced, r.live_label)
    assert.truthy(#split(r.live_segments) >= 1, out)
    assert.truthy(S.alive(srv))
  end)
end)
