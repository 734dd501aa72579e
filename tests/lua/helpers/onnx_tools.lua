-- The optional ONNX checkers of the export specs, each nil when absent (the specs then stay
-- pending with a message saying what to install: scripts/install-deps.sh --onnx).
--   local ox = dofile(here .. "helpers/onnx_tools.lua")
--   ox.runtime   -- NODE_PATH holding onnxruntime-node, or nil
--   ox.run(model_path, x, dir) -> output tensor, info (dims, ms) | error
--   ox.python    -- a python3 that imports onnx, or nil
--   ox.check(model_path) -> ok, message     onnx.checker.check_model(full_check = True)
--   ox.metadata(model_path) -> { key = value }, opset, ir_version
local T = require("ser").tensor

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local root = here .. "../../../"
local M = {}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function succeeds(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- SER_ONNXRUNTIME (a node_modules folder), else the one scripts/install-deps.sh --onnx fills
for _, dir in ipairs { os.getenv("SER_ONNXRUNTIME") or false, root .. ".deps/onnxruntime/node_modules" } do
  if dir and succeeds("NODE_PATH=" .. quote(dir) .. " node -e 'require(\"onnxruntime-node\")'") then
    M.runtime = dir
    break
  end
end
M.missing_runtime = "node + onnxruntime-node not found (scripts/install-deps.sh --onnx installs them); " ..
  "onnxruntime comparison skipped"

function M.run(model, x, dir, repeats)
  local xin, yout = dir .. "/onnx_x.f32", dir .. "/onnx_y.f32"
  x:contiguous():tofile(xin)
  local ok, out = capture(("NODE_PATH=%s node %s %s %s %s %s %s"):format(quote(M.runtime), quote(here .. "onnx_run.js"),
    quote(model), quote(xin), table.concat(x:shape(), ","), quote(yout), repeats or ""))
  if not ok then error("onnxruntime failed on " .. model .. ": " .. out, 2) end
  local dims = {}
  for d in out:match('"dims":%[([%d,]*)%]'):gmatch("%d+") do dims[#dims + 1] = tonumber(d) end
  return T.fromfile(yout, dims), { dims = dims, ms = tonumber(out:match('"ms":([%d.]+)')), output = out:match('"output":"([^"]*)"') }
end

if succeeds("/usr/bin/python3 -c 'import onnx'") then M.python = "/usr/bin/python3" end
M.missing_python = "python3-onnx not found (scripts/install-deps.sh --onnx installs it); onnx.checker skipped"

function M.check(model)
  return capture(("%s -c %s %s"):format(M.python, quote(
    "import sys, onnx\nm = onnx.load(sys.argv[1])\nonnx.checker.check_model(m, full_check=True)\nprint('ok')"), quote(model)))
end

function M.metadata(model)
  local ok, out = capture(("%s -c %s %s"):format(M.python, quote(
    "import sys, onnx\nm = onnx.load(sys.argv[1])\n" ..
    "print('opset', m.opset_import[0].version)\nprint('ir', m.ir_version)\n" ..
    "[print('meta', p.key, p.value.replace('\\n', ' ')) for p in m.metadata_props]"), quote(model)))
  assert(ok, out)
  local meta = {}
  for k, v in out:gmatch("meta (%S+) ([^\n]*)") do meta[k] = v end
  return meta, tonumber(out:match("opset (%d+)")), tonumber(out:match("ir (%d+)"))
end

return M
