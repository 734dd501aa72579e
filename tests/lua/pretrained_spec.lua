-- Whisper in serlua: the log-mel front end (ser.features.whisper_logmel) and the
-- encoder (ser.pretrained), compared with a PyTorch re-implementation
-- (tests/lua/helpers/whisper_ref.py, plain torch.nn in float64) on real speech
-- (../shared/data/ravdess16k when present, generated audio otherwise), for the
-- two shared encoders (../shared/models, when present) and for a small random
-- encoder of the same layout generated here (always). Batches must equal their
-- clips run alone; bad input must give clear errors.
local ser = require "ser"
require "ser.core.audio" -- pins ser.so (see models_spec.lua)
local T = ser.tensor

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local ref_script = here .. "helpers/whisper_ref.py"
local shared = paths.shared
local san = dofile(here .. "helpers/sanitized.lua")
local numeric = dofile(here .. "helpers/numeric.lua")

local exists = paths.exists

local py = dofile(here .. "helpers/torch_python.lua")("torch, torchaudio")

local function run_ref(...)
  local cmd = py .. " " .. ref_script .. " " .. table.concat({ ... }, " ") .. " 2>&1"
  local p = assert(io.popen(cmd))
  local text = p:read("a")
  p:close()
  assert(text:match("ok%s*$"), "whisper_ref.py failed: " .. cmd .. "\n" .. text)
end

-- Logs every comparison, so that a run shows how close each encoder came, not only that it passed.
local function assert_close(label, got, want, tol) numeric.assert_close(label, got, want, tol, print) end

-- Real speech clips (16 kHz) from the shared RAVDESS copy, else generated voiced audio.
local function speech(n_clips)
  local clips, names = {}, {}
  local base = shared .. "/data/ravdess16k/Actor_01/"
  local files = { "03-01-01-01-01-01-01.flac", "03-01-05-02-02-01-01.flac", "03-01-03-01-01-02-01.flac" }
  for i = 1, n_clips do
    local f = base .. files[(i - 1) % #files + 1]
    if exists(f) then
      local wav = ser.audio.load(f, { sr = 16000, mono = true })
      clips[i], names[i] = wav, "RAVDESS " .. files[(i - 1) % #files + 1]
    else
      -- a vowel-like tone: harmonics of a gliding pitch, an envelope and a little noise
      ser.manual_seed(i)
      local n, v = 16000 + 4000 * i, {}
      local noise = T.randn(n):totable()
      local phase = 0
      for t = 1, n do
        local f0 = 110 + 40 * i + 30 * math.sin(2 * math.pi * 3 * t / 16000)
        phase = phase + 2 * math.pi * f0 / 16000
        local s = 0
        for h = 1, 12 do s = s + math.sin(h * phase) / h end
        v[t] = 0.2 * s * math.sin(math.pi * t / n) + 0.003 * noise[t]
      end
      clips[i], names[i] = T.new(v), "generated clip " .. i
    end
  end
  return clips, names
end

describe("ser.features.whisper_logmel", function()
  after_each(tmp.cleanup)
  local it_torch = py and it or pending

  it("has Whisper's shape: [n_mels, N // 160], batches [B, n_mels, N // 160]", function()
    local x = T.randn(16000 + 159)
    assert.are.same({ 80, 100 }, ser.features.whisper_logmel(x):shape())
    assert.are.same({ 128, 100 }, ser.features.whisper_logmel(x, { n_mels = 128 }):shape())
    local b = ser.features.whisper_logmel(T.randn(3, 4000))
    assert.are.same({ 3, 80, 25 }, b:shape())
    -- values: log10 clamped to max - 8, then (x + 4) / 4: at most 2 apart, max of the clip 0.25 above the floor of 8 dB * 1/4
    local y = ser.features.whisper_logmel(x):view(-1):totable()
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(y) do lo, hi = math.min(lo, v), math.max(hi, v) end
    assert.is_true(hi - lo <= 2 + 1e-6)
  end)

  it("refuses bad input with a clear message", function()
    local ok, err = pcall(ser.features.whisper_logmel, T.randn(150))
    assert.is_false(ok)
    assert.matches("whisper_logmel: a clip of 150 samples is too short", err)
    ok, err = pcall(ser.features.whisper_logmel, T.randn(2, 2, 500))
    assert.matches("expected a 16 kHz waveform %[T%] or a batch %[B, T%], got %[2,2,500%]", err)
    ok, err = pcall(ser.features.whisper_logmel, T.randn(500), { n_mels = 0 })
    assert.matches("n_mels", err)
    ok, err = pcall(ser.features.whisper_logmel, T.randn(500), { nmels = 80 })
    assert.matches("unknown option 'nmels'", err)
  end)

  it_torch("equals torch.stft + torchaudio melscale_fbanks(slaney, slaney) on speech to 1e-4", function()
    local dir = tmp.make("wmel")
    local clips, names = speech(2)
    -- every reference in one python run (torch's start-up is most of its time)
    local cases, args = {}, {}
    for i, wav in ipairs(clips) do
      wav:tofile(("%s/x%d.f32"):format(dir, i))
      for _, n_mels in ipairs { 80, 128 } do
        local c = { i = i, n_mels = n_mels, out = ("%s/ref%d_%d.f32"):format(dir, i, n_mels) }
        cases[#cases + 1] = c
        args[#args + 1] = ("%s/x%d.f32 %d %d %s"):format(dir, i, wav:shape()[1], n_mels, c.out)
      end
    end
    run_ref("logmel", table.concat(args, " "))
    for _, c in ipairs(cases) do
      local wav, n_mels = clips[c.i], c.n_mels
      local n = wav:shape()[1]
      local want = T.fromfile(c.out, { n_mels, n // 160 })
      local got = ser.features.whisper_logmel(wav, { n_mels = n_mels })
      local _, worst = numeric.rel_err_at(got, want, 1e-30)
      print(("  %s, %d mels, %d frames: max abs err %.3g"):format(names[c.i], n_mels, n // 160, worst))
      assert.is_true(worst <= 1e-4)
      -- a batch of the same clip twice equals the clip
      local b = ser.features.whisper_logmel(T.cat({ wav:view(1, -1), wav:view(1, -1) }, 1), { n_mels = n_mels })
      assert.are.equal(0, select(2, numeric.rel_err_at(b:select(1, 2), got, 1e-30)))
    end
  end)
end)

-- log-mels of the clips zero-padded into one batch [B, n_mels, Tmax], and their lengths
local function batch_of(enc, clips)
  local mels, lengths, Tmax = {}, {}, 0
  for i, wav in ipairs(clips) do
    mels[i] = enc:frontend(wav)
    lengths[i] = mels[i]:shape()[2]
    Tmax = math.max(Tmax, lengths[i])
  end
  local m = enc.config.n_mels
  local x = T.zeros(#clips, m, Tmax)
  for i, mel in ipairs(mels) do
    x:select(1, i):narrow(2, 1, lengths[i]):copy_(mel)
  end
  return x, lengths, mels
end

-- Our batched outputs against the reference run clip by clip in float64.
local function check_parity(enc, model_path, clips, label, tol)
  local dir = tmp.make("wenc")
  local x, lengths = batch_of(enc, clips)
  local B, m, Tn = table.unpack(x:shape())
  x:tofile(dir .. "/x.f32")
  run_ref("encode", model_path, dir .. "/x.f32", B, m, Tn, table.concat(lengths, ","), dir .. "/ref")
  local L, d, T2 = enc.config.layers, enc.config.d_model, (Tn + 1) // 2
  local want_last = T.fromfile(dir .. "/ref_last.f32", { B, T2, d })
  local want_hidden = T.fromfile(dir .. "/ref_hidden.f32", { L + 1, B, T2, d })
  local y = enc(x, { lengths = lengths })
  assert.are.same({ B, T2, d }, y:shape())
  assert_close(label .. ", last hidden state", y, want_last, tol)
  local hs = enc:hidden_states(x, { lengths = lengths })
  assert.are.equal(L + 1, #hs)
  for i = 1, L + 1 do
    assert_close(("%s, hidden state %d"):format(label, i - 1), hs[i], want_hidden:select(1, i), tol)
  end
end

describe("ser.pretrained (Whisper encoder)", function()
  after_each(tmp.cleanup)
  local it_torch = py and it or pending

  it("loads a generated encoder and reports its config", function()
    local dir = random_whisper(tmp.make("wrand"), { layers = 2, d_model = 64, heads = 4, n_mels = 80 })
    local enc = assert(ser.pretrained.load(dir))
    local c = enc.config
    assert.are.equal("whisper", c.family)
    assert.are.same({ 2, 64, 4, 80, 256, 1500 }, { c.layers, c.d_model, c.heads, c.n_mels, c.ffn_dim, c.max_positions })
    assert.is_true(c.has_config)
    -- parameters: convs, positions, 2 blocks, final norm (the decoder tensor is not loaded)
    local d, f = 64, 256
    local per_block = 4 * d + 4 * d * d + 3 * d + 2 * d * f + f + d
    assert.are.equal(d * 80 * 3 + d + d * d * 3 + d + 1500 * d + 2 * per_block + 2 * d, c.params)
    local x = enc:frontend(T.randn(8000) * 0.1)
    assert.are.same({ 80, 50 }, x:shape())
    assert.are.same({ 1, 25, 64 }, enc(x:view(1, 80, 50)):shape())
    local hs = enc:hidden_states(x:view(1, 80, 50))
    assert.are.equal(3, #hs)
    assert.are.same({ 1, 25, 64 }, hs[3]:shape())
    -- the same weights without config.json (heads = d_model / 64 then) and without the "model." prefix
    local dir2 = random_whisper(tmp.make("wrand"), { layers = 1, d_model = 128, n_mels = 128, config = false,
                                                     prefix = "encoder." })
    local enc2 = assert(ser.pretrained.load(dir2 .. "/model.safetensors"))
    assert.are.same({ 1, 128, 2, 128, false }, { enc2.config.layers, enc2.config.d_model, enc2.config.heads,
                                                 enc2.config.n_mels, enc2.config.has_config })
    assert.are.same({ 2, 13, 128 }, enc2(T.randn(2, 128, 25)):shape())
  end)

  it("gives each clip of a padded batch the outputs it has alone", function()
    local dir = random_whisper(tmp.make("wrand"), { layers = 2, d_model = 64, heads = 4 })
    local enc = assert(ser.pretrained.load(dir))
    local clips = speech(3)
    local x, lengths, mels = batch_of(enc, clips)
    -- garbage in the padding must not matter either: the padded frames are ignored
    local noisy = x:clone()
    for i = 1, #clips do
      local n = lengths[i]
      if n < x:shape()[3] then noisy:select(1, i):narrow(2, n + 1, x:shape()[3] - n):copy_(
          T.randn(80, x:shape()[3] - n) * 5) end
    end
    local y = enc(noisy, { lengths = lengths })
    local hs = enc:hidden_states(x, { lengths = lengths })
    for i, mel in ipairs(mels) do
      local n2 = (lengths[i] + 1) // 2
      local alone = enc(mel:view(1, 80, -1))
      local alone_hs = enc:hidden_states(mel:view(1, 80, -1))
      assert_close("clip " .. i .. " batched vs alone", y:select(1, i):narrow(1, 1, n2), alone:select(1, 1), 1e-5)
      for l = 1, #hs do
        assert.is_true(numeric.rel_err_at(hs[l]:select(1, i):narrow(1, 1, n2), alone_hs[l]:select(1, 1), 1e-30) <= 1e-5)
      end
      -- rows past the clip are zero
      if n2 < y:shape()[2] then
        assert.are.equal(0, y:select(1, i):narrow(1, n2 + 1, y:shape()[2] - n2):abs():sum():item())
      end
    end
  end)

  it_torch("matches the PyTorch reference on a generated encoder (every hidden state, batch of 3 clips)", function()
    local dir = random_whisper(tmp.make("wrand"), { layers = 2, d_model = 64, heads = 4 })
    local enc = assert(ser.pretrained.load(dir))
    check_parity(enc, dir, speech(3), "random 2x64x4", 1e-4)
  end)

  for _, name in ipairs { "whisper-tiny.en", "whisper-base" } do
    local path = shared .. "/models/" .. name
    local have = exists(path .. "/model.safetensors")
    -- sanitized, the full-size encoders cost minutes and run the code the small one above runs
    local it_real = (py and have) and san.plain_it(it, pending, name .. " at full size") or pending
    it_real(name .. " (../shared/models) matches the PyTorch reference on real speech", function()
      local enc = assert(ser.pretrained.load(path))
      check_parity(enc, path, speech(3), name, 1e-4)
    end)
  end

  -- amp runs the encoder's GEMMs in bf16 (fp32 sums). Whisper-base's last blocks
  -- carry channels near +-280 and amplify the rounding: PyTorch's own bf16
  -- autocast keeps only cosine 0.978 with fp32 on its worst frame of these clips
  -- (ours 0.91; hidden states before the last block 0.99+). So: the median frame
  -- and each clip's mean-pooled vector (what the emotion heads read) keep cosine
  -- > 0.999, and no frame falls below 0.85.
  local bf16 = require("ser.core.nn_cnn").bf16_supported()
  for _, name in ipairs { "random 2x64x4", "whisper-base" } do
    local path = name == "whisper-base" and shared .. "/models/whisper-base" or nil
    local it_amp = (bf16 and (not path or exists(path .. "/model.safetensors")))
      and (path and san.plain_it(it, pending, name .. " at full size") or it) or pending
    it_amp(name .. ": amp (bf16 GEMMs) stays close to fp32 (cosine per frame and per pooled clip)", function()
      path = path or random_whisper(tmp.make("wrand"), { layers = 2, d_model = 64, heads = 4 })
      local enc = assert(ser.pretrained.load(path))
      local x, lengths = batch_of(enc, speech(3))
      local y32, hs32 = enc(x, { lengths = lengths }), enc:hidden_states(x, { lengths = lengths })
      local prev = ser.set_amp(true)
      local prev_rule = require("ser.core.nn_cnn").amp_rule("bf16") -- bf16 even where fp32 measured faster
      local ok, y16, hs16 = pcall(function()
        return enc(x, { lengths = lengths }), enc:hidden_states(x, { lengths = lengths })
      end)
      ser.set_amp(prev)
      require("ser.core.nn_cnn").amp_rule(prev_rule)
      assert(ok, y16)
      local function cosines(p, q) -- rows of p, q [n, d]
        return ((p * q):sum(2) / ((p * p):sum(2) * (q * q):sum(2)):sqrt()):totable()
      end
      local function check(a, b, what)
        local frames, pooled = {}, 1
        for i, n in ipairs(lengths) do
          local n2 = (n + 1) // 2
          local p, q = a:select(1, i):narrow(1, 1, n2), b:select(1, i):narrow(1, 1, n2)
          for _, c in ipairs(cosines(p, q)) do frames[#frames + 1] = c end
          pooled = math.min(pooled, cosines(p:mean(1):view(1, -1), q:mean(1):view(1, -1))[1])
        end
        table.sort(frames)
        local median = frames[(#frames + 1) // 2]
        print(("  %s, %s: amp vs fp32 cosine: worst frame %.6f, median frame %.7f, worst pooled clip %.7f"):format(
          name, what, frames[1], median, pooled))
        assert.is_true(median > 0.999 and pooled > 0.999 and frames[1] > 0.85)
      end
      assert.is_true((y16 - y32):abs():sum():item() > 0) -- it did run in bf16
      check(y16, y32, "output")
      for l = 1, #hs32 do check(hs16[l], hs32[l], "hidden state " .. (l - 1)) end
    end)
  end

  it("refuses bad checkpoints with clear messages (and nil, msg from load)", function()
    local base = tmp.make("wbad")
    local function dir(tag, o)
      local d = base .. "/" .. tag
      return random_whisper(d, o)
    end
    local function refused(path, pattern)
      local enc, err = ser.pretrained.load(path)
      assert.is_nil(enc)
      print("  " .. err)
      assert.matches(pattern, err)
    end
    refused(base .. "/nothing", "pretrained.load: whisper: cannot open '.*nothing'.*expected a folder with model.safetensors")
    refused(base, "holds no model.safetensors.*Hugging Face")
    -- truncated
    local good = dir("good", { layers = 1 })
    local f = assert(io.open(good .. "/model.safetensors", "rb"))
    local bytes = f:read("a")
    f:close()
    os.execute("mkdir -p " .. base .. "/cut")
    f = assert(io.open(base .. "/cut/model.safetensors", "wb"))
    f:write(bytes:sub(1, #bytes // 2))
    f:close()
    refused(base .. "/cut", "cut/model.safetensors.*beyond the %d+ data bytes %(truncated file%?%)")
    -- another family: a serlua CNN checkpoint
    local other = base .. "/cnn.safetensors"
    assert(ser.save(other, ser.models.CNN2D{ classes = 8 }:state_dict()))
    refused(other, "is not a Whisper encoder checkpoint: it has no tensor 'model.encoder.conv1.weight'")
    -- config.json that disagrees with the tensors
    refused(dir("cfg_d", { layers = 1, config = { d_model = 96 } }),
      "config.json' says d_model = 96, but the weights have 64 %(conv1.weight%)")
    refused(dir("cfg_l", { layers = 2, config = { encoder_layers = 4 } }),
      "says encoder_layers = 4, but the weights have 2")
    refused(dir("cfg_m", { layers = 1, config = { num_mel_bins = 128 } }), "says num_mel_bins = 128, but the weights have 80")
    refused(dir("cfg_t", { layers = 1, config = { model_type = "wav2vec2" } }),
      "describes a model of type 'wav2vec2', not 'whisper'")
    refused(dir("cfg_h", { layers = 1, config = { encoder_attention_heads = 5 } }), "not divisible by encoder_attention_heads")
    -- missing and unexpected tensors
    refused(dir("miss", { layers = 2, skip = "layers.1.fc2.bias" }), "has no tensor 'model.encoder.layers.1.fc2.bias'")
    refused(dir("extra", { layers = 1, extra = "layers.0.self_attn.k_proj.bias" }),
      "encoder tensor this architecture does not use: 'model.encoder.layers.0.self_attn.k_proj.bias'")
    assert.has_error(function() ser.pretrained.load(42) end,
      "pretrained.load: expected a folder or a .safetensors path (string), got number")
  end)

  it("refuses bad input with clear messages", function()
    local enc = assert(ser.pretrained.load(random_whisper(tmp.make("wrand"), { layers = 1 })))
    local function fails(pattern, ...)
      local ok, err = pcall(...)
      assert.is_false(ok)
      print("  " .. err)
      assert.matches(pattern, err)
    end
    fails("input of 3001 frames %(30.01 s%) is longer than Whisper's 30 s window %(at most 3000 frames",
      enc, T.zeros(1, 80, 3001))
    fails("expected a log%-mel batch %[B, 80, T%] %(80 mel bins%), got %[1,64,100%]", enc, T.zeros(1, 64, 100))
    fails("expected a log%-mel batch %[B, 80, T%]", enc, T.zeros(80, 100))
    fails("'lengths' has 1 entries, the batch %[2,80,100%] has 2 clips", enc, T.zeros(2, 80, 100), { lengths = { 100 } })
    fails("length of clip 2 is 101 frames, expected 1..100", enc, T.zeros(2, 80, 100), { lengths = { 100, 101 } })
    fails("lengths%[1%] must be a whole number of frames >= 1, got 0", enc.hidden_states, enc, T.zeros(1, 80, 10),
      { lengths = { 0 } })
    fails("unknown option 'length'", enc, T.zeros(1, 80, 10), { length = { 10 } })
    -- exactly 30 s is fine
    assert.are.same({ 1, 1500, 64 }, enc(T.zeros(1, 80, 3000)):shape())
  end)
end)
