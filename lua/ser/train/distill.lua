-- Knowledge distillation (Hinton, Vinyals and Dean 2015) for ser.train.fit{distill = ...}:
-- the student learns from the labels and from the averaged, temperature-softened class
-- probabilities of trained teacher models,
--   loss = (1 - alpha) * CE(student, labels) + alpha * T^2 * H(softmax(teachers / T), softmax(student / T))
-- (H: cross-entropy against the soft targets; T^2 keeps that term's gradients at the same
-- scale whatever T). Each teacher sees every training clip once, unaugmented, the way it was
-- trained (its checkpoint's features, window and normalisation), before the first epoch; the
-- student sees the clip augmented every epoch against the same soft target.
-- With consistent = true the teachers instead label each training batch as the student sees
-- it, augmented (and mixed, with mixup), on the fly: "consistent teaching" (Beyer et al. 2022,
-- "Knowledge distillation: A good teacher is patient and consistent"). It costs one teacher
-- forward pass per batch and teacher, and needs teachers that read the student's inputs.
--
-- Measured on RAVDESS (docs/train.md): six CRNN teachers distilled into one CRNN gave a
-- single model as accurate as their ensemble.
local base = require "ser.core.base"
local options = require "ser.options"
local tensor = require "ser.tensor"
local nn = require "ser.nn"
local dataloader = require "ser.data.loader"
local batches = require "ser.train.batches"
local evaluate = require "ser.train.evaluate"
local checkpoint = require "ser.train.checkpoint"

local M = {}

M.defaults = { alpha = 0.5, temperature = 2, consistent = false }

local function fail(msg) error("ser.train.fit: distill: " .. msg, 0) end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- The training speakers a checkpoint records (meta.train_speakers), as a set; nil when absent.
local function speaker_set(list)
  if type(list) ~= "table" then return nil end
  local set = {}
  for _, s in ipairs(list) do set[tostring(s)] = true end
  return set
end

-- opts.distill -> { teachers = { {model =, meta =, name =}, ... }, alpha =, temperature = }.
-- A teacher is a checkpoint path (loaded with its recorded features) or an nn module
-- (used on the student's inputs as they are). classes: the training class names.
-- cache (optional): the embedding cache folder of teachers on a frozen encoder.
function M.check(d, classes)
  if type(d) ~= "table" then
    fail(("expected a table { teachers = {...}, alpha =, temperature =, consistent = }, got %s"):format(type(d)))
  end
  local ok, err = pcall(options.check, d, { "teachers", "alpha", "temperature", "consistent", "cache" }, "distill")
  if not ok then fail((err:gsub("^distill: ", ""))) end
  local consistent = d.consistent
  if consistent == nil then consistent = M.defaults.consistent end   -- (an `and/or` would lose false)
  if type(consistent) ~= "boolean" then
    fail(("consistent must be true or false, got %s"):format(tostring(consistent)))
  end
  local alpha = d.alpha == nil and M.defaults.alpha or d.alpha
  local T = d.temperature == nil and M.defaults.temperature or d.temperature
  if type(alpha) ~= "number" or alpha < 0 or alpha > 1 then
    fail(("alpha must be a number in [0, 1] (the soft targets' share of the loss), got %s"):format(tostring(alpha)))
  end
  if type(T) ~= "number" or T <= 0 or T ~= T or T == math.huge then
    fail(("temperature must be a number > 0, got %s"):format(tostring(T)))
  end
  if type(d.teachers) ~= "table" or #d.teachers == 0 then
    fail("teachers must be a non-empty list of checkpoint paths or models")
  end
  local teachers = {}
  for i, t in ipairs(d.teachers) do
    local entry
    if type(t) == "string" then
      local model, meta = checkpoint.load(t)
      if not model then fail(("teacher %d: %s"):format(i, meta)) end
      if type(meta.classes) ~= "table" or not same_list(meta.classes, classes) then
        fail(("teacher %s was trained on the classes {%s}; the training data has {%s}, in this order")
          :format(t, table.concat(type(meta.classes) == "table" and meta.classes or {}, ", "), table.concat(classes, ", ")))
      end
      -- a teacher on a frozen encoder reads the clips' encoder features from d.cache (the
      -- embedding cache folder) when its recipe names none
      if d.cache ~= nil and type(model.dataset) == "function" and model.cache_dir == nil then model.cache_dir = d.cache end
      entry = { model = model, meta = meta, name = t }
    elseif nn.is_module(t) then
      if t.classes and t.classes ~= #classes then
        fail(("teacher %d (%s) has %d outputs; the training data has %d classes"):format(i, t.__name, t.classes, #classes))
      end
      entry = { model = t, name = ("%s (teacher %d)"):format(t.__name, i) }
    else
      fail(("teacher %d is a %s; expected a checkpoint path or an nn module"):format(i, type(t)))
    end
    teachers[i] = entry
  end
  return { teachers = teachers, alpha = alpha, temperature = T, consistent = consistent }
end

-- Refuses teachers that were trained on a speaker the student is evaluated on: their soft
-- targets would carry what they learnt of that speaker into the student. parts: the
-- student's { validation, test } corpus parts, either nil (in-memory datasets have no speakers).
-- warn: for teachers whose checkpoint does not record its training speakers (older
-- checkpoints, in-memory models).
function M.check_speakers(d, parts, warn)
  local held_out = {}
  for i = 1, 2 do                             -- parts = { val, test }; either may be nil
    local part = parts[i]
    if part and type(part.speakers) == "function" then
      for _, s in ipairs(part:speakers()) do held_out[#held_out + 1] = s end
    end
  end
  local unknown = 0
  for _, t in ipairs(d.teachers) do
    local trained = t.meta and speaker_set(t.meta.train_speakers)
    if not trained then
      unknown = unknown + 1
    else
      local both = {}
      for _, s in ipairs(held_out) do
        if trained[tostring(s)] then both[#both + 1] = tostring(s) end
      end
      if #both > 0 then
        fail(("teacher %s was trained on speaker(s) %s, which this run evaluates on: its soft targets would leak "
          .. "them into the student (train teachers on the student's training speakers only)")
          :format(t.name, table.concat(both, ", ")))
      end
    end
  end
  if unknown > 0 and #held_out > 0 and warn then
    warn(("distill: %d teacher(s) do not record their training speakers; make sure none was trained on the "
      .. "speakers this run evaluates on"):format(unknown))
  end
end

-- A teacher's logits for inputs x: eval mode, no graph; a module the caller passed keeps its mode.
local function teacher_logits(t, x)
  local was_training = t.model.training
  t.model:eval()
  local logits
  base.no_grad(function() logits = t.model(x) end)
  t.model:train(was_training)
  return logits
end

-- Refuses a teacher whose outputs for n inputs are not [n, n_classes].
local function check_outputs(t, logits, n, n_classes)
  if logits:dim() ~= 2 or logits:size(2) ~= n_classes then
    fail(("teacher %s gives outputs of shape [%s]; expected [%d, %d] (one score per class)")
      :format(t.name, table.concat(logits:shape(), ","), n, n_classes))
  end
end

-- [N, C] soft targets for the training loader's items, in item order: each teacher's
-- softmax(logits / T), averaged; n_classes: C, which every teacher's output must have.
-- Also returns how many clips the averaged teachers label like the training labels (for
-- the log).
function M.soft_targets(d, train, n_classes)
  local T = d.temperature
  local sum
  for _, t in ipairs(d.teachers) do
    local logits
    if train.part then
      local loader
      if t.meta then
        loader = checkpoint.loader(train.part, t.model, t.meta)
      elseif type(train.feature_spec) == "table" and train.feature_spec.kind ~= "function" then
        -- a model given as such reads the student's inputs, unaugmented
        loader = dataloader.loader(train.part, { batch = 16, seconds = train.seconds, sr = train.sr,
          features = train.feature_spec, trim = train.trim, normalize = train.normalize })
      else
        fail(("teacher %s is a model and the student's features are a Lua function, which cannot be "
          .. "rebuilt for it: give the teacher as a checkpoint path"):format(t.name))
      end
      logits = tensor.new(evaluate.evaluate(t.model, loader).logits)
    else                                  -- an in-memory dataset: the teacher reads x as it is
      local rows = {}
      for start = 1, train.n, 64 do
        local x = train.x:narrow(1, start, math.min(64, train.n - start + 1))
        for _, r in ipairs(teacher_logits(t, x):totable()) do rows[#rows + 1] = r end
      end
      logits = tensor.new(rows)
    end
    check_outputs(t, logits, train.n, n_classes)
    local p = (logits * (1 / T)):softmax(2)
    sum = sum and sum + p or p
  end
  local soft = (sum * (1 / #d.teachers)):contiguous()
  local labels = batches.all_labels(train)
  local pred, agree = evaluate.argmax_rows(soft:totable()), 0
  for i, y in ipairs(labels) do if pred[i] == y then agree = agree + 1 end end
  return soft, agree
end

-- Values and specs as the refusal messages write them.
local function show(v) return type(v) == "number" and ("%g"):format(v) or tostring(v) end

local function trim_text(t)
  if type(t) ~= "table" then return "off" end
  return ("%s dB (frames %s, hop %s)"):format(tostring(t.top_db), tostring(t.frame_length), tostring(t.hop_length))
end

local function spec_text(f)
  local keys, parts = {}, {}
  for k in pairs(f) do if k ~= "kind" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = ("%s = %s"):format(k, show(f[k])) end
  return ("{kind = %s%s}"):format(tostring(f.kind), #parts > 0 and ", " .. table.concat(parts, ", ") or "")
end

-- The student's side of the feature comparison, computed once for all teachers: its feature
-- spec (with the loader's rate filled in, as the loader does), a probe clip (a fixed two-tone
-- signal of the training clip length) and the student's features of it.
local function student_side(train)
  local spec = {}
  for k, v in pairs(train.feature_spec) do spec[k] = v end
  if spec.kind ~= "waveform" and spec.sr == nil then spec.sr = train.sr end
  local sr, rows = train.sr, {}
  for i = 1, math.floor(train.seconds * sr + 0.5) do
    rows[i] = 0.3 * math.sin(2 * math.pi * 220 * i / sr) + 0.1 * math.sin(2 * math.pi * 1870 * i / sr)
  end
  local probe = tensor.new({ rows })
  return { spec = spec, probe = probe, features = checkpoint.transform(spec, probe) }
end

-- The teacher's feature spec against the student's, compared by what they compute on the
-- probe clip, so options left at their defaults on one side compare equal.
local function features_differ(want, student)
  local a, b, have = checkpoint.transform(want, student.probe), student.features, student.spec
  local sa, sb = table.concat(a:shape(), ","), table.concat(b:shape(), ",")
  if sa ~= sb then
    return ("the teacher's features %s give [%s] for a clip and the student's %s [%s]")
      :format(spec_text(want), sa, spec_text(have), sb)
  end
  if (a - b):abs():max() > 1e-4 then   -- max over all elements is a number
    return ("the teacher's features %s and the student's %s differ in value"):format(spec_text(want), spec_text(have))
  end
  return nil
end

-- What a checkpoint teacher's input preparation and the student's training loader's differ
-- in (nil when they agree): consistent teaching feeds the teacher the student's batches, so
-- both must be the same features of the same clip length, rate, trimming and normalisation.
-- student(): the student's side (student_side), built on first use.
local function input_mismatch(t, train, student)
  local have = train.feature_spec
  if type(have) ~= "table" or have.kind == "function" then
    return "the student's features are a Lua function, which a checkpoint teacher cannot be shown to share"
  end
  local m = t.meta
  local checks = {
    { "seconds", tonumber(m.seconds) or 4.0, train.seconds },
    { "sr", tonumber(m.sr) or 16000, train.sr },
    { "normalize", batches.normalize_for(t.model.input, m.normalize) or "clip", batches.normalize_for(t.model.input, train.normalize) or "clip" },
    { "trim", trim_text(m.trim), trim_text(train.trim) },
  }
  for _, c in ipairs(checks) do
    if show(c[2]) ~= show(c[3]) then
      return ("%s is %s for the teacher and %s for the student"):format(c[1], show(c[2]), show(c[3]))
    end
  end
  -- the teacher's loader computes spectral features at its own rate unless the spec says otherwise
  local teacher = checkpoint.features(t.model, m)
  if teacher.kind ~= "waveform" and teacher.sr == nil then teacher.sr = train.sr end   -- the rates agree (above)
  return features_differ(teacher, student())
end

-- Consistent teaching: refuses checkpoint teachers whose inputs differ from the student's
-- (see input_mismatch). nn-module teachers read the student's inputs by definition, and so do
-- checkpoints when the training data is an in-memory dataset (its tensors are the inputs).
function M.check_inputs(d, train)
  if not train.part then return end
  local side
  local function student() side = side or student_side(train); return side end
  for _, t in ipairs(d.teachers) do
    if t.meta then
      local why = input_mismatch(t, train, student)
      if why then
        fail(("consistent teaching shows teacher %s the student's training batches, but %s; train the teacher on "
          .. "the same inputs or leave consistent off (the teachers then read each clip their own way, once)")
          :format(t.name, why))
      end
    end
  end
end

-- Consistent teaching: [B, C] soft targets for a batch x as the student sees it, each
-- teacher's softmax(logits / T) in eval mode, averaged; a teacher keeps its own mode.
function M.batch_targets(d, x, n_classes)
  local T, sum = d.temperature, nil
  for _, t in ipairs(d.teachers) do
    local logits = teacher_logits(t, x)
    check_outputs(t, logits, x:size(1), n_classes)
    local p = (logits * (1 / T)):softmax(2)
    sum = sum and sum + p or p
  end
  return sum * (1 / #d.teachers)
end

-- The distillation term for a batch: T^2 * H(q, softmax(logits / T)), averaged over the batch.
function M.loss(logits, q, T)
  return -(q * (logits * (1 / T)):log_softmax(2)):sum(2):mean() * (T * T)
end

-- The checkpoint record: teachers (paths, or model names), alpha, temperature.
function M.record(d)
  local names = {}
  for i, t in ipairs(d.teachers) do names[i] = t.name end
  return { teachers = names, alpha = d.alpha, temperature = d.temperature, consistent = d.consistent }
end

return M
