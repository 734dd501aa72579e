-- A running experiments/serve.lua for specs, and a small HTTP client (curl) to talk to it.
--   local S = dofile(here .. "helpers/serve_server.lua")
--   local srv = S.start(serlua, ckpt, { "--max-body", "1" })   -- an ephemeral port on 127.0.0.1
--   local status, body, headers = S.request(srv.url .. "predict", { method = "POST", file = wav, type = "audio/wav" })
--   S.stop(srv)
-- Also a tiny model checkpoint and test audio (helpers that make files in a folder).
local M = {}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.quote = quote

-- Starts the server on port 0 and reads the URL it prints. extra: more flags.
function M.start(serlua, ckpt, extra, dir)
  local err = dir .. "/server.err"
  local cmd = ("echo $$; exec %s experiments/serve.lua %s --port 0 %s 2>%s"):format(serlua, quote(ckpt),
    table.concat(extra or {}, " "), quote(err))
  local p = assert(io.popen(cmd, "r"))
  local pid = p:read("l")
  local line = p:read("l")
  local url = line and line:match("on (http://%S+/)")
  if not url then
    p:close()
    local f = io.open(err)
    local msg = f and f:read("a") or ""
    if f then f:close() end
    return nil, ("serve.lua did not start: %s %s"):format(tostring(line), msg)
  end
  return { pid = pid, pipe = p, url = url, port = tonumber(url:match(":(%d+)/$")), err = err }
end

function M.alive(srv) return os.execute("kill -0 " .. srv.pid .. " 2>/dev/null") == true end

function M.stop(srv)
  if not srv then return end
  os.execute("kill " .. srv.pid .. " 2>/dev/null")
  srv.pipe:close()
end

-- o: method, file (body from a file), data (body string, written to a temp file), type
-- (Content-Type), headers (list of "Name: value"), max_time. -> status, body, raw headers
function M.request(url, o)
  o = o or {}
  local out, hdr = os.tmpname(), os.tmpname()
  local body_file = o.file
  if o.data then
    body_file = os.tmpname()
    local f = assert(io.open(body_file, "wb"))
    f:write(o.data)
    f:close()
  end
  local parts = { "curl -s --noproxy '*' -o", quote(out), "-D", quote(hdr), "-w '%{http_code}'",
                  "--max-time", tostring(o.max_time or 30) }
  if o.method then parts[#parts + 1] = "-X " .. o.method end
  if o.type then parts[#parts + 1] = "-H " .. quote("Content-Type: " .. o.type) end
  for _, h in ipairs(o.headers or {}) do parts[#parts + 1] = "-H " .. quote(h) end
  if body_file then parts[#parts + 1] = "--data-binary @" .. quote(body_file) end
  parts[#parts + 1] = quote(url)
  local p = assert(io.popen(table.concat(parts, " ")))
  local code = p:read("a")
  p:close()
  local function slurp(path)
    local f = io.open(path, "rb")
    local s = f and f:read("a") or ""
    if f then f:close() end
    os.remove(path)
    return s
  end
  if o.data then os.remove(body_file) end
  return tonumber(code), slurp(out), slurp(hdr)
end

-- A random-weight CNN2D checkpoint (seeded, so its predictions are fixed) with the
-- RAVDESS class names, on 2 s clips at 16 kHz: small enough for specs, and a real model
-- through the same loading path as a trained one.
local SCALE = tonumber(os.getenv("SER_SERVE_SCALE") or 300)
function M.checkpoint(ser, path)
  ser.manual_seed(7)
  local classes = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }
  local model = ser.models.create("cnn2d", { classes = #classes })
  -- At initialisation every sound gets one label: the output layer's input points the
  -- same way for all of them. Centring it on the mean logits of three test voices (a bias
  -- of minus their mean) and scaling it makes the label depend on the sound, as a trained
  -- model's does, so a test can tell one sound's label from another's.
  local sd = model:state_dict()
  local w, b = sd["classifier.5.weight"], sd["classifier.5.bias"]
  local features = require("ser.train.checkpoint").features(model, { model = "cnn2d", sr = 16000, seconds = 2.0 })
  model:eval()
  ser.no_grad(function()
    b:zero_()
    local mean = ser.tensor.zeros(1, #classes)
    for _, f0 in ipairs { 90, 180, 360 } do
      local x = require("ser.train.checkpoint").transform(features, M.voice(ser, 2.0, f0):view(1, -1))
      mean = mean:add(model(x):div(3))
    end
    w:copy_(w:mul(SCALE))
    b:copy_(mean:view(-1):mul(-SCALE))
  end)
  require("ser.train.checkpoint").save(path, model, classes, { seconds = 2.0, sr = 16000, name = "cnn2d" })
  return classes
end

-- seconds of a speech-like test sound at 16 kHz: a harmonic voice whose pitch and loudness
-- move (syllables), seeded noise underneath; silence = { {from, to}, ... } in seconds.
function M.voice(ser, seconds, f0, silence)
  local sr = 16000
  local n = math.floor(seconds * sr)
  local x = {}
  ser.manual_seed(3)
  local noise = ser.tensor.randn(n):totable()
  for i = 1, n do
    local t = (i - 1) / sr
    -- vibrato and loudness repeat every 0.5 s, so any 2 s window holds the same four periods
    local f = f0 * (1 + 0.08 * math.sin(2 * math.pi * 2 * t))
    local env = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t) ^ 2
    local v = 0
    for h = 1, 6 do v = v + math.sin(2 * math.pi * f * h * t) / h end
    x[i] = 0.15 * env * v + 0.01 * noise[i]
    for _, s in ipairs(silence or {}) do
      if t >= s[1] and t < s[2] then x[i] = 0 end
    end
  end
  return ser.tensor.new(x)
end

-- probabilities by class name from a JSON object text '"name": number, ...'
function M.probs(text, classes)
  local p = {}
  for _, c in ipairs(classes) do p[c] = tonumber(text:match('"' .. c .. '": ([-%d%.e]+)')) end
  return p
end

return M
