-- ser.augment: seeded, composable data augmentation.
--
--   local A = ser.augment
--   local aug = A.chain{ A.Gain{min = 0.8, max = 1.2}, A.Noise{std = 0.005, p = 0.3},
--                        A.PitchShift{semitones = 2, p = 0.3}, A.TimeMask{max_width = 16},
--                        A.FreqMask{max_width = 8} }
--   local wav2 = aug(wav)                     -- [T] or [B, T]: the waveform stages
--   local mel2, report = aug:spec(mel)        -- [F, T], [B, F, T], [B, 1, F, T]: the masks
--
-- Calling a chain on a waveform runs its waveform stages; on a spectrogram
-- (3-D or 4-D) its spectrogram stages. A training loop that augments the
-- waveform and then computes features calls aug(wav), then aug:spec(features)
-- when aug.has_spec. Every transform takes `p` (probability per example) and
-- an optional `generator` (ser.augment.generator(seed)); without one it draws
-- from the global generator seeded by ser.manual_seed. Example b of a batch
-- draws from a stream derived in order, so results do not depend on threads.
local C = require "ser.core.augment"
local options = require "ser.options"

local M = {}

local function shape_of(x)
  if type(x) ~= "userdata" or type(x.shape) ~= "function" then
    error(("augment: expected a tensor, got %s"):format(type(x)), 3)
  end
  return x:shape()
end

local Transform = {}
Transform.__index = Transform
Transform.__name = "ser.augment.Transform"
function Transform.__call(self, x) return self:apply(x) end
function Transform:__tostring() return self.label end

local function check_opts(name, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("augment.%s: options must be a table, got %s"):format(name, type(opts)), 3) end
  return options.check(opts, known, "augment." .. name, 3)
end

local function set(list)
  local s = { p = true, generator = true }
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- One constructor per transform: domain "wave" or "spec", the C function and its option names.
local function define(name, domain, fn, known, label, fixed)
  M[name] = function(opts)
    opts = check_opts(name, opts, set(known))
    local copts = {}
    for k, v in pairs(opts) do copts[k] = v end
    for k, v in pairs(fixed or {}) do copts[k] = v end
    local t = setmetatable({ name = name, domain = domain, opts = copts }, Transform)
    t.label = ("%s(%s)"):format(name, label(copts))
    function t.apply(_, x)
      shape_of(x)
      return fn(x, copts)
    end
    return t
  end
end

local function p_of(o) return o.p and (", p=" .. o.p) or "" end
define("Gain", "wave", C.gain, { "min", "max" },
  function(o) return ("%g..%g%s"):format(o.min or 0.8, o.max or 1.2, p_of(o)) end)
define("Noise", "wave", C.noise, { "std", "snr_db" },
  function(o) return (o.snr_db and ("snr %g dB"):format(o.snr_db) or ("std %g"):format(o.std or 0.005)) .. p_of(o) end)
define("PitchShift", "wave", C.pitch, { "semitones", "sr" },
  function(o) return ("+-%g semitones%s"):format(o.semitones or 2, p_of(o)) end)
define("Speed", "wave", C.speed, { "factors", "sr" },
  function(o) return ("%s%s"):format(table.concat(o.factors or { 0.9, 1.0, 1.1 }, "/"), p_of(o)) end)
define("TimeShift", "wave", C.time_shift, { "max", "roll" },
  function(o) return ("+-%d samples%s%s"):format(o.max or 1600, o.roll and ", roll" or "", p_of(o)) end)
define("TimeMask", "spec", C.mask, { "count", "max_width", "value" },
  function(o) return ("%d x <=%d frames%s"):format(o.count or 1, o.max_width or 16, p_of(o)) end, { axis = "time" })
define("FreqMask", "spec", C.mask, { "count", "max_width", "value" },
  function(o) return ("%d x <=%d bins%s"):format(o.count or 1, o.max_width or 8, p_of(o)) end, { axis = "freq" })

local Chain = {}
Chain.__index = Chain
Chain.__name = "ser.augment.Chain"

local function run(stages, x)
  local report = {}
  for i, t in ipairs(stages) do
    local r
    x, r = t:apply(x)
    report[i] = { name = t.name, report = r }
  end
  return x, report
end

-- chain(wav) / chain(spec): the stages of the matching domain, returns y, report.
function Chain:__call(x)
  local nd = #shape_of(x)
  if nd <= 2 then return run(self.wave_stages, x) end
  return run(self.spec_stages, x)
end

function Chain:wave(x) return run(self.wave_stages, x) end
-- Spectrogram stages; a 2-D input here is one [F, T] spectrogram.
function Chain:spec(x) return run(self.spec_stages, x) end

function Chain:__tostring()
  local parts = {}
  for _, t in ipairs(self.stages) do parts[#parts + 1] = t.label end
  return "augment.chain{" .. table.concat(parts, ", ") .. "}"
end

function M.chain(stages)
  if type(stages) ~= "table" then error("augment.chain: expected a list of transforms", 2) end
  local self = setmetatable({ stages = {}, wave_stages = {}, spec_stages = {} }, Chain)
  for i, t in ipairs(stages) do
    if getmetatable(t) ~= Transform then
      error(("augment.chain: stage %d is not an augment transform (got %s)"):format(i, type(t)), 2)
    end
    self.stages[i] = t
    local list = t.domain == "wave" and self.wave_stages or self.spec_stages
    list[#list + 1] = t
  end
  self.has_spec = #self.spec_stages > 0
  self.has_wave = #self.wave_stages > 0
  return self
end

-- The reference recipe: gain 0.8-1.2; noise sigma 0.005 with p 0.3; pitch +-2
-- semitones with p 0.3; one time mask up to 16 frames and one frequency mask
-- up to 8 bins. opts: sr (16000), generator.
function M.reference(opts)
  opts = check_opts("reference", opts, { sr = true, generator = true })
  local g, sr = opts.generator, opts.sr or 16000
  return M.chain{
    M.Gain{ min = 0.8, max = 1.2, generator = g },
    M.Noise{ std = 0.005, p = 0.3, generator = g },
    M.PitchShift{ semitones = 2, p = 0.3, sr = sr, generator = g },
    M.TimeMask{ max_width = 16, count = 1, generator = g },
    M.FreqMask{ max_width = 8, count = 1, generator = g },
  }
end

-- Functional forms: ser.augment.gain(x, opts) -> y, report, and so on.
M.generator = C.generator
M.gain, M.noise, M.pitch, M.speed, M.time_shift, M.mask = C.gain, C.noise, C.pitch, C.speed, C.time_shift, C.mask
-- pitch_shift(x, sr, semitones): a fixed shift of every row (no randomness).
M.pitch_shift = C.pitch_shift

return M
