-- A small random Whisper encoder and a few synthetic clips for embedding-cache specs:
-- make(tmp, tag) -> dir (a fresh folder from the spec's tmpdir helper), enc_dir (the encoder:
-- 2 layers, d_model 64) and paths (at least 4 one-second clips of 2 speakers, 2 classes).
-- Load with dofile.
local ser = require "ser"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local random_whisper = dofile(here .. "whisper_random.lua")

local M = {}

function M.make(tmp, tag)
  local dir = tmp.make(tag)
  local enc_dir = dir .. "/enc"
  random_whisper(enc_dir, { layers = 2, d_model = 64 })
  ser.data.synthetic { speakers = 2, per_class = 1, seconds = 1.0, seed = 3, out = dir .. "/wav",
                       classes = { "neutral", "happy" } }
  local paths = {}
  for i, it in ipairs(ser.data.scan(dir .. "/wav", { quiet = true }).items) do paths[i] = it.path end
  assert(#paths >= 4, "whisper_clips: expected at least 4 synthetic clips")
  return dir, enc_dir, paths
end

return M
