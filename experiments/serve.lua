-- A local web page for a trained checkpoint: drop an audio file or speak into the
-- microphone and see the emotion over time, plus a JSON API for programs.
--   serlua experiments/serve.lua results/crnn.safetensors [--port 8080] [--host 127.0.0.1]
--   curl -H 'Content-Type: audio/wav' --data-binary @clip.wav http://127.0.0.1:8080/predict
-- The endpoints and the live view's protocol: docs/serve.md.
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("serve.lua", "Serve a web page and a JSON API that predict emotions with a checkpoint.")
parser:argument("checkpoint", "A .safetensors checkpoint from compare.lua, or a notebook .pt state_dict.")
parser:option("--port", "Port to listen on (0: any free port, printed at start).", "8080"):convert(math.tointeger)
parser:option("--host", "Address to listen on. The default answers this machine only; 0.0.0.0 or :: would " ..
  "answer the network, with no authentication.", "127.0.0.1")
parser:option("--classes", "Class names in the model's output order, comma-separated, for a checkpoint " ..
  "without a class list (a PyTorch .pt).")
parser:option("--hop", "Seconds between the starts of the timeline's windows.", "0.5"):convert(tonumber)
parser:option("--window", "Window length in seconds (default: 3, or the model's clip length when shorter).")
  :convert(tonumber)
parser:option("--smooth", "Windows averaged for the live label.", "3"):convert(math.tointeger)
parser:flag("--no-vad", "Classify every window, also silent ones (default: windows with under 0.25 s above -45 dBFS " ..
  "are skipped, as stream.lua does).")
parser:option("--max-body", "Largest request body in MiB.", "32"):convert(tonumber)
parser:option("--timeout", "Seconds a connection may stay idle (slow clients are closed).", "30"):convert(tonumber)
parser:flag("--quiet", "No line per request on stderr.")
parser:option("--speaker-clips", "For speaker-normalised models: clips of the speaker the page will hear (an audio " ..
              "file or a folder of them; repeatable). Each window is normalised with their statistics and its own."):count("*")
local args = parser:parse(arg)

local model, meta = ser.cli.load_checkpoint(parser, args.checkpoint, args.classes)

local app_ok, app = pcall(ser.serve.app.new, model, meta, { hop = args.hop, window = args.window,
  smooth = args.smooth, vad = not args.no_vad, name = args.checkpoint:match("[^/]+$"),
  speaker = ser.cli.speaker_clips(parser, args.speaker_clips) })
if not app_ok then parser:error(("%s: %s"):format(args.checkpoint, tostring(app))) end

local run_ok, err = pcall(ser.serve.run, app, {
  host = args.host, port = args.port, max_body = math.floor(args.max_body * 1048576), timeout = args.timeout,
  on_listen = function(url)
    io.stdout:write(("serving %s (%s) on %s  (Ctrl-C stops)\n"):format(args.checkpoint, table.concat(meta.classes, ","), url))
    io.stdout:flush()
  end,
  log = not args.quiet and function(line) io.stderr:write(line, "\n") end or nil,
})
if not run_ok then
  io.stderr:write("serve.lua: ", tostring(err), "\n")
  os.exit(1)
end
