-- A small random Whisper encoder in the layout of openai/whisper-* on the Hugging
-- Face hub, written at test time so the pretrained specs run without ../shared:
-- write(dir, opts) creates dir (and its parents) and dir/model.safetensors (encoder tensors, plus a decoder
-- tensor the loader must skip) and dir/config.json. opts: layers (2), d_model (64),
-- heads (4), n_mels (80), positions (1500), seed (1), prefix ("model.encoder."),
-- config (a table of fields overriding config.json's, false: no config.json),
-- skip (a tensor name, without prefix, left out), extra (a name added), dtype
-- (how the file stores the tensors: "F32" (default), "F16" or "BF16").
-- Weights ~ N(0, 0.02^2), LayerNorm weights 1 + N(0, 0.1^2), positions the fixed
-- sinusoids of openai/whisper.
local ser = require "ser"
local T = ser.tensor

local function sinusoids(length, channels)
  local half, v = channels // 2, {}
  local inc = math.log(10000) / (half - 1)
  for t = 0, length - 1 do
    local row = {}
    for i = 0, half - 1 do
      local a = t * math.exp(-inc * i)
      row[i + 1], row[half + i + 1] = math.sin(a), math.cos(a)
    end
    v[t + 1] = row
  end
  return T.new(v)
end

local function write(dir, o)
  o = o or {}
  assert(ser.fs.mkdir_p(dir))
  local L, d, H, m = o.layers or 2, o.d_model or 64, o.heads or 4, o.n_mels or 80
  local P, ffn, pre = o.positions or 1500, 4 * (o.d_model or 64), o.prefix or "model.encoder."
  ser.manual_seed(o.seed or 1)
  local sd = {}
  local function w(name, ...) sd[pre .. name] = T.randn(...) * 0.02 end
  local function norm(name)
    sd[pre .. name .. ".weight"] = T.randn(d) * 0.1 + 1
    sd[pre .. name .. ".bias"] = T.randn(d) * 0.1
  end
  w("conv1.weight", d, m, 3); w("conv1.bias", d)
  w("conv2.weight", d, d, 3); w("conv2.bias", d)
  sd[pre .. "embed_positions.weight"] = sinusoids(P, d)
  for l = 0, L - 1 do
    local p = "layers." .. l .. "."
    norm(p .. "self_attn_layer_norm")
    for _, proj in ipairs { "q_proj", "k_proj", "v_proj", "out_proj" } do
      w(p .. "self_attn." .. proj .. ".weight", d, d)
      if proj ~= "k_proj" then w(p .. "self_attn." .. proj .. ".bias", d) end
    end
    norm(p .. "final_layer_norm")
    w(p .. "fc1.weight", ffn, d); w(p .. "fc1.bias", ffn)
    w(p .. "fc2.weight", d, ffn); w(p .. "fc2.bias", d)
  end
  norm("layer_norm")
  sd["model.decoder.embed_tokens.weight"] = T.randn(64, d)
  if o.skip then sd[pre .. o.skip] = nil end
  if o.extra then sd[pre .. o.extra] = T.zeros(d) end
  assert(ser.save(dir .. "/model.safetensors", sd, nil, { dtype = o.dtype or "F32" }))
  if o.config ~= false then
    local cfg = { model_type = "whisper", num_mel_bins = m, max_source_positions = P, d_model = d,
                  encoder_attention_heads = H, encoder_layers = L, encoder_ffn_dim = ffn,
                  activation_function = "gelu" }
    for k, v in pairs(o.config or {}) do cfg[k] = v end
    local keys = {}
    for k in pairs(cfg) do keys[#keys + 1] = k end
    table.sort(keys)
    local f = assert(io.open(dir .. "/config.json", "w"))
    f:write("{\n")
    for i, k in ipairs(keys) do
      local v = cfg[k]
      f:write(('  "%s": %s%s\n'):format(k, type(v) == "string" and ('"' .. v .. '"') or tostring(v),
                                        i < #keys and "," or ""))
    end
    f:write("}\n")
    f:close()
  end
  return dir
end

return write
