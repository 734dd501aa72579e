-- ser.frozen_encoder: emotion models on a frozen pretrained encoder (Whisper), the `whisper`
-- model family of ser.recipe (registered there from M.family).
--
--   WhisperClassifier{ encoder = "models/whisper-base", head = "stats" | "superb", classes = 8,
--                      hidden = 256, dropout = 0.3, speaker_norm = false,
--                      seconds = 8, sr = 16000, trim = nil, context = 0, cache = "OUT/cache/embeddings" }
--
-- The encoder is loaded from its folder (weights stay out of the model's state_dict: a
-- checkpoint holds the head and the feature standardisation only, plus the encoder's folder and
-- identity in its metadata). The model's input is the pooled hidden states of clips,
-- x [B, L + 1, 2, d] (ser.data.embedding_cache; [B, #layers, 2, d] with model.layers, the
-- hidden states picked from the cache's L + 1), standardised with the training clips'
-- statistics (buffers feature_mean, feature_std); model:features(items) computes them for
-- files ({ path =, speaker = }), with speaker normalisation when the model has it (each
-- speaker's clips z-scored with that speaker's mean and std over those clips, per feature; no
-- labels used). model:dataset(part) gives a corpus part as an in-memory dataset for ser.train.
--
-- A frame-level head (head = "attentive": ser.nn.AttentiveStatsHead) reads every layer's frame
-- sequence instead (the cache's "frames" kind, float16 on disk). Those do not fit one tensor, so
-- the model keeps them in a store of its own (ser.frame_store), one [L + 1, frames, d] tensor per
-- clip, and its input x is [B, 1]: the clips' numbers in that store (model:features(items) adds
-- the clips and returns their numbers). forward pads a batch's clips to the longest and standardises them per layer
-- and channel (buffers feature_mean, feature_std [L + 1, d]: the training frames' statistics);
-- speaker normalisation z-scores each speaker's frames over all that speaker's frames.
--
-- Fine-tuning (finetune_layers = N > 0, any head): the model holds the encoder as a module
-- (`encoder`: enc:module{ finetune_layers = N }, lua/ser/pretrained/whisper_module.lua) whose top N
-- blocks and final LayerNorm train, with their own learning rate (encoder_lr: model:param_groups,
-- which ser.train.fit uses). Its store and inputs are ser.whisper_finetune's: by default each
-- clip's hidden state L - N from the frames cache, so a step runs only the top N blocks
-- (finetune_from = "cache"), or its log-mel through the whole encoder ("logmel"). The
-- standardisation is the pretrained encoder's statistics over the training clips. A
-- checkpoint holds the head, the standardisation and the fine-tuned tensors (encoder.layers.K..,
-- encoder.layer_norm.*), not the frozen ones: those are the encoder's own, named by its identity
-- in meta.encoder and checked on load, as for a frozen model.
local T = require "ser.tensor"
local Module = require "ser.nn.module"
local heads = require "ser.nn.heads"
local basic = require "ser.nn.basic"
local pretrained = require "ser.pretrained"
local embedding_cache = require "ser.data.embedding_cache"
local frame_store = require "ser.frame_store"
local finetune = require "ser.whisper_finetune"

local M = {}

-- A spread below this is taken as the floor (a flat feature is not blown up); the C core's,
-- which its inference API and ONNX export apply too.
M.STD_FLOOR = require("ser.core.pretrained").POOLED_STD_FLOOR

-- Encoders loaded in this process, by identity.
local loaded = {}

-- What to tell a user whose encoder folder cannot be read (err: why).
local function unreadable(path, err)
  return ("whisper: the encoder %s cannot be read (%s). The model family `whisper` reads a Whisper "
    .. "encoder's features: get the weights with `make whisper-base` (into models/whisper-base) or "
    .. "`make whisper-tiny.en`, or point model.encoder (--encoder) at a folder holding model.safetensors "
    .. "and config.json"):format(path, tostring(err))
end

-- The encoder's weights, or nil and the message that says what is wrong with them.
local function load_weights(path)
  local ok, enc, err = pcall(pretrained.load, path)
  if ok and enc then return enc end
  return nil, ("whisper: the encoder %s: %s"):format(path, tostring(ok and err or enc))
end

-- The encoder of a folder (or .safetensors file) and its identity; raises a message that says
-- what to do when the folder is missing.
function M.encoder(path)
  local id, err = embedding_cache.identity(path)
  if not id then error(unreadable(path, err), 0) end
  local hit = loaded[id.sha256]
  if not hit then
    local enc, lerr = load_weights(path)
    if not enc then error(lerr, 0) end
    hit = { enc = enc, id = id }
    loaded[id.sha256] = hit
  end
  return hit.enc, id
end

-- Whether the encoder at path loads (nil) or why not (the message M.encoder would raise). The
-- weights are read and checked but not kept: a job that checks its recipes first and trains
-- the encoder's recipe last should not carry them through the other models' trainings.
function M.check(path)
  local id, err = embedding_cache.identity(path)
  if not id then return unreadable(path, err) end
  if loaded[id.sha256] then return nil end
  local _, lerr = load_weights(path)
  return lerr
end

-- Per-row statistics of groups: x [N, F]; keys[i] the group of row i. Returns mean, std [N, F].
local function group_stats(x, keys, floor)
  local groups, order = frame_store.groups(keys)
  local F = x:shape()[2]
  local mean_rows, std_rows = {}, {}
  for _, k in ipairs(order) do
    local rows = {}
    for j, i in ipairs(groups[k]) do rows[j] = x:narrow(1, i, 1) end
    local g = T.cat(rows, 1)
    local m = g:mean(1)
    local dev = g - m:view(1, F)
    local sd = (dev * dev):mean(1):sqrt():clamp(floor, math.huge)
    for _, i in ipairs(groups[k]) do mean_rows[i], std_rows[i] = m, sd end
  end
  local ms, ss = {}, {}
  for i = 1, #keys do ms[i], ss[i] = mean_rows[i]:view(1, F), std_rows[i]:view(1, F) end
  return T.cat(ms, 1), T.cat(ss, 1)
end
M.group_stats = group_stats

-- model.layers (numbers of hidden states as Hugging Face's hidden_states counts them: 0 the
-- embeddings, k block k's output, and as Python indexes them from the end, -1 the last block's
-- output, so that {-4, -3, -2, -1} is the top four blocks of any encoder; increasing, each once)
-- -> their 1-based rows among the L + 1 the cache holds; nil (all) for nil. Raises with what is wrong.
function M.check_layers(list, L)
  if list == nil then return nil end
  local rows = {}
  for i, k in ipairs(type(list) == "table" and list or {}) do
    local row = math.type(k) == "integer" and (k < 0 and L + 2 + k or k + 1) or nil
    if not row or row < 1 or row > L + 1 or (i > 1 and row <= rows[i - 1]) then
      error(("whisper: model.layers must list hidden states 0 (the embeddings) to %d (the last block's output), or "
        .. "-%d to -1 counted from the end, in increasing order, each once; got {%s}"):format(L, L + 1,
          table.concat(list, ", ")), 0)
    end
    rows[i] = row
  end
  if #rows == 0 then error("whisper: model.layers must name at least one hidden state (0 to " .. L .. ")", 0) end
  return rows
end

-- Increasing rows as runs of neighbours: { { first row, count }, ... } ({2, 3, 5} -> {{2, 2}, {5, 1}}).
local function runs(rows)
  local out, first = {}, 1
  for i = 1, #rows do
    if i == #rows or rows[i + 1] ~= rows[i] + 1 then
      out[#out + 1] = { rows[first], i - first + 1 }
      first = i + 1
    end
  end
  return out
end

-- The pooled features [N, L + 1, 2, d] of the hidden states in rows (nil: x as it is): [N, #rows, 2, d].
local function pick_layers(x, rows)
  if not rows then return x end
  local parts = {}
  for i, run in ipairs(runs(rows)) do parts[i] = x:narrow(2, run[1], run[2]) end
  return (#parts == 1 and parts[1] or T.cat(parts, 2)):contiguous()
end
M.pick_layers = pick_layers

local WhisperClassifier = Module.class("WhisperClassifier")

-- o: encoder (path), head, classes, hidden, dropout, input_dropout, attention, speaker_norm, layers, finetune_layers,
-- encoder_lr, finetune_from, spec_augment, frame_masks, frame_mask_width, seconds, sr, trim, context
-- (seconds of Whisper window each clip is padded to before encoding; 0: the clip alone), cache.
function WhisperClassifier:init(o)
  local enc, id = M.encoder(o.encoder)
  self.encoder_path, self.identity, self.config = o.encoder, id, enc.config
  self.head_kind, self.speaker_norm = o.head or "stats", o.speaker_norm == true
  self.settings = { seconds = o.seconds or 8, sr = o.sr or 16000, trim = o.trim, context = o.context or 0 }
  local problem = embedding_cache.context_problem(self.settings, enc.config.family or "whisper")
  if problem then error("whisper: model.context: " .. problem, 0) end
  self.cache_dir = o.cache
  self.input = "whisper"
  local L1, d = enc.config.layers + 1, enc.config.d_model
  self.hidden = M.check_layers(o.layers, enc.config.layers)   -- 1-based rows of the L + 1 hidden states, or nil: all
  if self.hidden then L1 = #self.hidden end
  self.layers, self.d = L1, d
  self.frame_level = M.FRAME_HEADS[self.head_kind] == true
  local tuned = (o.finetune_layers or 0) > 0
  if self.hidden and (self.frame_level or tuned) then
    error(("whisper: model.layers picks the hidden states of the pooled heads (superb, stats, concat); %s reads "
      .. "every layer; leave model.layers unset (--set model.layers=default)"):format(tuned and "fine-tuning" or ("the " .. self.head_kind .. " head")), 0)
  end
  if self.frame_level or tuned then self.store = frame_store.new(L1, d) end
  if self.frame_level then
    self:register_buffer("feature_mean", T.zeros(L1, d))
    self:register_buffer("feature_std", T.ones(L1, d))
  else
    self:register_buffer("feature_mean", T.zeros(L1, 2, d))
    self:register_buffer("feature_std", T.ones(L1, 2, d))
  end
  self.input_dropout = o.input_dropout or 0
  if self.input_dropout > 0 then self:add_module("drop", basic.Dropout(self.input_dropout)) end
  self.finetune_layers = o.finetune_layers or 0
  if self.finetune_layers > 0 then
    self.finetune_from = finetune.check(self, o, enc)
    self:add_module("encoder", enc:module { finetune_layers = self.finetune_layers })
    self.encoder_lr = o.encoder_lr or 5e-5
    self.spec_augment = o.spec_augment ~= false
    self.frame_masks, self.frame_mask_width = o.frame_masks or 2, o.frame_mask_width or 10
  end
  if self.head_kind == "superb" then
    self:add_module("head", heads.SuperbHead(L1, d, o.classes))
  elseif self.frame_level then   -- attentive, attentive_concat
    self:add_module("head", heads.AttentiveStatsHead(L1, d, o.classes, { hidden = o.hidden, dropout = o.dropout,
      attention = o.attention, per_layer = self.head_kind == "attentive_concat" }))
  elseif self.head_kind == "concat" then
    self:add_module("head", heads.ConcatHead(L1, d, o.classes, { hidden = o.hidden, dropout = o.dropout }))
  else
    self:add_module("head", heads.StatsHead(L1, d, o.classes, { hidden = o.hidden, dropout = o.dropout }))
  end
end

-- The standardisation in the shape a clip's frames [L + 1, T, d] take it: { m, s } [L + 1, 1, d],
-- copies of the buffers, made again after fit_standardisation or load_state_dict change them.
function WhisperClassifier:frame_stats()
  if not self._stats then
    local L1, d = self.layers, self.d
    self._stats = { m = self.feature_mean:view(L1, 1, d):clone(), s = self.feature_std:view(L1, 1, d):clone() }
  end
  return self._stats
end

-- The clip's frames standardised with the current statistics (once per set: ser.frame_store).
function WhisperClassifier:standardised_frames(e)
  return frame_store.standardised(e, self:frame_stats())
end

-- Loading new statistics makes the stored clips be standardised again (fit restores its best
-- weights this way; the same statistics leave them as they are).
function WhisperClassifier:load_state_dict(sd, opts)
  local r = Module.load_state_dict(self, sd, opts)
  local st = self._stats
  if st and self.frame_level then
    local L1, d = self.layers, self.d
    local function zero(t)
      local v = t:abs():max()
      return (type(v) == "number" and v or v:item()) == 0
    end
    local same = zero(self.feature_mean:view(L1, 1, d) - st.m) and zero(self.feature_std:view(L1, 1, d) - st.s)
    if not same then self._stats = nil end
  end
  return r
end

-- Frame-level heads: x [B, 1] (numbers of clips in the store) -> the clips standardised and
-- zero-padded [L + 1, B, T, d], and their frame counts.
function WhisperClassifier:frame_batch(x)
  local s = x:shape()
  if #s ~= 2 or s[2] ~= 1 then
    error(("WhisperClassifier (%s head): expected clip numbers [B, 1] (model:features(items) gives them), got [%s]")
      :format(self.head_kind, table.concat(s, ",")), 4)
  end
  local ids, clips, lengths, Tmax = x:view(-1):totable(), {}, {}, 0
  for b, id in ipairs(ids) do
    local f = self.store:get(id)
    if not f then
      error(("WhisperClassifier (%s head): input %d is %s, not the number of a clip in the model's store (1..%d); "
        .. "its inputs are clip numbers from model:features(items), which cannot be mixed (mixup) or made up")
        :format(self.head_kind, b, tostring(id), self.store.n), 4)
    end
    f = self:standardised_frames(f)
    clips[b], lengths[b] = f, f:shape()[2]
    Tmax = math.max(Tmax, lengths[b])
  end
  return self.store:padded(clips, lengths, Tmax), lengths
end

-- The learning rates fit gives each parameter group: a fine-tuned encoder's blocks encoder_lr,
-- the rest (head) lr. Without fine-tuning, one group.
function WhisperClassifier:param_groups(lr)
  if not self.encoder then return { { params = self:parameters(), lr = lr } } end
  local enc, seen, rest = self.encoder:parameters(), {}, {}
  for _, p in ipairs(enc) do seen[p] = true end
  for _, p in ipairs(self:parameters()) do if not seen[p] then rest[#rest + 1] = p end end
  return { { params = rest, lr = lr }, { params = enc, lr = self.encoder_lr } }
end

-- Fine-tuning: the frozen encoder tensors are left out of the state_dict (and so of checkpoints
-- and of fit's copies of the best weights): they are the encoder's own, identified in the metadata.
local function frozen_keys(self)
  local out = {}
  if self.encoder then
    for _, nb in ipairs(self.encoder:named_buffers()) do out["encoder." .. nb[1]] = true end
  end
  return out
end
function WhisperClassifier:state_dict()
  local sd, frozen = Module.state_dict(self), frozen_keys(self)
  for k in pairs(frozen) do sd[k] = nil end
  return sd
end
function WhisperClassifier:state_dict_keys()
  local out, frozen = {}, frozen_keys(self)
  for _, k in ipairs(Module.state_dict_keys(self)) do if not frozen[k] then out[#out + 1] = k end end
  return out
end

-- x [B, L + 1, 2, d] standardised with the training clips' statistics.
function WhisperClassifier:standardised(x)
  local s = x:shape()
  if #s ~= 4 or s[2] ~= self.layers or s[3] ~= 2 or s[4] ~= self.d then
    error(("WhisperClassifier: expected pooled hidden states [B, %d, 2, %d] (model:features(items) computes "
      .. "them from files), got [%s]"):format(self.layers, self.d, table.concat(s, ",")), 3)
  end
  return (x - self.feature_mean:view(1, self.layers, 2, self.d)) / self.feature_std:view(1, self.layers, 2, self.d)
end

function WhisperClassifier:forward(x)
  if self.encoder then
    local z, lengths = finetune.input(self, x)
    if self.drop then z = self.drop(z) end
    return self.head(z, lengths)
  end
  if self.frame_level then
    local z, lengths = self:frame_batch(x)
    if self.drop then z = self.drop(z) end
    return self.head(z, lengths)
  end
  local z = self:standardised(x)
  if self.drop then z = self.drop(z) end
  return self.head(z)
end

function WhisperClassifier:embed(x)
  if self.encoder then return self.head:embed(finetune.input(self, x)) end
  if self.frame_level then return self.head:embed(self:frame_batch(x)) end
  return self.head:embed(self:standardised(x))
end

-- The embedding cache of this model's encoder and settings (dir: the cache root; nil: none).
function WhisperClassifier:cache(dir)
  dir = dir or self.cache_dir
  self._caches = self._caches or {}
  local key = tostring(dir)
  if not self._caches[key] then
    self._caches[key] = embedding_cache.new { encoder = function() return (M.encoder(self.encoder_path)) end,
      identity = self.identity, config = self.config, dir = dir, settings = self.settings,
      collective = self.cache_collective, kind = (self.frame_level or self.encoder) and "frames" or "pooled" }
  end
  return self._caches[key]
end

-- What the cache reads for items ({ path = }; with o.audio, a part's in-memory audio
-- [N, samples], items with `row` are read from it).
local function item_paths(items, o)
  local paths = {}
  for i, it in ipairs(items) do
    paths[i] = it.path
    if o and o.audio and it.row then paths[i] = { wav = o.audio:select(1, it.row), name = it.path } end
  end
  return paths
end

-- The pooled features of items ({ path =, speaker = }; o.audio as item_paths), speaker-normalised
-- when the model is (each speaker's statistics over that speaker's items here): [N, L + 1, 2, d];
-- for a frame-level head the clips' numbers [N, 1] in the model's store, to which their frames
-- are added.
function WhisperClassifier:features(items, o)
  o = o or {}
  local speakers = {}
  for i, it in ipairs(items) do speakers[i] = it.speaker end
  if self.encoder then
    return finetune.add_clips(self, self:cache(o.cache), (M.encoder(self.encoder_path)), item_paths(items, o))
  end
  if self.frame_level then
    local list = self:cache(o.cache):frames(item_paths(items, o))
    if self.speaker_norm then frame_store.speaker_normalise(list, speakers, M.STD_FLOOR) end
    local ids = {}
    for i, f in ipairs(list) do ids[i] = { self.store:add { frames = f:contiguous() } } end
    return #ids > 0 and T.new(ids) or T.zeros(0, 1)
  end
  local x = self:pooled_features(items, o)
  if self.speaker_norm and #items > 0 then x = self:speaker_normalise(x, speakers) end
  return x
end

-- A pooled head's input before any speaker normalisation: the picked hidden states' pooled
-- features of items [N, layers, 2, d] (o.audio as item_paths).
function WhisperClassifier:pooled_features(items, o)
  return pick_layers(self:cache(o and o.cache):pooled(item_paths(items, o)), self.hidden)
end

-- Pooled features x [N, layers, 2, d] z-scored per speaker (speakers[i]: row i's) with that
-- speaker's mean and std over its rows here.
function WhisperClassifier:speaker_normalise(x, speakers)
  local n, F = x:shape()[1], self.layers * 2 * self.d
  local flat = x:contiguous():view(n, F)
  local m, sd = group_stats(flat, speakers, M.STD_FLOOR)
  return ((flat - m) / sd):view(n, self.layers, 2, self.d)
end

-- A corpus part as an in-memory dataset { x, y, classes, speakers } (nil for an empty part);
-- speakers: the part's speakers, which fit records in the checkpoint (distillation refuses a
-- teacher trained on the speakers its student is evaluated on).
function WhisperClassifier:dataset(part, o)
  if not part or #part.items == 0 then return nil end
  local index = {}
  for i, c in ipairs(part.classes) do index[c] = i end
  local y = {}
  for i, it in ipairs(part.items) do
    y[i] = index[it.label]
    if not y[i] then
      error(("whisper: %s has label %s, which is not one of the classes (%s)"):format(it.path, tostring(it.label),
        table.concat(part.classes, ", ")), 0)
    end
  end
  local fo = { cache = o and o.cache, audio = part.audio }
  return { x = self:features(part.items, fo), y = y, classes = part.classes, speakers = part:speakers() }
end

-- Sets the feature standardisation from the training features [N, L + 1, 2, d] (frame-level
-- heads: the training clips' numbers [N, 1]; statistics over all their frames, two passes).
function WhisperClassifier:fit_standardisation(x)
  if self.encoder then return finetune.fit_standardisation(self, x, M.STD_FLOOR) end
  if self.frame_level then
    local clips = {}
    local ids = x:view(-1):totable()
    for i, id in ipairs(ids) do clips[i] = frame_store.raw(self.store:get(id)) end
    local m, sd = frame_store.statistics(clips, M.STD_FLOOR)
    self.feature_mean:copy_(m)
    self.feature_std:copy_(sd)
    self._stats = nil
    return
  end
  local n = x:shape()[1]
  local flat = x:contiguous():view(n, -1)
  local m = flat:mean(1)
  local dev = flat - m:view(1, -1)
  local sd = (dev * dev):mean(1):sqrt():clamp(M.STD_FLOOR, math.huge)
  self.feature_mean:copy_(m:view(self.layers, 2, self.d))
  self.feature_std:copy_(sd:view(self.layers, 2, self.d))
end

-- What a checkpoint records of the encoder besides the recipe (which names its folder).
function WhisperClassifier:checkpoint_meta()
  return { encoder = { path = self.encoder_path, sha256 = self.identity.sha256, layers = self.config.layers,
    d_model = self.config.d_model, n_mels = self.config.n_mels, source = self.config.source,
    finetune_layers = self.finetune_layers } }
end

-- model.layers as runs of neighbouring hidden states, { { first row (1-based), count }, ... }
-- (ser.graph slices the encoder's output by them); nil when the model reads every layer.
function WhisperClassifier:layer_runs()
  return self.hidden and runs(self.hidden) or nil
end

-- Refuses a checkpoint whose encoder is not the one this model loaded (an edited or replaced file).
function WhisperClassifier:check_checkpoint(meta, where)
  local e = type(meta) == "table" and meta.encoder
  if type(e) ~= "table" or type(e.sha256) ~= "string" then
    error(("%s: a whisper checkpoint without the encoder's identity (meta.encoder.sha256)"):format(where), 0)
  end
  if e.sha256 ~= self.identity.sha256 then
    error(("%s: the encoder at %s has changed since this model was trained (identity %s, the checkpoint's %s): "
      .. "the head reads that encoder's features and would give meaningless outputs; restore the encoder "
      .. "files it was trained on or retrain"):format(where, self.encoder_path, self.identity.sha256:sub(1, 16),
        e.sha256:sub(1, 16)), 0)
  end
end

function WhisperClassifier:extra_repr()
  return ("encoder=%s, layers=%d, d=%d, speaker_norm=%s%s"):format(self.encoder_path, self.layers, self.d,
    tostring(self.speaker_norm), self.encoder and (", finetune_layers=%d, encoder_lr=%g, finetune_from=%s"):format(
      self.finetune_layers, self.encoder_lr, self.finetune_from) or "")
end

M.WhisperClassifier = WhisperClassifier

-- Heads that read frame sequences (the cache's "frames" kind) rather than pooled statistics.
M.FRAME_HEADS = { attentive = true, attentive_concat = true }

-- The default encoder folder: models/whisper-base.
M.DEFAULT_ENCODER = "models/whisper-base"

-- The `whisper` family of ser.recipe (ser.recipe registers it): model.* fields and the constructor.
M.family = {
  input = "waveform",
  title = "Whisper encoder + head",
  fields = {
    encoder = { kind = "string", default = M.DEFAULT_ENCODER,
                help = "folder of the Whisper encoder (model.safetensors + config.json; `make whisper-base`)" },
    head = { choices = { "superb", "stats", "concat", "attentive", "attentive_concat" }, default = "stats",
             help = "superb: softmax layer weights -> mean -> linear; stats: weighted layers -> mean+std -> MLP; "
               .. "concat: every layer's mean+std -> MLP; attentive: weighted layers' frames -> attentive "
               .. "statistics pooling -> MLP; attentive_concat: the same attention, every layer's attentive mean+std "
               .. "-> MLP" },
    attention = { kind = "posint", default = 128, help = "hidden units of the attentive head's frame scorer" },
    finetune_layers = { kind = "natural", default = 0,
                        help = "fine-tune the encoder's top N blocks (0 = frozen encoder)" },
    encoder_lr = { kind = "posnum", default = 5e-5, help = "peak learning rate of the fine-tuned blocks" },
    finetune_from = { choices = { "cache", "logmel" }, default = "cache",
                      help = "fine-tuning input: hidden state L - N from the frames cache (only the top blocks run), "
                        .. "or the log-mel through the whole encoder (needed when every block trains)" },
    spec_augment = { kind = "boolean", default = true,
                     help = "SpecAugment on the log-mel input while fine-tuning from the log-mel (2 time, 2 frequency masks)" },
    frame_masks = { kind = "natural", default = 2,
                    help = "time masks on the cached frames while fine-tuning from the cache (0: none)" },
    frame_mask_width = { kind = "posint", default = 10,
                         help = "largest time mask on the cached frames, in encoder frames (20 ms each)" },
    hidden = { kind = "posint", default = 256, help = "hidden units of the stats head's MLP" },
    dropout = { kind = "unit", default = 0.3, expect = "a probability in [0, 1)", help = "dropout in the stats head's MLP" },
    input_dropout = { kind = "unit", default = 0, expect = "a probability in [0, 1)",
                      help = "dropout on the standardised pooled features (training only)" },
    context = { kind = "nonneg", default = 0,
                help = "pad each clip with silence to this many seconds before encoding, as Whisper's own 30 s window, "
                  .. "and pool the clip's frames (0: the clip at its own length; at most 30; ~20x the encoding at 30)" },
    speaker_norm = { kind = "boolean", default = false,
                     help = "z-score each speaker's pooled features over the speaker's clips (no labels)" },
    layers = { kind = "integers",
               help = "the hidden states the pooled heads read, numbered as Hugging Face's hidden_states (0 the "
                 .. "embeddings, k block k's output, -1 the last; increasing): e.g. -4,-3,-2,-1, the top four "
                 .. "blocks (whisper-base's 3-6) (default: all)" },
    cache = { kind = "string", help = "embedding cache folder (default OUT/cache/embeddings)" },
  },
  build = function(r, classes)
    local m = r.model
    return WhisperClassifier { encoder = m.encoder, head = m.head, classes = classes, hidden = m.hidden,
      dropout = m.dropout, input_dropout = m.input_dropout, attention = m.attention, speaker_norm = m.speaker_norm,
      layers = m.layers,
      finetune_layers = m.finetune_layers, encoder_lr = m.encoder_lr, spec_augment = m.spec_augment,
      finetune_from = m.finetune_from, frame_masks = m.frame_masks, frame_mask_width = m.frame_mask_width,
      seconds = r.data.seconds, sr = r.data.sr, context = m.context,
      trim = (r.data.trim ~= 0) and r.data.trim or nil, cache = m.cache }
  end,
  -- Combinations refused before any clip is read (the encoder's own family is checked when it loads).
  check = function(r)
    local m = r.model
    local problem = embedding_cache.context_problem({ seconds = r.data.seconds, context = m.context }, "whisper")
    if problem then return "model.context: " .. problem end
    if m.context > 0 and m.finetune_layers > 0 then
      return ("model.context = %g cannot be combined with model.finetune_layers = %d: fine-tuning runs the top blocks "
        .. "on the clip's own frames, not on a window; set one of them to 0"):format(m.context, m.finetune_layers)
    end
  end,
  -- The run's corpus parts as datasets of pooled features (ctx.cache: the default cache root);
  -- the model's standardisation set from the training clips.
  prepare = function(r, model, run, ctx)
    local dir = r.model.cache or ctx.cache
    model.cache_dir = dir
    model.cache_collective = ctx.collective   -- every process of an mpirun job fills the cache together
    local parts = {}
    for i = 1, 3 do
      if run[i] then parts[i] = model:dataset(run[i], { cache = dir }) end
    end
    if not parts[1] then error(("whisper: the training split%s is empty"):format(
      run.name ~= "" and run.name and (" of " .. run.name) or ""), 0) end
    model:fit_standardisation(parts[1].x)
    local c = model:cache(dir)
    if ctx.log then
      ctx.log(("whisper: %s, %d layers x d %d; embedding cache %s: %d clips read, %d encoded%s"):format(
        model.encoder_path, model.config.layers, model.config.d_model, dir or "(none)", c.hits, c.misses,
        c.encode_seconds and (" in %.1f s"):format(c.encode_seconds) or ""))
    end
    parts.name = run.name
    return parts
  end,
}

return M
