-- Frame-level heads on a frozen Whisper encoder: ser.nn.AttentiveStatsHead (names, padding
-- independence, central differences, PyTorch 1.13 parity in float64), the embedding cache's
-- "frames" kind (float16 frame sequences per clip: misses then hits, equal to the clip encoded
-- alone, apart from the pooled kind), and the `attentive` head of the whisper family end to end
-- on a small random encoder (compare.lua --quick, predict.lua reproducing its scores, mixup refused),
-- and fine-tuning in the main job (model.finetune_layers: the top blocks' own learning rate,
-- SpecAugment only while training, checkpoints holding the fine-tuned blocks and not the frozen
-- ones, predict.lua reproducing the scores, refusals of combinations that cannot work).
local ser = require "ser"
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local function rel_err(a, b) return numeric.rel_err(a, b, 1e-12) end
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local whisper_clips = dofile(here .. "helpers/whisper_clips.lua")
local torch_python = dofile(here .. "helpers/torch_python.lua")
local cachemod = require "ser.data.embedding_cache"
local frozen = require "ser.frozen_encoder"
local job = dofile(here .. "helpers/quick_job.lua")
local it_bin = job.built and it or pending

describe("AttentiveStatsHead", function()
  after_each(function() tmp.cleanup() end)

  it("has PyTorch names, pools each clip's own frames and ignores the padding", function()
    ser.manual_seed(1)
    local h = ser.nn.AttentiveStatsHead(3, 8, 4, { hidden = 16, dropout = 0, attention = 5 })
    local keys = {}
    for k in pairs(h:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "attention.0.bias", "attention.0.weight", "attention.2.bias", "attention.2.weight",
      "mlp.0.bias", "mlp.0.weight", "mlp.1.bias", "mlp.1.weight", "mlp.4.bias", "mlp.4.weight", "weights" }, keys)
    assert.are.same({ 5, 8 }, h.attention:get(1).weight:shape())
    assert.are.same({ 16, 16 }, h.mlp:get(1).weight:shape())        -- mean and std: 2d inputs
    local x = T.randn(3, 3, 7, 8)     -- [layers, clips, frames, d]
    local lengths = { 7, 4, 1 }
    local y = h(x, lengths)
    assert.are.same({ 3, 4 }, y:shape())
    assert.are.same({ 3, 16 }, h:embed(x, lengths):shape())
    -- large values in the padding change nothing; each clip alone gives its batch row
    local noisy = x:clone()
    noisy:select(2, 2):narrow(2, 5, 3):copy_(T.randn(3, 3, 8) * 1000)
    noisy:select(2, 3):narrow(2, 2, 6):copy_(T.randn(3, 6, 8) * 1000)
    assert.are.equal(0, numeric.max_abs(h(noisy, lengths) - y))
    -- per_layer: every layer's attentive mean and std, (L + 1) * 2d inputs, padding ignored too
    local hp = ser.nn.AttentiveStatsHead(3, 8, 4, { hidden = 16, dropout = 0, attention = 5, per_layer = true })
    assert.are.same({ 16, 48 }, hp.mlp:get(1).weight:shape())
    assert.are.same({ 3, 48 }, hp:pooled(x, lengths):shape())
    assert.are.equal(0, numeric.max_abs(hp(noisy, lengths) - hp(x, lengths)))
    -- 13 layers (whisper-small's count): more pieces than one autograd cat takes
    local h13 = ser.nn.AttentiveStatsHead(13, 4, 2, { hidden = 8, attention = 3, per_layer = true })
    local x13 = T.randn(13, 2, 5, 4)
    local p13 = h13:pooled(x13, { 5, 3 })
    assert.are.same({ 2, 13 * 8 }, p13:shape())
    -- layer 9 of clip 1 (all 5 frames): its frames weighted by the softmax of the scores of the
    -- weighted layers
    local hw = (x13 * h13.weights:softmax(1):view(13, 1, 1, 1)):sum(1)         -- [2, 5, 4]
    local alpha = h13.attention(hw):view(2, 5):select(1, 1):softmax(1)           -- [5]
    local want = alpha:view(1, 5):matmul(x13:select(1, 9):select(1, 1)):view(4)
    assert.is_true(numeric.max_abs(p13:select(1, 1):narrow(1, 8 * 8 + 1, 4) - want) < 1e-5)
    h13(x13, { 5, 3 }):sum():backward()
    assert.is_true(h13.weights:grad():abs():sum():item() > 0)
    for b, n in ipairs(lengths) do
      local alone = h(x:narrow(2, b, 1):narrow(3, 1, n):contiguous(), { n })
      assert.is_true(numeric.max_abs(alone - y:narrow(1, b, 1)) < 1e-5, "clip " .. b)
    end
    -- one frame: mean = the frame, std = sqrt(eps)
    local p = h:pooled(x:narrow(2, 3, 1), { 1 })
    local frame = (x:narrow(2, 3, 1):narrow(3, 1, 1) * h.weights:softmax(1):view(3, 1, 1, 1)):sum(1):view(1, 8)
    assert.is_true(numeric.max_abs(p:narrow(2, 1, 8) - frame) < 1e-6)
    assert.is_true(math.abs(p:narrow(2, 9, 8):mean():item() - math.sqrt(1e-5)) < 1e-6)
  end)

  it("refuses inputs of the wrong shape and bad lengths, naming what it expected", function()
    local h = ser.nn.AttentiveStatsHead(3, 8, 4)
    local cases = {
      { T.randn(2, 3, 8), { 1, 1 }, "expected frame sequences %[3, B, T, 8%]" },
      { T.randn(4, 2, 5, 8), { 1, 1 }, "got %[4,2,5,8%]" },
      { T.randn(3, 2, 5, 8), { 5 }, "a list of 2 frame counts" },
      { T.randn(3, 2, 5, 8), nil, "a list of 2 frame counts %(one per clip%), got nil" },
      { T.randn(3, 2, 5, 8), { 5, 6 }, "lengths%[2%] = 6; expected a whole number of frames in 1..5" },
      { T.randn(3, 2, 5, 8), { 0, 5 }, "lengths%[1%] = 0" },
      { T.randn(3, 2, 5, 8), { 2.5, 5 }, "lengths%[1%] = 2.5" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(h, c[1], c[2])
      assert.is_false(ok)
      assert.matches(c[3], err)
    end
    local ok, err = pcall(ser.nn.AttentiveStatsHead, 3, 8, 4, { per_layer = 1 })
    assert.is_false(ok)
    assert.matches("per_layer must be true or false, got 1", err)
    ok, err = pcall(ser.nn.AttentiveStatsHead, 3, 8, 4, { attenion = 3 })
    assert.is_false(ok)
    assert.matches("attenion", err)
  end)

  it("has the gradients of central differences", function()
    ser.manual_seed(2)
    local h = ser.nn.AttentiveStatsHead(2, 6, 3, { hidden = 8, dropout = 0, attention = 4 })
    local x = T.randn(2, 2, 5, 6)
    local lengths = { 5, 3 }
    local R = T.randn(2, 3)
    local function loss() return (h(x, lengths) * R):sum() end
    h:zero_grad();
    loss():backward()
    local checked = 0
    for _, np in ipairs(h:named_parameters()) do
      local p, g = np[2], np[2]:grad()
      local flat, gflat = p:view(-1), g:view(-1)
      for _, i in ipairs { 1, math.max(1, p:numel() // 2), p:numel() } do
        local v = flat:narrow(1, i, 1):item()
        local eps = 1e-2
        ser.no_grad(function()
          flat:narrow(1, i, 1):fill_(v + eps); local up = loss():item()
          flat:narrow(1, i, 1):fill_(v - eps); local down = loss():item()
          flat:narrow(1, i, 1):fill_(v)
          local fd, an = (up - down) / (2 * eps), gflat:narrow(1, i, 1):item()
          assert(math.abs(fd - an) <= 2e-3 * math.max(1, math.abs(an)),
            ("%s[%d]: autograd %.6g, central difference %.6g"):format(np[1], i, an, fd))
        end)
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 30)
  end)

  local py = torch_python()
  local it_torch = py and it or pending
  for _, per_layer in ipairs { false, true } do
  it_torch(("equals a float64 torch.nn twin, forward and every gradient (PyTorch 1.13; per_layer %s)")
    :format(tostring(per_layer)), function()
    local dir = tmp.make("attentive")
    ser.manual_seed(3)
    local h = ser.nn.AttentiveStatsHead(4, 12, 5, { hidden = 10, dropout = 0.3, attention = 6, per_layer = per_layer })
    h:eval()
    ser.no_grad(function() h.weights:copy_(T.randn(4)) end)   -- away from the zero init of the layer weights
    local lengths = { 9, 2, 6 }
    local x = T.randn(4, 3, 9, 12) * 3 + 1
    x:select(2, 2):narrow(2, 3, 7):fill_(0)       -- padding, as the model pads
    x:requires_grad(true)
    local R = T.randn(3, 5)
    local y = h(x, lengths)
    h:zero_grad();
    (y * R):sum():backward()
    local manifest = {}
    local function put(name, t)
      t:detach():contiguous():tofile(("%s/%s.f32"):format(dir, name))
      manifest[#manifest + 1] = ("%s %s"):format(name, table.concat(t:shape(), "x"))
    end
    put("x", x); put("lengths", T.new(lengths)); put("R", R)
    if per_layer then put("per_layer", T.ones(1)) end
    for _, np in ipairs(h:named_parameters()) do put(np[1], np[2]) end
    local f = assert(io.open(dir .. "/manifest.txt", "w"))
    f:write(table.concat(manifest, "\n"), "\n")
    f:close()
    local p = assert(io.popen(("OMP_NUM_THREADS=1 %s %shelpers/attentive_ref.py '%s' 2>&1"):format(py, here, dir)))
    local log = p:read("a")
    p:close()
    assert(log:match("ok\n$"), "python side failed:\n" .. log)
    local worst = 0
    -- the score's bias has gradient 0 (a softmax ignores a shift): there the error is taken
    -- against 1e-3 rather than PyTorch's 1e-17
    local function check(what, ours, file)
      local want = T.fromfile(("%s/%s.f32"):format(dir, file), ours:shape())
      local e = numeric.rel_err(ours, want, 1e-3)
      worst = math.max(worst, e)
      assert(e < 1e-4, ("%s: relative error %.3g vs PyTorch (tolerance 1e-4)"):format(what, e))
    end
    check("logits", y, "torch_logits")
    check("dx", x:grad(), "torch_dx")
    for _, np in ipairs(h:named_parameters()) do check("d" .. np[1], np[2]:grad(), "torch_d" .. np[1]) end
    print(("  attentive head parity (per_layer %s): worst relative error %.3g"):format(tostring(per_layer), worst))
  end)
  end
end)

describe("embedding cache, frames kind", function()
  local dir, enc_dir, paths
  setup(function()
    dir, enc_dir, paths = whisper_clips.make(tmp, "embframes")
  end)
  teardown(tmp.cleanup)

  local function cache(kind)
    local enc, id = frozen.encoder(enc_dir)
    return cachemod.new { encoder = enc, identity = id, config = enc.config, dir = dir .. "/cache",
      settings = { seconds = 4, sr = 16000 }, log = function() end, kind = kind }
  end

  it("keeps each clip's frames of every layer (float16), misses then hits with the same values", function()
    local c1 = cache("frames")
    local f1 = c1:frames(paths)
    assert.are.equal(#paths, #f1)
    assert.are.equal(#paths, c1.misses)
    local c2 = cache("frames")
    local f2 = c2:frames(paths)
    assert.are.equal(#paths, c2.hits)
    for i = 1, #paths do assert.are.equal(0, numeric.max_abs(f1[i] - f2[i]), paths[i]) end
    -- the clip encoded alone, to float16 rounding
    local enc = frozen.encoder(enc_dir)
    local wav = assert(ser.audio.load(paths[2], { sr = 16000, mono = true }))
    local m = enc:frontend(wav)
    local hs = enc:hidden_states(m:view(1, 80, -1))
    local frames = (m:shape()[2] + 1) // 2
    assert.are.same({ 3, frames, 64 }, f1[2]:shape())
    for l = 1, 3 do
      local want = hs[l]:select(1, 1):narrow(1, 1, frames)
      local e = rel_err(f1[2]:select(1, l), want)
      assert(e < 1e-3, ("layer %d: relative error %.3g (float16: < 1e-3)"):format(l, e))
    end
    -- a file per clip, stored as F16, in a settings folder of its own (apart from the pooled kind)
    local pooled = cache("pooled")
    pooled:pooled(paths)
    assert.are_not.equal(pooled.dir, c1.dir)
    local ckpt = require "ser.core.checkpoint"
    local sd, meta = ckpt.load(c1:file(require("ser.core.digest").sha256_file(paths[1])))
    assert.is_truthy(sd and sd.frames, "no frames tensor in the cache file")
    assert.matches("frame sequences", meta.settings)
    local size = io.open(c1:file(require("ser.core.digest").sha256_file(paths[1])), "rb"):seek("end")
    assert.is_true(size < sd.frames:numel() * 2 + 4096, "not float16: " .. size .. " bytes")
    local ok, err = pcall(c1.pooled, c1, paths)
    assert.is_false(ok)
    assert.matches("kind frames", err)
    ok, err = pcall(cachemod.new, { identity = { sha256 = "x" }, config = enc.config, settings = { seconds = 4, sr = 16000 },
      kind = "frame" })
    assert.is_false(ok)
    assert.matches("kind 'frame' is unknown %(expected pooled or frames%)", err)
  end)
end)

describe("the attentive head in the main job", function()
  local dir, corpus, enc_dir
  setup(function()
    dir = tmp.make("attentivejob")
    corpus = job.corpus(dir .. "/corpus")
    enc_dir = dir .. "/enc"
    random_whisper(enc_dir, { layers = 2, d_model = 64 })
  end)
  teardown(tmp.cleanup)

  for _, case in ipairs { { name = "attentive", sets = "" }, { name = "attentive_spk", sets = " --speaker-norm" } } do
    it_bin(("compare.lua --quick trains it (%s); predict.lua reproduces its scores"):format(case.name), function()
      local out_dir = dir .. "/" .. case.name
      local out, rc = job.compare(("--models whisper --data %s --out %s --seed 1 --encoder %s"
        .. " --head attentive --set model.attention=16%s"):format(corpus, out_dir, enc_dir, case.sets))
      assert.are.equal(0, rc, out)
      for _, f in ipairs { "plots/whisper_curves.png", "plots/umap_whisper.png", "results/whisper_report.txt",
                           "results/whisper.safetensors", "results/results.csv" } do
        assert.is_truthy(io.open(out_dir .. "/" .. f, "rb"), f .. "\n" .. out)
      end
      local ckpt = out_dir .. "/results/whisper.safetensors"
      local sd, meta = assert(ser.load(ckpt))
      assert.are.equal("attentive", meta.recipe.model.head)
      assert.are.same({ 3, 64 }, sd.feature_mean:shape())
      assert.is_truthy(sd["head.attention.0.weight"])
      for k in pairs(sd) do assert.is_nil(k:match("encoder"), "encoder weights in the checkpoint: " .. k) end
      job.assert_reproduces(ckpt, corpus, out_dir .. "/results/results.csv", "whisper")
    end)
  end

  it_bin("refuses mixup, whose blended inputs are not clips, with what went wrong", function()
    local out, rc = job.compare(("--models whisper --data %s --out %s/mix --seed 1 --encoder %s"
      .. " --head attentive --set mixup=0.4"):format(corpus, dir, enc_dir))
    assert.are_not.equal(0, rc)
    assert.matches("not the number of a clip", out)
    assert.matches("mixup", out)
  end)
end)

describe("fine-tuning in the main job (model.finetune_layers)", function()
  local dir, corpus, enc_dir
  setup(function()
    dir = tmp.make("finetunejob")
    corpus = job.corpus(dir .. "/corpus")
    enc_dir = dir .. "/enc"
    random_whisper(enc_dir, { layers = 2, d_model = 64 })
  end)
  teardown(tmp.cleanup)

  local function model(o)
    local opts = { encoder = enc_dir, head = "attentive", classes = 3, hidden = 16, attention = 8, dropout = 0,
                   finetune_layers = 1, encoder_lr = 2e-5, cache = dir .. "/cache" }
    for k, v in pairs(o or {}) do opts[k] = v end
    return frozen.WhisperClassifier(opts)
  end

  it("gives the top blocks their own learning rate and SpecAugment only while training", function()
    ser.manual_seed(4)
    local m = model()
    local groups = m:param_groups(1e-3)
    assert.are.equal(2, #groups)
    assert.are.equal(1e-3, groups[1].lr)
    assert.are.equal(2e-5, groups[2].lr)
    local n_enc = 0
    for _, np in ipairs(m.encoder:named_parameters()) do
      n_enc = n_enc + 1
      assert.is_truthy(np[1]:match("^layers%.1%.") or np[1]:match("^layer_norm%."), np[1])
    end
    assert.are.equal(n_enc, #groups[2].params)
    assert.are.equal(#m:parameters(), #groups[1].params + #groups[2].params)
    -- the frozen tensors are not in the state_dict (nor so in checkpoints)
    for k in pairs(m:state_dict()) do assert.is_nil(k:match("^encoder%.layers%.0%."), k) end
    assert.is_truthy(m:state_dict()["encoder.layers.1.fc1.weight"])
    local items = {}
    for i, it in ipairs(ser.data.scan(corpus, { quiet = true }).items) do
      if i <= 4 then items[i] = { path = it.path, speaker = it.speaker } end
    end
    local x = m:features(items)
    assert.are.same({ 4, 1 }, x:shape())
    m:fit_standardisation(x)
    assert.are.same({ 3, 64 }, m.feature_mean:shape())
    m:eval()
    local a, b = m(x), m(x)
    assert.are.equal(0, numeric.max_abs(a - b))
    -- with a frozen encoder (the fine-tuned blocks still at the pretrained weights) the frames
    -- equal the cached ones to float16 rounding: the same logits as the frozen attentive model
    local f = model { finetune_layers = 0 }
    f:load_state_dict((function()
      local sd = {}
      for k, v in pairs(m:state_dict()) do if not k:match("^encoder%.") then sd[k] = v end end
      return sd
    end)())
    f:eval()
    local fx = f:features(items)
    assert.is_true(rel_err(f(fx), a) < 1e-2, "fine-tuning module vs cached frames: " .. rel_err(f(fx), a))
    m:train()
    ser.manual_seed(5)
    local c = m(x)
    assert.is_true(numeric.max_abs(c - a) > 0, "SpecAugment changed nothing while training")
    m:eval()
    assert.are.equal(0, numeric.max_abs(m(x) - a))
  end)

  it("frozen attentive model: stored clips follow the statistics a state_dict brings", function()
    ser.manual_seed(6)
    local items = {}
    for i, it in ipairs(ser.data.scan(corpus, { quiet = true }).items) do
      if i <= 5 then items[i] = { path = it.path, speaker = it.speaker } end
    end
    local a = model { finetune_layers = 0 }
    local x = a:features(items)
    a:fit_standardisation(x)
    a:eval()
    local ya = a(x)                       -- the store now holds standardised clips
    local sd = {}
    for k, v in pairs(a:state_dict()) do sd[k] = v:clone() end
    sd.feature_mean = sd.feature_mean + 0.5
    sd.feature_std = sd.feature_std * 2
    a:load_state_dict(sd)
    local b = model { finetune_layers = 0 }
    b:load_state_dict(sd)
    b:eval()
    local yb = b(b:features(items))      -- fresh clips, standardised with the loaded statistics
    assert.is_true(numeric.max_abs(a(x) - yb) < 1e-5, "the stored clips kept the old statistics")
    assert.is_true(numeric.max_abs(ya - yb) > 1e-4)
    a:load_state_dict(sd)                 -- the same statistics again: nothing changes
    assert.is_true(numeric.max_abs(a(x) - yb) < 1e-5)
  end)

  it("refuses combinations that cannot work, saying why", function()
    for _, c in ipairs {
      { { speaker_norm = true }, "cannot be combined with speaker_norm" },
      { { finetune_layers = 3 }, "finetune_layers = 3, but the encoder .* has 2 layers" },
    } do
      local ok, err = pcall(model, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
  end)

  it_bin("compare.lua --quick fine-tunes; the checkpoint holds the changed blocks; predict.lua reproduces it", function()
    local out_dir = dir .. "/ft"
    local out, rc = job.compare(("--models whisper --data %s --out %s --seed 1 --encoder %s"
      .. " --head attentive --set model.attention=16 --set model.finetune_layers=1 --set model.encoder_lr=1e-3")
      :format(corpus, out_dir, enc_dir))
    assert.are.equal(0, rc, out)
    local ckpt = out_dir .. "/results/whisper.safetensors"
    local sd, meta = assert(ser.load(ckpt))
    assert.are.equal(1, meta.recipe.model.finetune_layers)
    assert.are.equal(1, meta.encoder.finetune_layers)
    assert.are.same(job.speakers(1, 16), meta.train_speakers)
    for k in pairs(sd) do
      assert.is_nil(k:match("^encoder%.layers%.0%.") or k:match("^encoder%.conv") or k:match("embed_positions"),
        "a frozen tensor in the checkpoint: " .. k)
    end
    -- the fine-tuned block moved away from the encoder's weights
    local enc = frozen.encoder(enc_dir)
    local pre = enc:state_dict()["model.encoder.layers.1.fc1.weight"]
    assert.is_true(numeric.max_abs(sd["encoder.layers.1.fc1.weight"] - pre) > 0, "the top block did not train")
    job.assert_reproduces(ckpt, corpus, out_dir .. "/results/results.csv", "whisper")
  end)
end)
