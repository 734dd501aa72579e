-- ser.graph: the model graph description (docs/graph.md).
--   ser.graph.describe(model, meta [, o])  -> table | nil, reason   (ser.graph.describe)
--   ser.graph.of(path)                     -> the graph of a checkpoint (stored or described now) | nil, message
--   ser.graph.attach(in_path, out_path)    -> true | nil, message
-- attach writes a copy of any checkpoint the project loads (an older serlua one without a
-- graph, a notebook .pt state_dict) as a serlua safetensors checkpoint with its graph added;
-- the copy is written atomically (ser.save), so out_path may equal in_path.
local ckpt = require "ser.core.checkpoint"
local describe = require "ser.graph.describe"
local checkpoint = require "ser.train.checkpoint"

local M = { FORMAT = describe.FORMAT, VERSION = describe.VERSION, describe = describe.describe }

-- The model, its metadata and the graph of a checkpoint, the graph made from the model.
local function load(path)
  local model, meta = checkpoint.load(path)
  if not model then return nil, meta end
  local g, why = checkpoint.graph(model, meta)
  if not g then return nil, ("%s: no graph can describe this model: %s"):format(path, tostring(why)) end
  return model, meta, g
end

function M.of(path)
  local _, meta, g = load(path)
  if not meta then return nil, _ end
  return g
end

function M.attach(in_path, out_path)
  if type(in_path) ~= "string" or type(out_path) ~= "string" then
    return nil, ("ser.graph.attach: expected two paths (checkpoint in, checkpoint out), got %s, %s")
      :format(type(in_path), type(out_path))
  end
  local model, meta, g = load(in_path)
  if not model then return nil, meta end
  local out = {}
  for k, v in pairs(meta) do out[k] = v end
  -- the file's format marker is the writer's to set; the description of a state_dict's
  -- guessed class list is kept (classes_assumed) so that the copy says the same
  out.format, out.graph = nil, g
  out.model = out.model or g.model:lower()
  return ckpt.save(out_path, model:state_dict(), out)
end

return M
