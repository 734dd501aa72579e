-- ser.data.loader(part, opts): batches {x, y, paths, index} over a corpus part.
--
-- Audio is decoded and resampled once (ser.audio.load_many) into one [N, T] matrix kept in
-- memory; a synthetic corpus hands over its rendered matrix directly. With trim (true, a
-- top_db or ser.audio.trim options) each clip's leading and trailing silence is cut first
-- and the rest centred in the `seconds` window. Then, per batch:
--   * no augmentation and a feature spec (or cache = true): features of every clip are
--     computed once (batched, threaded) and later epochs only gather rows;
--   * augmentation steps (a list, see augment_steps.lua) and/or SpecAugment masks: a C
--     worker thread (src/audio/corpus_prefetch.c) augments and featurises batch k+2 while
--     the trainer works on batch k; results depend on (seed, epoch, batch) only;
--   * an augmentation *function* (Lua): applied on the calling thread, batch by batch.
-- Shuffling is a seeded permutation per epoch.
local features = require "ser.core.features"
local audio = require "ser.core.audio"
local tensor = require "ser.tensor"
local augsteps = require "ser.data.augment_steps"
local data = require "ser.core.data"
local speaker_norm = require "ser.data.speaker_norm"
local options = require "ser.options"
local dist = require "ser.dist"

local M = {}

local Loader = {}
Loader.__index = Loader
Loader.__name = "ser.data.Loader"

local known = { batch = true, shuffle = true, seed = true, seconds = true, sr = true, transform = true,
  features = true, augment = true, spec_augment = true, drop_last = true, cache = true, name = true,
  prefetch = true, trim = true, normalize = true, shard = true }

local PREFETCH_DEPTH = 2 -- batches prepared ahead of the one being consumed

-- The feature kinds a loader computes (and a checkpoint's meta.features may name, with
-- "function" for a Lua transform that cannot be written down; see recordable_spec).
M.FEATURE_KINDS = { waveform = true, logmel = true, mfcc = true }

-- The feature step: nil/"waveform" -> [B, 1, T] ({kind = "waveform", normalize = true}: each
-- clip z-normalised, ser.features.znorm); "logmel"/"mfcc" or {kind = "logmel", n_mels = ...}
-- -> ser.features.<kind>(wav [B, T], opts) = [B, 1, F, frames]; a function -> whatever it returns.
-- Returns fn, spec (nil for a function), description. Also used outside a loader (predict.lua).
function M.make_transform(spec)
  if spec == nil or spec == "waveform" or (type(spec) == "table" and spec.kind == "waveform") then
    local normalize = type(spec) == "table" and spec.normalize or false
    return function(w)
      local s = w:shape()
      if normalize then w = features.znorm(w) end
      return w:view(s[1], 1, s[2])
    end, { kind = "waveform", normalize = normalize }, "waveform"
  end
  if type(spec) == "string" then spec = { kind = spec } end
  if type(spec) == "table" and spec.kind then
    local kind, fopts = spec.kind, {}
    for k, v in pairs(spec) do if k ~= "kind" then fopts[k] = v end end
    if not M.FEATURE_KINDS[kind] then
      error(("loader: transform kind '%s' is unknown (expected waveform, logmel, mfcc or a function)"):format(tostring(kind)), 3)
    end
    return function(w)
      return features[kind](w, fopts)
    end, { kind = kind, fopts = fopts }, kind
  end
  if augsteps.callable(spec) then return spec, nil, "function" end
  error(("loader: transform must be \"waveform\", \"logmel\", \"mfcc\", {kind = ..., options} or a function, got %s")
    :format(type(spec)), 3)
end

-- The feature spec from make_transform as plain data ({kind = "logmel", n_mels = 128, ...}, the
-- options as given), for a checkpoint to record so that scoring computes the same features.
-- A Lua function (tspec nil) cannot be written down: {kind = "function"} records that it was
-- one, so that scoring refuses rather than guesses.
function M.recordable_spec(tspec)
  if tspec == nil then return { kind = "function" } end
  local out = { kind = tspec.kind }
  if tspec.kind == "waveform" then out.normalize = tspec.normalize or nil end
  for k, v in pairs(tspec.fopts or {}) do out[k] = v end
  return out
end

-- xorshift64 stream from a seed; Lua 5.4 integers wrap, >> is a logical shift.
local function stream(seed)
  local s = (seed * -7046029254386353131 + 0x632BE59BD9B4E019) | 1
  return function(n)
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return (s >> 1) % n + 1
  end
end

-- opts.trim: nil/false (off), true (M.TRIM), a top_db number, or a table of
-- ser.audio.trim options. Returns the options table or nil.
M.TRIM = { top_db = 30, frame_length = 1024, hop_length = 256 }
function M.trim_options(t, level)
  if t == nil or t == false then return nil end
  local o = { top_db = M.TRIM.top_db, frame_length = M.TRIM.frame_length, hop_length = M.TRIM.hop_length }
  if type(t) == "number" then
    o.top_db = t
  elseif type(t) == "table" then
    options.check(t, { "top_db", "frame_length", "hop_length" }, "loader: trim", level + 1, "field")
    for k, v in pairs(t) do o[k] = v end
  elseif t ~= true then
    error(("loader: trim must be true, a top_db number or {top_db =, frame_length =, hop_length =}, got %s")
      :format(type(t)), level + 1)
  end
  if type(o.top_db) ~= "number" or not (o.top_db > 0) or o.top_db == math.huge then
    error(("loader: trim top_db must be a number > 0 (dB below the loudest frame), got %s"):format(tostring(o.top_db)),
      level + 1)
  end
  for _, k in ipairs { "frame_length", "hop_length" } do
    if type(o[k]) ~= "number" or o[k] ~= math.floor(o[k]) or o[k] < 1 then
      error(("loader: trim %s must be a whole number of samples >= 1, got %s"):format(k, tostring(o[k])), level + 1)
    end
    o[k] = math.tointeger(o[k])
  end
  return o
end

function M.loader(part, opts)
  if type(part) ~= "table" or type(part.items) ~= "table" then
    error("loader: first argument must be a corpus part (from ser.data.scan / split / synthetic)", 2)
  end
  opts = opts or {}
  options.check(opts, known, "loader", 2)
  local batch = opts.batch or 8
  if type(batch) ~= "number" or batch < 1 or batch ~= math.floor(batch) then
    error(("loader: batch must be a whole number >= 1, got %s"):format(tostring(batch)), 2)
  end
  local sr, seconds = opts.sr or part.sr or 16000, opts.seconds or part.seconds or 4.0
  if type(sr) ~= "number" or sr < 1000 or sr ~= math.floor(sr) then
    error(("loader: sr must be a whole number of Hz >= 1000, got %s"):format(tostring(sr)), 2)
  end
  if type(seconds) ~= "number" or seconds <= 0 then
    error(("loader: seconds must be a positive number, got %s"):format(tostring(seconds)), 2)
  end
  local trim = M.trim_options(opts.trim, 2)
  local transform, tspec, kind = M.make_transform(opts.transform or opts.features)
  local recorded = M.recordable_spec(tspec)
  -- features are computed at the loader's rate unless the spec says otherwise
  if tspec and tspec.fopts and tspec.fopts.sr == nil then tspec.fopts.sr = sr end
  local normalize = opts.normalize or "clip"
  if normalize ~= "clip" and normalize ~= "speaker" and normalize ~= "speaker_bins" then
    error(("loader: normalize must be \"clip\", \"speaker\" or \"speaker_bins\", got %s"):format(tostring(normalize)), 2)
  end
  if normalize ~= "clip" then
    if not tspec or not tspec.fopts then
      error(("loader: normalize = \"%s\" needs spectral features (features = \"logmel\" or \"mfcc\")"):format(normalize), 2)
    end
    for i, it in ipairs(part.items) do
      if it.speaker == nil then
        error(("loader: normalize = \"%s\" needs every clip's speaker; clip %d (%s) has none"):format(normalize, i,
          tostring(it.path or "in memory")), 2)
      end
    end
    tspec.fopts.normalize = false -- the speaker's statistics replace the per-clip z-norm
  end
  local self = setmetatable({
    part = part, items = part.items, classes = part.classes, n = #part.items, batch = batch,
    shuffle = opts.shuffle and true or false, seed = opts.seed or 0, sr = sr, seconds = seconds,
    samples = math.floor(seconds * sr + 0.5), transform = transform, kind = kind,
    drop_last = opts.drop_last and true or false, name = opts.name or part.name or "loader", epoch = 0,
    trim = trim, normalize = normalize, feature_spec = recorded, shard = M.check_shard(opts.shard),
  }, Loader)
  -- augmentation: steps (data) or a ser.augment chain runs in the C worker; a function here
  local augment, spec_augment = opts.augment, opts.spec_augment
  if augsteps.is_chain(augment) then
    local chain_masks
    augment, chain_masks = augsteps.from_chain(augment, sr, 2)
    if chain_masks and spec_augment then
      error("loader: masks come both from the augment chain and from spec_augment; give them once", 2)
    end
    if chain_masks and (not tspec or tspec.kind == "waveform") then
      chain_masks = nil -- a chain's spectrogram stages have nothing to act on in a waveform model
    end
    spec_augment = chain_masks
  end
  local steps = augsteps.steps(augment, sr, 2)
  local masks = augsteps.masks(spec_augment, 2)
  if augment ~= nil and not steps then
    if not augsteps.callable(augment) then
      error(("loader: augment must be a list of steps ({{\"gain\", lo = 0.8, hi = 1.2}, ...}), a chain or a function, got %s")
        :format(type(augment)), 2)
    end
    self.augment_fn = augment
  end
  if masks and (self.augment_fn or not tspec or tspec.kind == "waveform") then
    error("loader: spec_augment needs spectral features from a feature spec (transform = \"logmel\" or \"mfcc\") "
      .. "and augmentation given as a list of steps, not a function", 2)
  end
  self.random = (steps and #steps > 0) or masks ~= nil or self.augment_fn ~= nil
  self.cache = opts.cache
  if self.cache == nil then self.cache = tspec ~= nil and not self.random end
  if self.cache and self.random then
    error("loader: cache = true would freeze the random augmentation; leave cache unset for augmented loaders", 2)
  end
  if (steps and #steps > 0) or masks then
    -- the worker computes spec features itself; a Lua transform is applied to its waveforms
    local in_c = tspec and tspec.kind ~= "waveform"
    self.plan = { sr = sr, steps = steps or {}, features = in_c and tspec.kind or "waveform",
      fopts = in_c and tspec.fopts or nil }
    if masks then for k, v in pairs(masks) do self.plan[k] = v end end
    self.post = not in_c and tspec == nil and transform or nil
    self.wave_znorm = not in_c and tspec ~= nil and tspec.normalize or nil -- the worker returns raw waveforms
    self.depth = opts.prefetch == false and 1 or PREFETCH_DEPTH
  end
  if self.augment_fn and normalize ~= "clip" then
    error(("loader: normalize = \"%s\" works with augmentation given as steps or a chain, not a function"):format(normalize), 2)
  end
  return self
end

-- With a shard a last batch smaller than the number of processes is left out (some
-- process would have no example), on every process alike.
function Loader:count()
  if self.n == 0 then return 0 end
  local full, rest = self.n // self.batch, self.n % self.batch
  if self.drop_last then return full end
  if self.shard then return full + (rest >= self.shard.size and 1 or 0) end
  return full + (rest > 0 and 1 or 0)
end
Loader.__len = Loader.count

-- 1-based class index of every item, in item order.
function Loader:labels()
  local y = {}
  for i, it in ipairs(self.items) do y[i] = it.y end
  return y
end

-- Decodes paths into one [#paths, round(seconds * sr)] matrix; a failure names every bad file.
-- where: how the paths sit in the part when they are only a chunk of it (" (clips 65-128 of 960)").
function Loader:decode(paths, seconds, cache, where)
  local opts = { sr = self.sr, mono = true, seconds = seconds, cache = cache, stack = true }
  local stacked, err = audio.load_many(paths, opts)
  if not stacked then
    -- name every file that failed, not just the first (the good ones come from the cache)
    opts.stack = nil
    local each, errors = audio.load_many(paths, opts)
    local bad = {}
    for i = 1, #paths do
      if errors and errors[i] then bad[#bad + 1] = tostring(errors[i]) end
      if #bad >= 5 then break end
    end
    local n_bad = 0
    for i = 1, #paths do if type(each[i]) ~= "userdata" then n_bad = n_bad + 1 end end
    error(("loader %s: %d of %d files%s did not decode (fix or remove them): %s%s"):format(self.name, n_bad,
      #paths, where or "", #bad > 0 and table.concat(bad, "; ") or tostring(err), n_bad > #bad and "; ..." or ""), 0)
  end
  return stacked
end

-- Silence trimming looks this far into each file (bounded, so that a long
-- recording still costs memory in proportion to the clip asked for).
function M.trim_lookahead(seconds) return math.max(3 * seconds, 10) end

-- [samples]: the non-silent part of wav [T] (ser.audio.trim with trim options
-- from M.trim_options) centred, zero-padded on both sides when shorter and
-- its middle kept when longer. The loader and predict.lua share it.
function M.trim_window(wav, samples, trim)
  local y = audio.trim(wav, trim)
  local len = y:shape()[1]
  if len == samples then return y end
  local out = tensor.zeros(samples)
  if len > 0 then
    local keep = math.min(len, samples)
    out:narrow(1, (samples - keep) // 2 + 1, keep):copy_(y:narrow(1, (len - keep) // 2 + 1, keep))
  end
  return out
end

-- Rows first..last of the corpus before trimming: the in-memory audio or the
-- files decoded up to the trim lookahead.
function Loader:raw_rows(first, last)
  local rows, paths = {}, {}
  for i = first, last do
    rows[#rows + 1], paths[#paths + 1] = self.items[i].row, self.items[i].path
  end
  if self.part.audio then return data.gather(self.part.audio, rows) end
  return self:decode(paths, M.trim_lookahead(self.seconds), false,
    (" (clips %d-%d of %d, decoded in chunks for trim)"):format(first, last, self.n))
end

-- [N, samples]: every clip through M.trim_window, decoded in chunks so that
-- only 64 clips at the lookahead length are in memory at once.
function Loader:trimmed_waveforms()
  local T = tensor
  local out, chunk = T.zeros(self.n, self.samples), 64
  for first = 1, self.n, chunk do
    local last = math.min(self.n, first + chunk - 1)
    local raw = self:raw_rows(first, last)
    for i = first, last do
      local row = M.trim_window(raw:select(1, i - first + 1), self.samples, self.trim)
      out:select(1, i):copy_(row)
    end
  end
  return out
end

-- The [N, samples] waveform matrix, decoded and resampled on first use.
function Loader:waveforms()
  if self.wav then return self.wav end
  if self.n == 0 then error(("loader %s: the part is empty, there is no audio to load"):format(self.name), 2) end
  local part, wav = self.part, nil
  if part.audio and part.sr ~= self.sr then
    error(("loader %s: the in-memory corpus is at %d Hz but the loader asks for %d Hz; create it with sr = %d")
      :format(self.name, part.sr, self.sr, self.sr), 2)
  end
  if self.trim then
    wav = self:trimmed_waveforms()
  elseif part.audio then
    local rows = {}
    for i, it in ipairs(self.items) do rows[i] = it.row end
    wav = data.gather(part.audio, rows)
  else
    local paths = {}
    for i, it in ipairs(self.items) do paths[i] = it.path end
    wav = self:decode(paths, self.seconds)
  end
  if wav:shape()[2] ~= self.samples then wav = data.fit_rows(wav, self.samples) end
  self.wav = wav
  return wav
end

-- Features of every item, computed once in chunks (used when self.cache).
function Loader:features()
  if self.feats then return self.feats end
  local wav, chunks, chunk = self:waveforms(), {}, 64
  for start = 1, self.n, chunk do
    local rows = {}
    for i = start, math.min(self.n, start + chunk - 1) do rows[#rows + 1] = i end
    chunks[#chunks + 1] = self.transform(data.gather(wav, rows)):contiguous()
  end
  self.feats = #chunks == 1 and chunks[1] or data.cat_rows(chunks)
  if self.normalize ~= "clip" then
    local mean, scale = self:speaker_stats(self.feats) -- from the features just computed
    self.feats = speaker_norm.apply(self.feats, mean, scale):contiguous()
  end
  -- Batches now come from the features alone: the decoded clips go (a waveform model's
  -- z-normalised copy would otherwise double its corpus; 370 MB of the main job's peak on
  -- the full RAVDESS). Asking for waveforms() again decodes them again.
  self.wav = nil
  return self.feats
end

-- Speaker normalisation statistics of this part, computed once (ser.data.speaker_norm):
-- mean, scale [N, F], row i for item i's speaker. raw: the part's un-normalised features
-- when they are already at hand (else they are computed from the waveforms).
function Loader:speaker_stats(raw)
  if not self.norm_mean then
      local features_of = raw and function(rows) return data.gather(raw, rows) end
      or function(rows) return self.transform(data.gather(self:waveforms(), rows)) end
    self.norm_mean, self.norm_scale = speaker_norm.stats(features_of, self.items, self.normalize)
  end
  return self.norm_mean, self.norm_scale
end

-- Item order of an epoch: identity, or a seeded permutation of (seed, epoch).
function Loader:order(epoch)
  local order = {}
  for i = 1, self.n do order[i] = i end
  if self.shuffle then
    local draw = stream(self.seed * 1000003 + epoch)
    for i = self.n, 2, -1 do
      local j = draw(i)
      order[i], order[j] = order[j], order[i]
    end
  end
  return order
end

-- Rows of batch b (1-based) in an epoch's order; with a shard, this process's share of them.
function Loader:batch_rows(order, b)
  local rows = {}
  for i = (b - 1) * self.batch + 1, math.min(self.n, b * self.batch) do rows[#rows + 1] = order[i] end
  if self.shard then rows = dist.shard(rows, self.shard.rank, self.shard.size) end
  return rows
end

-- The augmentation seed of a batch: a function of (seed, epoch, batch) only; with a shard
-- also of the rank, so the processes do not draw the same noise for their shares.
function Loader:batch_seed(epoch, b)
  local s = ((self.seed * 1000003 + epoch) * 65537 + b) & 0x7fffffffffffffff
  if self.shard and self.shard.rank > 0 then s = (s * 1000033 + self.shard.rank) & 0x7fffffffffffffff end
  return s
end

-- A shard option: nil, or { rank = 0-based, size = processes } (ser.dist) with rank < size.
function M.check_shard(sh)
  if sh == nil then return nil end
  if type(sh) ~= "table" or math.type(sh.rank) ~= "integer" or math.type(sh.size) ~= "integer" or sh.size < 1
    or sh.rank < 0 or sh.rank >= sh.size then
    error(("loader: shard must be { rank = 0..size-1, size = processes }, got %s"):format(
      type(sh) == "table" and ("{ rank = %s, size = %s }"):format(tostring(sh.rank), tostring(sh.size)) or tostring(sh)), 3)
  end
  return { rank = sh.rank, size = sh.size }
end

-- for b in loader:iter([epoch]) do ... end; b = {x =, y =, paths =, index =, epoch =, batch =}.
-- Without an epoch argument each call starts the next epoch.
function Loader:iter(epoch)
  if epoch == nil then
    self.epoch = self.epoch + 1
    epoch = self.epoch
  end
  local n_batches = self:count()
  if n_batches == 0 then return function() return nil end end
  local T = tensor
  local order, b = self:order(epoch), 0
  local source, pf
  if self.plan then
    if not self.pf then
      if self.normalize ~= "clip" then self.plan.norm_mean, self.plan.norm_scale = self:speaker_stats() end
      self.pf = data.prefetch(self:waveforms(), self.plan)
    end
    pf = self.pf
    while pf:pending() > 0 do pf:next() end -- a loop left early leaves batches behind
    for k = 1, math.min(self.depth, n_batches) do pf:submit(self:batch_rows(order, k), self:batch_seed(epoch, k)) end
  else
    source = self.cache and self:features() or self:waveforms()
  end
  return function()
    b = b + 1
    if b > n_batches then return nil end
    local rows = self:batch_rows(order, b)
    local ys, paths = {}, {}
    for i, k in ipairs(rows) do ys[i], paths[i] = self.items[k].y, self.items[k].path end
    local x
    if pf then
      x = pf:next()
      if b + self.depth <= n_batches then
        pf:submit(self:batch_rows(order, b + self.depth), self:batch_seed(epoch, b + self.depth))
      end
      if self.post then x = self.post(x:view(#rows, self.samples)) end
      if self.wave_znorm then x = features.znorm(x) end
    else
      x = data.gather(source, rows)
      if not self.cache then
        if self.augment_fn then x = self.augment_fn(x) end
        x = self.transform(x)
        if self.normalize ~= "clip" then
          local mean, scale = self:speaker_stats()
          x = speaker_norm.apply(x, data.gather(mean, rows), data.gather(scale, rows))
        end
      end
    end
    return { x = x, y = T.new(ys), paths = paths, index = rows, epoch = epoch, batch = b }
  end
end
Loader.__call = Loader.iter

-- Stops the background worker now (it also stops when the loader is collected).
function Loader:close()
  if self.pf then self.pf:close(); self.pf = nil end
end

function Loader:__tostring()
  local aug = self.plan and " + augment (background worker)" or self.augment_fn and " + augment (Lua)" or ""
  return ("Loader(%s: %d clips, %d batches of %d, %s%s, %s%s)"):format(self.name, self.n, self:count(), self.batch,
    self.kind, aug, self.shuffle and "shuffled" or "in order", self.cache and ", features cached" or "")
end

return M
