-- ser.tensor: the C tensor module plus what is easier to write in Lua:
-- printing (summarised like Torch7/PyTorch) and small conveniences.
local core = require "ser.core.tensor"

local T = {}
for k, v in pairs(core) do
  if k ~= "metatable" and k ~= "methods" then T[k] = v end
end
local methods = core.methods
local meta = core.metatable

local SUMMARY_THRESHOLD = 1000 -- more elements than this print summarised
local EDGE = 3                 -- entries kept at each end of a summarised dim

-- Indices to show along a dim of size n: all, or the first/last EDGE with a gap (0).
local function shown(n, summarise)
  local idx = {}
  if summarise and n > 2 * EDGE then
    for i = 1, EDGE do idx[#idx + 1] = i end
    idx[#idx + 1] = 0
    for i = n - EDGE + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[#idx + 1] = i end
  end
  return idx
end

-- One number format for the whole printout, chosen from the values shown.
local function formatter(values)
  local maxabs, integral, finite_seen = 0, true, false
  for _, v in ipairs(values) do
    if v == v and v ~= math.huge and v ~= -math.huge then
      finite_seen = true
      maxabs = math.max(maxabs, math.abs(v))
      if v ~= math.floor(v) then integral = false end
    end
  end
  local fmt
  if finite_seen and integral and maxabs < 1e9 then
    fmt = "%.0f"
  elseif maxabs ~= 0 and (maxabs >= 1e5 or maxabs < 1e-3) then
    fmt = "%.4e"
  else
    fmt = "%.4f"
  end
  local width = 0
  local function text(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    return (fmt:format(v):gsub("^%-0%.0+$", "0"))
  end
  for _, v in ipairs(values) do width = math.max(width, #text(v)) end
  return function(v) local s = text(v); return (" "):rep(width - #s) .. s end
end

local function collect(t, shape, summarise)
  -- gather shown values to pick one format
  local values = {}
  local function walk(sub, d)
    if d > #shape then values[#values + 1] = sub:item(); return end
    for _, i in ipairs(shown(shape[d], summarise)) do
      if i > 0 then walk(sub:select(1, i), d + 1) end
    end
  end
  walk(t, 1)
  return values
end

local function matrix_lines(m, fmt, summarise, lines)
  local shape = m:shape()
  local rows, cols = shown(shape[1], summarise), shown(shape[2], summarise)
  for _, r in ipairs(rows) do
    if r == 0 then
      lines[#lines + 1] = " ..."
    else
      local row, parts = m:select(1, r), {}
      for _, c in ipairs(cols) do parts[#parts + 1] = c == 0 and "..." or fmt(row[c]) end
      lines[#lines + 1] = " " .. table.concat(parts, " ")
    end
  end
end

local function tostring_tensor(t)
  local shape = t:shape()
  local footer = ("[ser.Tensor of shape [%s]%s]"):format(table.concat(shape, ","),
    t:requires_grad() and (t:grad_fn() and (", grad_fn=" .. t:grad_fn()) or ", requires_grad") or "")
  local n = t:numel()
  if #shape == 0 then return (formatter({ t:item() }))(t:item()):gsub("^%s+", "") .. "\n" .. footer end
  if n == 0 then return "[empty]\n" .. footer end
  local summarise = n > SUMMARY_THRESHOLD
  local fmt = formatter(collect(t, shape, summarise))
  local lines = {}
  if #shape == 1 then
    local parts = {}
    for _, i in ipairs(shown(shape[1], summarise)) do parts[#parts + 1] = i == 0 and "..." or fmt(t[i]) end
    lines[1] = " " .. table.concat(parts, " ")
  elseif #shape == 2 then
    matrix_lines(t, fmt, summarise, lines)
  else
    -- blocks "(i,j,.,.) =" over the leading dims
    local function blocks(sub, prefix, d)
      if d == #shape - 1 then
        lines[#lines + 1] = ("(%s,.,.) ="):format(table.concat(prefix, ","))
        matrix_lines(sub, fmt, summarise, lines)
        lines[#lines + 1] = ""
        return
      end
      for _, i in ipairs(shown(shape[d], summarise)) do
        if i == 0 then
          lines[#lines + 1] = "..."
          lines[#lines + 1] = ""
        else
          prefix[#prefix + 1] = i
          blocks(sub:select(1, i), prefix, d + 1)
          prefix[#prefix] = nil
        end
      end
    end
    blocks(t, {}, 1)
  end
  lines[#lines + 1] = footer
  return table.concat(lines, "\n")
end

meta.__tostring = tostring_tensor
meta.__name = "ser.Tensor"

function methods:type() return "ser.Tensor" end
function methods:float() return self end

function T.zeros_like(t) return T.zeros(t:shape()) end
function T.ones_like(t) return T.ones(t:shape()) end
function T.randn_like(t) return T.randn(t:shape()) end
function T.stack(list, dim)
  dim = dim or 1
  local parts = {}
  for i, t in ipairs(list) do parts[i] = t:unsqueeze(dim) end
  return T.cat(parts, dim)
end

T.methods = methods
return T
