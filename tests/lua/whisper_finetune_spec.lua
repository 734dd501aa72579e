-- The Whisper encoder as a module for fine-tuning (enc:module{ finetune_layers = N },
-- lua/ser/pretrained/whisper_module.lua): its forward against the C encoder's
-- (enc:hidden_states) for every N on a random 2-layer encoder (always) and on
-- ../shared/models/whisper-tiny.en with RAVDESS speech (when present); its
-- gradients against PyTorch autograd in float64 (tests/lua/helpers/whisper_grad_ref.py)
-- and finite differences; the frozen part gets no gradient and is not changed by an
-- optimizer step; state_dict round trips with enc:state_dict(); SpecAugment stays
-- inside each clip; a small head on top trains (fp32 and amp).
local ser = require "ser"
require "ser.core.audio" -- pins ser.so (see models_spec.lua)
local T = ser.tensor
local F = ser.nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local grad_ref = here .. "helpers/whisper_grad_ref.py"
local shared = paths.shared
local san = dofile(here .. "helpers/sanitized.lua")
local numeric = dofile(here .. "helpers/numeric.lua")

local exists = paths.exists

local py = dofile(here .. "helpers/torch_python.lua")()
local bf16 = require("ser.core.nn_cnn").bf16_supported()

local function assert_close(label, got, want, tol)
  local r = numeric.rel_err(got, want, 1e-30)
  print(("  %s: max |diff| / max |ref| = %.3g (bound %g)"):format(label, r, tol))
  assert(r <= tol, ("%s: relative error %.3g > %g"):format(label, r, tol))
end

-- A batch of log-mel-like input [B, 80, T] with noise in the padding past each length.
local function batch(seed, B, Tn, lengths)
  ser.manual_seed(seed)
  local x = T.randn(B, 80, Tn) * 0.5
  for b = 1, B do
    if lengths[b] < Tn then x:select(1, b):narrow(2, lengths[b] + 1, Tn - lengths[b]):copy_(T.randn(80, Tn - lengths[b]) * 5) end
  end
  return x
end

local function random_encoder(tag)
  return assert(ser.pretrained.load(random_whisper(tmp.make(tag), { layers = 2, d_model = 64, heads = 4 })))
end

-- the module's hidden states and last output against the C encoder's
local function check_forward(enc, x, lengths, N, tol, label)
  local m = enc:module{ finetune_layers = N }
  local want = enc:hidden_states(x, { lengths = lengths })
  local want_last = enc(x, { lengths = lengths })
  local hs, last = m(x, { lengths = lengths })
  assert.are.equal(#want, #hs)
  for i = 1, #want do
    assert.are.same(want[i]:shape(), hs[i]:shape())
    assert_close(("%s, finetune_layers %d, hidden state %d"):format(label, N, i - 1), hs[i], want[i], tol)
  end
  assert_close(("%s, finetune_layers %d, last"):format(label, N), last, want_last, tol)
  -- rows past each clip are exactly zero in the trainable outputs too
  local T2 = hs[1]:shape()[2]
  for b = 1, #lengths do
    local n2 = (lengths[b] + 1) // 2
    if n2 < T2 then
      for i = 1, #hs do assert.are.equal(0, hs[i]:select(1, b):narrow(1, n2 + 1, T2 - n2):abs():max()) end
      assert.are.equal(0, last:select(1, b):narrow(1, n2 + 1, T2 - n2):abs():max())
    end
  end
  return m
end

describe("ser.pretrained: enc:module (fine-tuning)", function()
  after_each(tmp.cleanup)

  it("equals the C encoder's hidden states for every finetune_layers (random 2x64x4, padded batch)", function()
    local enc = random_encoder("wft")
    local lengths = { 61, 40, 17 }
    local x = batch(3, 3, 61, lengths)
    for N = 0, 2 do check_forward(enc, x, lengths, N, 1e-5, "random") end
    -- the frozen part's C forward (ser_whisper_encoder_forward_blocks) is the full forward's, bit for bit
    local full = enc:hidden_states(x, { lengths = lengths })
    for K = 0, 2 do
      local none, part = require("ser.core.pretrained").forward(enc._enc, x, { lengths = lengths }, true, K)
      assert.is_nil(none)
      assert.are.equal(K + 1, #part)
      for i = 1, K + 1 do assert.are.equal(0, (part[i] - full[i]):abs():max()) end
    end
    -- odd and even lengths, one clip
    check_forward(enc, batch(4, 1, 30, { 30 }), { 30 }, 2, 1e-5, "random, one clip")
  end)

  it("has Hugging Face names; trainable parameters are the top blocks; state_dict round-trips", function()
    local enc = random_encoder("wft")
    local want = enc:state_dict()
    for N = 0, 2 do
      local m = enc:module{ finetune_layers = N }
      -- every encoder tensor, under WhisperEncoder's names, with the encoder's values
      local sd, esd = m:state_dict(), m:encoder_state_dict()
      local n = 0
      for k, v in pairs(want) do
        n = n + 1
        local short = k:gsub("^model%.encoder%.", "")
        assert.is_not_nil(sd[short], short)
        assert.are.equal(0, (sd[short] - v):abs():max())
        assert.are.equal(sd[short], esd[k])
      end
      assert.are.equal(n, #m:state_dict_keys())
      -- the trainable ones: the top N blocks, the final norm when N > 0, the stem when N = L
      local names = {}
      for _, np in ipairs(m:named_parameters()) do
        names[#names + 1] = np[1]
        assert.is_true(np[2]:requires_grad())
      end
      for _, name in ipairs(names) do
        local l = tonumber(name:match("^layers%.(%d+)%."))
        if l then assert.is_true(l >= 2 - N, name) end
        if name:match("^conv") then assert.are.equal(2, N) end
        assert.is_nil(name:match("embed_positions"))
      end
      local per_block = 15
      assert.are.equal(N * per_block + (N > 0 and 2 or 0) + (N == 2 and 4 or 0), #names)
      for _, nb in ipairs(m:named_buffers()) do assert.is_false(nb[2]:requires_grad()) end
    end
    local m = enc:module{ finetune_layers = 1 }
    assert.are.equal("layers.1.self_attn.q_proj.weight", m:named_parameters()[4][1])
    -- loading the encoder's own state_dict (either naming) is a no-op
    m:load_state_dict(want)
    m:load_state_dict(m:state_dict())
    -- a changed trainable tensor loads and changes the output; a changed frozen one is refused
    local x = batch(5, 2, 40, { 40, 33 })
    local before = m(x, { lengths = { 40, 33 } })[3]:clone()
    local sd = enc:state_dict()
    sd["model.encoder.layers.1.fc2.bias"] = sd["model.encoder.layers.1.fc2.bias"] + 0.5
    m:load_state_dict(sd)
    assert.is_true(numeric.rel_err(m(x, { lengths = { 40, 33 } })[3], before, 1e-30) > 1e-3)
    sd["model.encoder.layers.0.fc1.weight"] = sd["model.encoder.layers.0.fc1.weight"] * 1.01
    local ok, err = pcall(m.load_state_dict, m, sd)
    assert.is_false(ok)
    print("  " .. err)
    assert.matches("1 frozen tensor%(s%) differ from the encoder's %(finetune_layers = 1%), nothing was loaded: "
      .. "layers%.0%.fc1%.weight", err)
    -- nothing was loaded: the trainable bias is still the +0.5 one, the encoder unchanged
    assert.are.equal(0, (m.layers["1"].fc2.bias - (enc:state_dict()["model.encoder.layers.1.fc2.bias"] + 0.5)):abs():max())
    -- the module's checkpoint through ser.save / ser.load
    local path = tmp.make("wft") .. "/ft.safetensors"
    assert(ser.save(path, m:state_dict()))
    local m2 = enc:module{ finetune_layers = 1 }
    m2:load_state_dict((ser.load(path)))
    assert.are.equal(0, numeric.rel_err(m2(x, { lengths = { 40, 33 } })[3], m(x, { lengths = { 40, 33 } })[3], 1e-30))
  end)

  it("refuses bad options and input with clear messages", function()
    local enc = random_encoder("wft")
    local function fails(pattern, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      print("  " .. err)
      assert.matches(pattern, err)
    end
    fails("finetune_layers must be a whole number in 0%.%.2 %(the encoder's layers%), got 3", enc.module, enc,
      { finetune_layers = 3 })
    fails("finetune_layers must be a whole number in 0%.%.2", enc.module, enc, { finetune_layers = 1.5 })
    fails("unknown option 'finetune'", enc.module, enc, { finetune = 1 })
    local m = enc:module{ finetune_layers = 1 }
    fails("expected a log%-mel batch %[B, 80, T%] %(80 mel bins%), got %[1,64,10%]", m, T.zeros(1, 64, 10))
    fails("'lengths' has 1 entries, the batch %[2,80,10%] has 2 clips", m, T.zeros(2, 80, 10), { lengths = { 10 } })
    fails("length of clip 2 is 11 frames, expected 1%.%.10", m, T.zeros(2, 80, 10), { lengths = { 10, 11 } })
    fails("input of 3001 frames %(30%.01 s%) is longer than Whisper's 30 s window", m, T.zeros(1, 80, 3001))
    fails("unknown option 'length'", m, T.zeros(1, 80, 10), { length = { 10 } })
    -- the C side of the frozen forward
    fails("3 blocks asked for, the encoder has 2", require("ser.core.pretrained").forward, enc._enc, T.zeros(1, 80, 10),
      nil, true, 3)
  end)

  it("the frozen part gets no gradient, and an optimizer step leaves it bit-identical", function()
    local enc = random_encoder("wft")
    local frozen_before = enc:state_dict()
    local m = enc:module{ finetune_layers = 1 }
    local lengths = { 50, 31 }
    local x = batch(6, 2, 50, lengths)
    local hs, last = m(x, { lengths = lengths })
    -- the embeddings and block 1 come from the C encoder: no graph
    assert.is_false(hs[1]:requires_grad())
    assert.is_false(hs[2]:requires_grad())
    assert.is_true(hs[3]:requires_grad())
    local loss = (hs[3] * hs[3]):mean() + last:mean()
    loss:backward()
    for _, nb in ipairs(m:named_buffers()) do assert.is_nil(nb[2]:grad(), nb[1]) end
    for _, np in ipairs(m:named_parameters()) do assert.is_not_nil(np[2]:grad(), np[1]) end
    local opt = ser.optim.AdamW(m:parameters(), { lr = 1e-2, weight_decay = 0.01 })
    opt:step()
    local after = enc:state_dict()
    for k, v in pairs(frozen_before) do
      local short = k:gsub("^model%.encoder%.", "")
      local changed = (after[k] - v):abs():max()
      if short:match("^layers%.1%.") or short:match("^layer_norm%.") then
        -- trainable tensors are the module's copies: the encoder keeps its weights
        assert.are.equal(0, changed, k)
        assert.is_true((m:state_dict()[short] - v):abs():max() > 0, short .. " was not updated")
      else
        assert.are.equal(0, changed, k)
        assert.are.equal(0, (m:state_dict()[short] - v):abs():max(), short)
      end
    end
  end)

  local it_torch = py and it or pending
  it_torch("gradients equal PyTorch autograd in float64 (every trainable tensor) and finite differences", function()
    local enc = random_encoder("wft")
    local dir = tmp.make("wftg")
    local lengths = { 61, 40, 17 }
    local x = batch(7, 3, 61, lengths)
    ser.manual_seed(8)
    local R, R2 = T.randn(3, 31, 64), T.randn(3, 31, 64)
    x:tofile(dir .. "/x.f32"); R:tofile(dir .. "/R.f32"); R2:tofile(dir .. "/R2.f32")
    local model = enc.config.source:gsub("/model%.safetensors$", "")
    local cmd = ("%s %s grad %s %s/x.f32 3 80 61 61,40,17 %s/R.f32 %s/R2.f32 %s/g 2>&1"):format(py, grad_ref, model,
      dir, dir, dir, dir)
    local p = assert(io.popen(cmd))
    local text = p:read("a")
    p:close()
    assert(text:match("ok%s*$"), "whisper_grad_ref.py failed: " .. cmd .. "\n" .. text)
    local f = assert(io.open(dir .. "/g/loss.f64", "rb"))
    local want_loss = string.unpack("<d", f:read(8))
    f:close()
    for _, N in ipairs { 1, 2 } do
      local m = enc:module{ finetune_layers = N }
      local function loss()
        local hs, last = m(x, { lengths = lengths })
        return (hs[#hs] * R):sum() + (last * R2):sum()
      end
      local l = loss()
      l:backward()
      print(("  finetune_layers %d: loss %.7g, PyTorch float64 %.7g"):format(N, l:item(), want_loss))
      assert.is_true(math.abs(l:item() - want_loss) <= 1e-5 * math.abs(want_loss))
      local worst, worst_name = 0, ""
      for _, np in ipairs(m:named_parameters()) do
        local ref = T.fromfile(dir .. "/g/" .. np[1] .. ".f32", np[2]:shape())
        local e = numeric.rel_err(np[2]:grad(), ref, 1e-30)
        if e > worst then worst, worst_name = e, np[1] end
      end
      print(("  finetune_layers %d: %d gradients, worst max |diff| / max |ref| %.3g (%s), bound 1e-4"):format(N,
        #m:parameters(), worst, worst_name))
      assert.is_true(worst <= 1e-4)
      -- central differences in float32 on a few entries of the top block (and of conv1 when it trains)
      local probes = { { m.layers["1"].fc1.weight, { 1, 100, 5000 } }, { m.layers["1"].self_attn.q_proj.weight, { 7, 2000 } },
                       { m.layers["1"].self_attn_layer_norm.bias, { 3 } } }
      if N == 2 then probes[#probes + 1] = { m.conv1.weight, { 11, 9000 } } end
      for _, pr in ipairs(probes) do
        local flat, g = pr[1]:view(-1), pr[1]:grad():view(-1)
        for _, i in ipairs(pr[2]) do
          local orig, eps = flat:narrow(1, i, 1):item(), 1e-2
          local lp, lm
          ser.no_grad(function()
            flat:narrow(1, i, 1):fill_(orig + eps); lp = loss():item()
            flat:narrow(1, i, 1):fill_(orig - eps); lm = loss():item()
            flat:narrow(1, i, 1):fill_(orig)
          end)
          local fd, an = (lp - lm) / (2 * eps), g:narrow(1, i, 1):item()
          print(("    entry %d: autograd %.6g, central difference %.6g"):format(i, an, fd))
          assert.is_true(math.abs(fd - an) <= 2e-3 * math.max(1, math.abs(an)))
        end
      end
    end
  end)

  local tiny = shared .. "/models/whisper-tiny.en"
  local ravdess = shared .. "/data/ravdess16k/Actor_01/"
  local have_tiny = exists(tiny .. "/model.safetensors") and exists(ravdess .. "03-01-01-01-01-01-01.flac")
  -- (sanitized: the generated encoders above run the same code in a fraction of the time)
  local it_tiny = have_tiny and san.plain_it(it, pending, "whisper-tiny.en at full size") or pending
  it_tiny("whisper-tiny.en (../shared/models) on RAVDESS speech equals the C encoder (finetune_layers 2 and 4)", function()
    local enc = assert(ser.pretrained.load(tiny))
    local files = { "03-01-01-01-01-01-01.flac", "03-01-05-02-02-01-01.flac", "03-01-03-01-01-02-01.flac" }
    local mels, lengths, Tmax = {}, {}, 0
    for i, f in ipairs(files) do
      mels[i] = enc:frontend(ser.audio.load(ravdess .. f, { sr = 16000, mono = true }))
      lengths[i] = mels[i]:shape()[2]
      Tmax = math.max(Tmax, lengths[i])
    end
    local x = T.zeros(#files, 80, Tmax)
    for i, mel in ipairs(mels) do x:select(1, i):narrow(2, 1, lengths[i]):copy_(mel) end
    check_forward(enc, x, lengths, 2, 1e-5, "whisper-tiny.en")
    check_forward(enc, x, lengths, 4, 1e-5, "whisper-tiny.en")
  end)
end)

describe("WhisperEncoder:spec_augment", function()
  after_each(tmp.cleanup)

  it("masks inside each clip's length only, with 0 or the clip's mean, reproducibly", function()
    local enc = random_encoder("wft")
    local m = enc:module{ finetune_layers = 1 }
    local lengths = { 60, 25 }
    ser.manual_seed(9)
    local x = T.randn(2, 80, 60) + 3 -- no value is exactly 0
    local x0 = x:clone()
    local y = m:spec_augment(x, lengths, { generator = ser.augment.generator(1), time_width = 10, freq_width = 8 })
    assert.are.equal(0, (x - x0):abs():max()) -- x is not changed (a new tensor comes back)
    local y2 = m:spec_augment(x, lengths, { generator = ser.augment.generator(1), time_width = 10, freq_width = 8 })
    assert.are.equal(0, (y - y2):abs():max())
    -- clip 2's padding is untouched; every changed value is 0
    assert.are.equal(0, (y:select(1, 2):narrow(2, 26, 35) - x:select(1, 2):narrow(2, 26, 35)):abs():max())
    local changed, zeros = 0, 0
    local yt, xt = y:view(-1):totable(), x:view(-1):totable()
    for i = 1, #yt do
      if yt[i] ~= xt[i] then
        changed = changed + 1
        if yt[i] == 0 then zeros = zeros + 1 end
      end
    end
    print(("  %d of %d values masked"):format(changed, #yt))
    assert.is_true(changed > 0)
    assert.are.equal(changed, zeros)
    -- whole masked time frames of clip 2 lie inside its 25 frames: count frames all 0
    local c2 = y:select(1, 2)
    for t = 26, 60 do assert.is_true(c2:narrow(2, t, 1):abs():min() > 0) end
    -- "mean": the clip's own mean over its frames
    local ym = m:spec_augment(x, lengths, { generator = ser.augment.generator(1), value = "mean", time_width = 10 })
    local mean2 = x:select(1, 2):narrow(2, 1, 25):mean():item()
    local c = ym:select(1, 2):narrow(2, 1, 25):contiguous():view(-1):totable()
    local orig = x:select(1, 2):narrow(2, 1, 25):contiguous():view(-1):totable()
    local n_mean = 0
    for i = 1, #c do
      if c[i] ~= orig[i] then
        assert.is_true(math.abs(c[i] - mean2) < 1e-6)
        n_mean = n_mean + 1
      end
    end
    assert.is_true(n_mean > 0)
    -- errors
    local ok, err = pcall(m.spec_augment, m, x, { 60 })
    assert.is_false(ok)
    assert.matches("lengths must be a list of 2 frame counts", err)
    ok, err = pcall(m.spec_augment, m, x, lengths, { width = 3 })
    assert.matches("unknown option 'width'", err)
    ok, err = pcall(m.spec_augment, m, x, lengths, { value = "min" })
    assert.matches("value must be a number or \"mean\"", err)
  end)
end)

-- A made-up 4-class task on log-mel-like input: class c lifts a band of mel bins (by 4: the random
-- encoder's 0.02-scale convolutions pass little of the input beside the positional rows).
local function task(seed, B, Tmin, Tmax)
  ser.manual_seed(seed)
  local lengths, labels = {}, {}
  local x = T.randn(B, 80, Tmax) * 0.3
  local u = T.rand(B, 2):totable() -- lengths independent of the labels
  for b = 1, B do
    lengths[b] = Tmin + math.floor(u[b][1] * (Tmax - Tmin + 1))
    labels[b] = (b + seed) % 4 + 1
    x:select(1, b):narrow(1, 15 * labels[b] - 5, 12):add_(4.0)
    if lengths[b] < Tmax then x:select(1, b):narrow(2, lengths[b] + 1, Tmax - lengths[b]):zero_() end
  end
  return x, lengths, labels
end

-- The last hidden state mean-pooled over each clip's rows -> Linear -> 4 logits.
local function head_logits(m, head, x, lengths)
  local hs = m(x, { lengths = lengths })
  local h = hs[#hs]
  local inv = {}
  for b = 1, #lengths do inv[b] = { 1 / ((lengths[b] + 1) // 2) } end
  local pooled = h:sum(2) * T.new(inv)
  return head(pooled)
end

local function train(enc, steps, opts)
  local m = enc:module{ finetune_layers = 1 }
  ser.manual_seed(11)
  local head = ser.nn.Linear(enc.config.d_model, 4)
  local opt = ser.optim.AdamW({ { params = m:parameters(), lr = 5e-3 }, { params = head:parameters(), lr = 5e-2 } },
    { weight_decay = 0.01 })
  local xe, le, ye = task(100, 16, 44, 50)
  local function eval_loss()
    return ser.no_grad(function() return F.cross_entropy(head_logits(m, head, xe, le), ye):item() end)
  end
  local prev = opts.amp and ser.set_amp(true)
  local before = eval_loss()
  local g = ser.augment.generator(5)
  for s = 1, steps do
    local x, lengths, y = task(s, 8, 44, 50)
    if opts.spec_augment then x = m:spec_augment(x, lengths, { generator = g, time_width = 8, freq_width = 6 }) end
    opt:zero_grad()
    local loss = F.cross_entropy(head_logits(m, head, x, lengths), y)
    loss:backward()
    opt:step()
  end
  local after = eval_loss()
  if opts.amp then ser.set_amp(prev) end
  return before, after, m
end

describe("fine-tuning a small head on the random encoder", function()
  after_each(tmp.cleanup)

  local function check(opts, label)
    local enc = random_encoder("wft")
    local frozen = enc:state_dict()
    local before, after, m = train(enc, 20, opts)
    print(("  %s: held-out loss %.4f -> %.4f after 20 steps"):format(label, before, after))
    assert.is_true(after < 0.6 * before)
    -- the frozen block, stem and positions are bit-identical in the module and the encoder
    for _, nb in ipairs(m:named_buffers()) do
      assert.are.equal(0, (nb[2] - frozen["model.encoder." .. nb[1]]):abs():max(), nb[1])
    end
    local now = enc:state_dict()
    for k, v in pairs(frozen) do assert.are.equal(0, (now[k] - v):abs():max(), k) end
  end

  it("finetune_layers = 1, SpecAugment on: the loss falls, the frozen weights do not move", function()
    check({ spec_augment = true }, "fp32 + SpecAugment")
  end)

  local it_bf16 = bf16 and it or pending
  it_bf16("under amp (bf16 GEMMs): the forward is within bf16 rounding of fp32, and training works", function()
    local enc = random_encoder("wft")
    local m = enc:module{ finetune_layers = 2 }
    local lengths = { 50, 37 }
    local x = batch(12, 2, 50, lengths)
    local fp32 = m(x, { lengths = lengths })
    local prev = ser.set_amp(true)
    local prev_rule = require("ser.core.nn_cnn").amp_rule("bf16") -- bf16 even where fp32 measured faster
    local amp = m(x, { lengths = lengths })
    ser.set_amp(prev)
    require("ser.core.nn_cnn").amp_rule(prev_rule)
    local r = numeric.rel_err(amp[3], fp32[3], 1e-30)
    print(("  amp vs fp32, last hidden state: max |diff| / max |ref| = %.3g"):format(r))
    assert.is_true(r > 0) -- bf16 really ran
    assert.is_true(r < 3e-2)
    check({ amp = true, spec_augment = true }, "amp + SpecAugment")
  end)
end)
