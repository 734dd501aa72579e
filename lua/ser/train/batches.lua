-- What ser.train.fit accepts as a split, turned into one batch interface.
-- A split may be:
--   * a ser.data loader (ser.data.loader(part, {...})): used as it is;
--   * a corpus part (from corpus:split / corpus:folds): wrapped in a loader
--     with fit's options (batch, seconds, features, augment on train only);
--   * an in-memory dataset { x = tensor [N, ...], y = labels (N, 1-based),
--     classes = {...}, speakers = {...} (optional) }: batched here (PyTorch's TensorDataset + DataLoader),
--     for tests, notebooks and features computed elsewhere.
-- Every batch is { x = tensor [B, ...], y = tensor or array of 1-based labels }.
local T = require "ser.core.tensor"
local loader = require "ser.data.loader"
local augsteps = require "ser.data.augment_steps"
local dist = require "ser.dist"

local M = {}

local function is_loader(v)
  return type(v) == "table" and type(v.iter) == "function" and type(v.count) == "function"
    and type(v.labels) == "function"
end

local function is_part(v)
  return type(v) == "table" and type(v.items) == "table"
end

local function is_dataset(v)
  return type(v) == "table" and T.is_tensor(v.x) and v.y ~= nil
end

function M.labels(y)
  if T.is_tensor(y) then
    local out = {}
    for i, v in ipairs(y:totable()) do out[i] = math.tointeger(v) or v end
    return out
  end
  return y
end

-- In-memory dataset loader ----------------------------------------------------
local TensorLoader = {}
TensorLoader.__index = TensorLoader

-- shard (data-parallel training under mpirun): { rank =, size = }; batch is then the
-- global batch, of which this process takes its contiguous share (ser.dist.shard).
local function tensor_loader(ds, batch, shuffle, what, shard)
  local n = ds.x:shape()[1]
  local y = M.labels(ds.y)
  if #y ~= n then
    error(("ser.train: %s has %d examples in x but %d labels in y"):format(what, n, #y), 0)
  end
  for i, v in ipairs(y) do
    if type(v) ~= "number" or v ~= math.floor(v) or v < 1 then
      error(("ser.train: %s label %d is %s; labels are whole numbers from 1"):format(what, i, tostring(v)), 0)
    end
  end
  -- speakers (optional): the dataset's speakers, which fit records in the checkpoint
  return setmetatable({ x = ds.x, y = y, n = n, batch = batch, shuffle = shuffle, T = T, shard = shard,
                        speakers = ds.speakers }, TensorLoader)
end

function TensorLoader:size() return self.n end
-- Sharded, a last global batch with fewer examples than processes is left out (some
-- process would have none), on every process alike.
function TensorLoader:count()
  local full, rest = self.n // self.batch, self.n % self.batch
  if self.shard then return full + (rest >= self.shard.size and 1 or 0) end
  return full + (rest > 0 and 1 or 0)
end
function TensorLoader:all_labels() return self.y end

-- Shuffled with random keys from ser's generator, so ser.manual_seed decides the order.
function TensorLoader:iterate()
  local order = {}
  for i = 1, self.n do order[i] = i end
  if self.shuffle and self.n > 1 then
    local keys = self.T.rand(self.n):totable()
    table.sort(order, function(a, b) return keys[a] < keys[b] end)
    if self.shard then
      -- one order for every process: rank 0's (the generators differ after fit's reseed)
      local t = self.T.new(order)
      dist.broadcast(t, 0)
      for k, v in ipairs(t:totable()) do order[k] = math.tointeger(v) end
    end
  end
  local start, left = 1, self:count()
  return function()
    if left == 0 then return nil end
    left = left - 1
    local stop = math.min(self.n, start + self.batch - 1)
    local global = {}
    for k = start, stop do global[#global + 1] = order[k] end
    start = stop + 1
    if self.shard then global = dist.shard(global, self.shard.rank, self.shard.size) end
    local rows, ys, index = {}, {}, {}
    for _, k in ipairs(global) do
      rows[#rows + 1] = self.x:narrow(1, k, 1)
      ys[#ys + 1] = self.y[k]
      index[#index + 1] = k
    end
    return { x = #rows == 1 and rows[1] or self.T.cat(rows, 1), y = self.T.new(ys), index = index }
  end
end

-- An in-memory dataset { x, y } as a loader (batch size, shuffled or not, its name in messages).
M.dataset_loader = tensor_loader

-- The common interface --------------------------------------------------------
function M.iterate(l, epoch)
  if getmetatable(l) == TensorLoader then return l:iterate() end
  return l:iter(epoch)
end

function M.count(l)
  return l:count()
end

function M.all_labels(l)
  if getmetatable(l) == TensorLoader then return l:all_labels() end
  return l:labels()
end

-- The features each model input needs: the notebook's log-mel (64 mels,
-- n_fft 1024, hop 256, 20-7600 Hz, dB clamped at -80, per-utterance z-norm)
-- or the waveform, z-normalised per clip like the log-mels. (The notebook fed
-- CNN1D the raw waveform; then eval-mode BatchNorm takes a louder validation
-- speaker for a larger activation scale: validation loss went to 11-13 on
-- RAVDESS while training accuracy rose, best validation accuracy 22.9 %.)
function M.feature_spec(kind)
  if kind == "logmel" then return { kind = "logmel" } end
  if kind == "waveform" then return { kind = "waveform", normalize = true } end
  return kind
end

-- The feature normalisation a model input takes: speaker normalisation is for spectral
-- features; a waveform model keeps its per-clip z-norm (nil = the loader's default).
function M.normalize_for(kind, normalize)
  if kind == "waveform" then return nil end
  return normalize
end

-- "reference" = the notebook's augmentation (gain, noise, pitch on
-- the waveform; one time and one frequency mask on spectrogram features).
-- Anything else (a list of steps, a function, a chain) is handed to the loader
-- as given. Returns augment, spec_augment.
-- "speed" = the reference steps plus speed perturbation (0.9/1.0/1.1, the
-- augmentation the SER literature finds most useful) and a random time shift
-- of up to 0.25 s. "none" = no augmentation.
function M.augment_spec(a, kind)
  if a == "reference" or a == "speed" then
    local steps = augsteps.reference
    if a == "speed" then
      steps = { { "speed", factors = { 0.9, 1.0, 1.1 }, p = 1 }, { "shift", seconds = 0.25, p = 0.5 } }
      for _, step in ipairs(augsteps.reference) do steps[#steps + 1] = step end
    end
    return steps, kind ~= "waveform" and augsteps.reference_masks or nil
  end
  if a == "none" then return nil, nil end
  return a, nil
end

-- Builds the three loaders and the class list from fit's parts and options.
-- shard: { rank =, size = } under mpirun: the training loader yields this process's
-- share of global batches of o.batch * size examples.
function M.loaders(parts, o, model, shard)
  local out = {}
  local classes = o.classes
  for i, name in ipairs { "train", "val", "test" } do
    local p = parts[i]
    local sh = name == "train" and shard or nil
    local batch = sh and o.batch * sh.size or o.batch
    if p == nil or p == false then
      out[name] = nil
    elseif (is_dataset(p) or is_loader(p)) and o.normalize and o.normalize ~= "clip" then
      error(("ser.train.fit: normalize = \"%s\" applies to corpus parts, but the %s split is a %s; "
        .. "give the loader its own normalize option"):format(o.normalize, name, is_dataset(p) and "tensor dataset" or "loader"), 0)
    elseif is_dataset(p) then
      out[name] = tensor_loader(p, batch, name == "train", name, sh)
      classes = classes or p.classes
    elseif is_part(p) then
      if #p.items > 0 then
        local kind = o.features or model.input
        local kind_name = type(kind) == "table" and kind.kind or kind
        local aug, spec_aug
        if name == "train" then aug, spec_aug = M.augment_spec(o.augment, kind_name) end
        out[name] = loader.loader(p, { batch = batch, shard = sh, shuffle = name == "train", seed = o.seed,
          seconds = o.seconds, sr = o.sr, features = M.feature_spec(kind), augment = aug,
          spec_augment = spec_aug, name = name, trim = o.trim, normalize = M.normalize_for(kind_name, o.normalize) })
      end
      classes = classes or p.classes
    elseif is_loader(p) then
      if sh then
        error("ser.train.fit: data-parallel training (mpirun) shards the training data itself; pass the corpus "
          .. "part or an in-memory dataset, not a ready-made loader", 0)
      end
      out[name] = p
      classes = classes or p.classes
    else
      error(("ser.train.fit: the %s split is a %s; expected a ser.data loader, a corpus part or { x = tensor, y = labels }")
        :format(name, type(p)), 0)
    end
  end
  if type(classes) ~= "table" or #classes < 2 then
    error("ser.train.fit: the class names are unknown; pass opts.classes (a list of at least 2 names)", 0)
  end
  out.classes = classes
  return out
end

return M
