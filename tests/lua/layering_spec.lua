-- The layering of the C tree (DESIGN.md: calls flow down, nothing calls up), read from the
-- sources: which area's headers each file under src/<area>/ includes. Fails on an include
-- that goes up or sideways (src/core including autograd, src/audio including augment or
-- data), on Lua headers in the core, and on OpenMP in the bindings (src/lua/ only converts
-- and checks; a parallel loop there is core work a C program cannot reach).
require "ser" -- installs the ser.core.* modules
local walk = require("ser.core.data").walk

local paths = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/paths.lua")
local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."

-- What each core area may include besides itself. ops and autograd name each other: ops
-- record their nodes, and autograd's op table (oplist.h) points at the ops' backward
-- functions. data is the top of the audio side: it calls audio and augment; augment
-- calls audio; audio calls neither.
local ALLOWED = {
  core = {},
  ops = { core = true, autograd = true },
  autograd = { core = true, ops = true },
  optim = { core = true, autograd = true, ops = true },
  audio = { core = true },
  augment = { core = true, audio = true },
  data = { core = true, audio = true, augment = true },
  eval = { core = true, ops = true },
  io = { core = true },
  -- pretrained encoders (src/pretrained/): built from checkpoints (io), with their
  -- own front ends (audio), on the ops and autograd.
  pretrained = { core = true, ops = true, autograd = true, io = true, audio = true },
  -- the C inference API (src/infer/): checkpoints (io), clips (audio), the ops and the
  -- Whisper encoder; autograd only to switch recording off while a graph runs.
  infer = { core = true, ops = true, autograd = true, io = true, audio = true, pretrained = true },
  -- ONNX export (src/export/): a checkpoint's graph description and tensors (io) -> ONNX
  -- protobuf (its generated onnx.pb-c.h is the area's own header); a whisper-family model
  -- also writes its frozen encoder (pretrained) out as ONNX ops. It computes nothing.
  export = { core = true, io = true, pretrained = true },
  -- the HTTP server of serve.lua (src/http/: libmicrohttpd, raw PCM bodies)
  http = { core = true },
}
-- Not core areas: the bindings, the interpreter, and the MPI plug-in (src/mpi/: a Lua C
-- module linked against Open MPI and core/half.c only, loaded under mpirun).
local NOT_CORE = { lua = true, serlua = true, mpi = true }

-- The areas a file's text includes, with the line of each: "core/x.h" -> core,
-- "../autograd/x.h" -> autograd, "x.h" (no folder) -> the file's own area.
-- System headers (<...>) are ignored except Lua's, reported as area "lua.h".
local function includes(text, own)
  local found = {}
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local q = line:match('^%s*#%s*include%s*"([^"]+)"')
    if q then
      local path = q:gsub("^%./", ""):gsub("^%.%./", "")
      local area = path:match("^([^/]+)/") or own
      found[#found + 1] = { area = area, line = n, text = line }
    end
    local sys = line:match("^%s*#%s*include%s*<([^>]+)>")
    if sys and (sys:match("^lua") or sys:match("^lauxlib") or sys:match("^lualib")) then
      found[#found + 1] = { area = "lua.h", line = n, text = line }
    end
  end
  return found
end

-- Every violation in one file's text: "path:line: #include ... (area X may include a, b)".
local function violations(path, text, area)
  local out = {}
  local allowed = ALLOWED[area]
  for _, inc in ipairs(includes(text, area)) do
    if inc.area ~= area and not allowed[inc.area] then
      local names = {}
      for k in pairs(allowed) do names[#names + 1] = k end
      table.sort(names)
      out[#out + 1] = ("%s:%d: %s (src/%s may include only %s)"):format(path, inc.line, inc.text, area,
        #names > 0 and table.concat(names, ", ") or "its own headers and system ones")
    end
  end
  return out
end

local read = paths.read

local function sources(dir)
  local list = walk(dir)
  local out = {}
  for _, p in ipairs(list) do
    if p:match("%.[ch]$") then out[#out + 1] = p end
  end
  return out
end

describe("layering of src/", function()
  it("the checker flags an upward include and passes a legal one", function()
    local bad = violations("src/core/tensor.c", '#include "tensor.h"\n#include "../autograd/autograd.h"\n', "core")
    assert.are.equal(1, #bad)
    assert.matches("src/core/tensor.c:2:", bad[1], 1, true)
    assert.are.same({}, violations("src/data/x.c", '#include "audio/io.h"\n#include "augment/augment.h"\n', "data"))
    assert.are.equal(1, #violations("src/audio/x.c", '#include "data/prefetch.h"\n', "audio"))
    assert.are.equal(1, #violations("src/eval/x.c", "#include <lauxlib.h>\n", "eval"))
  end)

  it("no core file includes a header of an area above it, or Lua", function()
    local bad, unknown, seen = {}, {}, 0
    local areas = {}
    for _, p in ipairs(sources(root .. "/src")) do
      local area = p:sub(#root + 6):match("^([^/]+)/")
      if area and not NOT_CORE[area] then
        if not ALLOWED[area] then
          unknown[area] = true
        else
          areas[area] = true
          seen = seen + 1
          for _, v in ipairs(violations(p:sub(#root + 2), read(p), area)) do bad[#bad + 1] = v end
        end
      end
    end
    assert.is_true(seen > 50, "only " .. seen .. " core files found under " .. root .. "/src")
    assert.is_true(areas.core and areas.data and areas.audio, "src/core, src/data and src/audio must be present")
    assert.are.same({}, bad)
    local names = {}
    for k in pairs(unknown) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({}, names, "src/ has areas the layering table of tests/lua/layering_spec.lua does not know: "
      .. table.concat(names, ", ") .. "; add each with the areas it may include")
  end)

  it("nothing under src/core/ includes a header of another area", function()
    local bad = {}
    for _, p in ipairs(sources(root .. "/src/core")) do
      for _, inc in ipairs(includes(read(p), "core")) do
        if inc.area ~= "core" then bad[#bad + 1] = ("%s:%d: %s"):format(p:sub(#root + 2), inc.line, inc.text) end
      end
    end
    assert.are.same({}, bad)
  end)

  it("the bindings have no OpenMP: parallel loops belong to the core", function()
    local bad, n = {}, 0
    for _, p in ipairs(sources(root .. "/src/lua")) do
      n = n + 1
      local ln = 0
      for line in (read(p) .. "\n"):gmatch("([^\n]*)\n") do
        ln = ln + 1
        if line:match("^%s*#%s*pragma%s+omp") then bad[#bad + 1] = ("%s:%d: %s"):format(p:sub(#root + 2), ln, line) end
      end
    end
    assert.is_true(n > 5, "only " .. n .. " binding files found under " .. root .. "/src/lua")
    assert.are.same({}, bad)
  end)
end)
