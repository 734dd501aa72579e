-- Augmentation steps for the loader's C worker: a list of steps written as data, so that
-- they can run outside Lua (src/audio/corpus_prefetch.c applies them with src/augment/).
--
--   { {"gain", lo = 0.8, hi = 1.2, p = 1},        x *= U(lo, hi)
--     {"noise", std = 0.005, p = 0.3},            x += N(0, std^2)     (or snr_db = 20)
--     {"pitch", semitones = 2, p = 0.3},          shift by U(-2, 2) semitones, length kept
--     {"speed", factors = {0.9, 1.0, 1.1}, p = 1} resample as sox speed, length kept
--     {"shift", seconds = 0.1, roll = false, p = 0.5} }
-- SpecAugment on the features: spec_augment = {time_masks = 1, time_width = 16,
--   freq_masks = 1, freq_width = 8, p = 1 (or time_p =, freq_p =), value = 0}.
-- A ser.augment chain (ser.augment.chain{...} / ser.augment.reference()) converts to both.
local options = require "ser.options"

local M = {}

function M.callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function num(step, i, key, def, lo, hi)
  local v = step[key]
  if v == nil then v = def end
  if type(v) ~= "number" or v ~= v or (lo and v < lo) or (hi and v > hi) then
    error(("loader: augment step %d (%s): %s must be a number%s, got %s"):format(i, tostring(step[1] or step.kind), key,
      lo and hi and (" in %g..%g"):format(lo, hi) or lo and (" >= %g"):format(lo) or "", tostring(v)), 4)
  end
  return v
end

local known = {
  gain = { lo = true, hi = true }, noise = { std = true, snr_db = true }, pitch = { semitones = true },
  speed = { factors = true }, shift = { seconds = true, samples = true, roll = true },
}

local function chain_meta(x)
  local mt = type(x) == "table" and getmetatable(x)
  return type(mt) == "table" and mt.__name == "ser.augment.Chain"
end
M.is_chain = chain_meta

-- A ser.augment chain as steps: its waveform stages become steps, its TimeMask/FreqMask
-- stages spec_augment fields. The worker draws from (seed, epoch, batch), so the stages'
-- own `generator` options do not apply there. Returns steps, spec_augment (or nil).
function M.from_chain(chain, sr, level)
  local steps, masks = {}, nil
  for i, t in ipairs(chain.stages) do
    local o, p = t.opts or {}, t.opts and t.opts.p
    if (t.name == "PitchShift" or t.name == "Speed") and o.sr and o.sr ~= sr then
      error(("loader: augment chain stage %d (%s) is set for %d Hz but the loader runs at %d Hz"):format(i, t.name,
        o.sr, sr), level + 1)
    end
    if t.name == "Gain" then
      steps[#steps + 1] = { "gain", lo = o.min, hi = o.max, p = p }
    elseif t.name == "Noise" then
      steps[#steps + 1] = { "noise", std = o.std, snr_db = o.snr_db, p = p }
    elseif t.name == "PitchShift" then
      steps[#steps + 1] = { "pitch", semitones = o.semitones, p = p }
    elseif t.name == "Speed" then
      steps[#steps + 1] = { "speed", factors = o.factors, p = p }
    elseif t.name == "TimeShift" then
      steps[#steps + 1] = { "shift", samples = o.max or 1600, roll = o.roll, p = p }
    elseif t.name == "TimeMask" or t.name == "FreqMask" then
      masks = masks or { time_masks = 0, freq_masks = 0 }
      local axis = t.name == "TimeMask" and "time" or "freq"
      if masks[axis .. "_masks"] > 0 then
        error(("loader: augment chain has two %s stages; give one with count = n"):format(t.name), level + 1)
      end
      masks[axis .. "_masks"] = o.count or 1
      masks[axis .. "_width"] = o.max_width or (axis == "time" and 16 or 8)
      masks[axis .. "_p"] = p or 1
      if o.value ~= nil then
        if masks.value ~= nil and masks.value ~= o.value then
          error("loader: augment chain masks fill with different values; the loader uses one", level + 1)
        end
        masks.value = o.value
      end
    else
      error(("loader: augment chain stage %d (%s) has no counterpart in the loader's worker"):format(i, tostring(t.name)),
        level + 1)
    end
  end
  return steps, masks
end

-- The C form of the steps ({kind, p, a, b, factors, roll} per step), or nil when augment is
-- not steps (a function, or nil).
function M.steps(augment, sr, level)
  if augment == nil then return nil end
  if type(augment) ~= "table" or M.callable(augment) then return nil end
  local out = {}
  for i, step in ipairs(augment) do
    if type(step) ~= "table" then
      error(("loader: augment step %d must be a table like {\"gain\", lo = 0.8, hi = 1.2}, got %s"):format(i, type(step)), level + 1)
    end
    local kind = step[1] or step.kind
    if not known[kind] then
      error(("loader: augment step %d kind '%s' is unknown (gain, noise, pitch, speed, shift)"):format(i, tostring(kind)), level + 1)
    end
    local fields, allowed = {}, { "kind", "p" }
    for k, v in pairs(step) do if k ~= 1 then fields[k] = v end end
    for k in pairs(known[kind]) do allowed[#allowed + 1] = k end
    table.sort(allowed)
    options.check(fields, allowed, ("loader: augment step %d (%s)"):format(i, kind), level + 1, "field")
    local c = { kind = kind, p = num(step, i, "p", 1, 0, 1) }
    if kind == "gain" then
      c.a, c.b = num(step, i, "lo", 0.8, 1e-6), num(step, i, "hi", 1.2, 1e-6)
      if c.b < c.a then error(("loader: augment step %d (gain): lo %g > hi %g"):format(i, c.a, c.b), level + 1) end
    elseif kind == "noise" then
      if step.snr_db ~= nil then
        c.kind, c.a = "noise_snr", num(step, i, "snr_db", 20, -20, 120)
      else
        c.a = num(step, i, "std", 0.005, 0)
      end
    elseif kind == "pitch" then
      c.a = num(step, i, "semitones", 2, 0, 12)
    elseif kind == "speed" then
      local f = step.factors or { 0.9, 1.0, 1.1 }
      if type(f) ~= "table" or #f < 1 or #f > 8 then
        error(("loader: augment step %d (speed): factors must be a list of 1..8 numbers"):format(i), level + 1)
      end
      c.factors = {}
      for j, v in ipairs(f) do
        if type(v) ~= "number" or v < 0.5 or v > 2 then
          error(("loader: augment step %d (speed): factor %s is not in 0.5..2"):format(i, tostring(v)), level + 1)
        end
        c.factors[j] = v
      end
    elseif kind == "shift" then
      c.a = step.samples and num(step, i, "samples", 0, 0) or math.floor(num(step, i, "seconds", 0.1, 0) * sr + 0.5)
      c.roll = step.roll and true or false
    end
    out[i] = c
  end
  return out
end

-- The mask fields of the worker from spec_augment, or nil.
function M.masks(spec, level)
  if spec == nil or spec == false then return nil end
  if type(spec) ~= "table" then error(("loader: spec_augment must be a table, got %s"):format(type(spec)), level + 1) end
  local fields = { time_masks = 1, time_width = 16, freq_masks = 1, freq_width = 8, p = 1, value = 0,
    time_p = false, freq_p = false }
  options.check(spec, { "time_masks", "time_width", "freq_masks", "freq_width", "p", "time_p", "freq_p", "value" },
    "loader: spec_augment", level + 1, "field")
  local m = {}
  for k, def in pairs(fields) do
    local v = spec[k]
    if v == nil then v = def end
    if v == false then v = spec.p or 1 end -- time_p / freq_p default to p
    if type(v) ~= "number" or v ~= v or (k ~= "value" and v < 0) then
      error(("loader: spec_augment.%s must be a number%s, got %s"):format(k, k == "value" and "" or " >= 0", tostring(v)), level + 1)
    end
    m[k] = v
  end
  for _, k in ipairs({ "p", "time_p", "freq_p" }) do
    if m[k] > 1 then error(("loader: spec_augment.%s must be in 0..1, got %g"):format(k, m[k]), level + 1) end
  end
  return { time_masks = m.time_masks, time_width = m.time_width, freq_masks = m.freq_masks,
    freq_width = m.freq_width, time_p = m.time_p, freq_p = m.freq_p, mask_value = m.value }
end

-- The reference pipeline's augmentation (the PyTorch notebook's recipe).
M.reference = {
  { "gain", lo = 0.8, hi = 1.2, p = 1 },
  { "noise", std = 0.005, p = 0.3 },
  { "pitch", semitones = 2, p = 0.3 },
}
M.reference_masks = { time_masks = 1, time_width = 16, freq_masks = 1, freq_width = 8 }

return M
