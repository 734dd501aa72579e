-- The C inference API (src/infer/, docs/c-api.md) against predict.lua: every model kind the
-- project trains (CNN2D freq mean/flatten, CRNN in the notebook's form and with batchnorm,
-- flatten and statistics pooling, CNN1D, the whisper family's three heads on a small random
-- encoder, and one inside a padded window, model.context), saved by ser.train.checkpoint with weights and BatchNorm statistics perturbed so
-- that the probabilities are far from uniform; build/examples/classify (the C API) must print
-- predict.lua's probabilities to 1e-5 on clips at 16, 22.05 (stereo) and 48 kHz, with and
-- without silence trimming. Also: ser.graph.attach on an old-layout checkpoint and a
-- notebook .pt, ser.train.fit's checkpoint, speaker-normalised models (spectral "speaker" and
-- "speaker_bins", the whisper family's speaker_norm) with classify --speaker, clear refusals,
-- and `make install` + pkg-config building the example against the installed library.
local ser = require "ser"
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local recipe = require "ser.recipe"
local torch_python = dofile(here .. "helpers/torch_python.lua")
local frozen = require "ser.frozen_encoder"

local build = paths.build
local serlua, classify = paths.serlua, build .. "/examples/classify"
local exists = paths.exists
local have = exists(serlua) and exists(classify)
local it_bin = have and it or pending
if not have then print("infer_spec: " .. classify .. " or serlua not built; run `make test` (C API checks pending)") end

local run = dofile(here .. "helpers/shell.lua").run

-- { [path] = {p1, ...} } from "path<TAB>label<TAB>name p  name p" lines.
local function parse(out)
  local probs = {}
  for line in out:gmatch("[^\n]+") do
    local path, rest = line:match("^([^\t]+)\t[^\t]+\t(.*)$")
    if path then
      local v = {}
      for num in rest:gmatch("%s(%-?%d%.%d+)") do v[#v + 1] = tonumber(num) end
      probs[path] = v
    end
  end
  return probs
end

local SHARED = here .. "../../../shared/data/"
local clips   -- audio files every case is scored on

-- Copies audio file src to folder/<name>.<src's extension>; returns the copy's path.
local function copy_audio(src, folder, name)
  local path = ("%s/%s.%s"):format(folder, name, src:match("%.(%w+)$"))
  local from, to = assert(io.open(src, "rb")), assert(io.open(path, "wb"))
  to:write(from:read("a"))
  from:close()
  to:close()
  return path
end

-- Copies of the files into a fresh folder (a speaker's clips for classify --speaker-clips).
local function copies(files)
  local folder = tmp.make("infer-clips")
  for i, f in ipairs(files) do copy_audio(f, folder, "clip" .. i) end
  return folder
end

-- Compares classify (the C API) with predict.lua on every clip; returns the largest
-- probability seen (so a case can show it is not near-uniform).
-- files: the clips (default: all); speaker: the files are one speaker's, classified twice --
-- `--speaker` (ser_model_predict_speaker_clip on the clips the speaker kept) and
-- `--speaker-clips DIR` with copies of them in DIR (ser_model_predict_speaker on the samples).
local function assert_parity(ckpt, files, speaker)
  files = files or clips
  local list = table.concat(files, " ")
  local pout, prc = run(("SER_NUM_THREADS=1 %s experiments/predict.lua --digits 7 %s %s"):format(serlua, ckpt, list))
  assert.are.equal(0, prc, pout)
  local want = parse(pout)
  local top, mid = 0, 0
  for _, flags in ipairs(speaker and { "--speaker ", "--speaker-clips " .. copies(files) .. " " } or { "" }) do
    local cout, crc = run(("SER_NUM_THREADS=1 %s %s%s %s"):format(classify, flags, ckpt, list))
    assert.are.equal(0, crc, cout)
    local got, worst = parse(cout), 0
    for _, path in ipairs(files) do
      assert(want[path] and #want[path] > 1, "predict.lua gave no line for " .. path .. "\n" .. pout)
      assert(got[path], "classify gave no line for " .. path .. "\n" .. cout)
      assert.are.equal(#want[path], #got[path])
      for k, p in ipairs(want[path]) do
        worst = math.max(worst, math.abs(p - got[path][k]))
        top = math.max(top, p)
        if p > 1e-4 and p < 1 - 1e-4 then mid = mid + 1 end
      end
    end
    assert(worst <= 1e-5, ("%s: the C API's probabilities (classify %s) differ from predict.lua's by %.3g (> 1e-5)"
      .. "\npredict.lua:\n%s\nclassify:\n%s"):format(ckpt, flags, worst, pout, cout))
  end
  -- saturated outputs (all 0 or 1) would hide differences in the logits
  assert(mid > 0, "every probability is within 1e-4 of 0 or 1: the comparison would not see a difference\n" .. pout)
  return top
end

-- Far-from-default statistics and larger logits: a wrong op or option shows in the outputs.
-- The classifier's last Linear of each model kind.
local LAST = { ["classifier.5"] = true, ["head.0"] = true, ["fc.2"] = true, ["head.linear"] = true, ["head.mlp.4"] = true }
local function perturb(model, seed, scale)
  ser.manual_seed(seed)
  ser.no_grad(function()
    for name, t in pairs(model:state_dict()) do
      local layer = name:match("^(.*)%.[^.]*$")
      if name:match("running_var$") then t:copy_(T.rand(t:shape()) + 0.5)
      elseif name:match("running_mean$") then t:copy_(T.randn(t:shape()) * 0.2)
      elseif name:match("feature_std$") then t:copy_(T.rand(t:shape()) + 0.5)
      elseif name:match("feature_mean$") then t:copy_(T.randn(t:shape()) * 0.1)
      elseif name:match("weights$") then t:copy_(T.randn(t:shape()))
      elseif LAST[layer] then t:copy_(t * (scale or 25) + T.randn(t:shape()) * 0.3)
      end
    end
  end)
  return model
end

local CLASSES = { "neutral", "happy", "sad", "angry" }

describe("the C inference API (ser_model_predict) equals predict.lua", function()
  local dir
  setup(function()
    dir = tmp.make("infer")
    ser.manual_seed(3)
    -- made here: a 22.05 kHz stereo clip with silence around a voiced-like burst (trimming,
    -- mixing to mono, resampling), 1.3 s of 16 kHz noise and a tone, a 0.3 s clip (padding)
    local function wave(n, sr, f, noise, from, to)
      local v = {}
      for k = 1, n do
        local on = (k >= from and k <= to) and 1 or 0
        v[k] = on * (0.4 * math.sin(2 * math.pi * f * (k - 1) / sr) + noise * (math.random() * 2 - 1))
      end
      return T.new(v)
    end
    math.randomseed(3)
    local left = wave(22050 * 3, 22050, 180, 0.05, 22051, 44100)
    assert(ser.audio.save(dir .. "/stereo22k.wav", T.cat({ left:view(1, -1), (left * 0.5):view(1, -1) }, 1), 22050))
    assert(ser.audio.save(dir .. "/mono16k.wav", wave(20800, 16000, 440, 0.1, 1, 20800), 16000))
    assert(ser.audio.save(dir .. "/short.wav", wave(4800, 16000, 90, 0.3, 1, 4800), 16000))
    clips = { dir .. "/stereo22k.wav", dir .. "/mono16k.wav", dir .. "/short.wav" }
    if exists(SHARED .. "ravdess16k/Actor_01/03-01-05-01-01-01-01.flac") then
      clips[#clips + 1] = SHARED .. "ravdess16k/Actor_01/03-01-05-01-01-01-01.flac"
      clips[#clips + 1] = SHARED .. "ravdess16k/Actor_02/03-01-04-01-02-01-02.flac"
    else
      print("infer_spec: ../shared/data/ravdess16k absent; comparing on generated clips only")
    end
    if exists(SHARED .. "ravdess48k-sample/Actor_01/03-01-03-01-01-01-01.wav") then
      clips[#clips + 1] = SHARED .. "ravdess48k-sample/Actor_01/03-01-03-01-01-01-01.wav"
    end
  end)
  teardown(tmp.cleanup)

  local cases = {
    { "cnn2d", {}, { kind = "logmel" }, { seconds = 3, trim = true } },
    { "cnn2d", { freq = "flatten" }, { kind = "logmel", n_mels = 64, hop = 160 }, { seconds = 2 } },
    { "cnn2d", {}, { kind = "mfcc", n_mfcc = 40 }, { seconds = 2, trim = 25 } },
    { "crnn", {}, { kind = "logmel" }, { seconds = 3 } },
    { "crnn", { batchnorm = true, freq = "flatten", time = "stats", mels = 64, hidden = 48, dropout = 0.3,
                feature_dropout = 0.1 }, { kind = "logmel" }, { seconds = 2.5, trim = true } },
    { "crnn", { time = "stats", hidden = 32 }, { kind = "logmel", n_mels = 40 }, { seconds = 2 } },
    { "cnn1d", {}, { kind = "waveform", normalize = true }, { seconds = 2, trim = true } },
    { "cnn1d", {}, { kind = "waveform" }, { seconds = 1.5 } },
    { "cnn2d", { freq = "flatten", time = "stats" }, { kind = "logmel", n_mels = 64 }, { seconds = 2, trim = true } },
    { "cnn2d", { time = "stats" }, { kind = "mfcc", n_mfcc = 40 }, { seconds = 2 } },
    { "cnn1d", { time = "stats" }, { kind = "waveform", normalize = true }, { seconds = 2 } },
    { "cnn1d", { context_blocks = 2 }, { kind = "waveform", normalize = true }, { seconds = 2, trim = true } },
    { "cnn1d", { frontend = "filterbank" }, { kind = "waveform", normalize = true }, { seconds = 2, trim = true } },
    { "cnn1d", { frontend = "filterbank", time = "stats" }, { kind = "waveform", normalize = true }, { seconds = 1.5 } },
  }
  for i, c in ipairs(cases) do
    local name, o, feats, fit = c[1], c[2], c[3], c[4]
    local label = ("%s %s on %s%s"):format(name, ser.results and "" or "", feats.kind,
      (next(o) and (" (" .. table.concat((function() local s = {} for k, v in pairs(o) do s[#s + 1] = k .. "=" .. tostring(v) end table.sort(s) return s end)(), ", ") .. ")") or "")
      .. (fit.trim and ", trimmed" or ""))
    it_bin(label, function()
      o.classes = #CLASSES
      ser.manual_seed(100 + i)   -- the weights do not depend on what ran before in this process
      local model = perturb(ser.models.create(name, o), i)
      local path = ("%s/%s_%d.safetensors"):format(dir, name, i)
      ser.train.save_checkpoint(path, model, CLASSES, { seconds = fit.seconds, sr = 16000, trim = fit.trim }, 1,
        { features = feats })
      local _, meta = assert(ser.load(path))
      assert.are.equal("serlua-graph", meta.graph.format)
      local top = assert_parity(path)
      assert(top > 0.3, ("the perturbed model is near-uniform (top probability %.3f): the test would not see a difference"):format(top))
    end)
  end

  for _, head in ipairs { "superb", "stats", "concat" } do
    it_bin("the whisper family (" .. head .. " head, small random encoder)", function()
      local enc = dir .. "/enc"
      if not exists(enc .. "/model.safetensors") then random_whisper(enc, { layers = 2, d_model = 64 }) end
      local r = recipe.resolve({ model = { name = "whisper", encoder = enc, head = head, hidden = 32 },
                                 data = { seconds = 2, trim = head == "stats" and 30 or 0 } })
      ser.manual_seed(200)
      -- the SUPERB head's single Linear over d standardised features, and the concatenating
      -- MLP over all layers, saturate at the stats head's scale
      local model = perturb(recipe.build_model(r, #CLASSES), 7, ({ superb = 2, stats = 25, concat = 4 })[head])
      model:eval()
      local path = ("%s/whisper_%s.safetensors"):format(dir, head)
      ser.train.save_checkpoint(path, model, CLASSES, { seconds = 2, sr = 16000, meta = { recipe = recipe.to_meta(r) } }, 1, {})
      local top = assert_parity(path)
      assert(top > 0.3, ("near-uniform whisper model (top probability %.3f)"):format(top))
    end)
  end

  it_bin("the whisper family with model.context (each clip padded into a 3 s window, its own frames pooled) and model.layers", function()
    local enc = dir .. "/enc"
    if not exists(enc .. "/model.safetensors") then random_whisper(enc, { layers = 2, d_model = 64 }) end
    local r = recipe.resolve({ model = { name = "whisper", encoder = enc, head = "concat", hidden = 32, context = 3,
                                         layers = { 0, 2 } },
                               data = { seconds = 2, trim = 30 } })
    ser.manual_seed(201)
    local model = perturb(recipe.build_model(r, #CLASSES), 8, 4)
    model:eval()
    local path = dir .. "/whisper_context.safetensors"
    ser.train.save_checkpoint(path, model, CLASSES, { seconds = 2, sr = 16000, meta = { recipe = recipe.to_meta(r) } }, 1, {})
    local sd, meta = assert(ser.load(path))
    assert.are.equal(3, meta.graph.input.context)
    local top = assert_parity(path)
    assert(top > 0.3, ("near-uniform whisper model (top probability %.3f)"):format(top))
    -- a graph that disagrees with the recipe the Lua side rebuilds from (as one written by
    -- another build could) is refused rather than run otherwise than predict.lua would run it
    local function refused(edit, want)
      local _, m = assert(ser.load(path))
      edit(m)
      m.format = nil   -- ser.save writes it
      local stale = dir .. "/whisper_stale.safetensors"
      assert(ser.save(stale, sd, m))
      local out, rc = run(("%s %s %s"):format(classify, stale, clips[1]))
      assert.are_not.equal(0, rc, out)
      assert.matches(want, out, 1, true)
      assert.matches("ser.graph.attach", out, 1, true)
      -- the ONNX export runs the graph too, and refuses it alike, writing nothing
      local onnx = dir .. "/whisper_stale.onnx"
      local ok, err = require("ser.core.onnx").export(stale, onnx)
      assert.is_nil(ok)
      assert.matches(want, err, 1, true)
      assert.is_nil(io.open(onnx))
    end
    refused(function(m) m.graph.input.context = nil end, "model.context (3 s) and the graph's input.context (0 s) disagree")
    refused(function(m) m.recipe.model.speaker_norm = true end,
      "model.speaker_norm (true) and the graph's input.speaker_norm (false) disagree")
  end)

  -- Speaker-normalised models: classify --speaker takes the speaker's statistics over all the
  -- files given (ser_speaker_add), as predict.lua does over one speaker's files. The clips made
  -- here have no speaker in their names, so predict.lua takes them as one speaker; the shared
  -- RAVDESS clips (real speech) join them under names that do not say their speaker either.
  local function one_speaker()
    local files = {}
    for i, c in ipairs(clips) do
      if c:match("Actor_") then c = copy_audio(c, dir, "speech" .. i) end
      files[i] = c
    end
    return files
  end

  local spectral_speaker = {
    { "cnn2d", { freq = "flatten" }, { kind = "logmel" }, "speaker", { seconds = 2, trim = true } },
    { "crnn", { time = "stats", hidden = 32 }, { kind = "logmel", n_mels = 40 }, "speaker_bins", { seconds = 2 } },
    { "cnn2d", {}, { kind = "mfcc", n_mfcc = 40 }, "speaker_bins", { seconds = 2.5 } },
  }
  for i, c in ipairs(spectral_speaker) do
    local name, o, feats, norm, fit = c[1], c[2], c[3], c[4], c[5]
    it_bin(("%s on %s, normalize = %q (a speaker's statistics)"):format(name, feats.kind, norm), function()
      o.classes = #CLASSES
      ser.manual_seed(300 + i)
      local model = perturb(ser.models.create(name, o), 30 + i)
      local path = ("%s/%s_spk_%d.safetensors"):format(dir, name, i)
      ser.train.save_checkpoint(path, model, CLASSES, { seconds = fit.seconds, sr = 16000, trim = fit.trim,
        normalize = norm }, 1, { features = feats })
      local top = assert_parity(path, one_speaker(), true)
      assert(top > 0.3, ("near-uniform speaker-normalised model (top probability %.3f)"):format(top))
    end)
  end

  for _, c in ipairs { { "superb", {} }, { "concat", { context = 3, layers = { 1, 2 } } } } do
    it_bin("the whisper family with speaker_norm (" .. c[1] .. " head" .. (c[2].context and ", model.context" or "")
        .. ")", function()
      local enc = dir .. "/enc"
      if not exists(enc .. "/model.safetensors") then random_whisper(enc, { layers = 2, d_model = 64 }) end
      local m = { name = "whisper", encoder = enc, head = c[1], hidden = 32, speaker_norm = true }
      for k, v in pairs(c[2]) do m[k] = v end
      local r = recipe.resolve({ model = m, data = { seconds = 2, trim = 30 } })
      ser.manual_seed(202)
      local model = perturb(recipe.build_model(r, #CLASSES), 9, c[1] == "superb" and 2 or 4)
      model:eval()
      local path = ("%s/whisper_spk_%s.safetensors"):format(dir, c[1])
      ser.train.save_checkpoint(path, model, CLASSES, { seconds = 2, sr = 16000, meta = { recipe = recipe.to_meta(r) } }, 1, {})
      local top = assert_parity(path, one_speaker(), true)
      assert(top > 0.3, ("near-uniform whisper model (top probability %.3f)"):format(top))
    end)
  end

  it_bin("a speaker-normalised model without a speaker, and a speaker for a model without it, are refused", function()
    local p = dir .. "/cnn2d_spk_1.safetensors"
    if not exists(p) then
      ser.train.save_checkpoint(p, ser.models.create("cnn2d", { classes = #CLASSES }), CLASSES,
        { seconds = 2, sr = 16000, normalize = "speaker" }, 1, { features = { kind = "logmel" } })
    end
    local out, rc = run(("%s %s %s"):format(classify, p, clips[1]))
    assert.are.equal(2, rc, out)
    assert.matches("speaker-normalised: give --speaker", out, 1, true)
    local plain = dir .. "/plain.safetensors"
    ser.train.save_checkpoint(plain, ser.models.create("cnn2d", { classes = #CLASSES }), CLASSES,
      { seconds = 2, sr = 16000 }, 1, { features = { kind = "logmel" } })
    out, rc = run(("%s --speaker %s %s"):format(classify, plain, clips[1]))
    assert.are.equal(2, rc, out)
    assert.matches("trained without speaker normalisation", out, 1, true)
    -- --speaker-clips: a folder without audio, and one that is not there
    local empty = tmp.make("infer-empty")
    local note = assert(io.open(empty .. "/README.md", "w"))
    note:write("no audio here\n")
    note:close()
    out, rc = run(("%s --speaker-clips %s %s %s"):format(classify, empty, p, clips[1]))
    assert.are.equal(1, rc, out)
    assert.matches("no clip of the speaker could be added (expected audio files", out, 1, true)
    out, rc = run(("%s --speaker-clips %s/nowhere %s %s"):format(classify, empty, p, clips[1]))
    assert.are.equal(1, rc, out)
    assert.matches("--speaker-clips " .. empty .. "/nowhere", out, 1, true)
    -- one audio file is a speaker's clips too
    out, rc = run(("%s --speaker-clips %s %s %s"):format(classify, clips[1], p, clips[2]))
    assert.are.equal(0, rc, out)
    assert.matches(clips[2], out, 1, true)
  end)

  it_bin("a changed encoder is refused (its identity differs from the checkpoint's)", function()
    local enc2 = dir .. "/enc2"
    random_whisper(enc2, { layers = 2, d_model = 64 })
    local r = recipe.resolve({ model = { name = "whisper", encoder = enc2, head = "superb" }, data = { seconds = 2 } })
    local model = recipe.build_model(r, #CLASSES)
    local path = dir .. "/changed.safetensors"
    ser.train.save_checkpoint(path, model, CLASSES, { seconds = 2, sr = 16000, meta = { recipe = recipe.to_meta(r) } }, 1, {})
    random_whisper(enc2, { layers = 2, d_model = 64, seed = 9 })
    local out, rc = run(("%s %s %s"):format(classify, path, clips[1]))
    assert.are_not.equal(0, rc)
    assert.matches("has changed since the model was trained", out, 1, true)
  end)

  it_bin("ser.train.fit's checkpoint carries a graph the C API runs", function()
    local corpus = dir .. "/corpus"
    ser.data.synthetic { speakers = 4, per_class = 2, seconds = 1.0, seed = 2, out = corpus, classes = { "neutral", "happy", "angry" } }
    local part = ser.data.scan(corpus, { quiet = true })
    local train, val = part:split { by = "speaker", quiet = true }
    local path = dir .. "/fit_cnn1d.safetensors"
    ser.manual_seed(1)
    ser.train.fit(ser.models.create("cnn1d", { classes = 3 }), { train, val },
      { epochs = 1, batch = 8, seconds = 1.0, checkpoint = path, progress = "quiet" })
    local _, meta = assert(ser.load(path))
    assert.is_table(meta.graph)
    assert_parity(path)
  end)

  it_bin("ser.graph.attach adds a graph to an old-layout checkpoint and a notebook .pt state_dict", function()
    local old = here .. "../data/old_layout/crnn.safetensors"
    local out, rc = run(("%s %s %s"):format(classify, old, clips[1]))
    assert.are_not.equal(0, rc)
    assert.matches("no graph description", out, 1, true)
    assert.matches("graph.attach(", out, 1, true)
    local copy = dir .. "/old_crnn.safetensors"
    assert(ser.graph.attach(old, copy))
    assert_parity(copy)
    -- a bare state_dict in the notebook's names (as a .pt or safetensors from PyTorch: no metadata)
    local bare = dir .. "/bare_cnn1d.safetensors"
    ser.manual_seed(300)
    assert(ser.save(bare, perturb(ser.models.create("cnn1d", { classes = 8 }), 5):state_dict()))
    local bcopy = dir .. "/bare_cnn1d_graph.safetensors"
    assert(ser.graph.attach(bare, bcopy))
    assert_parity(bcopy)
    -- a file that is not a model at all: attach says why
    local ok, err = ser.graph.attach(here .. "../data/pt/tiny.pt", dir .. "/tiny.safetensors")
    assert.is_nil(ok)
    assert.matches("none of the seed models", tostring(err), 1, true)
    local bad, berr = ser.graph.attach(here .. "../data/pt/os_system.pt", dir .. "/x.safetensors")
    assert.is_nil(bad)
    assert.matches("os", tostring(berr))
  end)

  local py = torch_python()
  local it_torch = (have and py) and it or pending
  if not py then print("infer_spec: no python3 with torch; the notebook .pt case is pending") end
  it_torch("the notebook's three models saved by torch.save(model.state_dict()): attach, then predict.lua's probabilities", function()
    local p = assert(io.popen(("OPENBLAS_NUM_THREADS=1 %s %shelpers/pt_torch.py '%s' 2>&1"):format(py, here, dir)))
    local out = p:read("a")
    p:close()
    assert(out:match("ok\n$"), "python side failed:\n" .. out)
    for _, name in ipairs { "cnn2d", "crnn", "cnn1d" } do
      local pt, copy = ("%s/%s.pt"):format(dir, name), ("%s/%s_from_pt.safetensors"):format(dir, name)
      assert(ser.graph.attach(pt, copy))
      -- predict.lua reads the .pt itself; the C API the attached copy
      local files = table.concat(clips, " ")
      local pout = run(("SER_NUM_THREADS=1 %s experiments/predict.lua --digits 7 %s %s"):format(serlua, pt, files))
      local cout = run(("SER_NUM_THREADS=1 %s %s %s"):format(classify, copy, files))
      local want, got = parse(pout), parse(cout)
      for _, path in ipairs(clips) do
        assert(want[path] and got[path], pout .. cout)
        for k, v in ipairs(want[path]) do
          assert(math.abs(v - got[path][k]) <= 1e-5, ("%s, %s class %d: %g vs %g"):format(name, path, k, v, got[path][k]))
        end
      end
    end
  end)

  it("ser.graph.describe says why it cannot describe a model, and such a checkpoint is saved without a graph", function()
    local custom = ser.nn.Sequential { ser.nn.Linear(4, 3) }
    local g, why = ser.graph.describe(custom, { classes = { "a", "b", "c" }, features = { kind = "waveform" }, inputs = {} })
    assert.is_nil(g)
    assert.matches("Sequential", why, 1, true)
    local crnn = ser.models.create("crnn", { classes = 3 })
    g, why = ser.graph.describe(crnn, { classes = { "a", "b", "c" }, features = { kind = "spectrogram" }, inputs = {} })
    assert.is_nil(g)
    assert.matches("spectrogram", why, 1, true)
    local path = dir .. "/custom.safetensors"
    ser.train.save_checkpoint(path, custom, { "a", "b", "c" }, {}, 1, {})
    local _, meta = assert(ser.load(path))
    assert.is_nil(meta.graph)
    g, why = ser.graph.describe(crnn, {})
    assert.is_nil(g)
    assert.matches("classes", why, 1, true)
  end)

  it_bin("make install + pkg-config --cflags --libs ser build the example against the installed library", function()
    if not exists("/usr/bin/pkg-config") then
      pending("pkg-config is not installed")
      return
    end
    if os.getenv("SER_TEST_SANITIZED") then
      -- the sanitized library needs the sanitizer runtime a plain `cc` link does not add
      pending("make check-asan: the installed-library build is checked by the plain `make test`")
      return
    end
    local prefix = dir .. "/prefix"
    local out, rc = run(("make -s install BUILD=%s PREFIX=%s"):format(build, prefix))
    assert.are.equal(0, rc, out)
    assert.is_true(exists(prefix .. "/lib/pkgconfig/ser.pc"))
    assert.is_true(exists(prefix .. "/include/ser/infer/infer.h"))
    local exe = dir .. "/classify_installed"
    out, rc = run(("cc -std=c11 examples/classify.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs ser) -o %s")
      :format(prefix, exe))
    assert.are.equal(0, rc, out)
    local ldd = run("ldd " .. exe)
    assert.matches(prefix .. "/lib/libser.so", ldd, 1, true)
    local ckpt = dir .. "/cnn2d_1.safetensors"
    if not exists(ckpt) then
      ser.train.save_checkpoint(ckpt, ser.models.create("cnn2d", { classes = 4 }), CLASSES, { seconds = 2, sr = 16000 }, 1,
        { features = { kind = "logmel" } })
    end
    local a = run(("%s %s %s"):format(exe, ckpt, table.concat(clips, " ")))
    local b = run(("%s %s %s"):format(classify, ckpt, table.concat(clips, " ")))
    assert.are.equal(b, a)
  end)
end)
