-- Fills an embedding cache, for tests/lua/dist_spec.lua: under `mpirun -n N` every process
-- calls pooled with the same clips (collective), each encoding its share; rank 0 writes the
-- pooled features it got back and how many clips each process encoded.
--   serlua dist_cache.lua ENCODER_DIR WAV_DIR CACHE_DIR OUT_FILE
local ser = require "ser"
local frozen = require "ser.frozen_encoder"
local cachemod = require "ser.data.embedding_cache"

local argparse = require "argparse"
local p = argparse("dist_cache.lua", "Fill an embedding cache collectively (see tests/lua/dist_spec.lua).")
p:argument("encoder", "Whisper encoder folder.")
p:argument("wavs", "Folder of clips.")
p:argument("cache", "Cache root.")
p:argument("out", "Where rank 0 writes the pooled features and the clips each process encoded.")
local a = p:parse(arg)
local enc_dir, wav_dir, cache_dir, out = a.encoder, a.wavs, a.cache, a.out
ser.dist.init()
local enc, id = frozen.encoder(enc_dir)
local paths = {}
for i, it in ipairs(ser.data.scan(wav_dir, { quiet = true }).items) do paths[i] = it.path end
local c = cachemod.new { encoder = enc, identity = id, config = enc.config, dir = cache_dir,
  settings = { seconds = 4, sr = 16000 }, log = function() end, collective = true }
local x = c:pooled(paths)
local counts = ser.dist.allgather_values(c.misses)
if ser.dist.is_root() then
  assert(ser.save(out, { pooled = x:contiguous() }, { encoded = table.concat(counts, ",") }))
end
