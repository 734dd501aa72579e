-- State_dict names from elsewhere, in one place (used by ser.models.load):
--   * migrate: checkpoints of serlua before the notebook's names (CRNN features.* / fc.*,
--     CNN1D features.* / classifier.*) renamed to today's (cnn.* / cnn_bn.* / head.0.*,
--     net.* / fc.*);
--   * describe: the architecture of a bare state_dict (a PyTorch .pt, a safetensors file
--     written without serlua's metadata) read from its names and shapes, for the notebook's
--     models and serlua's options that add parameters or change shapes.
local M = {}

-- The notebook's class order when a checkpoint has 8 outputs and no class list:
-- RAVDESS's emotion codes 01..08 (the order ser.data gives RAVDESS).
M.RAVDESS = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }

local function rename(sd, fn)
  local out, renamed = {}, 0
  for k, v in pairs(sd) do
    local new = fn(k) or k
    if new ~= k then renamed = renamed + 1 end
    if out[new] ~= nil then
      error(("checkpoint has both '%s' and a tensor that was renamed to it"):format(new), 0)
    end
    out[new] = v
  end
  return out, renamed
end

-- serlua's old CRNN: features = [Conv, (BN,) ReLU, Pool] x 3 (a block of 4 with batchnorm,
-- else 3), fc = the Linear.
local function old_crnn(sd)
  local block = sd["features.1.running_mean"] ~= nil and 4 or 3
  return function(k)
    local i, rest = k:match("^features%.(%d+)%.(.+)$")
    if i then
      i = tonumber(i)
      local b, pos = i // block, i % block
      if pos == 0 then return ("cnn.%d.%s"):format(3 * b, rest) end
      if block == 4 and pos == 1 then return ("cnn_bn.%d.%s"):format(b, rest) end
      return nil
    end
    rest = k:match("^fc%.(.+)$")
    return rest and "head.0." .. rest or nil
  end
end

-- Renames an old serlua layout of model `name` (lower case) to today's; other state_dicts
-- are returned as they are. Returns sd, number of names changed.
function M.migrate(name, sd)
  if name == "crnn" and sd["features.0.weight"] ~= nil and sd["cnn.0.weight"] == nil then
    return rename(sd, old_crnn(sd))
  end
  if name == "cnn1d" and sd["features.0.weight"] ~= nil and sd["net.0.weight"] == nil then
    return rename(sd, function(k)
      local rest = k:match("^features%.(.+)$")
      if rest then return "net." .. rest end
      rest = k:match("^classifier%.(.+)$")
      return rest and "fc." .. rest or nil
    end)
  end
  return sd, 0
end

local function shape(sd, k)
  local T = require "ser.core.tensor"
  local t = sd[k]
  return T.is_tensor(t) and t:shape() or nil
end

-- The model a bare state_dict holds: { model = "crnn", classes = N, hidden = ..., ... } (the
-- options ser.models.create takes, in checkpoint-metadata form), or nil, message.
function M.describe(sd)
  local function has(k) return sd[k] ~= nil end
  local function last(k, dim) local s = shape(sd, k) return s and s[dim] end
  if has("rnn.weight_ih_l0") then
    local sd2 = M.migrate("crnn", sd)
    local head, hh, ih = shape(sd2, "head.0.weight"), shape(sd2, "rnn.weight_hh_l0"), shape(sd2, "rnn.weight_ih_l0")
    if not (head and hh and ih and #head == 2 and #hh == 2 and #ih == 2) then
      return nil, "a CRNN state_dict (rnn.*) needs head.0.weight (or fc.weight), rnn.weight_hh_l0 and rnn.weight_ih_l0 matrices"
    end
    local hidden, steps = hh[2], ih[2]
    local d = { model = "crnn", classes = head[1], hidden = hidden,
                batchnorm = sd2["cnn_bn.0.weight"] ~= nil or nil, time = head[2] == 4 * hidden and "stats" or nil }
    if steps ~= 128 then
      if steps % 128 ~= 0 then
        return nil, ("rnn.weight_ih_l0 reads %d values per step; a CRNN reads 128 (the notebook's) or 128 x mels/8"):format(steps)
      end
      d.freq, d.mels = "flatten", steps // 128 * 8
    end
    return d
  end
  local w0 = shape(sd, "net.0.weight") or shape(sd, "features.0.weight")
  if has("net.0.weight") or (w0 and #w0 == 3 and has("classifier.2.weight")) then
    local out = shape(sd, "fc.2.weight") or shape(sd, "classifier.2.weight")
    if not out then return nil, "a CNN1D state_dict (net.*) needs fc.2.weight" end
    -- the filterbank front end (ser.models.CNN1D) has its BatchNorm at net.4 and 64 filters first
    local filterbank = w0 and #w0 == 3 and w0[1] == 64 and has("net.4.running_mean")
    -- context blocks (ser.models.CNN1D) put a convolution at net.13, net.17, ...
    local blocks = 0
    while not filterbank and has(("net.%d.weight"):format(13 + 4 * blocks)) do blocks = blocks + 1 end
    return { model = "cnn1d", classes = out[1], time = out[2] == 512 and "stats" or nil,
             context_blocks = blocks > 0 and blocks or nil, frontend = filterbank and "filterbank" or nil }
  end
  if w0 and #w0 == 4 and has("classifier.5.weight") then
    -- the classifier reads 256 x bands values, twice that with statistics pooling over time
    local hidden_in = last("classifier.2.weight", 2)
    local stats = hidden_in == 512 or hidden_in == 4096
    return { model = "cnn2d", classes = shape(sd, "classifier.5.weight")[1],
             freq = hidden_in and hidden_in > 512 and "flatten" or nil, time = stats and "stats" or nil }
  end
  local some = {}
  for k in pairs(sd) do some[#some + 1] = k end
  table.sort(some)
  return nil, ("its tensor names are none of the seed models' (CNN2D features.*/classifier.*, CRNN cnn.*/rnn.*/head.0.*, "
    .. "CNN1D net.*/fc.2.*); it has %d tensors: %s%s"):format(#some, table.concat(some, ", ", 1, math.min(#some, 6)),
    #some > 6 and ", ..." or "")
end

-- Fills the metadata of a checkpoint that has none (meta.model absent) from its state_dict:
-- architecture (describe), class names (classes given, else RAVDESS's eight, else class1..N;
-- meta.classes_assumed is then true) and the notebook's features (its log-mel; CNN1D the raw
-- waveform). Returns meta or nil, message.
function M.complete(sd, meta, classes)
  local d, err = M.describe(sd)
  if not d then return nil, err end
  local n = d.classes
  d.classes = nil
  for k, v in pairs(d) do meta[k] = v end
  if classes ~= nil then
    if type(classes) ~= "table" or #classes ~= n then
      return nil, ("the model has %d outputs, but %s class names were given"):format(n,
        type(classes) == "table" and tostring(#classes) or type(classes))
    end
    meta.classes = classes
  else
    meta.classes_assumed = true
    if n == #M.RAVDESS then
      meta.classes = M.RAVDESS
    else
      meta.classes = {}
      for c = 1, n do meta.classes[c] = "class" .. c end
    end
  end
  meta.features = meta.features or (d.model == "cnn1d" and { kind = "waveform" } or { kind = "logmel" })
  return meta
end

return M
