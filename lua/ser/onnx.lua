-- ONNX export of a checkpoint (docs/onnx.md). The model is rebuilt from the checkpoint's
-- graph description (metadata key "graph", written by ser.graph when the checkpoint was
-- saved; docs/graph.md) by the C core (src/export/), never by walking the Lua model again,
-- so the ONNX file, the C inference API and the description cannot drift apart.
--   ser.onnx.export(ckpt, out_path [, { attach = true, props = { key = "value" } }])
--     -> info | nil, message        info = { path, bytes, seconds, model, classes, input }
-- attach = true: a checkpoint without a description (an older serlua one, a PyTorch .pt)
-- gets one first (ser.graph.attach into a temporary file beside out_path, removed after).
local core = require "ser.core.onnx"
local ckpt = require "ser.core.checkpoint"
local graph = require "ser.graph"
local options = require "ser.options"
local progress = require "ser.train.progress"

local M = { opset = core.opset }

local KNOWN = { attach = true, props = true }

local function no_graph(path)
  local pt = path:match("%.pth?$")
  return ("%s: %s no graph description (metadata key \"graph\"), which export reads; %s add one with " ..
    "--attach (export.lua) / attach = true (ser.onnx.export), or write a copy that has one with " ..
    "ser.graph.attach(%q, \"with_graph.safetensors\")")
    :format(path, pt and "a PyTorch state_dict carries" or "the checkpoint has",
            pt and "" or "checkpoints written by this serlua's ser.train carry one;", path)
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

function M.export(path, out, o)
  if type(path) ~= "string" or path == "" then
    error(("ser.onnx.export: checkpoint path must be a non-empty string, got %s"):format(tostring(path)), 2)
  end
  if type(out) ~= "string" or out == "" then
    error(("ser.onnx.export: output path must be a non-empty string, got %s"):format(tostring(out)), 2)
  end
  o = o or {}
  options.check(o, KNOWN, "ser.onnx.export", 3)
  local sd, meta = ckpt.load(path)
  if not sd then return nil, meta end
  local src, tmp = path, nil
  if type(meta) ~= "table" or meta.graph == nil or path:match("%.pth?$") then
    if not o.attach then return nil, no_graph(path) end
    tmp = out .. ".graph.tmp.safetensors"
    local ok, err = graph.attach(path, tmp)
    if not ok then
      os.remove(tmp)
      return nil, ("%s: cannot describe its model for export: %s"):format(path, tostring(err))
    end
    src = tmp
    sd, meta = ckpt.load(tmp)
  end
  local props = { source = path:match("([^/]+)$") }
  for k, v in pairs(o.props or {}) do props[k] = v end
  local t0 = progress.now()
  local ok, err = core.export(src, out, props)
  local seconds = progress.now() - t0
  if tmp then os.remove(tmp) end
  if not ok then return nil, err end
  local g = type(meta.graph) == "table" and meta.graph or {}
  return { path = out, bytes = file_size(out), seconds = seconds, model = g.model, classes = g.classes, input = g.input }
end

return M
