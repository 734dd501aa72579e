-- JSON text for serve.lua's answers (encoding only: requests carry audio and query
-- arguments, never JSON). Tables with a positive length are arrays, others objects;
-- M.object(keys, values) keeps a key order (class order in "probabilities");
-- M.array(t) marks a table that may be empty as an array. NaN and infinities, which
-- JSON cannot hold, become null.
local M = {}

local ORDER, ARRAY = {}, {}

function M.object(keys, values)
  return setmetatable({ [ORDER] = keys, values = values }, ORDER)
end

function M.array(t)
  return setmetatable({ items = t }, ARRAY)
end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
              ["\t"] = "\\t" }

local function string_lit(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

local encode

local function number_lit(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if math.type(x) == "integer" then return tostring(x) end
  return ("%.6g"):format(x)
end

local function list(out, t, n, depth)
  local parts = {}
  for i = 1, n do parts[i] = encode(t[i], depth + 1) end
  out[#out + 1] = "[" .. table.concat(parts, ", ") .. "]"
end

function encode(v, depth)
  depth = depth or 0
  if depth > 32 then error("json: nesting deeper than 32 levels", 0) end
  local ty = type(v)
  if v == nil then return "null"
  elseif ty == "boolean" then return tostring(v)
  elseif ty == "number" then return number_lit(v)
  elseif ty == "string" then return string_lit(v)
  elseif ty ~= "table" then error("json: cannot encode a " .. ty, 0) end
  local out = {}
  local mt = getmetatable(v)
  if mt == ARRAY then
    list(out, v.items, #v.items, depth)
  elseif mt == ORDER then
    local parts = {}
    for _, k in ipairs(v[ORDER]) do parts[#parts + 1] = string_lit(k) .. ": " .. encode(v.values[k], depth + 1) end
    out[1] = "{" .. table.concat(parts, ", ") .. "}"
  elseif #v > 0 then
    list(out, v, #v, depth)
  else
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then error("json: object keys must be strings, got a " .. type(k), 0) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = string_lit(k) .. ": " .. encode(v[k], depth + 1) end
    out[1] = "{" .. table.concat(parts, ", ") .. "}"
  end
  return out[1]
end

function M.encode(v) return encode(v, 0) end

return M
