-- ser.recipe: the one home of a training run's settings.
--
-- A recipe is a Lua table (experiments/recipes/*.lua return one): the model and its options,
-- the features, the data window, augmentation, optimiser, schedule, epochs, early stopping,
-- seeds and, optionally, distillation. This module owns
--   * the defaults (M.defaults; a model family adds its own, M.families),
--   * the validation, in one place: every message names the field, the allowed values and
--     what was given (and the flag or --set that gave it),
--   * overrides: dotted keys (`--set optim.lr=3e-4`) and the command-line flags that exist
--     (one mapping table, M.FLAGS),
--   * the round trip to checkpoint metadata: fit writes the recipe into the checkpoint
--     (meta.recipe), and M.from_meta rebuilds it, also from checkpoints written before
--     recipes existed (their flat fields: model, hidden, freq, features, seconds, ...).
--
-- A new model family (a pretrained encoder, say) calls M.register_family with its fields,
-- defaults and constructor; nothing in compare.lua changes.
local models = require "ser.models"
local features = require "ser.core.features"
local frozen_encoder = require "ser.frozen_encoder"

local M = {}

-- Value kinds: the test and the words a message uses for the allowed values.
local function num(v) return type(v) == "number" and v == v end
local function whole(v) return num(v) and v == math.floor(v) and v > -math.huge and v < math.huge end
M.KINDS = {
  posint = { function(v) return whole(v) and v >= 1 end, "a whole number >= 1" },
  natural = { function(v) return whole(v) and v >= 0 end, "a whole number >= 0" },
  posnum = { function(v) return num(v) and v > 0 and v < math.huge end, "a number > 0" },
  nonneg = { function(v) return num(v) and v >= 0 and v < math.huge end, "a number >= 0" },
  unit = { function(v) return num(v) and v >= 0 and v < 1 end, "a number in [0, 1)" },
  closed_unit = { function(v) return num(v) and v >= 0 and v <= 1 end, "a number in [0, 1]" },
  nonneg_or_false = { function(v) return v == false or (num(v) and v >= 0) end, "a number >= 0 or false" },
  unit_or_false = { function(v) return v == false or (num(v) and v >= 0 and v < 1) end, "a number in [0, 1) or false" },
  boolean = { function(v) return type(v) == "boolean" end, "true or false" },
  string = { function(v) return type(v) == "string" and v ~= "" end, "a non-empty string" },
  integers = { function(v)
    if type(v) ~= "table" or #v == 0 then return false end
    for _, x in ipairs(v) do if math.type(x) ~= "integer" then return false end end
    return true
  end, "a non-empty list of whole numbers" },
  paths = { function(v)
    if type(v) ~= "table" or #v == 0 then return false end
    for _, x in ipairs(v) do if type(x) ~= "string" or x == "" then return false end end
    return true
  end, "a non-empty list of checkpoint paths" },
}

-- Checks one value against a kind or a list of choices; returns nil or the expectation text.
function M.expect(spec, v)
  if spec.choices then
    for _, c in ipairs(spec.choices) do if v == c then return nil end end
    local q = {}
    for i, c in ipairs(spec.choices) do q[i] = ("%q"):format(c) end
    return "one of " .. table.concat(q, ", ")
  end
  local kind = M.KINDS[spec.kind]
  if kind[1](v) then return nil end
  return spec.expect or kind[2]
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end
M.show = show

-- The fields every recipe has: dotted key -> spec {kind or choices, default, help}.
-- nil default: optional (distill.teachers: no distillation).
M.fields = {
  ["name"] = { kind = "string", help = "output file stem (default: the model's name)" },
  ["model.name"] = { kind = "string", help = "model family" },
  ["features.kind"] = { choices = { "logmel", "waveform", "mfcc" }, help = "input features (default: the family's)" },
  ["features.n_mels"] = { kind = "posint", help = "mel bands of log-mel features (default 64)" },
  ["data.seconds"] = { kind = "posnum", default = 4.0, help = "clip length in seconds (pad or trim)" },
  ["data.sr"] = { kind = "posint", default = 16000, help = "sample rate in Hz" },
  ["data.trim"] = { kind = "nonneg", default = 0, expect = "a number of dB > 0 (or 0 for no trimming)",
    help = "cut leading and trailing silence more than TRIM dB below the clip's loudest frame" },
  ["data.normalize"] = { choices = { "clip", "speaker", "speaker_bins" }, default = "clip",
    help = "log-mel normalisation" },
  ["augment"] = { choices = { "reference", "speed", "none" }, default = "reference", help = "training augmentation" },
  ["mixup"] = { kind = "nonneg", default = 0, help = "mixup strength (0 = off)" },
  ["optim.lr"] = { kind = "posnum", default = 1e-3, help = "peak learning rate" },
  ["optim.weight_decay"] = { kind = "nonneg", default = 1e-4, help = "AdamW weight decay" },
  ["optim.label_smoothing"] = { kind = "unit", default = 0.1, help = "label smoothing of the cross-entropy" },
  ["schedule"] = { choices = { "onecycle", "cosine", "constant" }, default = "onecycle", help = "LR schedule" },
  ["epochs"] = { kind = "posint", default = 35, help = "maximum epochs" },
  ["batch"] = { kind = "posint", default = 8, help = "batch size" },
  ["early_stopping.patience"] = { kind = "posint", default = 10, help = "epochs without a better validation wF1" },
  ["ema"] = { kind = "unit", default = 0, expect = "a decay in [0, 1) (0 = off)", help = "weight EMA decay" },
  ["ema_bn"] = { choices = { "average", "recompute" }, default = "average",
    help = "with ema > 0, BatchNorm's statistics of the EMA weights: the average of the running ones, or recomputed "
      .. "from the training batches (without an EMA it does nothing, so --set ema=0 turns the EMA off alone)" },
  ["ema_bn_batches"] = { kind = "natural", default = 0,
    help = "with ema_bn = \"recompute\": how many of the epoch's training batches (0 = all)" },
  ["amp"] = { kind = "boolean", default = false, help = "bfloat16 GEMMs" },
  ["seeds"] = { kind = "integers", default = { 42 }, help = "one training run per seed" },
  ["parallel.sync_bn"] = { kind = "boolean", default = false,
    help = "under mpirun: BatchNorm statistics over every process's share of the batch (docs/distributed.md)" },
  ["parallel.grad_compression"] = { choices = { "none", "bf16", "fp16" }, default = "none",
    help = "under mpirun: the gradient allreduce in 16-bit floats" },
  ["distill.teachers"] = { kind = "paths", help = "teacher checkpoints (knowledge distillation)" },
  ["distill.from"] = { kind = "string",
    help = "another recipe of the same job, by name, whose model of the same seed teaches (it is trained first)" },
  ["distill.alpha"] = { kind = "closed_unit", default = 0.5, help = "share of the soft targets in the loss" },
  ["distill.temperature"] = { kind = "posnum", default = 2, help = "softening temperature" },
  ["distill.consistent"] = { kind = "boolean", default = false, help = "teachers label each augmented batch" },
}

-- Model families: input features, title, the model.* fields they take and the constructor
-- options they make of a recipe (classes: the class count).
M.families = {}
-- prepare (optional): function(r, model, run, ctx) -> run, the corpus parts of a run turned into
-- what fit trains the model on (the whisper family: datasets of cached encoder features; ctx:
-- { cache = the default embedding cache folder, log = function(line) }).
-- check (optional): function(r) -> nil, or what is wrong with the validated recipe's combination
-- of fields (said before any data is read or model built).
function M.register_family(name, spec)
  if type(name) ~= "string" or type(spec) ~= "table" or type(spec.build) ~= "function" then
    error("ser.recipe.register_family: expected a name and { input =, title =, fields =, build = function(r, classes) }", 2)
  end
  M.families[name] = { input = spec.input or "logmel", title = spec.title or name, fields = spec.fields or {},
                       build = spec.build, prepare = spec.prepare, check = spec.check }
end

local FREQ = { choices = { "flatten", "mean" }, default = "flatten",
               help = "what the log-mel models keep of the frequency axis: flatten (bands) or mean (the notebook's)" }
local function create(name)
  return function(r, classes, extra)
    local o = { classes = classes }
    for k, v in pairs(r.model) do if k ~= "name" then o[k] = v end end
    for k, v in pairs(extra or {}) do o[k] = v end
    return models.create(name, o)
  end
end
local TIME = { choices = { "mean", "stats" }, default = "mean",
               help = "summary over time: mean or mean + standard deviation (statistics pooling)" }
M.register_family("cnn2d", { input = "logmel", title = "CNN2D (log-mel)", fields = { freq = FREQ, time = TIME },
  build = create("cnn2d") })
M.register_family("cnn1d", { input = "waveform", title = "CNN1D (waveform)", fields = {
  time = TIME,
  context_blocks = { kind = "natural", default = 0,
                     help = "blocks after the four convolutions, each max-pooling time by 4 then convolving (wider context)" },
  frontend = { choices = { "conv", "filterbank" }, default = "conv",
               help = "first layer: the notebook's convolution, or a learnt filterbank's log energies every 10 ms" },
}, build = create("cnn1d") })
M.register_family("crnn", { input = "logmel", title = "CRNN (log-mel)", fields = {
  freq = FREQ,
  hidden = { kind = "posint", default = 128, help = "hidden units per direction of the BiLSTM" },
  time = TIME,
  dropout = { kind = "unit", default = 0, expect = "a probability in [0, 1)", help = "dropout before the classifier" },
  feature_dropout = { kind = "unit", default = 0, expect = "a probability in [0, 1)",
                      help = "dropout on the BiLSTM's input" },
  batchnorm = { kind = "boolean", default = false, help = "BatchNorm after each convolution" },
}, build = function(r, classes)
  -- the BiLSTM of a flattened CRNN is sized by the mel bands: one name, features.n_mels
  return create("crnn")(r, classes, { mels = r.features.n_mels })
end })
-- A head on a frozen Whisper encoder's pooled hidden states (ser.frozen_encoder).
M.register_family("whisper", frozen_encoder.family)

-- The defaults of a recipe of the given family, as a nested table.
local function set_path(t, key, v)
  local node = t
  local parts = {}
  for p in key:gmatch("[^.]+") do parts[#parts + 1] = p end
  for i = 1, #parts - 1 do
    if type(node[parts[i]]) ~= "table" then node[parts[i]] = {} end
    node = node[parts[i]]
  end
  node[parts[#parts]] = v
end
local function get_path(t, key)
  local node = t
  for p in key:gmatch("[^.]+") do
    if type(node) ~= "table" then return nil end
    node = node[p]
  end
  return node
end
M.get, M.set_path = get_path, set_path

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end
M.copy = copy

-- Every field spec of a recipe of this family: the common ones and model.<field>.
local function specs_for(family)
  local out = {}
  for k, s in pairs(M.fields) do out[k] = s end
  for k, s in pairs(family and family.fields or {}) do out["model." .. k] = s end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Raises "<where>: <field> must be <expected>, got <value>[ (from <source>)]".
local function fail(where, key, expected, v, sources)
  local src = sources and sources[key]
  error(("%s: %s must be %s, got %s%s"):format(where, key, expected, show(v), src and (" (from " .. src .. ")") or ""), 0)
end

-- The flat list of leaves of a nested recipe: dotted key -> value (lists are leaves).
local function leaves(t, prefix, out)
  out = out or {}
  for k, v in pairs(t) do
    local key = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(v) == "table" and #v == 0 and next(v) ~= nil then leaves(v, key, out) else out[key] = v end
  end
  return out
end

-- Validates a recipe and returns a new, complete one (defaults filled in, sizes as integers).
-- where: what to call it in messages (its file, or "recipe <name>"); sources: dotted key ->
-- the flag or --set that gave the value, named in messages.
function M.validate(r, where, sources)
  where = where or "recipe"
  if type(r) ~= "table" then error(("%s: a recipe is a table, got %s"):format(where, type(r)), 0) end
  local model = r.model
  if type(model) == "string" then model = { name = model } end
  local fname = type(model) == "table" and model.name
  local family = M.families[fname]
  if not family then
    fail(where, "model.name", "one of " .. table.concat(sorted_keys(M.families), ", "), fname, sources)
  end
  local specs = specs_for(family)
  local given = leaves(r)
  if type(r.model) == "string" then given["model"], given["model.name"] = nil, r.model end
  local extra = {}   -- other features.* keys: options of ser.features, which checks them itself
  for key, v in pairs(given) do
    if not specs[key] and key:match("^features%.[%w_]+$") then extra[key:sub(10)] = v; given[key] = nil end
  end
  for key in pairs(given) do
    if not specs[key] then
      local hint = key:match("^model%.") and (" (fields of model %s: %s)"):format(fname,
        table.concat(sorted_keys(family.fields), ", ")) or ""
      error(("%s: unknown field '%s'%s; the fields are %s"):format(where, key, hint,
        table.concat(sorted_keys(specs), ", ")), 0)
    end
  end
  local out = {}
  local distilled = false   -- the distill.* defaults only for a recipe that distils
  for key in pairs(given) do distilled = distilled or key:match("^distill%.") ~= nil end
  for _, key in ipairs(sorted_keys(specs)) do
    local spec, v = specs[key], given[key]
    if v == nil and (distilled or not key:match("^distill%.")) then v = copy(spec.default) end
    if v ~= nil then
      if type(v) == "number" and (spec.kind == "posint" or spec.kind == "natural") and v == math.floor(v) then
        v = math.tointeger(v) or v
      end
      local bad = M.expect(spec, v)
      if bad then fail(where, key, bad, v, sources) end
      set_path(out, key, v)
    end
  end
  out.name = out.name or fname
  out.features = out.features or {}
  out.features.kind = out.features.kind or family.input
  for k, v in pairs(extra) do out.features[k] = copy(v) end
  if out.features.kind == "logmel" and out.features.n_mels == nil then out.features.n_mels = 64 end
  -- three poolings halve the mel axis: a flattened model reads n_mels / 8 rows per step
  if out.features.kind == "logmel" then
    local n = out.features.n_mels
    if n < 8 or (out.model.freq == "flatten" and n % 8 ~= 0) then
      fail(where, "features.n_mels", "a whole number >= 8, a multiple of 8 with model.freq = \"flatten\"", n, sources)
    end
  end
  if out.features.kind ~= "waveform" then
    -- the feature options as ser.features reads them (its C parser refuses unknown keys), and
    -- whether the FFT bins can carry that many mel bands, before any training
    local fopts = { sr = out.data.sr }
    for k, v in pairs(out.features) do if k ~= "kind" then fopts[k] = v end end
    local ok, err = pcall(features.melbank, fopts)
    if not ok and tostring(err):find("mel filters", 1, true) then
      fail(where, "features.n_mels", "a number of bands the FFT bins can carry (" .. err .. ")", out.features.n_mels, sources)
    elseif not ok then
      error(("%s: features: %s"):format(where, tostring(err)), 0)
    end
  end
  local problem = family.check and family.check(out)
  if problem then error(("%s: %s"):format(where, problem), 0) end
  if out.distill then
    if not out.distill.teachers and not out.distill.from then
      local set = {}
      for k in pairs(given) do if k:match("^distill%.") then set[#set + 1] = k end end
      table.sort(set)
      error(("%s: %s set without distill.teachers (the teacher checkpoints to distil from) or distill.from (a "
        .. "recipe of the same job that teaches)%s"):format(where,
        table.concat(set, ", "),
        sources and sources[set[1]] and (" (from " .. sources[set[1]] .. ")") or ""), 0)
    end
    if out.mixup > 0 and not out.distill.consistent then
      error(("%s: distillation and mixup cannot be combined unless distill.consistent = true (a mixed clip has "
        .. "no precomputed teacher target)"):format(where), 0)
    end
  end
  return out
end

-- Parses the text of an override (`--set key=value`, a flag's argument) for a field.
function M.parse_value(spec, text)
  if type(text) ~= "string" then return text end
  local kind = spec.kind
  if kind == "boolean" then
    if text == "true" then return true elseif text == "false" then return false end
    return text
  elseif kind == "integers" or kind == "paths" then
    local list = {}
    for word in text:gmatch("[^,%s]+") do list[#list + 1] = kind == "integers" and (math.tointeger(tonumber(word)) or word)
      or word end
    return list
  elseif kind and kind ~= "string" then
    return tonumber(text) or text
  end
  return text
end

-- Applies overrides {key, value, source} to a recipe (before validation). Values given as
-- text are parsed by the field's kind ("default": the field's default, unless it holds names
-- or paths); a key that no field of the recipe's family has is refused.
function M.override(r, overrides)
  r = copy(r)
  if type(r.model) == "string" then r.model = { name = r.model } end
  local sources = {}
  for _, o in ipairs(overrides) do
    local key, value = o[1], o[2]
    if key == "model" then key = "model.name" end
    local family = M.families[key == "model.name" and value or get_path(r, "model.name")]
    local specs = specs_for(family)
    local spec = specs[key]
    local other = false   -- model.<field> of another family: for the recipes that have it
    for _, fam in pairs(M.families) do other = other or (key:match("^model%.") and fam.fields[key:sub(7)] ~= nil) end
    if not spec and not other then
      local all = specs_for(nil)
      for _, fam in pairs(M.families) do for k in pairs(fam.fields) do all["model." .. k] = true end end
      error(("%s: %s names no recipe field; the fields are %s"):format(o.source or "--set", key,
        table.concat(sorted_keys(all), ", ")), 0)
    end
    if spec then
      -- `default` puts a field back to its default (a list such as model.layers cannot be
      -- emptied otherwise); not for fields holding names or paths, where it could be one
      local named = spec.kind == "string" or spec.kind == "paths"
      set_path(r, key, (value ~= "default" or named) and M.parse_value(spec, value) or nil)
      sources[key] = o.source
    end
  end
  return r, sources
end

-- `key=value` from --set.
function M.parse_set(text)
  local key, value = tostring(text):match("^%s*([%w_.]+)%s*=%s*(.-)%s*$")
  if not key then
    error(("--set %s: expected key=value with a dotted recipe field, e.g. --set optim.lr=3e-4"):format(text), 0)
  end
  return { key, value, source = "--set " .. text }
end

-- Loads a recipe file (a Lua file returning a table). Returns the table (not validated).
function M.load(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then error(("recipe %s: %s"):format(path, err), 0) end
  local ok, r = pcall(chunk)
  if not ok then error(("recipe %s: %s"):format(path, tostring(r)), 0) end
  if type(r) ~= "table" then error(("recipe %s: the file must return a table, got %s"):format(path, type(r)), 0) end
  return r
end

-- The command-line flags of compare.lua, each a field (one mapping table): only the recipes
-- whose family takes the field get the value (--crnn-* only for CRNN, --mels and --freq only
-- for log-mel models).
M.FLAGS = {
  { "--epochs", "epochs" }, { "--batch", "batch" }, { "--seconds", "data.seconds" }, { "--lr", "optim.lr" },
  { "--weight-decay", "optim.weight_decay" }, { "--patience", "early_stopping.patience" },
  { "--trim", "data.trim", argname = "<dB>" }, { "--augment", "augment" }, { "--mixup", "mixup", argname = "<A>" },
  { "--ema", "ema", argname = "<decay>" }, { "--norm", "data.normalize" }, { "--amp", "amp", flag = true },
  { "--seed", "seeds", help = "random seed (weights, shuffling, augmentation; also the corpus's and UMAP's)" },
  { "--seeds", "seeds", help = "comma-separated seeds, e.g. 1,2,3: one run per seed (overrides --seed)" },
  { "--mels", "features.n_mels", argname = "<n>" }, { "--freq", "model.freq" },
  { "--crnn-batchnorm", "model.batchnorm", family = "crnn", flag = true },
  { "--crnn-dropout", "model.dropout", family = "crnn", argname = "<p>" },
  { "--crnn-feature-dropout", "model.feature_dropout", family = "crnn", argname = "<p>" },
  { "--crnn-hidden", "model.hidden", family = "crnn", argname = "<n>" },
  { "--crnn-time", "model.time", family = "crnn" },
  { "--distill", "distill.teachers", argname = "<ckpts>" }, { "--distill-alpha", "distill.alpha", argname = "<a>" },
  { "--distill-temperature", "distill.temperature", argname = "<T>" },
  { "--distill-consistent", "distill.consistent", flag = true },
  { "--distill-from", "distill.from", argname = "<recipe>" },
  { "--encoder", "model.encoder", family = "whisper", argname = "<dir>" },
  { "--head", "model.head", family = "whisper" },
  { "--speaker-norm", "model.speaker_norm", family = "whisper", flag = true },
  { "--cache", "model.cache", family = "whisper", argname = "<dir>" },
}

-- Adds the flags to an argparse parser (no defaults: only flags given override a recipe).
function M.add_flags(parser)
  for _, f in ipairs(M.FLAGS) do
    local spec = M.fields[f[2]] or (M.families[f.family or "crnn"].fields[f[2]:match("^model%.(.*)") or ""])
    local help = ("%s (recipe field %s%s)"):format(f.help or spec.help, f[2], f.family and (", " .. f.family .. " only") or "")
    if spec.choices then help = help .. ": " .. table.concat(spec.choices, ", ") end
    if f.flag then parser:flag(f[1], help) else
      local o = parser:option(f[1], help)
      if f.argname then o:argname(f.argname) end
    end
  end
end

-- The overrides the parsed flags give for a recipe of the given family.
function M.flag_overrides(args, family_name)
  local out = {}
  local family = M.families[family_name]
  for _, f in ipairs(M.FLAGS) do
    local v = args[(f[1]:sub(3):gsub("-", "_"))]
    local applies = (not f.family or f.family == family_name) and
      (f[2] ~= "features.n_mels" and f[2] ~= "model.freq" or (family and family.input == "logmel"))
    if v ~= nil and v ~= false and applies and not (f[1] == "--seed" and args.seeds) then
      out[#out + 1] = { f[2], f.flag and v or tostring(v), source = f[1] .. (f.flag and "" or (" " .. tostring(v))) }
    end
  end
  return out
end

-- A recipe loaded, overridden and validated: path (or a table), overrides from --set, the
-- parsed flags. Returns the recipe.
function M.resolve(source, sets, args)
  local r = type(source) == "string" and M.load(source) or source
  local label = r.name or (type(r.model) == "table" and r.model.name) or r.model
  local where = "recipe " .. (type(source) == "string" and source or tostring(label or "(a table)"))
  local fam = type(r.model) == "table" and r.model.name or r.model
  local overrides = args and M.flag_overrides(args, fam) or {}
  for _, s in ipairs(sets or {}) do overrides[#overrides + 1] = s end
  local merged, sources = M.override(r, overrides)
  local out = M.validate(merged, where, sources)
  out.file = type(source) == "string" and source or nil
  return out
end

-- --quick: at most 2 epochs of 1 s clips.
function M.quick(r)
  r = copy(r)
  r.epochs, r.data.seconds = math.min(r.epochs, 2), 1.0
  return r
end

-- The model a recipe describes, for a corpus of `classes` classes (a count).
function M.build_model(r, classes)
  return M.families[r.model.name].build(r, classes)
end

function M.title(r)
  local t = M.families[r.model.name].title
  return r.name == r.model.name and t or ("%s: %s"):format(t, r.name)
end

-- The loader's feature spec of a recipe.
function M.feature_spec(r)
  local f = copy(r.features)
  if f.kind == "waveform" and f.normalize == nil then f.normalize = true end   -- z-normalised per clip
  return f
end

-- The trim option of the loader (nil: no trimming).
function M.trim(r)
  local t = r.data.trim
  if type(t) == "table" then return t end
  return t > 0 and t or nil
end

-- The options of ser.train.fit for one seed of a recipe.
function M.fit_options(r, seed)
  local d = r.distill
  return {
    epochs = r.epochs, batch = r.batch, lr = r.optim.lr, weight_decay = r.optim.weight_decay,
    label_smoothing = r.optim.label_smoothing, schedule = r.schedule, seed = seed, amp = r.amp,
    patience = r.early_stopping.patience, seconds = r.data.seconds, sr = r.data.sr,
    features = M.feature_spec(r), augment = r.augment, trim = M.trim(r), normalize = r.data.normalize,
    mixup = r.mixup, ema = r.ema > 0 and r.ema or false, ema_bn = r.ema_bn, ema_bn_batches = r.ema_bn_batches,
    name = r.model.name,
    sync_bn = r.parallel.sync_bn, grad_compression = r.parallel.grad_compression,
    -- (a teacher of the same job, distill.from, is added by ser.experiment, which knows its checkpoint)
    distill = d and { teachers = d.teachers, alpha = d.alpha, temperature = d.temperature, consistent = d.consistent },
    meta = { recipe = M.to_meta(r) },
  }
end

-- The loader options that prepare a recipe's inputs for scoring (no augmentation).
function M.loader_options(r)
  return { batch = 16, features = M.feature_spec(r), seconds = r.data.seconds, sr = r.data.sr, trim = M.trim(r),
           normalize = r.features.kind ~= "waveform" and r.data.normalize or nil }
end

-- The recipe as checkpoint metadata: plain data (no file path).
function M.to_meta(r)
  local m = copy(r)
  m.file = nil
  return m
end

-- The recipe of a checkpoint's metadata: meta.recipe when it has one, else one mapped from
-- the flat fields checkpoints carried before (a model without meta.freq is the notebook's,
-- freq = "mean"). Raises with what is wrong.
function M.from_meta(meta, where)
  where = where or "checkpoint"
  if type(meta) ~= "table" then error(("%s: no metadata"):format(where), 0) end
  if type(meta.recipe) == "table" then return M.validate(meta.recipe, where .. " (meta.recipe)") end
  local name = type(meta.model) == "string" and meta.model:lower() or meta.model
  local family = M.families[name]
  if not family then fail(where, "model (metadata)", "one of " .. table.concat(sorted_keys(M.families), ", "), name) end
  local r = { model = { name = name }, data = {}, features = {} }
  for k in pairs(family.fields) do
    local v = meta[k]
    if k == "freq" or k == "time" then v = v or "mean" end   -- absent: the notebook's layers
    if k == "frontend" then v = v or "conv" end
    if k == "dropout" or k == "feature_dropout" or k == "context_blocks" then v = tonumber(v) or 0 end
    if k == "batchnorm" then v = v == true end
    r.model[k] = v
  end
  local f = type(meta.features) == "table" and meta.features or { kind = family.input }
  if f.kind == "function" then
    error(("%s: the model was trained on features from a Lua function (fit{features = fn}), which a checkpoint "
      .. "cannot record; score it with ser.train.evaluate and a loader given the same function"):format(where), 0)
  end
  r.features = copy(f)
  if f.kind == "logmel" then r.features.n_mels = tonumber(f.n_mels) or tonumber(meta.mels) or 64 end
  r.data.seconds = tonumber(meta.seconds) or 4.0
  r.data.sr = tonumber(meta.sr) or 16000
  r.data.trim = type(meta.trim) == "table" and meta.trim or 0
  r.data.normalize = meta.normalize or "clip"
  if type(r.data.trim) == "table" then
    -- trim options as the loader recorded them: kept as a table (validated by the loader)
    local t = r.data.trim
    r.data.trim = 0
    local out = M.validate(r, where)
    out.data.trim = t
    return out
  end
  return M.validate(r, where)
end

return M
