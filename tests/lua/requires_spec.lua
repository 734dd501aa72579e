-- The Lua layering: no module of lua/ser requires a module that requires it back (directly
-- or through others), no library module requires the `ser` facade that loads it lazily, and
-- the experiments use the public surface only (`require "ser"`, argparse). The requires are
-- read from the sources: require "x" and require("x") with a literal name.
local paths = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/paths.lua")
local read = paths.read

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Module name of a file under lua/: lua/ser/train/init.lua -> ser.train.
local function module_name(path)
  return (path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

-- Every literal require in Lua source, comments left out.
local function requires(src)
  src = src:gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
  local out = {}
  for name in src:gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']") do out[#out + 1] = name end
  return out
end

-- graph: module -> list of modules it requires. Returns the first cycle found as a list
-- (a, b, ..., a), or nil.
local function find_cycle(graph)
  local state, stack = {}, {}
  local function visit(m)
    state[m] = "open"
    stack[#stack + 1] = m
    for _, d in ipairs(graph[m] or {}) do
      if graph[d] then
        if state[d] == "open" then
          local cycle, on = {}, false
          for _, s in ipairs(stack) do
            if s == d then on = true end
            if on then cycle[#cycle + 1] = s end
          end
          cycle[#cycle + 1] = d
          return cycle
        elseif not state[d] then
          local c = visit(d)
          if c then return c end
        end
      end
    end
    stack[#stack] = nil
    state[m] = "done"
  end
  local names = {}
  for m in pairs(graph) do names[#names + 1] = m end
  table.sort(names)
  for _, m in ipairs(names) do
    if not state[m] then
      local c = visit(m)
      if c then return c end
    end
  end
  return nil
end

local files = lines_of("find lua/ser -name '*.lua' | sort")
local graph = {}
for _, path in ipairs(files) do graph[module_name(path)] = requires(read(path)) end

describe("the Lua layering", function()
  it("reads every module of lua/ser and their requires", function()
    assert.is_true(#files > 30, "found only " .. #files .. " Lua files")
    assert.are.same({ "ser.train.batches", "ser.train.evaluate" }, (function()
      local out = {}
      for _, d in ipairs(graph["ser.train.distill"]) do
        if d == "ser.train.batches" or d == "ser.train.evaluate" then out[#out + 1] = d end
      end
      table.sort(out)
      return out
    end)())
  end)

  it("finds a cycle when there is one (made-up graphs)", function()
    assert.are.same({ "a", "b", "a" }, find_cycle { a = { "b" }, b = { "a" } })
    assert.are.same({ "b", "c", "d", "b" }, find_cycle { a = { "b" }, b = { "c" }, c = { "d" }, d = { "b", "x" } })
    assert.are.same({ "a", "a" }, find_cycle { a = { "a" } })
    assert.is_nil(find_cycle { a = { "b", "c" }, b = { "c" }, c = { "ser.core.tensor" } })
    -- and in real source text: two modules requiring each other
    assert.are.same({ "m.one", "m.two", "m.one" }, find_cycle {
      ["m.one"] = requires('local two = require "m.two"\nreturn {}'),
      ["m.two"] = requires('-- require "m.three" is a comment\nlocal one = require("m.one")\nreturn {}'),
    })
  end)

  it("has no module that requires a module requiring it back", function()
    local cycle = find_cycle(graph)
    assert.is_nil(cycle, cycle and ("require cycle: " .. table.concat(cycle, " -> ")))
  end)

  it("has no library module that requires the ser facade", function()
    for m, deps in pairs(graph) do
      if m ~= "ser" then
        for _, d in ipairs(deps) do assert.are_not.equal("ser", d, m .. " requires \"ser\"") end
      end
    end
  end)

  it("keeps the experiments on the public surface", function()
    for _, path in ipairs(lines_of("ls experiments/*.lua")) do
      for _, d in ipairs(requires(read(path))) do
        assert.is_true(d == "ser" or d == "argparse", path .. " requires the internal module " .. d)
      end
    end
  end)

  it("runs no shell from the library (folder and terminal checks go through ser.core.fs)", function()
    for _, path in ipairs(files) do
      local src = read(path):gsub("%-%-[^\n]*", "")
      for _, word in ipairs { "test -d", "test -t", "mkdir -p" } do
        assert.is_nil(src:find(word, 1, true), path .. " runs `" .. word .. "`")
      end
    end
  end)
end)
