-- Prints the encoder digest of a Whisper checkpoint: the SHA-256 of its encoder
-- tensors rounded to float16, in a canonical form (a safetensors file of the
-- encoder alone, names "model.encoder.*", F16, written by ser.save). Decoder
-- tensors, the file's own dtype and its name prefix do not change the digest, so
-- OpenAI's float32 model.safetensors from the Hugging Face hub and the float16
-- encoder-only files in ../shared/models give the same one. The checkpoint is
-- loaded as ser.pretrained.load does (a folder's config.json is checked too).
--   serlua scripts/encoder-digest.lua FOLDER|MODEL.safetensors
-- scripts/fetch-whisper.sh compares it with scripts/whisper-digests.txt.
local ser = require "ser"
local digest = require "ser.core.digest"

if #arg ~= 1 or arg[1] == "-h" or arg[1] == "--help" then
  io.stdout:write("usage: serlua scripts/encoder-digest.lua FOLDER|MODEL.safetensors\n")
  os.exit((arg[1] == "-h" or arg[1] == "--help") and 0 or 2)
end

local function fail(msg)
  io.stderr:write("encoder-digest: ", msg, "\n")
  os.exit(1)
end

local enc, err = ser.pretrained.load(arg[1])
if not enc then fail(err) end
local canonical = os.tmpname()
local ok, werr = ser.save(canonical, enc:state_dict(), nil, { dtype = "F16" })
if not ok then
  os.remove(canonical)
  fail(werr)
end
local sum, serr = digest.sha256_file(canonical)
os.remove(canonical)
if not sum then fail(serr) end
print(sum)
