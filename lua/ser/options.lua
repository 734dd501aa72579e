-- ser.options.check(opts, known, where[, level[, noun]]): the one check for misspelt option
-- names in the Lua library. known: a list (named in that order in the message) or a set
-- (named sorted). Raises "<where>: unknown <noun> '<k>' (expected a, b, c)" for the first
-- unknown key; noun defaults to "option". opts may be nil. Returns opts (or {}).
local M = {}

local function names_of(known)
  if #known > 0 then return known end
  local names = {}
  for k in pairs(known) do names[#names + 1] = tostring(k) end
  table.sort(names)
  return names
end

local function as_set(known)
  if #known == 0 then return known end
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  return set
end

function M.check(opts, known, where, level, noun)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: options must be a table, got %s"):format(where, type(opts)), (level or 1) + 1)
  end
  local set = as_set(known)
  local bad = {}
  for k in pairs(opts) do
    if not set[k] then bad[#bad + 1] = tostring(k) end
  end
  if #bad > 0 then
    table.sort(bad)   -- the same key is named whatever order pairs() visits them in
    error(("%s: unknown %s '%s' (expected %s)"):format(where, noun or "option", bad[1],
      table.concat(names_of(known), ", ")), (level or 1) + 1)
  end
  return opts
end

return M
