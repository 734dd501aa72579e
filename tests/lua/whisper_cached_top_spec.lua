-- Fine-tuning Whisper's top blocks from the frames cache (ser.pretrained.cached_top,
-- ser.whisper_finetune), on a small random encoder: the top blocks run from the cached hidden
-- state give the live encoder's hidden states and gradients to float16 rounding (random encoder,
-- and whisper-tiny.en on RAVDESS speech when ../shared is there); with exact
-- (float32) hidden states in the store the whole classifier equals the whole-encoder path
-- (finetune_from = "logmel") to float rounding, logits and every gradient, for a pooled and a
-- frame head; a batch equals its clips alone; the pooling and the time masks; refusals; and
-- compare.lua --quick with the concat head fine-tuned, whose checkpoint holds only the top block,
-- has no graph description (C API / ONNX refuse it) and whose scores predict.lua reproduces.
local ser = require "ser"
local T = ser.tensor
local F = ser.nn.functional
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local function rel_err(a, b) return numeric.rel_err(a, b, 1e-12) end
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local frozen = require "ser.frozen_encoder"
local top = require "ser.pretrained.cached_top"
local serlua, have = paths.serlua, paths.have_serlua
local it_bin = have and it or pending

local run = dofile(here .. "helpers/shell.lua").run

describe("fine-tuning from the frames cache", function()
  local dir, corpus, enc_dir, items
  setup(function()
    dir = tmp.make("cachedtop")
    corpus = dir .. "/corpus"
    enc_dir = dir .. "/enc"
    random_whisper(enc_dir, { layers = 2, d_model = 64 })
    ser.data.synthetic { speakers = 24, per_class = 1, seconds = 1.0, seed = 5, out = corpus,
                         classes = { "neutral", "happy", "angry" } }
    items = {}
    for i, it in ipairs(ser.data.scan(corpus, { quiet = true }).items) do
      if i <= 6 then items[i] = { path = it.path, speaker = it.speaker } end
    end
  end)
  teardown(tmp.cleanup)

  local function model(o)
    local opts = { encoder = enc_dir, head = "concat", classes = 3, hidden = 16, attention = 8, dropout = 0,
                   finetune_layers = 1, encoder_lr = 2e-5, cache = dir .. "/cache" }
    for k, v in pairs(o or {}) do opts[k] = v end
    return frozen.WhisperClassifier(opts)
  end

  -- clips of different lengths: the synthetic corpus's 1 s clips cut to 0.5..1 s
  local function mels(enc, n)
    local out = {}
    for i = 1, n do
      local wav = assert(ser.audio.load(items[i].path, { sr = 16000, mono = true }))
      out[i] = enc:frontend(wav:narrow(1, 1, 8000 + 1500 * (i - 1)))
    end
    return out
  end

  local function padded(list)
    local len, Tmax = {}, 0
    for b, m in ipairs(list) do len[b] = m:shape()[2]; Tmax = math.max(Tmax, len[b]) end
    local x = T.zeros(#list, list[1]:shape()[1], Tmax)
    for b, m in ipairs(list) do x:select(1, b):narrow(2, 1, len[b]):copy_(m) end
    return x, len
  end

  it("pools each clip's own frames (two passes) and ignores the padding", function()
    ser.manual_seed(1)
    local h = T.randn(3, 7, 5) * 50 + 200
    local n = { 7, 3, 1 }
    local s = top.pool(h * top.rows(n, 7), n)
    assert.are.same({ 3, 2, 5 }, s:shape())
    for b = 1, 3 do
      local c = h:select(1, b):narrow(1, 1, n[b])
      local m = c:mean(1)
      local dev = c - m:view(1, 5)
      assert.is_true(rel_err(s:select(1, b):select(1, 1), m) < 1e-6)
      local sd = (dev * dev):mean(1):sqrt()
      assert.is_true(numeric.max_abs(s:select(1, b):select(1, 2) - sd) < 1e-3 * 50, "std of clip " .. b)
    end
    -- a one-frame clip has std 0 (floored far below any spread), not NaN
    assert.is_true(numeric.max_abs(s:select(1, 3):select(1, 2)) < 1e-5)
  end)

  it("masks time only inside each clip, with the clip's mean frame", function()
    ser.manual_seed(2)
    local h = T.randn(2, 30, 4)
    h:select(1, 2):narrow(1, 21, 10):zero_()
    local y = top.time_mask(h, { 30, 20 }, { count = 2, width = 10, generator = ser.augment.generator(3) })
    assert.are.equal(0, numeric.max_abs(y:select(1, 2):narrow(1, 21, 10)))   -- padding untouched
    local changed = 0
    for b, n in ipairs { 30, 20 } do
      local mean = h:select(1, b):narrow(1, 1, n):mean(1)
      for t = 1, n do
        local row = y:select(1, b):select(1, t)
        if numeric.max_abs(row - h:select(1, b):select(1, t)) > 0 then
          changed = changed + 1
          assert.is_true(numeric.max_abs(row - mean) < 1e-6, "a masked frame is the clip's mean")
        end
      end
    end
    assert.is_true(changed > 0 and changed <= 40, "masked frames: " .. changed)
  end)

  -- The top N blocks run from hidden state K = L - N of each clip alone rounded to float16 (as the
  -- frames cache stores it) against the module's live forward from the padded log-mel batch: every
  -- fine-tuned hidden state and the gradients of every trainable tensor for a loss on the pooled
  -- statistics. Returns the worst forward and gradient errors (relative to the largest magnitude).
  local function cached_vs_live(enc, N, mel_list)
    local m = enc:module { finetune_layers = N }
    local c = enc.config
    local L, d = c.layers, c.d_model
    local K = L - N
    local x, len = padded(mel_list)
    local B = #mel_list
    local n = {}
    for b, k in ipairs(len) do n[b] = (k + 1) // 2 end
    local hk = {}
    for b, mel in ipairs(mel_list) do
      local p = dir .. "/f16.safetensors"
      assert(ser.save(p, { t = enc:hidden_states(mel:view(1, c.n_mels, -1))[K + 1]:select(1, 1) }, nil, { dtype = "F16" }))
      hk[b] = assert(ser.load(p)).t
    end
    local Tmax = (x:shape()[3] + 1) // 2
    local h = T.zeros(B, Tmax, d)
    for b = 1, B do h:select(1, b):narrow(1, 1, n[b]):copy_(hk[b]) end
    ser.manual_seed(7)
    local R = T.randn(B, 2, d)
    local function grads(hs)
      for _, p in ipairs(m:parameters()) do p:zero_grad() end
      local loss
      for _, t in ipairs(hs) do
        local l = (top.pool(t, n) * R):sum()
        loss = loss and loss + l or l
      end
      loss:backward()
      local g = {}
      for _, np in ipairs(m:named_parameters()) do g[np[1]] = np[2]:grad() and np[2]:grad():clone() end
      return g
    end
    local live = m(x, { lengths = len })
    local cached = top.forward(m, h, n)
    assert.are.equal(N, #cached)
    local fwd, live_top = 0, {}
    for i = 1, N do
      live_top[i] = live[K + 1 + i]
      fwd = math.max(fwd, rel_err(cached[i], live_top[i]))
    end
    local gl, gc = grads(live_top), grads(top.forward(m, h, n))
    local grad, scale, count = 0, 0, 0
    for _, g in pairs(gl) do scale = math.max(scale, numeric.max_abs(g)) end
    for k, g in pairs(gl) do
      assert.is_truthy(gc[k], k)
      grad, count = math.max(grad, numeric.max_abs(gc[k] - g) / scale), count + 1
    end
    assert.is_true(count >= 13 * N, "trainable tensors with gradients: " .. count)
    return fwd, grad, m, h, n, hk, cached
  end

  it("the top block from the cached hidden state gives the live encoder's states and gradients", function()
    local enc = frozen.encoder(enc_dir)
    local fwd, grad, m, h, n, hk, cached = cached_vs_live(enc, 1, mels(enc, 4))
    -- float16 keeps 11 significant bits (2^-11 = 4.9e-4 of a value); measured 4.3e-4 of the largest
    -- magnitude, the gradients 1.4e-4 of the largest gradient
    assert.is_true(fwd < 2e-3, "cached top block vs live: " .. fwd)
    assert.is_true(grad < 5e-3, "gradients, cached vs live: " .. grad)
    -- padding rows are ignored whatever they hold, and a batch equals its clips alone
    local Tmax = h:shape()[2]
    local noisy = h:clone()
    noisy:select(1, 1):narrow(1, n[1] + 1, Tmax - n[1]):copy_(T.randn(Tmax - n[1], 64) * 1000)
    assert.is_true(rel_err(top.forward(m, noisy, n)[1], cached[1]) < 1e-6)
    for b = 1, 4 do
      local alone = top.forward(m, hk[b]:view(1, n[b], 64), { n[b] })[1]
      assert.is_true(rel_err(alone:select(1, 1), cached[1]:select(1, b):narrow(1, 1, n[b])) < 1e-5, "clip " .. b)
    end
  end)

  local shared = paths.shared
  local tiny = shared .. "/models/whisper-tiny.en"
  local ravdess = shared .. "/data/ravdess16k/Actor_01/"
  local function exists(p)
    local f = io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
  end
  local it_tiny = (exists(tiny .. "/model.safetensors") and exists(ravdess .. "03-01-01-01-01-01-01.flac")) and it
    or pending
  it_tiny("whisper-tiny.en on RAVDESS speech: the cached path's states and gradients (N = 1, 2)", function()
    local enc = assert(ser.pretrained.load(tiny))
    local list = {}
    for i, f in ipairs { "03-01-01-01-01-01-01.flac", "03-01-05-02-02-01-01.flac", "03-01-03-01-01-02-01.flac" } do
      list[i] = enc:frontend(ser.audio.load(ravdess .. f, { sr = 16000, mono = true }))
    end
    for _, N in ipairs { 1, 2 } do
      local fwd, grad = cached_vs_live(enc, N, list)
      print(("  whisper-tiny.en, finetune_layers %d: cached vs live hidden states %.2e, gradients %.2e"):format(N, fwd, grad))
      assert.is_true(fwd < 2e-3, "cached top blocks vs live: " .. fwd)
      assert.is_true(grad < 5e-3, "gradients, cached vs live: " .. grad)
    end
  end)

  -- exact (float32) hidden states of each clip alone in a cache-path model's store, so that the two
  -- paths differ by float rounding only
  local function exact_store(a, b)
    local enc = frozen.encoder(enc_dir)
    local K = a.config.layers - a.finetune_layers
    for i = 1, a.store.n do
      local e = a.store:get(i)
      local hs = enc:hidden_states(b.store:get(i).mel:view(1, a.config.n_mels, -1))
      local f = T.stack(hs, 1):select(2, 1)                     -- [L + 1, n, d]
      e.h = f:select(1, K + 1):contiguous()
      local fr = f:narrow(1, 1, K + 1)
      local n = {}
      for l = 1, K + 1 do n[l] = e.n end
      e.frozen = a.frame_level and fr:contiguous() or top.pool(fr, n)
    end
  end

  for _, head in ipairs { "concat", "attentive_concat" } do
    it(head .. " head: the cache path equals the whole-encoder path (logits, every gradient)", function()
      ser.manual_seed(3)
      local a = model { head = head }
      local b = model { head = head, finetune_from = "logmel" }
      b:load_state_dict(a:state_dict())
      local xa, xb = a:features(items), b:features(items)
      a:fit_standardisation(xa)
      b:fit_standardisation(xb)
      assert.are.equal(0, numeric.max_abs(a.feature_mean - b.feature_mean))
      exact_store(a, b)
      a:eval(); b:eval()
      local y = T.new { 1, 2, 3, 1, 2, 3 }
      local la, lb = a(xa), b(xb)
      assert.is_true(rel_err(la, lb) < 1e-4, "logits: " .. rel_err(la, lb))
      F.cross_entropy(la, y):backward()
      F.cross_entropy(lb, y):backward()
      local pa, pb, scale = a:named_parameters(), b:named_parameters(), 0
      for _, np in ipairs(pb) do if np[2]:grad() then scale = math.max(scale, numeric.max_abs(np[2]:grad())) end end
      local n_enc = 0
      for i, np in ipairs(pa) do
        assert.are.equal(pb[i][1], np[1])
        local ga, gb = np[2]:grad(), pb[i][2]:grad()
        assert.are.equal(ga == nil, gb == nil, np[1])
        if ga then
          if np[1]:match("^encoder%.") then n_enc = n_enc + 1 end
          local e = numeric.rel_err(ga, gb, 1e-2 * scale)
          assert.is_true(e < 1e-3, ("%s: %g"):format(np[1], e))
        end
      end
      assert.is_true(n_enc >= 13, "the top block's parameters got gradients: " .. n_enc)
      -- a batch equals its clips alone
      for i = 1, 6 do
        local e = rel_err(a(xa:narrow(1, i, 1)), la:narrow(1, i, 1))
        -- float rounding of batched vs single GEMMs, amplified where the standardisation divides by a
        -- small spread (these made-up clips all last 1 s, so their positional means coincide)
        assert.is_true(e < 2e-4, "clip " .. i .. ": " .. e)
      end
      -- time masks on the cached frames change the training forward only
      a:train()
      ser.manual_seed(5)
      assert.is_true(numeric.max_abs(a(xa) - la) > 0, "time masks changed nothing while training")
      a:eval()
      assert.are.equal(0, numeric.max_abs(a(xa) - la))
    end)
  end

  it("with the blocks at the pretrained weights, the concat model equals the frozen concat model on cached frames", function()
    ser.manual_seed(4)
    local a = model()
    local f = model { finetune_layers = 0 }
    local sd = {}
    for k, v in pairs(a:state_dict()) do if not k:match("^encoder%.") then sd[k] = v end end
    local xa = a:features(items)
    a:fit_standardisation(xa)
    sd.feature_mean, sd.feature_std = a.feature_mean, a.feature_std
    f:load_state_dict(sd)
    a:eval(); f:eval()
    -- the frozen model reads the pooled cache (float32 pooling of unrounded frames); the fine-tuning one
    -- pools the float16 frames: the same standardised features to float16 rounding
    local xf = f:features(items)
    local za = require("ser.whisper_finetune").input(a, xa)
    local raw = za * a.feature_std:view(1, 3, 2, 64) + a.feature_mean:view(1, 3, 2, 64)
    local err = rel_err(raw, xf)
    assert.is_true(err < 2e-3, "pooled features, fine-tuning vs frozen: " .. err)
  end)

  it("refuses combinations that cannot work, saying why", function()
    for _, c in ipairs {
      { { finetune_layers = 2 }, 'finetune_layers = 2 trains every block and the convolution stem, whose input is the '
        .. 'log%-mel, not a cached hidden state: set model.finetune_from = "logmel"' },
      { { finetune_from = "audio" }, 'finetune_from must be "cache" or "logmel", got audio' },
      { { speaker_norm = true }, "cannot be combined with speaker_norm" },
      { { finetune_layers = 3, finetune_from = "logmel" }, "finetune_layers = 3, but the encoder .* has 2 layers" },
    } do
      local ok, err = pcall(model, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    local m = model()
    local ok, err = pcall(m, T.zeros(2, 3))
    assert.is_false(ok)
    assert.matches("expected clip numbers %[B, 1%]", err)
    ok, err = pcall(top.forward, frozen.encoder(enc_dir):module { finetune_layers = 2 }, T.zeros(1, 4, 64), { 4 })
    assert.is_false(ok)
    assert.matches("needs 1..1", err)
    ok, err = pcall(top.forward, m.encoder, T.zeros(1, 4, 64), { 5 })
    assert.is_false(ok)
    assert.matches("frame count of clip 1 is 5, expected a whole number in 1..4", err)
  end)

  it_bin("compare.lua --quick fine-tunes the concat head from the cache; predict.lua reproduces it", function()
    local out_dir = dir .. "/ft"
    local out, rc = run(("%s experiments/compare.lua --quick --models whisper --data %s --out %s --seed 1 --encoder %s"
      .. " --head concat --set model.finetune_layers=1 --set model.encoder_lr=1e-3")
      :format(serlua, corpus, out_dir, enc_dir))
    assert.are.equal(0, rc, out)
    local ckpt = out_dir .. "/results/whisper.safetensors"
    local sd, meta = assert(ser.load(ckpt))
    assert.are.equal(1, meta.recipe.model.finetune_layers)
    assert.are.equal("cache", meta.recipe.model.finetune_from)
    assert.is_nil(meta.graph, "a fine-tuned model must not carry a graph of the pretrained encoder")
    for k in pairs(sd) do
      assert.is_nil(k:match("^encoder%.layers%.0%.") or k:match("^encoder%.conv") or k:match("embed_positions"),
        "a frozen tensor in the checkpoint: " .. k)
    end
    local pre = frozen.encoder(enc_dir):state_dict()["model.encoder.layers.1.fc1.weight"]
    assert.is_true(numeric.max_abs(sd["encoder.layers.1.fc1.weight"] - pre) > 0, "the top block did not train")
    -- ONNX export refuses with the reason
    local eout, erc = run(("%s experiments/export.lua --attach %s %s/m.onnx"):format(serlua, ckpt, dir))
    assert.are_not.equal(0, erc, eout)
    assert.matches("fine%-tuned", eout)
    local _, val = ser.data.scan(corpus, { quiet = true }):split { by = "speaker", quiet = true }
    local paths = {}
    for i, item in ipairs(val.items) do paths[i] = item.path end
    local pout, prc = run(("%s experiments/predict.lua %s %s"):format(serlua, ckpt, table.concat(paths, " ")))
    assert.are.equal(0, prc, pout)
    local labels = {}
    for path, label in pout:gmatch("([^\t\n]+)\t([^\t\n]+)\t[^\n]*") do labels[path] = label end
    local index, pred, target = {}, {}, {}
    for i, c in ipairs(val.classes) do index[c] = i end
    for i, item in ipairs(val.items) do
      assert.is_truthy(labels[item.path], pout)
      pred[i], target[i] = index[labels[item.path]], index[item.label]
    end
    local want
    for line in io.lines(out_dir .. "/results/results.csv") do
      local f = {}
      for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
      if f[1] == "whisper" and f[2] == "val" then want = f end
    end
    local rep = ser.metrics.report(pred, target, val.classes)
    assert.are.equal(want[3], ("%.4f"):format(rep.accuracy))
    assert.are.equal(want[4], ("%.4f"):format(rep.weighted_f1))
  end)
end)
