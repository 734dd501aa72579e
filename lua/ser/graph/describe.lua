-- ser.graph.describe: a model's inference graph as plain data (docs/graph.md is the format's
-- authoritative description). ser.train.checkpoint stores it under the metadata key `graph` of
-- every checkpoint it writes; the C inference API (src/infer/) builds and runs it without a Lua
-- interpreter, and experiments/export.lua turns the same table into ONNX, so that the two
-- cannot drift from each other or from the Lua models.
--
--   describe(model, { classes = {...}, features = <ser.train.checkpoint_features>,
--                     inputs = <ser.train.checkpoint_inputs> }) -> table | nil, reason
--
-- Nodes name state_dict entries of the same checkpoint (no weights are copied). Dims are
-- 0-based, as in PyTorch and ONNX. Dropout is not emitted (inference only). A model this
-- module does not know (a custom nn.Sequential given to fit) gets nil and the reason, and its
-- checkpoint is written without a graph.
local M = {}

M.FORMAT, M.VERSION = "serlua-graph", 1

-- Builds the node list; fresh value names h1, h2, ...
local function builder()
  local b = { nodes = {}, n = 0, last = "input" }
  function b.add(node, inputs)
    b.n = b.n + 1
    node.inputs = inputs or { b.last }
    node.output = node.output or ("h" .. b.n)
    b.nodes[#b.nodes + 1] = node
    b.last = node.output
    return node.output
  end
  return b
end

local function list(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = v end
  return out
end

-- One layer of a Sequential (its state_dict prefix p, e.g. "features.0.") as nodes.
local function layer(b, m, p)
  local name = m.__name
  if name == "Conv2d" or name == "Conv1d" then
    b.add { op = name:lower(), weight = p .. "weight", bias = m.bias ~= nil and (p .. "bias") or nil,
            stride = list(m.stride), padding = list(m.padding), dilation = list(m.dilation), groups = 1 }
  elseif name == "BatchNorm2d" or name == "BatchNorm1d" then
    if not m.track_running_stats or not m.affine then
      return nil, ("%s at %s without running statistics or affine parameters"):format(name, p)
    end
    b.add { op = "batchnorm", weight = p .. "weight", bias = p .. "bias", running_mean = p .. "running_mean",
            running_var = p .. "running_var", eps = m.eps }
  elseif name == "ReLU" then
    b.add { op = "relu" }
  elseif name == "GELU" then
    if m.approximate ~= "none" then return nil, "GELU with approximate = " .. tostring(m.approximate) end
    b.add { op = "gelu" }
  elseif name == "MaxPool2d" or name == "MaxPool1d" or name == "AvgPool2d" or name == "AvgPool1d" then
    b.add { op = name:lower(), kernel = list(m.kernel_size), stride = list(m.stride), padding = list(m.padding) }
  elseif name == "Square" then
    b.add({ op = "mul" }, { b.last, b.last })
  elseif name == "Log" then
    b.add { op = "log", eps = m.eps }
  elseif name == "AdaptiveAvgPool2d" or name == "AdaptiveAvgPool1d" then
    b.add { op = name == "AdaptiveAvgPool2d" and "adaptive_avgpool2d" or "adaptive_avgpool1d",
            output_size = list(m.output_size) }
  elseif name == "Flatten" then
    if m.end_dim ~= -1 then return nil, "Flatten with end_dim " .. tostring(m.end_dim) end
    b.add { op = "flatten", start_dim = m.start_dim - 1 }
  elseif name == "Linear" then
    b.add { op = "linear", weight = p .. "weight", bias = m.bias ~= nil and (p .. "bias") or nil }
  elseif name == "LayerNorm" then
    if not m.elementwise_affine then return nil, "LayerNorm without affine parameters at " .. p end
    b.add { op = "layernorm", weight = p .. "weight", bias = p .. "bias", eps = m.eps }
  elseif name ~= "Dropout" then
    return nil, ("layer %s at %s has no graph op"):format(tostring(name), p)
  end
  return true
end

-- Layers first..last of a Sequential called `prefix` (all by default).
local function sequential(b, seq, prefix, first, last)
  for i = first or 1, last or seq:len() do
    local ok, err = layer(b, seq:get(i), ("%s.%d."):format(prefix, i - 1))
    if not ok then return nil, err end
  end
  return true
end

local function lstm(b, rnn, prefix)
  return b.add { op = "lstm", prefix = prefix, input_size = rnn.input_size, hidden = rnn.hidden_size,
                 layers = rnn.num_layers, bidirectional = rnn.bidirectional, bias = rnn.bias,
                 batch_first = rnn.batch_first }
end

local describe_model = {}

-- time = "stats" (ser.models' mean_std): mean and sqrt(population var + 1e-5) over dim
-- (0-based), concatenated along axis 1.
local function mean_std(b, dim)
  local x = b.last
  local mean = b.add({ op = "mean", dims = { dim }, keepdim = false }, { x })
  local std = b.add({ op = "std", dims = { dim }, keepdim = false, unbiased = false, eps = 1e-5 }, { x })
  return b.add({ op = "concat", axis = 1 }, { mean, std })
end

function describe_model.CNN2D(b, m)
  local ok, err = sequential(b, m.features, "features")
  if not ok then return nil, err end
  if m.time then   -- frequency pooled to the bands, time kept (0), then its statistics
    b.add { op = "adaptive_avgpool2d", output_size = { m.bands, 0 } }
    mean_std(b, 3)
  end
  return sequential(b, m.classifier, "classifier")
end

function describe_model.CNN1D(b, m)
  local ok, err = sequential(b, m.net, "net")
  if not ok then return nil, err end
  if m.time then mean_std(b, 2) end
  return sequential(b, m.fc, "fc")
end

-- CRNN's forward (ser.models): conv blocks (a BatchNorm after each convolution when the model
-- has one), frequency mean or flatten, BiLSTM, time mean or mean + std, Linear.
function describe_model.CRNN(b, m)
  for blk = 1, 3 do
    local ok, err = layer(b, m.cnn:get(3 * blk - 2), ("cnn.%d."):format(3 * blk - 3))
    if not ok then return nil, err end
    if m.cnn_bn then layer(b, m.cnn_bn:get(blk), ("cnn_bn.%d."):format(blk - 1)) end
    layer(b, m.cnn:get(3 * blk - 1), ("cnn.%d."):format(3 * blk - 2))
    layer(b, m.cnn:get(3 * blk), ("cnn.%d."):format(3 * blk - 1))
  end
  if m.freq then   -- [B,C,F,T] -> [B,T,C,F] -> [B,T,C*F]
    b.add { op = "transpose", perm = { 0, 3, 1, 2 } }
    b.add { op = "reshape", shape = { 0, 0, -1 } }
  else             -- [B,C,F,T] -> [B,C,T] -> [B,T,C]
    b.add { op = "mean", dims = { 2 }, keepdim = false }
    b.add { op = "transpose", perm = { 0, 2, 1 } }
  end
  lstm(b, m.rnn, "rnn")
  if m.time then
    mean_std(b, 1)
  else
    b.add { op = "mean", dims = { 1 }, keepdim = false }
  end
  return sequential(b, m.head, "head")
end

-- A head on a frozen Whisper encoder (ser.frozen_encoder): the encoder's pooled hidden states
-- [B, L+1, 2, d], standardised with the training clips' statistics, then the head.
function describe_model.WhisperClassifier(b, m)
  local L1, d, cfg = m.layers, m.d, m.config
  if m.encoder then   -- the runtime would run the pretrained blocks under a head trained on fine-tuned ones
    return nil, ("a whisper model with fine-tuned blocks (finetune_layers = %d): the graph runtime builds the "
      .. "pretrained encoder only"):format(m.finetune_layers)
  end
  b.add { op = "whisper_encoder", encoder = { path = m.encoder_path, sha256 = m.identity.sha256, layers = cfg.layers,
          d_model = cfg.d_model, n_mels = cfg.n_mels }, pooling = "mean_std" }
  local x = b.last
  local runs = m:layer_runs()
  if runs then   -- model.layers: the picked hidden states, a slice per run of neighbouring ones
    local all, parts = x, {}
    for i, run in ipairs(runs) do
      parts[i] = b.add({ op = "slice", axis = 1, start = run[1] - 1, length = run[2] }, { all })
    end
    x = #parts == 1 and parts[1] or b.add({ op = "concat", axis = 1 }, parts)
  end
  local mean = b.add({ op = "param", tensor = "feature_mean", shape = { 1, L1, 2, d } }, {})
  local std = b.add({ op = "param", tensor = "feature_std", shape = { 1, L1, 2, d } }, {})
  x = b.add({ op = "sub" }, { x, mean })
  x = b.add({ op = "div" }, { x, std })
  local head, kind = m.head, m.head.__name
  local function weighted()   -- the layers weighted by softmax(head.weights): [B, 2, d]
    local w = b.add({ op = "param", tensor = "head.weights", shape = { L1 } }, {})
    w = b.add { op = "softmax", axis = 0 }
    w = b.add { op = "reshape", shape = { 1, L1, 1, 1 } }
    b.add({ op = "mul" }, { x, w })
    return b.add { op = "sum", dims = { 1 }, keepdim = false }
  end
  if kind == "SuperbHead" then
    weighted()
    b.add { op = "slice", axis = 1, start = 0, length = 1 }   -- the means
    b.add { op = "reshape", shape = { 0, -1 } }
    return layer(b, head.linear, "head.linear.")
  elseif kind == "StatsHead" then
    weighted()
    b.add { op = "reshape", shape = { 0, -1 } }
  elseif kind == "ConcatHead" then
    b.add { op = "reshape", shape = { 0, -1 } }
  else
    return nil, "a whisper model with head " .. tostring(kind)
  end
  return sequential(b, head.mlp, "head.mlp")
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do out[k] = copy(v) end
  return out
end

-- The input side of a spectral or waveform model: how predict.lua prepares a clip.
local function standard_input(spec, inputs, trim_options)
  local seconds, trim = inputs.seconds, inputs.trim and trim_options(inputs.trim) or nil
  local f = copy(spec)
  local shape
  if f.kind == "waveform" then
    f.normalize = f.normalize == true
    shape = { "batch", 1, "samples" }
  elseif f.kind == "logmel" then
    shape = { "batch", 1, f.n_mels or 64, "time" }
  elseif f.kind == "mfcc" then
    shape = { "batch", 1, f.n_mfcc or 40, "time" }
  else
    return nil, ("features of kind %s"):format(tostring(f.kind))
  end
  return { sr = inputs.sr, seconds = seconds, window = "fixed",
           -- ser.data.trim_lookahead: trimming looks this far into the audio
           read_seconds = trim and math.max(3 * seconds, 10) or seconds,
           trim = trim, speaker_norm = inputs.normalize ~= nil and inputs.normalize ~= "clip",
           normalize = inputs.normalize or "clip", features = f, shape = shape }
end

-- The input side of a whisper-family model (ser.data.embedding_cache's clip).
local function whisper_input(m, trim_options)
  local s = m.settings
  local context = (s.context or 0) > 0 and s.context or nil   -- absent when 0: graphs before it read the same
  return { sr = s.sr, seconds = s.seconds, window = "at_most", read_seconds = 0, context = context,
           trim = s.trim and trim_options(s.trim) or nil, speaker_norm = m.speaker_norm == true,
           normalize = m.speaker_norm and "speaker" or "clip",
           features = { kind = "whisper_logmel", n_mels = m.config.n_mels },
           shape = { "batch", m.config.n_mels, context and math.floor(context * 100 + 0.5) or "time" } }
end

-- model: a ser.models / ser.frozen_encoder model; meta: { classes, features, inputs } (see the
-- header); o.trim_options: ser.data.trim_options (given by the caller so that this module
-- needs no data module). Returns the graph table, or nil and why the model cannot be described.
function M.describe(model, meta, o)
  local name = type(model) == "table" and model.__name
  local fn = describe_model[name]
  if not fn then return nil, ("a %s model has no graph description"):format(tostring(name)) end
  if type(meta) ~= "table" or type(meta.classes) ~= "table" then
    return nil, "describe needs meta.classes (the class list)"
  end
  local trim_options = (o and o.trim_options) or function(t) return t end
  local input, err
  if name == "WhisperClassifier" then
    -- the C runtime and the ONNX exporter build Whisper encoders only; a head on a wav2vec 2.0 /
    -- HuBERT / WavLM encoder is saved without a graph (predict.lua still runs it)
    local family = model.config and model.config.family or "whisper"
    if family ~= "whisper" then
      return nil, ("a head on a %s encoder (the graph runtime builds Whisper encoders only)"):format(family)
    end
    input = whisper_input(model, trim_options)
  else
    input, err = standard_input(meta.features or {}, meta.inputs or {}, trim_options)
    if not input then return nil, err end
  end
  local b = builder()
  local ok
  ok, err = fn(b, model)
  if not ok then return nil, err end
  return { format = M.FORMAT, version = M.VERSION, model = name, classes = copy(meta.classes), input = input,
           nodes = b.nodes, output = b.last }
end

return M
