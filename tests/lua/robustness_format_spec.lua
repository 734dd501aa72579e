-- Error messages must reach the user: lua_pushfstring / luaL_error understand only
-- %% %c %d %I %f %p %s %U (no widths, no %g/%x/%u/%ld/%zu). Any other conversion replaces
-- the intended message with "invalid option '%g' to 'lua_pushfstring'", so the user never
-- learns what was wrong. This scans the format strings of every binding file.
local root = (debug.getinfo(1, "S").source:match("^@(.*/)tests/lua/") or "./")

local allowed = { ["%"] = true, c = true, d = true, I = true, f = true, p = true, s = true, U = true }

-- The adjacent string literals starting at s[i] (C concatenates "a" "b"), or nil.
local function literal_at(s, i)
  local parts = {}
  while true do
    local ws = s:match("^%s*", i)
    local j = i + #ws
    if s:sub(j, j) ~= '"' then break end
    local k = j + 1
    local buf = {}
    while k <= #s do
      local ch = s:sub(k, k)
      if ch == "\\" then buf[#buf + 1] = s:sub(k, k + 1); k = k + 2
      elseif ch == '"' then break
      else buf[#buf + 1] = ch; k = k + 1 end
    end
    parts[#parts + 1] = table.concat(buf)
    i = k + 1
  end
  if #parts == 0 then return nil end
  return table.concat(parts)
end

local function bad_conversions(fmt)
  local bad, i = {}, 1
  while true do
    local p = fmt:find("%", i, true)
    if not p then break end
    local nxt = fmt:sub(p + 1, p + 1)
    if not allowed[nxt] then bad[#bad + 1] = "%" .. fmt:match("^[%d%.%-+ #lhzjt]*%a?", p + 1) end
    i = p + 2
  end
  return bad
end

describe("robustness: Lua error formats", function()
  it("checker sees unsupported conversions", function()
    assert.are.same({ "%g" }, bad_conversions("got %g, expected %d%%"))
    assert.are.same({ "%lld", "%5d" }, bad_conversions("%lld and %5d but %s %f %I %U %p %c"))
    assert.are.equal("a %s b", literal_at('  "a %s" \n   " b", x)', 1))
  end)

  it("every luaL_error / lua_pushfstring format in src/lua/*.c uses conversions Lua knows", function()
    local p = io.popen("ls " .. root .. "src/lua/*.c " .. root .. "src/serlua/*.c 2>/dev/null")
    local files = {}
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    assert.is_true(#files > 0, "no binding sources found under " .. root .. "src/lua")
    local problems = {}
    for _, f in ipairs(files) do
      local h = assert(io.open(f, "rb"))
      local src = h:read("a")
      h:close()
      for _, fn in ipairs{ "luaL_error", "lua_pushfstring" } do
        local pos = 1
        while true do
          local a, b = src:find(fn .. "%s*%(", pos)
          if not a then break end
          -- the format is the second argument: skip "L,"
          local comma = src:find(",", b + 1, true)
          local fmt = comma and literal_at(src, comma + 1)
          if fmt then
            local bad = bad_conversions(fmt)
            if #bad > 0 then
              local line = select(2, src:sub(1, a):gsub("\n", "")) + 1
              problems[#problems + 1] = ("%s:%d: %s uses %s"):format(f:gsub("^" .. root:gsub("%p", "%%%0"), ""), line,
                fn, table.concat(bad, " "))
            end
          end
          pos = b + 1
        end
      end
    end
    assert.are.same({}, problems)
  end)
end)
