-- ser.data.loader(part, opts): batches {x, y, paths, index} over a corpus part.
--
-- Audio is decoded and resampled once (ser.audio.load_many) into one [N, T] matrix kept in
-- memory; a synthetic corpus hands over its rendered matrix directly. Per batch the rows are
-- gathered, augmented (training) and turned into features; without augmentation the features
-- are deterministic, so they are computed once for the whole part (batched, threaded in C)
-- and later epochs only gather rows. Shuffling is a seeded permutation per epoch.
--
-- Work happens synchronously on the calling thread, batched: the feature code threads over
-- the clips of a batch. (A background C prefetch of augmented batches is not done: see
-- docs/data.md.)
local M = {}

local Loader = {}
Loader.__index = Loader
Loader.__name = "ser.data.Loader"

local known = { batch = true, shuffle = true, seed = true, seconds = true, sr = true, transform = true,
  features = true, augment = true, drop_last = true, cache = true, name = true, classes = true }

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- The feature step: nil/"waveform" -> [B, 1, T]; "logmel"/"mfcc" or {kind = "logmel", n_mels = ...}
-- -> ser.features.<kind>(wav [B, T], opts) = [B, 1, F, frames]; a function -> whatever it returns.
-- Returns fn, deterministic, description.
local function make_transform(spec)
  if spec == nil or spec == "waveform" or (type(spec) == "table" and spec.kind == "waveform") then
    return function(w)
      local s = w:shape()
      return w:view(s[1], 1, s[2])
    end, true, "waveform"
  end
  if type(spec) == "string" then spec = { kind = spec } end
  if type(spec) == "table" and spec.kind then
    local kind, fopts = spec.kind, {}
    for k, v in pairs(spec) do if k ~= "kind" then fopts[k] = v end end
    if kind ~= "logmel" and kind ~= "mfcc" then
      error(("loader: transform kind '%s' is unknown (expected waveform, logmel, mfcc or a function)"):format(tostring(kind)), 3)
    end
    return function(w)
      local ser = require "ser"
      return ser.features[kind](w, fopts)
    end, true, kind
  end
  if callable(spec) then return spec, false, "function" end
  error(("loader: transform must be \"waveform\", \"logmel\", \"mfcc\", {kind = ..., options} or a function, got %s")
    :format(type(spec)), 3)
end

-- xorshift64 stream from a seed; Lua 5.4 integers wrap, >> is a logical shift.
local function stream(seed)
  local s = (seed * -7046029254386353131 + 0x632BE59BD9B4E019) | 1
  return function(n)
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return (s >> 1) % n + 1
  end
end

function M.loader(part, opts)
  if type(part) ~= "table" or type(part.items) ~= "table" then
    error("loader: first argument must be a corpus part (from ser.data.scan / split / synthetic)", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not known[k] then error(("loader: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local batch = opts.batch or 8
  if type(batch) ~= "number" or batch < 1 or batch ~= math.floor(batch) then
    error(("loader: batch must be a whole number >= 1, got %s"):format(tostring(batch)), 2)
  end
  local sr, seconds = opts.sr or part.sr or 16000, opts.seconds or 4.0
  if type(sr) ~= "number" or sr < 1000 or sr ~= math.floor(sr) then
    error(("loader: sr must be a whole number of Hz >= 1000, got %s"):format(tostring(sr)), 2)
  end
  if type(seconds) ~= "number" or seconds <= 0 then
    error(("loader: seconds must be a positive number, got %s"):format(tostring(seconds)), 2)
  end
  if opts.augment ~= nil and not callable(opts.augment) then
    error(("loader: augment must be a function or a callable chain (ser.augment.chain), got %s"):format(type(opts.augment)), 2)
  end
  local transform, deterministic, kind = make_transform(opts.transform or opts.features)
  local self = setmetatable({
    part = part, items = part.items, classes = part.classes, n = #part.items, batch = batch,
    shuffle = opts.shuffle and true or false, seed = opts.seed or 0, sr = sr, seconds = seconds,
    samples = math.floor(seconds * sr + 0.5), transform = transform, kind = kind, augment = opts.augment,
    drop_last = opts.drop_last and true or false, name = opts.name or part.name or "loader", epoch = 0,
  }, Loader)
  -- features can be cached when nothing random happens between the waveform and the model
  self.cache = opts.cache
  if self.cache == nil then self.cache = deterministic and opts.augment == nil end
  return self
end

function Loader:count()
  if self.n == 0 then return 0 end
  return self.drop_last and self.n // self.batch or (self.n + self.batch - 1) // self.batch
end
Loader.__len = Loader.count

-- 1-based class index of every item, in item order.
function Loader:labels()
  local y = {}
  for i, it in ipairs(self.items) do y[i] = it.y end
  return y
end

-- The [N, samples] waveform matrix, decoded and resampled on first use.
function Loader:waveforms()
  if self.wav then return self.wav end
  if self.n == 0 then error(("loader %s: the part is empty, there is no audio to load"):format(self.name), 2) end
  local data = require "ser.core.data"
  local part, wav = self.part, nil
  if part.audio then
    if part.sr ~= self.sr then
      error(("loader %s: the in-memory corpus is at %d Hz but the loader asks for %d Hz; create it with sr = %d")
        :format(self.name, part.sr, self.sr, self.sr), 2)
    end
    local rows = {}
    for i, it in ipairs(self.items) do rows[i] = it.row end
    wav = data.gather(part.audio, rows)
  else
    local ser = require "ser"
    local audio = ser.audio
    if not audio or not (audio.load_many or audio.load) then
      error(("loader %s: ser.audio.load_many is not available to decode the files"):format(self.name), 2)
    end
    local paths = {}
    for i, it in ipairs(self.items) do paths[i] = it.path end
    local lopts = { sr = self.sr, mono = true, seconds = self.seconds, stack = true }
    local list, err
    if audio.load_many then
      list, err = audio.load_many(paths, lopts)
      if not list then error(("loader %s: %s"):format(self.name, tostring(err)), 2) end
    else
      list = {}
      for i, p in ipairs(paths) do
        local w, msg = audio.load(p, lopts)
        if not w then error(("loader %s: %s"):format(self.name, tostring(msg)), 2) end
        list[i] = w
      end
    end
    if type(list) == "table" and getmetatable(list) == nil then
      for i = 1, self.n do
        if type(list[i]) ~= "userdata" then
          error(("loader %s: %s did not decode: %s"):format(self.name, paths[i], tostring(list[i])), 2)
        end
      end
      wav = data.stack(list)
    else
      wav = list
    end
  end
  if wav:shape()[2] ~= self.samples then wav = data.fit_rows(wav, self.samples) end
  self.wav = wav
  return wav
end

-- Features of every item, computed once in chunks (used when self.cache).
function Loader:features()
  if self.feats then return self.feats end
  local data = require "ser.core.data"
  local wav, chunks, chunk = self:waveforms(), {}, 64
  for start = 1, self.n, chunk do
    local rows = {}
    for i = start, math.min(self.n, start + chunk - 1) do rows[#rows + 1] = i end
    local x = self.transform(data.gather(wav, rows))
    chunks[#chunks + 1] = x:contiguous()
  end
  self.feats = #chunks == 1 and chunks[1] or data.cat_rows(chunks)
  return self.feats
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

-- for b in loader:iter([epoch]) do ... end; b = {x =, y =, paths =, index =, epoch =, batch =}.
-- Without an epoch argument each call starts the next epoch.
function Loader:iter(epoch)
  if epoch == nil then
    self.epoch = self.epoch + 1
    epoch = self.epoch
  end
  local n_batches = self:count()
  if n_batches == 0 then return function() return nil end end
  local data, T = require "ser.core.data", require "ser.tensor"
  local source = self.cache and self:features() or self:waveforms()
  local order, b = self:order(epoch), 0
  return function()
    b = b + 1
    if b > n_batches then return nil end
    local rows, ys, paths = {}, {}, {}
    for i = (b - 1) * self.batch + 1, math.min(self.n, b * self.batch) do
      local k = order[i]
      rows[#rows + 1], ys[#ys + 1], paths[#paths + 1] = k, self.items[k].y, self.items[k].path
    end
    local x = data.gather(source, rows)
    if not self.cache then
      if self.augment then x = self.augment(x) end
      x = self.transform(x)
    end
    return { x = x, y = T.new(ys), paths = paths, index = rows, epoch = epoch, batch = b }
  end
end
Loader.__call = Loader.iter

function Loader:__tostring()
  return ("Loader(%s: %d clips, %d batches of %d, %s%s, %s)"):format(self.name, self.n, self:count(), self.batch,
    self.kind, self.augment and " + augment" or "", self.shuffle and "shuffled" or "in order")
end

return M
