-- ser.data.embedding_cache: pooled hidden states of a frozen pretrained encoder, computed
-- once per clip, encoder and settings and kept on disk.
--
--   local cache = embedding_cache.new{ encoder = enc, identity = id, dir = "out/cache/embeddings",
--                                      settings = { seconds = 8, sr = 16000, trim = 0 } }
--   local x = cache:pooled(paths)   -- [N, L + 1, 2, d]: per layer the mean and the std over the
--                                   -- clip's frames (population std), float32
--   local c = embedding_cache.new{ ..., kind = "frames" }
--   local list = c:frames(paths)    -- per clip [L + 1, frames, d]: every layer's frame sequence,
--                                   -- stored as float16 (read back as float32; a miss returns the
--                                   -- values as read back, so a first run and a cached one agree)
--
-- The two kinds live under different settings ids (the pooling text differs). Frames take
-- (L + 1) * d * 2 bytes per 20 ms: whisper-base 7 KB per frame, ~1 GB for RAVDESS's 1440
-- trimmed clips, so they stay one file per clip on disk and only the clips asked for are read.
--
-- A clip is the decoded file (mono, resampled to settings.sr), optionally trimmed of leading and
-- trailing silence (settings.trim: ser.data trim options), cut to at most settings.seconds (the
-- first seconds; with trimming the middle, as the loader's trim_window) and encoded at its own
-- length: no padding is part of a clip (batches are padded, and the encoder masks the padding).
-- With settings.context = S > 0 (Whisper only) the clip's audio is instead zero-padded to S
-- seconds before the log-mel, as Whisper pads to its 30 s training window, and the encoder attends
-- over the whole window unmasked; the clip's features are still its own frames' (the first
-- ceil((n // 160) / 2) of each hidden state). docs/pretrained.md measures it ("Encoding clips
-- inside Whisper's 30 s window"): +1.6 points speaker-normalised for ~20x the encoding at 30 s.
--
-- Key: the SHA-256 of the file's bytes, of the encoder (its identity: the SHA-256 of its weights
-- and config files, see M.identity) and of the settings (seconds, sr, trim, n_mels, the pooling,
-- the context when set).
-- Layout: DIR/<encoder id, 16 hex>/<settings id, 12 hex>/<file sha, 2 hex>/<file sha>.safetensors,
-- one file per clip, each written atomically (ser.save: a temporary file renamed) and carrying its
-- full keys in the metadata, which a read checks (a mismatch is recomputed). Misses are encoded in
-- batches of clips of similar length (sorted by length), with progress lines on long encodes.
--
-- Under mpirun with collective = true (every process calls pooled with the same paths, as in
-- data-parallel training) the misses are shared out by key: the clip with key K is encoded and
-- written by process tonumber(K:sub(1, 8), 16) % N alone, so no two processes write one file;
-- after a barrier each process reads the others' clips from disk. A killed process leaves the
-- clips it finished whole; a rerun encodes only the rest (docs/distributed.md).
local T = require "ser.tensor"
local audio = require "ser.core.audio"
local ckpt = require "ser.core.checkpoint"
local digest = require "ser.core.digest"
local fsc = require "ser.core.fs"
local loader = require "ser.data.loader"
local progress = require "ser.train.progress"
local dist = require "ser.dist"

local M = {}

M.POOLING = "mean+std over valid frames, all layers (v1)"
M.FRAMES = "frame sequences of all layers, float16 (v1)"

-- What each kind stores per clip: its tensor's name in the file, how it is stored, the
-- pooling text of its settings id.
local KINDS = {
  pooled = { name = "pooled", dtype = "F32", text = M.POOLING },
  frames = { name = "frames", dtype = "F16", text = M.FRAMES },
}

local function join(list) return table.concat(list, "\0") end

-- The identity of an encoder checkpoint: the SHA-256 over the SHA-256 of its weights file and of
-- its config.json (when present), so that an edited file invalidates. path: a folder or a
-- .safetensors file. Returns { sha256 =, files = {...} } or nil, message.
function M.identity(path)
  local weights, config = path, nil
  if fsc.is_dir(path) then weights, config = path .. "/model.safetensors", path .. "/config.json" end
  local w, err = digest.sha256_file(weights)
  if not w then return nil, err end
  local parts, files = { "weights", w }, { weights }
  if config then
    local f = io.open(config, "rb")
    if f then
      f:close()
      local c, cerr = digest.sha256_file(config)
      if not c then return nil, cerr end
      parts[#parts + 1], parts[#parts + 2] = "config", c
      files[#files + 1] = config
    end
  end
  return { sha256 = digest.sha256(join(parts)), files = files }
end

-- The canonical text of the settings a clip's features depend on.
-- kind: "pooled" (default) or "frames".
function M.settings_text(s, n_mels, kind)
  local trim = s.trim and loader.trim_options(s.trim, 1) or nil
  local text = ("seconds=%.6g;sr=%d;n_mels=%d;trim=%s;pooling=%s"):format(s.seconds, s.sr, n_mels,
    trim and ("%g/%d/%d"):format(trim.top_db, trim.frame_length, trim.hop_length) or "none",
    KINDS[kind or "pooled"].text)
  -- appended only when set, so that the caches written before the option keep their ids
  if (s.context or 0) > 0 then text = ("%s;context=%.6g"):format(text, s.context) end
  return text
end

-- Whisper's window (30 s): the longest context, as the longest clip, it encodes.
M.WHISPER_SECONDS = 30

-- What is wrong with a context for this encoder, or nil when it can be encoded.
-- s: settings { seconds, context }; family: the encoder's (config.family, "whisper" if absent).
function M.context_problem(s, family)
  local ctx = s.context or 0
  if type(ctx) ~= "number" or ctx ~= ctx or ctx < 0 then
    return ("context must be a number of seconds >= 0, got %s"):format(tostring(ctx))
  end
  if ctx == 0 then return nil end
  if family ~= "whisper" then
    return ("a context of %g s pads clips to a Whisper encoder's window; this encoder is %s, which has no "
      .. "fixed window (set the context to 0)"):format(ctx, tostring(family))
  end
  if ctx > M.WHISPER_SECONDS then
    return ("a context of %g s is longer than Whisper's %d s window (expected 0 < context <= %d)")
      :format(ctx, M.WHISPER_SECONDS, M.WHISPER_SECONDS)
  end
  if ctx < s.seconds then
    return ("a context of %g s is shorter than the clips it must hold (up to %g s, data.seconds); expected at "
      .. "least %g s, or 0 for clips at their own length"):format(ctx, s.seconds, s.seconds)
  end
end

-- Frame sequences read in this process, by cache file: the runs of a --seeds list read the same
-- clips again for every seed (1200 whisper-base clips: ~25 CPU-seconds of float16 decoding).
-- Users never change these tensors (standardisation and speaker normalisation make new ones).
-- Only one cache folder's (one encoder and settings) are kept: memory for one corpus, not more.
local read_frames = { dir = nil, files = {} }
local function remembered(dir)
  if read_frames.dir ~= dir then read_frames.dir, read_frames.files = dir, {} end
  return read_frames.files
end

local Cache = {}
Cache.__index = Cache

-- o: encoder (a ser.pretrained encoder; may be a function returning one, called on the first
-- miss), identity (M.identity of its path), config (the encoder's config: layers, d_model,
-- n_mels), dir (cache root; nil: no disk cache), settings { seconds, sr, trim, context }, log (function
-- for progress lines; default print), batch (clips per encoder call, default 8), kind ("pooled",
-- the default, or "frames"), collective (under mpirun: every process calls pooled with the
-- same paths; see the header).
function M.new(o)
  local cfg = o.config
  local kind = o.kind or "pooled"
  if not KINDS[kind] then
    error(("embedding cache: kind '%s' is unknown (expected pooled or frames)"):format(tostring(kind)), 2)
  end
  local self = setmetatable({ encoder = o.encoder, identity = o.identity, config = cfg, root = o.dir,
    settings = o.settings, log = o.log or print, batch = o.batch or 8, hits = 0, misses = 0, kind = kind,
    collective = o.collective and true or false }, Cache)
  if (cfg.family or "whisper") == "whisper" and self.settings.seconds > M.WHISPER_SECONDS then
    error(("embedding cache: clips of up to %g s asked for; Whisper encodes at most %d s"):format(self.settings.seconds,
      M.WHISPER_SECONDS), 2)
  end
  local problem = M.context_problem(self.settings, cfg.family or "whisper")
  if problem then error("embedding cache: " .. problem, 2) end
  self.settings_text = M.settings_text(self.settings, cfg.n_mels or 0, kind)
  -- wav2vec2-family front ends z-score clips or not (preprocessor_config.json, outside the identity)
  if cfg.do_normalize ~= nil then
    self.settings_text = ("%s;family=%s;normalize=%s"):format(self.settings_text, cfg.family, tostring(cfg.do_normalize))
  end
  if o.dir then
    self.dir = ("%s/%s/%s"):format(o.dir, self.identity.sha256:sub(1, 16), digest.sha256(self.settings_text):sub(1, 12))
  end
  return self
end

-- The cache file of a clip's content key.
function Cache:file(key)
  return ("%s/%s/%s.safetensors"):format(self.dir, key:sub(1, 2), key)
end

-- The clip as the encoder sees it: [samples] (see the header). Raises with the path on failure.
-- wav: the decoded audio at settings.sr when it is in memory already (not read from path).
function Cache:clip(path, wav)
  local s = self.settings
  local err
  if not wav then wav, err = audio.load(path, { sr = s.sr, mono = true }) end
  if not wav then error(("embedding cache: %s: %s"):format(path, tostring(err)), 0) end
  local max = math.floor(s.seconds * s.sr + 0.5)
  local trim = s.trim and loader.trim_options(s.trim, 1) or nil
  if trim then
    wav = audio.trim(wav, trim)
    local n = wav:shape()[1]
    if n > max then wav = wav:narrow(1, (n - max) // 2 + 1, max) end
  elseif wav:shape()[1] > max then
    wav = wav:narrow(1, 1, max)
  end
  local need = self.config and self.config.receptive_field or 2 * 160
  if wav:shape()[1] < need then
    error(("embedding cache: %s: %d samples after decoding%s; the encoder needs at least %d (%.0f ms)")
      :format(path, wav:shape()[1], trim and " and trimming" or "", need, need / 16), 0)
  end
  return wav:contiguous()
end

-- Per clip of a batch of hidden states: [L + 1, 2, d] (mean, population std over the clip's frames).
local function pool(hs, b, frames)
  local rows = {}
  for l, h in ipairs(hs) do
    local x = h:select(1, b):narrow(1, 1, frames)           -- [frames, d]
    local m = x:mean(1)                                       -- [d]
    local dev = x - m:view(1, -1)
    local sd = (dev * dev):mean(1):sqrt()
    rows[l] = T.cat({ m:view(1, 1, -1), sd:view(1, 1, -1) }, 2)   -- [1, 2, d]
  end
  return T.cat(rows, 1)
end

-- Per clip of a batch of hidden states: [L + 1, frames, d] (its own rows of every layer).
local function frames_of(hs, b, frames)
  local rows = {}
  for l, h in ipairs(hs) do rows[l] = h:select(1, b):narrow(1, 1, frames):view(1, frames, -1) end
  return T.cat(rows, 1)
end

-- Encodes clips (a list of { path =, key =, index = }) in batches sorted by length; calls
-- done(item, value) for each: pooled [L + 1, 2, d] or frames [L + 1, frames, d] by the cache's kind.
function Cache:encode(todo, done)
  local enc = self.encoder
  if type(enc) == "function" then enc = enc(); self.encoder = enc end
  local clips = {}
  for i, it in ipairs(todo) do
    local wav = self:clip(it.path, it.wav)
    clips[i] = { item = it, wav = wav, n = wav:shape()[1] }
  end
  table.sort(clips, function(a, b) return a.n > b.n or (a.n == b.n and a.item.index < b.item.index) end)
  local window = math.floor((self.settings.context or 0) * self.settings.sr + 0.5)
  local t0, shown = progress.now(), progress.now()
  for first = 1, #clips, self.batch do
    local last = math.min(#clips, first + self.batch - 1)
    local inputs, own = {}, {}
    for i = first, last do
      local wav = clips[i].wav
      if window > 0 then   -- the clip at the start of a silent window (see the header)
        own[#own + 1] = clips[i].n // 160                       -- the clip's own log-mel frames
        if window > clips[i].n then wav = T.cat({ wav, T.zeros(window - clips[i].n) }, 1) end
      end
      inputs[#inputs + 1] = enc:frontend(wav)                 -- Whisper: [n_mels, frames]
    end
    local x, lengths = enc:batch(inputs)                     -- zero-padded, lengths in input frames / samples
    -- a window is attended whole, as Whisper was trained (every clip's window is as long)
    local hs = enc:hidden_states(x, window == 0 and { lengths = lengths } or nil)
    local extract = self.kind == "frames" and frames_of or pool
    for b = 1, #inputs do
      done(clips[first + b - 1].item, extract(hs, b, enc:output_frames(window > 0 and own[b] or lengths[b])))
    end
    local now = progress.now()
    if #clips > 2 * self.batch and (now - shown > 10 or last == #clips) then
      shown = now
      local rate = last / math.max(now - t0, 1e-9)
      self.log(("  encoded %d/%d clips (%.1f clips/s, %s left)"):format(last, #clips, rate,
        progress.duration and progress.duration((#clips - last) / rate) or ("%.0f s"):format((#clips - last) / rate)))
    end
  end
  self.encode_seconds = (self.encode_seconds or 0) + (progress.now() - t0)
end

-- Whether a cached tensor has this cache's shape ([L + 1, 2, d] or [L + 1, frames >= 1, d]).
function Cache:fits(t)
  local sh = t:shape()
  local L1, d = self.config.layers + 1, self.config.d_model
  return #sh == 3 and sh[1] == L1 and sh[3] == d and (self.kind == "frames" and sh[2] >= 1 or sh[2] == 2)
end

-- A list of per-clip tensors for `sources`: file paths (hits read from disk, misses encoded and
-- written), or { wav = [samples] at settings.sr, name = } for audio held in memory (a synthetic
-- corpus), which is encoded and not cached (it has no file whose content could be the key).
function Cache:collect(paths)
  local out, todo = {}, {}
  local kind = KINDS[self.kind]
  for i, path in ipairs(paths) do
    local key, err, wav
    if type(path) == "table" then
      wav, path = path.wav, tostring(path.name or ("clip " .. i))
    else
      key, err = digest.sha256_file(path)
      if not key then error("embedding cache: " .. tostring(err), 0) end
    end
    local memo = self.dir and key and self.kind == "frames" and remembered(self.dir) or nil
    local hit = memo and memo[self:file(key)]
    if hit then
      out[i] = hit
      self.hits = self.hits + 1
      goto continue
    end
    if self.dir and key then
      local sd, meta = ckpt.load(self:file(key))
      local t = sd and sd[kind.name]
      if t and type(meta) == "table" and meta.encoder == self.identity.sha256 and meta.settings == self.settings_text
        and meta.clip == key and self:fits(t) then
        hit = t
      end
    end
    if hit then
      out[i] = hit
      self.hits = self.hits + 1
      if memo then memo[self:file(key)] = hit end
    else
      todo[#todo + 1] = { path = path, key = key, index = i, wav = wav }
    end
    ::continue::
  end
  -- shared out: this process encodes the misses it owns (and the in-memory clips, which no
  -- file holds), then reads the others' from disk once every process is done
  local others = {}
  if self.collective and self.dir and dist.size() > 1 then
    local rank, size, mine = dist.rank(), dist.size(), {}
    for _, it in ipairs(todo) do
      if not it.key or tonumber(it.key:sub(1, 8), 16) % size == rank then mine[#mine + 1] = it
      else others[#others + 1] = it end
    end
    todo = mine
    dist.activity(("encoding %d clips into the embedding cache %s"):format(#mine, self.dir))
  end
  if #todo > 0 then
    self.misses = self.misses + #todo
    if #todo > 2 * self.batch then
      local memory = 0
      for _, it in ipairs(todo) do if not it.key then memory = memory + 1 end end
      self.log(("embedding cache: encoding %d of %d clips (%d cached)%s"):format(#todo, #paths, #paths - #todo,
        memory == #todo and " held in memory (not cached: no file content to key them by)"
          or (self.dir and (" into " .. self.dir) or "")))
    end
    self:encode(todo, function(it, value)
      out[it.index] = value
      if self.dir and it.key then
        local file = self:file(it.key)
        local ok, err = fsc.mkdir_p(file:match("^(.*)/[^/]*$"))
        if not ok then error("embedding cache: " .. tostring(err), 0) end
        ok, err = ckpt.save(file, { [kind.name] = value:contiguous() },
          { encoder = self.identity.sha256, settings = self.settings_text, clip = it.key, source = it.path },
          { dtype = kind.dtype })
        if not ok then error(("embedding cache: could not write %s: %s"):format(file, tostring(err)), 0) end
        if kind.dtype ~= "F32" then   -- what later runs will read: the stored (rounded) values
          local sd = ckpt.load(file)
          out[it.index] = assert(sd and sd[kind.name], "embedding cache: cannot read back " .. file)
        end
      end
    end)
  end
  if self.collective and self.dir and dist.size() > 1 then
    dist.activity("waiting for the other processes' share of the embedding cache")
    dist.barrier()
    for _, it in ipairs(others) do
      local file = self:file(it.key)
      local sd, err = ckpt.load(file)
      if not sd or not sd[kind.name] then
        error(("embedding cache: %s (clip %s) should have been written by rank %d of %d: %s"):format(file, it.path,
          tonumber(it.key:sub(1, 8), 16) % dist.size(), dist.size(), tostring(err or "no '" .. kind.name .. "' tensor")), 0)
      end
      out[it.index] = sd[kind.name]
    end
  end
  return out
end

-- [N, L + 1, 2, d]: the pooled features of `paths` (see Cache:collect) of a "pooled" cache.
function Cache:pooled(paths)
  if self.kind ~= "pooled" then error("embedding cache: pooled() on a cache of kind " .. self.kind, 2) end
  local L1, d = self.config.layers + 1, self.config.d_model
  local out = self:collect(paths)
  if #paths == 0 then return T.zeros(0, L1, 2, d) end
  local rows = {}
  for i = 1, #paths do rows[i] = out[i]:view(1, L1, 2, d) end
  return T.cat(rows, 1)
end

-- A list of [L + 1, frames_i, d] tensors, one per path (see Cache:collect) of a "frames" cache.
function Cache:frames(paths)
  if self.kind ~= "frames" then error("embedding cache: frames() on a cache of kind " .. self.kind, 2) end
  return self:collect(paths)
end

return M
