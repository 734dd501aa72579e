-- Checkpoints of ser.train.fit: written with the model's settings, the training data's
-- features and speakers and (from compare.lua) the recipe that made them (meta.recipe); read
-- back as a model plus the inputs it was trained on, for scoring (predict.lua, embed.lua,
-- ensemble.lua, distillation's teachers). A checkpoint with a recipe is rebuilt from the
-- recipe alone; older ones (and fit's without a recipe) from their flat fields.
local ckpt = require "ser.core.checkpoint"
local models = require "ser.models"
local loader = require "ser.data.loader"
local recipe = require "ser.recipe"
local batches = require "ser.train.batches"
local describe = require "ser.graph.describe"

local M = {}

-- Writes the model's weights with the class list and training settings (ser.save writes
-- atomically). data (optional): what fit knows of the training data -- features (the
-- training loader's feature spec as data; nil for tensor datasets, which then score with the
-- default features of model.input), train_speakers (so that distillation can refuse a
-- teacher trained on its held-out speakers) and distill (ser.train.distill.record).
-- o.meta (fit's option) adds entries, e.g. { recipe = ser.recipe.to_meta(r) }.
function M.save(path, model, classes, o, epoch, data)
  data = data or {}
  local features = data.features
  local meta = { classes = classes, model = o.name or model.__name:lower(), epoch = epoch,
                 input = model.input, hidden = model.hidden, batchnorm = model.batchnorm, dropout = model.dropout,
                 feature_dropout = model.feature_dropout,
                 freq = model.freq, time = model.time, mels = model.mels, context_blocks = model.context_blocks,
                 frontend = model.frontend,
                 seconds = o.seconds, sr = o.sr, features = type(features) == "table" and features or nil,
                 trim = o.trim and loader.trim_options(o.trim, 1) or nil,
                 normalize = batches.normalize_for(model.input, o.normalize),
                 train_speakers = data.train_speakers, distill = data.distill }
  for k, v in pairs(o.meta or {}) do meta[k] = v end
  -- what a model records of itself beyond its weights (a frozen encoder's folder and identity)
  if type(model.checkpoint_meta) == "function" then
    for k, v in pairs(model:checkpoint_meta()) do meta[k] = v end
  end
  -- the architecture as data, for the C inference API and ONNX export (docs/graph.md); a model
  -- ser.graph cannot describe is saved without one
  meta.graph = M.graph(model, meta)
  local ok, err = ckpt.save(path, model:state_dict(), meta)
  if ok == nil and err then error("ser.train: could not write the checkpoint: " .. tostring(err), 0) end
end

-- The graph description (ser.graph, docs/graph.md) of a model with a checkpoint's metadata,
-- or nil and why there is none (a model ser.graph does not know, features from a Lua function).
function M.graph(model, meta)
  local ok, features = true, nil
  -- a head on a frozen encoder describes its own clip preparation (model.settings)
  if type(model.features) ~= "function" then ok, features = pcall(M.features, model, meta) end
  if not ok then return nil, features end
  return describe.describe(model, { classes = meta.classes, features = features, inputs = M.inputs(model, meta) },
    { trim_options = function(t) return loader.trim_options(t, 1) end })
end

-- The recipe of a checkpoint (meta.recipe, or mapped from the flat fields of older ones).
function M.recipe(meta, where)
  return recipe.from_meta(meta, where)
end

-- The features a checkpoint's model was trained on: the recipe's, else meta.features
-- (n_mels, n_fft, ... as given), else (older checkpoints, models trained on in-memory
-- tensors) the default features of model.input. A model trained on a Lua function's
-- features is refused. Spectral features are computed at the checkpoint's rate (meta.sr).
function M.features(model, meta)
  local f = meta and meta.features
  if meta and type(meta.recipe) == "table" then f = recipe.feature_spec(M.recipe(meta)) end
  if f == nil then f = batches.feature_spec(model.input) end
  if type(f) ~= "table" or type(f.kind) ~= "string" then
    error(("the checkpoint's metadata has features = %s; expected a table such as {kind = \"logmel\", n_mels = 64}")
      :format(tostring(f)), 0)
  end
  if f.kind == "function" then
    error("the model was trained on features from a Lua function (fit{features = fn}), which a checkpoint cannot " ..
      "record; score it with ser.train.evaluate and a loader given the same function", 0)
  end
  local out = {}
  for k, v in pairs(f) do out[k] = v end
  if out.kind ~= "waveform" and out.sr == nil then out.sr = tonumber(meta and meta.sr) end
  return out
end

-- A checkpoint to score: the model (built from the recipe, or ser.models.load for older
-- checkpoints and state_dicts without metadata, e.g. the notebook's .pt files; o: its options,
-- such as classes) and the features it was trained on. Returns model, meta, features or nil, message.
function M.load(path, o)
  local model, meta
  if type(path) ~= "string" then return nil, ("expected a checkpoint path, got %s"):format(type(path)) end
  local sd, m = ckpt.load(path)
  if sd and type(m) == "table" and type(m.recipe) == "table" then
    local ok, r = pcall(M.recipe, m, path)
    if not ok then return nil, r end
    if type(m.classes) ~= "table" or #m.classes < 2 then
      return nil, ("%s: metadata has no class list (classes = %s)"):format(path, tostring(m.classes))
    end
    local built, err = pcall(recipe.build_model, r, #m.classes)
    if not built then return nil, ("%s: the model cannot be built from its recipe: %s"):format(path, tostring(err)) end
    model = err
    ok, err = pcall(model.load_state_dict, model, sd)
    if not ok then return nil, ("%s: %s"):format(path, tostring(err)) end
    if type(model.check_checkpoint) == "function" then   -- e.g. the encoder it was trained on, unchanged
      ok, err = pcall(model.check_checkpoint, model, m, path)
      if not ok then return nil, tostring(err) end
    end
    model:eval()
    meta = m
  else
    model, meta = models.load(path, o)
    if not model then return nil, meta end
  end
  local ok, features = pcall(M.features, model, meta)
  if not ok then return nil, ("%s: %s"):format(path, features) end
  return model, meta, features
end

-- The same features for a [B, samples] batch outside a loader (predict.lua): the loader's
-- own transform for a feature spec (M.features), so the two cannot drift.
function M.transform(spec, wav)
  return (loader.make_transform(spec))(wav)
end

-- The window, rate, trimming and normalisation a checkpoint's inputs were prepared with.
function M.inputs(model, meta)
  return { seconds = tonumber(meta.seconds) or 4.0, sr = tonumber(meta.sr) or 16000,
           trim = type(meta.trim) == "table" and meta.trim or nil, normalize = batches.normalize_for(model.input, meta.normalize) }
end

-- A loader over a corpus part that prepares a checkpoint's inputs the way its training did
-- (features, clip length, rate, silence trimming, normalisation), for scoring or embedding.
function M.loader(part, model, meta)
  -- a model on a frozen encoder scores the clips' (cached) encoder features
  if type(model.dataset) == "function" then
    local ds = model:dataset(part)
    if not ds then error("the corpus part to score is empty", 0) end
    return batches.dataset_loader(ds, 16, false, "the corpus part")
  end
  local i = M.inputs(model, meta)
  return loader.loader(part, { batch = 16, features = M.features(model, meta), seconds = i.seconds, sr = i.sr,
    trim = i.trim, normalize = i.normalize })
end

return M
