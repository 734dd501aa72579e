-- Helpers of the serlua REPL: how echoed values are shown and what Tab completes.
-- Pure Lua and side-effect free so that they can be tested from busted and so that
-- pressing Tab or echoing a value never runs user code it does not have to: completion
-- follows only __index *tables* (an __index function could do anything), and the
-- printer calls nothing but tostring/__tostring and __name.
local M = {}

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

local getmetatable = debug.getmetatable  -- ignores __metatable, which hides nothing from us

-- Printing --------------------------------------------------------------------------------

-- depth: tables nested deeper print as {...}; items: entries shown per table;
-- width: a table that fits on one line this wide is printed on one line.
M.options = { depth = 2, items = 100, width = 80 }

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not M.is_keyword(s)
end

function M.is_keyword(s)
  for _, k in ipairs(KEYWORDS) do
    if k == s then return true end
  end
  return false
end

local function quote(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

-- Orders mixed keys deterministically: numbers first (by value), then strings, then
-- everything else by its tostring, so that the same table always prints the same way.
local KIND_RANK = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local ra, rb = KIND_RANK[ta] or 4, KIND_RANK[tb] or 4
  if ra ~= rb then return ra < rb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return mt ~= nil and mt.__tostring ~= nil
end

-- Indents every line by pad.
local function indent_all(s, pad)
  return pad .. (s:gsub("\n", "\n" .. pad))
end

local format_value

local function format_table(t, indent, depth, seen)
  if seen[t] then return "<cycle: " .. tostring(t) .. ">" end
  if depth >= M.options.depth then return "{...}" end
  seen[t] = true
  local n = rawlen(t)
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  local pad = indent .. "  "
  local parts, multiline, extra = {}, false, 0
  -- A value whose text spans lines (a tensor's __tostring) starts on its own line,
  -- indented one step further, so that its columns stay aligned.
  local function add(label, v)
    if #parts >= M.options.items then
      extra = extra + 1
      return
    end
    local s, block = format_value(v, pad, depth + 1, seen, true)
    if block and label then
      s = label .. "\n" .. indent_all(s, pad .. "  ")
    elseif block then
      s = s:gsub("\n", "\n" .. pad)  -- the first line gets pad from the separator
    elseif label then
      s = label .. " " .. s
    end
    if s:find("\n", 1, true) then multiline = true end
    parts[#parts + 1] = s
  end
  for i = 1, n do add(nil, rawget(t, i)) end
  for _, k in ipairs(keys) do
    local ks = is_identifier(k) and k or ("[" .. (format_value(k, pad, depth + 1, seen, true)) .. "]")
    add(ks .. " =", rawget(t, k))
  end
  seen[t] = nil  -- a table shared by two fields is not a cycle; only an ancestor is
  if extra > 0 then parts[#parts + 1] = ("... (%d more)"):format(extra) end
  if #parts == 0 then return "{}" end
  local flat = "{ " .. table.concat(parts, ", ") .. " }"
  if not multiline and #indent + #flat <= M.options.width then return flat end
  return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. indent .. "}"
end

-- Returns the text of v and whether it is a block: several lines of someone else's
-- __tostring, which a table shows on lines of their own. nested: inside a table,
-- where strings are quoted so that "1" and 1 differ.
function format_value(v, indent, depth, seen, nested)
  local tv = type(v)
  if tv == "string" then return nested and quote(v) or v, false end
  if tv == "table" and not has_tostring(v) then return format_table(v, indent, depth, seen), false end
  local s = tostring(v)
  return s, nested and s:find("\n", 1, true) ~= nil
end

-- The text echoed for the values of an expression: each value formatted, tab-separated
-- like print. Raises whatever a __tostring raises (the REPL reports it).
function M.format(...)
  local out = {}
  for i = 1, select("#", ...) do
    out[i] = (format_value((select(i, ...)), "", 0, {}, false))
  end
  return table.concat(out, "\t")
end

-- Completion ------------------------------------------------------------------------------

-- Where a lookup that misses in v goes next: the metatable's __index table, or, when
-- __index is a function (the tensor binding: numbers index elements, names methods),
-- the metatable's __methods table, which holds what that function looks names up in.
local function next_index(v)
  local mt = getmetatable(v)
  if not mt then return nil end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then return idx end
  local methods = rawget(mt, "__methods")
  if type(methods) == "table" then return methods end
  return nil
end

-- Calls fn(key, value) for the string keys of v and of the tables its __index chain goes
-- through (for userdata and strings, only the metatable's). Stops at cycles.
local function each_field(v, fn)
  local visited = {}
  while v ~= nil and not visited[v] do
    visited[v] = true
    if type(v) == "table" then
      for k, x in next, v do
        if type(k) == "string" then fn(k, x) end
      end
    end
    v = next_index(v)
  end
end

-- Looks a field up without running code: raw reads along __index tables only.
local function field(v, key)
  local visited = {}
  while v ~= nil and not visited[v] do
    visited[v] = true
    if type(v) == "table" then
      local x = rawget(v, key)
      if x ~= nil then return x end
    end
    v = next_index(v)
  end
  return nil
end

-- A module listed in v._lazy (ser.nn, ...) is loaded when the path goes through it:
-- completing "ser.nn." means the user is about to use ser.nn anyway.
local function lazy_field(v, name)
  local lazy = type(v) == "table" and rawget(v, "_lazy")
  if type(lazy) ~= "table" or rawget(lazy, name) == nil then return nil end
  local ok, x = pcall(function() return v[name] end)
  return ok and x or nil
end

-- Candidates for the word before the cursor: "pri" -> {"print"}, "string.fo" ->
-- {"string.format"}, "t:res" -> {"t:reshape", ...}. Returns a sorted array of full words.
-- Names starting with "_" are offered only once the word has the "_"; after ":" only
-- functions are offered.
function M.complete(word, env)
  env = env or _G
  local found, seen = {}, {}
  local function offer(s)
    if not seen[s] then
      seen[s] = true
      found[#found + 1] = s
    end
  end
  local path, sep, prefix = word:match("^(.-)([%.:])([%w_]*)$")
  if not path then
    if not word:match("^[%a_]?[%w_]*$") then return {} end
    each_field(env, function(k)
      if k:sub(1, #word) == word and is_identifier(k)
          and (k:sub(1, 1) ~= "_" or word:sub(1, 1) == "_") then
        offer(k)
      end
    end)
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #word) == word then offer(k) end
    end
  else
    if path == "" then return {} end
    local v = env
    for name in (path .. "."):gmatch("(.-)%.") do
      if not is_identifier(name) then return {} end
      local x = field(v, name)
      if x == nil then x = lazy_field(v, name) end
      if x == nil then return {} end
      v = x
    end
    local function consider(k, x)
      if k:sub(1, #prefix) == prefix and is_identifier(k)
          and (sep == "." or type(x) == "function")
          and (k:sub(1, 1) ~= "_" or prefix:sub(1, 1) == "_") then
        offer(path .. sep .. k)
      end
    end
    each_field(v, consider)
    -- Modules loaded on first access (ser.nn, ser.models, ...) are listed in a
    -- `_lazy` table (lua/ser/init.lua): offer them without loading them.
    local lazy = type(v) == "table" and rawget(v, "_lazy")
    if sep == "." and type(lazy) == "table" then
      for k in next, lazy do
        if type(k) == "string" then consider(k, true) end
      end
    end
  end
  table.sort(found)
  return found
end

return M
