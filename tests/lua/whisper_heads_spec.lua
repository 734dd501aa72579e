-- Heads on a frozen Whisper encoder: the embedding cache (hits, misses, invalidation by content,
-- encoder and settings, atomic files, batch invariance), the heads' shapes and names, speaker
-- normalisation, and the whisper family end to end: compare.lua --quick with a small random
-- encoder, predict.lua reproducing its validation scores from the checkpoint alone, and clear
-- refusals for a missing or changed encoder.
local ser = require "ser"
local T = ser.tensor
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local random_whisper = dofile(here .. "helpers/whisper_random.lua")
local whisper_clips = dofile(here .. "helpers/whisper_clips.lua")
local cachemod = require "ser.data.embedding_cache"
local frozen = require "ser.frozen_encoder"
local job = dofile(here .. "helpers/quick_job.lua")
local it_bin = job.built and it or pending

local function ls(dir)
  local p = assert(io.popen("find '" .. dir .. "' -type f 2>/dev/null | sort"))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function copy_file(src, dst)
  local f = assert(io.open(src, "rb")); local s = f:read("a"); f:close()
  f = assert(io.open(dst, "wb")); f:write(s); f:close()
end

describe("ser.core.digest", function()
  local digest = require "ser.core.digest"
  it("gives FIPS 180-4's SHA-256 test vectors, and the same for a file's bytes", function()
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", digest.sha256(""))
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", digest.sha256("abc"))
    assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      digest.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.are.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", digest.sha256(("a"):rep(1000000)))
    local dir = tmp.make("digest")
    for _, n in ipairs { 0, 55, 56, 63, 64, 65, 65536, 65537, 200003 } do
      local bytes = {}
      for i = 1, n do bytes[i] = string.char((i * 131 + n) % 256) end
      local text = table.concat(bytes)
      local f = assert(io.open(dir .. "/f", "wb")); f:write(text); f:close()
      assert.are.equal(digest.sha256(text), digest.sha256_file(dir .. "/f"), "length " .. n)
    end
    local none, err = digest.sha256_file(dir .. "/missing")
    assert.is_nil(none)
    assert.matches("cannot open .*missing", err)
    tmp.cleanup()
  end)
end)

describe("embedding cache", function()
  local dir, enc_dir, paths
  setup(function()
    dir, enc_dir, paths = whisper_clips.make(tmp, "embcache")
  end)
  teardown(tmp.cleanup)

  local function cache(o)
    o = o or {}
    local path = o.encoder or enc_dir
    local enc, id = frozen.encoder(path)
    return cachemod.new { encoder = enc, identity = id, config = enc.config, dir = o.dir or (dir .. "/cache"),
      settings = o.settings or { seconds = 4, sr = 16000 }, log = function() end, batch = o.batch }
  end

  it("misses, then hits with the same values; files are whole and named by content", function()
    for _, p in ipairs(paths) do assert.is_truthy(io.open(p, "rb"), p) end
    local c1 = cache()
    local x1 = c1:pooled(paths)
    assert.are.same({ #paths, 3, 2, 64 }, x1:shape())
    assert.are.equal(#paths, c1.misses)
    local c2 = cache()
    local x2 = c2:pooled(paths)
    assert.are.equal(#paths, c2.hits)
    assert.are.equal(0, c2.misses)
    assert.are.equal(0, numeric.max_abs_diff(x1, x2))
    -- one .safetensors per clip, nothing half-written (temporary files renamed away)
    local files = ls(dir .. "/cache")
    assert.are.equal(#paths, #files)
    for _, f in ipairs(files) do assert.matches("/%x%x/%x+%.safetensors$", f) end
  end)

  it("pools each clip's own frames: the cached row equals the clip encoded alone", function()
    local c = cache()
    local x = c:pooled(paths)
    local enc = frozen.encoder(enc_dir)
    local wav = assert(ser.audio.load(paths[2], { sr = 16000, mono = true }))
    local m = enc:frontend(wav)
    local hs = enc:hidden_states(m:view(1, 80, -1))
    local frames = (m:shape()[2] + 1) // 2
    for l = 1, 3 do
      local h = hs[l]:select(1, 1):narrow(1, 1, frames)
      local mean = h:mean(1)
      local dev = h - mean:view(1, -1)
      local sd = (dev * dev):mean(1):sqrt()
      assert.is_true(numeric.max_abs_diff(x:select(1, 2):select(1, l):select(1, 1), mean) < 1e-4)
      assert.is_true(numeric.max_abs_diff(x:select(1, 2):select(1, l):select(1, 2), sd) < 1e-4)
    end
    -- and batching (clips of different lengths, padded and masked) does not change it
    local one = cache { dir = dir .. "/cache-b1", batch = 1 }:pooled(paths)
    assert.is_true(numeric.max_abs_diff(one, x) < 1e-4, "batch of 1 vs batch of 8: " .. numeric.max_abs_diff(one, x))
  end)

  it("with a context, encodes each clip inside a silent window and pools the clip's own frames", function()
    local s = { seconds = 1, sr = 16000, context = 2.5 }
    local c = cache { settings = s }
    local x = c:pooled(paths)
    assert.are.equal(#paths, c.misses)
    local enc = frozen.encoder(enc_dir)
    local wav = assert(ser.audio.load(paths[2], { sr = 16000, mono = true }))
    local n = wav:shape()[1]
    local m = enc:frontend(T.cat({ wav, T.zeros(40000 - n) }, 1))      -- 2.5 s at 16 kHz
    assert.are.same({ 80, 250 }, m:shape())
    local hs = enc:hidden_states(m:view(1, 80, -1))                      -- the window attended whole
    local frames = (n // 160 + 1) // 2
    for l = 1, 3 do
      local h = hs[l]:select(1, 1):narrow(1, 1, frames)
      local mean = h:mean(1)
      local dev = h - mean:view(1, -1)
      assert.is_true(numeric.max_abs_diff(x:select(1, 2):select(1, l):select(1, 1), mean) < 1e-4)
      assert.is_true(numeric.max_abs_diff(x:select(1, 2):select(1, l):select(1, 2), (dev * dev):mean(1):sqrt()) < 1e-4)
    end
    -- not the clip alone's features, and stored under its own settings id; batching changes nothing
    local alone = cache { settings = { seconds = 1, sr = 16000 } }
    assert.is_true(numeric.max_abs_diff(alone:pooled(paths), x) > 1e-3)
    assert.are_not.equal(alone.dir, c.dir)
    local one = cache { settings = s, dir = dir .. "/cache-ctx-b1", batch = 1 }:pooled(paths)
    assert.is_true(numeric.max_abs_diff(one, x) < 1e-4, "batch of 1 vs batch of 8: " .. numeric.max_abs_diff(one, x))
    -- a context of 0 is no context: the settings text (and so every existing cache's id) is unchanged
    assert.are.equal(cachemod.settings_text({ seconds = 1, sr = 16000 }, 80),
      cachemod.settings_text({ seconds = 1, sr = 16000, context = 0 }, 80))
    assert.matches(";context=2.5$", cachemod.settings_text(s, 80))
  end)

  it("refuses a context that cannot hold the clips, exceeds Whisper's window, or meets another encoder", function()
    for _, case in ipairs {
      { { seconds = 4, sr = 16000, context = 3 }, "whisper", "shorter than the clips it must hold %(up to 4 s" },
      { { seconds = 4, sr = 16000, context = 31 }, "whisper", "longer than Whisper's 30 s window" },
      { { seconds = 4, sr = 16000, context = 10 }, "wav2vec2", "this encoder is wav2vec2" },
      { { seconds = 4, sr = 16000, context = -1 }, "whisper", "number of seconds >= 0" },
    } do
      assert.matches(case[3], cachemod.context_problem(case[1], case[2]))
    end
    assert.is_nil(cachemod.context_problem({ seconds = 4, context = 30 }, "whisper"))
    assert.is_nil(cachemod.context_problem({ seconds = 40 }, "wav2vec2"))
    local ok, err = pcall(cache, { settings = { seconds = 4, sr = 16000, context = 2 } })
    assert.is_false(ok)
    assert.matches("embedding cache: a context of 2 s is shorter", err)
    ok, err = pcall(frozen.WhisperClassifier, { encoder = enc_dir, classes = 2, seconds = 4, context = 40 })
    assert.is_false(ok)
    assert.matches("^whisper: model.context: a context of 40 s is longer than Whisper's 30 s window", err)
    ok, err = pcall(frozen.WhisperClassifier, { encoder = enc_dir, classes = 2, seconds = 4, context = 30, finetune_layers = 1 })
    assert.is_false(ok)
    assert.matches("finetune_layers = 1 cannot be combined with model.context = 30", err)
    -- a recipe says so when it is resolved, before any clip is read or encoder loaded
    local recipe = require "ser.recipe"
    ok, err = pcall(recipe.resolve, { model = { name = "whisper", encoder = "/nowhere", context = 5 }, data = { seconds = 8 } })
    assert.is_false(ok)
    assert.matches("^recipe whisper: model.context: a context of 5 s is shorter than the clips it must hold %(up to 8 s", err)
    ok, err = pcall(recipe.resolve, { model = { name = "whisper", encoder = "/nowhere", context = 30, finetune_layers = 2 },
                                      data = { seconds = 8 } })
    assert.is_false(ok)
    assert.matches("model.context = 30 cannot be combined with model.finetune_layers = 2", err)
    assert.are.equal(30, recipe.resolve({ model = { name = "whisper", encoder = "/nowhere", context = 30 } }).model.context)
  end)

  it("model.layers: the head reads the picked hidden states of the same cache, in the graph too", function()
    local all = frozen.WhisperClassifier { encoder = enc_dir, classes = 2, seconds = 4, head = "concat",
                                           cache = dir .. "/cache" }
    local picked = frozen.WhisperClassifier { encoder = enc_dir, classes = 2, seconds = 4, head = "concat",
                                              cache = dir .. "/cache", layers = { 0, 2 } }
    local items = {}
    for i, p in ipairs(paths) do items[i] = { path = p, speaker = "s" } end
    local xa, xp = all:features(items), picked:features(items)
    assert.are.same({ #paths, 3, 2, 64 }, xa:shape())
    assert.are.same({ #paths, 2, 2, 64 }, xp:shape())
    assert.are.equal(0, numeric.max_abs_diff(xp:narrow(2, 1, 1), xa:narrow(2, 1, 1)))
    assert.are.equal(0, numeric.max_abs_diff(xp:narrow(2, 2, 1), xa:narrow(2, 3, 1)))
    assert.are.same({ 2, 2, 64 }, picked.feature_mean:shape())
    local g = assert(ser.graph.describe(picked, { classes = { "a", "b" } }))
    local ops = {}
    for _, n in ipairs(g.nodes) do ops[#ops + 1] = n.op end
    assert.are.equal("whisper_encoder slice slice concat param param sub div", table.concat(ops, " ", 1, 8))
    assert.are.same({ 0, 1, 2, 1 }, { g.nodes[2].start, g.nodes[2].length, g.nodes[3].start, g.nodes[3].length })
    -- counted from the end as Python does: -1 the last block's output
    local from_end = frozen.WhisperClassifier { encoder = enc_dir, classes = 2, seconds = 4, head = "concat",
                                                cache = dir .. "/cache", layers = { -3, -1 } }
    assert.are.equal(0, numeric.max_abs_diff(from_end:features(items), xp))
    for _, case in ipairs {
      { { layers = { 0, 3 } }, "hidden states 0 %(the embeddings%) to 2 .* got {0, 3}" },
      { { layers = { -4 } }, "or %-3 to %-1 counted from the end" },
      { { layers = { 2, -1 } }, "got {2, %-1}" },
      { { layers = { 2, 1 } }, "in increasing order, each once; got {2, 1}" },
      { { layers = { 1, 1 } }, "got {1, 1}" },
      { { layers = { 1 }, head = "attentive" }, "the attentive head reads every layer" },
      { { layers = { 1 }, finetune_layers = 1 }, "fine%-tuning reads every layer" },
    } do
      local o = { encoder = enc_dir, classes = 2, seconds = 4, head = "concat" }
      for k, v in pairs(case[1]) do o[k] = v end
      local ok, err = pcall(frozen.WhisperClassifier, o)
      assert.is_false(ok)
      assert.matches("^whisper: model.layers", err)
      assert.matches(case[2], err)
    end
  end)

  it("recomputes a clip whose content changed, and only that one", function()
    cache():pooled(paths)
    local changed = dir .. "/changed.wav"
    copy_file(paths[1], changed)
    local before = cache():pooled({ changed })
    copy_file(paths[3], changed)                 -- same name, other bytes
    local c = cache()
    local after = c:pooled({ changed, paths[2] })
    assert.are.equal(0, c.misses)                -- paths[3]'s content is cached already
    assert.are.equal(2, c.hits)
    assert.is_true(numeric.max_abs_diff(before, after:narrow(1, 1, 1)) > 1e-3)
    assert.are.equal(0, numeric.max_abs_diff(after:narrow(1, 1, 1), cache():pooled({ paths[3] })))
    local f = io.open(changed, "ab"); f:write("\0\0\0\0"); f:close()   -- a new content: a miss
    local c3 = cache()
    c3:pooled({ changed })
    assert.are.equal(1, c3.misses)
  end)

  it("invalidates on another encoder, an edited encoder file and other settings", function()
    local base = cache():pooled(paths)
    local other = dir .. "/enc2"
    random_whisper(other, { layers = 2, d_model = 64, seed = 7 })
    local c = cache { encoder = other }
    local x = c:pooled(paths)
    assert.are.equal(#paths, c.misses)
    assert.is_true(numeric.max_abs_diff(x, base) > 1e-3)
    -- the same folder edited in place: the identity changes, so does the cache folder
    local id1 = assert(cachemod.identity(other))
    random_whisper(other, { layers = 2, d_model = 64, seed = 8 })
    local id2 = assert(cachemod.identity(other))
    assert.are_not.equal(id1.sha256, id2.sha256)
    local f = io.open(other .. "/config.json", "ab"); f:write(" "); f:close()
    assert.are_not.equal(id2.sha256, assert(cachemod.identity(other)).sha256)
    -- settings: clip length, trimming
    for _, s in ipairs { { seconds = 0.5, sr = 16000 }, { seconds = 4, sr = 16000, trim = 30 } } do
      local cs = cache { settings = s }
      cs:pooled(paths)
      assert.are.equal(#paths, cs.misses)
      assert.are_not.equal(cache().dir, cs.dir)
    end
  end)

  it("recomputes a damaged cache file instead of failing", function()
    local c = cache()
    local x = c:pooled({ paths[1] })
    local key = assert(require("ser.core.digest").sha256_file(paths[1]))
    local file = c:file(key)
    local f = assert(io.open(file, "wb")); f:write("garbage"); f:close()
    local c2 = cache()
    local y = c2:pooled({ paths[1] })
    assert.are.equal(1, c2.misses)
    assert.is_true(numeric.max_abs_diff(x, y) < 1e-5)
  end)

  it("says which file cannot be read, and refuses clips over 30 s", function()
    local ok, err = pcall(function() return cache():pooled({ dir .. "/nope.wav" }) end)
    assert.is_false(ok)
    assert.matches("nope.wav", err)
    ok, err = pcall(cache, { settings = { seconds = 40, sr = 16000 } })
    assert.is_false(ok)
    assert.matches("at most 30 s", err)
    ok, err = pcall(frozen.encoder, dir .. "/no-such-encoder")
    assert.is_false(ok)
    assert.matches("make whisper%-base", err)
  end)
end)

describe("heads", function()
  it("SuperbHead: softmax layer weights -> mean -> linear, PyTorch-style names", function()
    ser.manual_seed(1)
    local h = ser.nn.SuperbHead(3, 16, 5)
    local keys = {}
    for k in pairs(h:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "linear.bias", "linear.weight", "weights" }, keys)
    local x = T.randn(4, 3, 2, 16)
    assert.are.same({ 4, 5 }, h(x):shape())
    assert.are.same({ 4, 16 }, h:embed(x):shape())
    -- zero weights: the layers' means averaged
    local want = x:narrow(3, 1, 1):mean(2):reshape(4, 16)
    assert.is_true(numeric.max_abs_diff(h:embed(x), want) < 1e-6)
    -- gradients reach the layer weights
    h(x):sum():backward()
    assert.is_true(h.weights:grad():abs():sum():item() > 0)
    local ok, err = pcall(h, T.randn(4, 3, 16))
    assert.is_false(ok)
    assert.matches("expected pooled hidden states %[B, 3, 2, 16%]", err)
  end)

  it("StatsHead: weighted mean+std -> MLP (LayerNorm, ReLU, dropout)", function()
    ser.manual_seed(1)
    local h = ser.nn.StatsHead(3, 16, 5, { hidden = 32, dropout = 0.2 })
    local keys = {}
    for k in pairs(h:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "mlp.0.bias", "mlp.0.weight", "mlp.1.bias", "mlp.1.weight", "mlp.4.bias", "mlp.4.weight",
                      "weights" }, keys)
    local x = T.randn(4, 3, 2, 16)
    assert.are.same({ 4, 5 }, h(x):shape())
    assert.are.same({ 4, 32 }, h:embed(x):shape())
    assert.are.same({ 32, 32 }, h.mlp:get(1).weight:shape())   -- 2d = 32 inputs
  end)

  it("speaker statistics: each group z-scored over its own rows", function()
    local x = T.new { { 1, 10 }, { 3, 30 }, { 100, 0 }, { 102, 4 } }
    local m, sd = frozen.group_stats(x, { "a", "a", "b", "b" }, 1e-4)
    local z = ((x - m) / sd):totable()
    assert.are.same({ { -1, -1 }, { 1, 1 }, { -1, -1 }, { 1, 1 } }, z)
  end)
end)

describe("the whisper family in the main job", function()
  local dir, corpus, enc_dir
  setup(function()
    dir = tmp.make("whisperjob")
    corpus = job.corpus(dir .. "/corpus")
    enc_dir = dir .. "/enc"
    random_whisper(enc_dir, { layers = 2, d_model = 64 })
  end)
  teardown(tmp.cleanup)

  for _, case in ipairs { { name = "concat", sets = "" }, { name = "superb_spk", sets = " --head superb --speaker-norm" } } do
    it_bin(("compare.lua --quick trains it (%s) with every artefact; predict.lua reproduces its scores"):format(case.name), function()
      local out_dir = dir .. "/" .. case.name
      local out, rc = job.compare(("--models whisper --data %s --out %s --seed 1 --encoder %s%s")
        :format(corpus, out_dir, enc_dir, case.sets))
      assert.are.equal(0, rc, out)
      for _, f in ipairs { "plots/whisper_curves.png", "plots/whisper_confusion.png", "plots/model_comparison.png",
                           "plots/umap_whisper.png", "results/whisper_report.txt", "results/whisper_history.csv",
                           "results/whisper.safetensors", "results/results.csv" } do
        assert.is_truthy(io.open(out_dir .. "/" .. f, "rb"), f .. "\n" .. out)
      end
      assert.is_true(#ls(out_dir .. "/cache/embeddings") > 0, "no embedding cache under OUT/cache/embeddings")
      local ckpt = out_dir .. "/results/whisper.safetensors"
      local sd, meta = assert(ser.load(ckpt))
      assert.are.equal("whisper", meta.recipe.model.name)
      assert.are.equal(enc_dir, meta.encoder.path)
      assert.are.equal(assert(cachemod.identity(enc_dir)).sha256, meta.encoder.sha256)
      -- the training speakers, so that distillation can refuse it as a teacher of a run on them
      assert.are.same(job.speakers(1, 16), meta.train_speakers)
      for k in pairs(sd) do assert.is_nil(k:match("encoder"), "encoder weights in the checkpoint: " .. k) end
      local want = job.assert_reproduces(ckpt, corpus, out_dir .. "/results/results.csv", "whisper")
      -- embed.lua and ensemble.lua take it too
      out, rc = job.experiment("embed.lua", ("%s %s --out %s/u.png"):format(ckpt, corpus, dir))
      assert.are.equal(0, rc, out)
      out, rc = job.experiment("ensemble.lua", ("--split val --data %s %s %s"):format(corpus, ckpt, ckpt))
      assert.are.equal(0, rc, out)
      assert.matches(("ensemble%%s+val%%s+%s"):format(want[3]:gsub("%.", "%%.")), out)
    end)
  end

  it_bin("a checkpoint whose encoder is missing or changed is refused with what to do", function()
    local ckpt = dir .. "/concat/results/whisper.safetensors"
    assert.is_truthy(io.open(ckpt, "rb"), "run by the test above")
    local _, paths = job.val(corpus)
    local moved = enc_dir .. "-moved"
    assert(os.rename(enc_dir, moved))
    local _, out, rc = job.predict(ckpt, { paths[1] })
    assert(os.rename(moved, enc_dir))
    assert.are_not.equal(0, rc)
    assert.matches("cannot be read", out)
    assert.matches("make whisper%-base", out)
    -- the same folder holding other weights
    local saved = enc_dir .. "/model.safetensors.orig"
    copy_file(enc_dir .. "/model.safetensors", saved)
    random_whisper(enc_dir, { layers = 2, d_model = 64, seed = 9 })
    _, out, rc = job.predict(ckpt, { paths[1] })
    copy_file(saved, enc_dir .. "/model.safetensors")
    assert.are_not.equal(0, rc)
    assert.matches("has changed since this model was trained", out)
  end)

  it_bin("without the encoder's weights the main job says how to get them and trains the others", function()
    local out, rc = job.compare(("--models whisper --data %s --out %s/none --encoder %s/absent"):format(corpus, dir, dir))
    assert.are_not.equal(0, rc)
    assert.matches("not training whisper", out)
    assert.matches("make whisper%-base", out)
    assert.matches("leaves no recipe to train: whisper cannot be trained here", out)
  end)
end)
