-- The optional ONNX checkers of the export specs, each nil when absent (the specs then stay
-- pending with a message saying what to install: scripts/install-deps.sh --onnx).
--   local ox = dofile(here .. "helpers/onnx_tools.lua")
--   ox.runtime   -- NODE_PATH holding onnxruntime-node, or nil
--   ox.run(model_path, x | {x, ...}, dir [, repeats]) -> output(s), info(s) (dims, ms) | error
--   ox.python    -- a python3 that imports onnx, or nil
--   ox.check(model_path) -> ok, message, { key = value }, opset, ir_version
--                   onnx.checker.check_model(full_check = True) and the metadata_props
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

-- Under make check-asan both checkers stay off (the exports still run, sanitized): they are
-- other processes, whose comparisons the plain `make test` makes (helpers/sanitized.lua).
local san = dofile(here .. "sanitized.lua")

-- SER_ONNXRUNTIME (a node_modules folder), else the one scripts/install-deps.sh --onnx fills
for _, dir in ipairs(san.on and {} or { os.getenv("SER_ONNXRUNTIME") or false, root .. ".deps/onnxruntime/node_modules" }) do
  if dir and succeeds("NODE_PATH=" .. quote(dir) .. " node -e 'require(\"onnxruntime-node\")'") then
    M.runtime = dir
    break
  end
end
M.missing_runtime = san.on and san.why("onnxruntime's comparison") or
  "node + onnxruntime-node not found (scripts/install-deps.sh --onnx installs them); onnxruntime comparison skipped"

-- xs: one tensor or a list; returns the outputs (a tensor or a list) and their infos. frames
-- (a model with the second input "frames"): per tensor of xs, the list of its clips' frames.
-- speaker (a speaker-normalised whisper model): { shift = T, scale = T } for every x; the
-- model's second output, "pooled" ([batch, shift's dims...]), is then infos[i].pooled.
function M.run(model, xs, dir, repeats, frames, speaker)
  local single = getmetatable(xs) ~= nil
  if single then xs, frames = { xs }, frames and { frames } end
  local args = {}
  local function write_text(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end
  for i, x in ipairs(xs) do
    local xin, yout = ("%s/onnx_x%d.f32"):format(dir, i), ("%s/onnx_y%d.f32"):format(dir, i)
    x:contiguous():tofile(xin)
    if frames then write_text(xin .. ".frames", table.concat(frames[i], ",")) end   -- the input of input.context
    if speaker then   -- the statistics inputs of a speaker-normalised whisper model
      speaker.shift:contiguous():tofile(xin .. ".speaker_shift")
      speaker.scale:contiguous():tofile(xin .. ".speaker_scale")
      write_text(xin .. ".speaker_dims", table.concat(speaker.shift:shape(), ","))
    end
    args[#args + 1] = ("%s %s %s"):format(quote(xin), table.concat(x:shape(), ","), quote(yout))
  end
  local ok, out = capture(("%sNODE_PATH=%s node %s %s %s"):format(repeats and ("ONNX_RUN_REPEATS=%d "):format(repeats) or "",
    quote(M.runtime), quote(here .. "onnx_run.js"), quote(model), table.concat(args, " ")))
  if not ok then error("onnxruntime failed on " .. model .. ": " .. out, 2) end
  local ys, infos = {}, {}
  for line in out:gmatch("[^\n]+") do
    local dims = {}
    for d in line:match('"dims":%[([%d,]*)%]'):gmatch("%d+") do dims[#dims + 1] = tonumber(d) end
    local i = #ys + 1
    ys[i] = T.fromfile(("%s/onnx_y%d.f32"):format(dir, i), dims)
    infos[i] = { dims = dims, ms = tonumber(line:match('"ms":([%d.]+)')), output = line:match('"output":"([^"]*)"') }
    if speaker then
      local pdims = { xs[i]:size(1), table.unpack(speaker.shift:shape()) }
      infos[i].pooled = T.fromfile(("%s/onnx_y%d.f32.pooled"):format(dir, i), pdims)
    end
  end
  assert(#ys == #xs, "onnx_run.js printed " .. #ys .. " results for " .. #xs .. " inputs: " .. out)
  if single then return ys[1], infos[1] end
  return ys, infos
end

if not san.on and succeeds("/usr/bin/python3 -c 'import onnx'") then M.python = "/usr/bin/python3" end
M.missing_python = san.on and san.why("onnx.checker") or
  "python3-onnx not found (scripts/install-deps.sh --onnx installs it); onnx.checker skipped"
if san.on then io.stderr:write("  [onnx] " .. M.missing_python .. "\n") end

-- onnx.checker.check_model(full_check = True), then the opset, IR version and metadata_props:
-- ok, message | ok, nil, meta, opset, ir
function M.check(model)
  local ok, out = capture(("%s -c %s %s"):format(M.python, quote(
    "import sys, onnx\nm = onnx.load(sys.argv[1])\nonnx.checker.check_model(m, full_check=True)\n" ..
    "print('opset', m.opset_import[0].version)\nprint('ir', m.ir_version)\n" ..
    "[print('meta', p.key, p.value.replace('\\n', ' ')) for p in m.metadata_props]"), quote(model)))
  if not ok then return false, out end
  local meta = {}
  for k, v in out:gmatch("meta (%S+) ([^\n]*)") do meta[k] = v end
  return true, nil, meta, tonumber(out:match("opset (%d+)")), tonumber(out:match("ir (%d+)"))
end

return M
