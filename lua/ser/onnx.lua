-- ONNX export of a checkpoint (docs/onnx.md). The model is rebuilt from the checkpoint's
-- graph description (metadata key "graph", written by ser.graph when the checkpoint was
-- saved) by the C core (src/export/), never by walking the Lua model again, so the ONNX
-- file, the C inference API and the description cannot drift apart.
--   ser.onnx.export(ckpt, out_path [, { props = { key = "value" } }]) -> true | nil, message
local core = require "ser.core.onnx"
local ckpt = require "ser.core.checkpoint"
local options = require "ser.options"

local M = { opset = core.opset }

local KNOWN = { props = true }

-- Why a checkpoint cannot be exported, with what to do about it; nil when it can.
local function refuse(path)
  local sd, meta = ckpt.load(path)
  if not sd then return meta end
  if path:match("%.pt$") or path:match("%.pth$") then
    return ("%s: a PyTorch state_dict carries no graph description; add one first with " ..
      "ser.graph.attach(%q, \"model.safetensors\") and export that file"):format(path, path)
  end
  if type(meta) ~= "table" or meta.graph == nil then
    return ("%s: the checkpoint has no graph description (metadata key \"graph\"); checkpoints written by " ..
      "this serlua's ser.train carry one, and ser.graph.attach(%q, \"with_graph.safetensors\") adds one to an " ..
      "older checkpoint"):format(path, path)
  end
end

function M.export(path, out, o)
  if type(path) ~= "string" then error(("ser.onnx.export: checkpoint path must be a string, got %s"):format(type(path)), 2) end
  if type(out) ~= "string" or out == "" then
    error(("ser.onnx.export: output path must be a non-empty string, got %s"):format(tostring(out)), 2)
  end
  o = o or {}
  options.check(o, KNOWN, "ser.onnx.export", 3)
  local why = refuse(path)
  if why then return nil, why end
  local props = { source = path:match("([^/]+)$") }
  for k, v in pairs(o.props or {}) do props[k] = v end
  return core.export(path, out, props)
end

return M
