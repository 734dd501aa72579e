-- ONNX export of a trained checkpoint (docs/onnx.md):
--   serlua experiments/export.lua results/crnn.safetensors crnn.onnx
-- Writes an ONNX model (opset 17; dynamic batch and time axes) whose input is the
-- checkpoint's features ("input": log-mel [batch, 1, n_mels, time] or waveform [batch, 1,
-- samples]) and whose output is the logits ("logits": [batch, classes]); metadata_props
-- carry the class names and how to compute the input. Built from the checkpoint's graph
-- description by the C core, the same description the C inference API runs.
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("export.lua", "Export a checkpoint to ONNX (opset " .. ser.onnx.opset .. ").")
parser:argument("checkpoint", "A .safetensors checkpoint written by compare.lua / ser.train.fit (it carries a graph " ..
                "description); with --attach also an older one or a PyTorch .pt of the notebook's models.")
parser:argument("output", "The ONNX file to write (written atomically: a temporary file beside it, then renamed).")
parser:flag("--attach", "Describe the model first when the checkpoint has no graph description (ser.graph.attach).")
parser:flag("--quiet", "Print nothing on success.")
local args = parser:parse(arg)

local info, err = ser.onnx.export(args.checkpoint, args.output, { attach = args.attach })
if not info then
  io.stderr:write("export.lua: ", tostring(err), "\n")
  os.exit(1)
end
if not args.quiet then
  local input = info.input or {}
  local features = input.features or {}
  local shape = {}
  for i, d in ipairs(input.shape or {}) do shape[i] = tostring(d) end
  print(("wrote %s: %s, %d bytes, opset %d, in %.2f s"):format(info.path, tostring(info.model), info.bytes or 0,
    ser.onnx.opset, info.seconds))
  print(("  input  'input'  [%s]  %s features at %s Hz%s"):format(table.concat(shape, ","), tostring(features.kind),
    tostring(features.sr or input.sr), input.seconds and (", %g s clips"):format(input.seconds) or ""))
  if (tonumber(input.context) or 0) > 0 then
    print("  input  'frames' [batch]  int64: each clip's own log-mel frames at the start of its padded window")
  end
  local whisper_speaker = input.speaker_norm == true and features.kind == "whisper_logmel"
  if whisper_speaker then
    print("  input  'speaker_shift', 'speaker_scale'  the speaker's statistics of output 'pooled' (docs/onnx.md)")
  end
  print(("  output 'logits' [batch,%d]  classes %s"):format(#(info.classes or {}), table.concat(info.classes or {}, ",")))
  if whisper_speaker then print("  output 'pooled' [batch,layers+1,2,d]  the encoder's pooled states, for those statistics") end
end
