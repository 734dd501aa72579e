-- ONNX export (ser.onnx, src/export/, experiments/export.lua): every model option the
-- project trains exports from its checkpoint's graph description, and onnxruntime's logits
-- equal ours within 1e-4 at two batch sizes and clip lengths (the axes are dynamic); the
-- files pass onnx.checker (full_check); checkpoints of serlua's old layout export with
-- --attach and give the logits that version computed, the notebook's .pt files from PyTorch
-- give PyTorch's logits; hand-written descriptions cover the
-- ops no seed model emits; the whisper family's frozen encoder is written out as ONNX ops;
-- bad input gets clear errors and leaves no partial file.
-- onnxruntime-node and python3-onnx are optional (scripts/install-deps.sh --onnx): without
-- them those comparisons stay pending with a message, the rest runs.
local ser = require "ser"
require "ser.core.audio"   -- pins ser.so (see models_spec.lua)
local T = ser.tensor
local nn = ser.nn
local checkpoint = require "ser.train.checkpoint"
local onnx_core = require "ser.core.onnx"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local root = here .. "../../"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local paths = dofile(here .. "helpers/paths.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local ox = dofile(here .. "helpers/onnx_tools.lua")
local old = here .. "../data/old_layout/"
local CLASSES = { "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised" }
local TOL = 1e-4

local read = paths.read

-- BatchNorm statistics and affine parameters away from their initial 0 / 1, so that
-- exporting them wrongly (order, eps, which is mean and which var) shows in the logits.
local function perturb_norms(model)
  local sd = model:state_dict()
  local new = {}
  for k, v in pairs(sd) do
    local s = v:shape()
    if k:match("running_var$") then new[k] = T.randn(s):abs() * 0.5 + 0.5
    elseif k:match("running_mean$") or (k:match("bias$") and #s == 1) then new[k] = T.randn(s) * 0.1 + v
    elseif k:match("weight$") and #s == 1 then new[k] = T.randn(s) * 0.1 + 1
    else new[k] = v end
  end
  model:load_state_dict(new)
  model:eval()
end

local function logits(model, x) return ser.no_grad(function() return model(x) end) end

-- onnxruntime's logits for x against the model's, within TOL
local function agrees(model, onnx_path, x, dir, what)
  local got, info = ox.run(onnx_path, x, dir)
  assert.are.equal("logits", info.output)
  local d = numeric.max_abs_diff(got, logits(model, x))
  assert(d < TOL, ("%s: onnxruntime's logits differ from ours by %g (tolerance %g)"):format(what, d, TOL))
  return d
end

describe("ONNX export of every model option the project trains", function()
  after_each(tmp.cleanup)

  for _, case in ipairs {
    { "cnn2d", {} },
    { "cnn2d", { freq = "flatten" } },
    { "crnn", {} },
    { "crnn", { hidden = 24 } },
    { "crnn", { batchnorm = true, dropout = 0.3, time = "stats" } },
    { "crnn", { freq = "flatten" } },
    { "crnn", { freq = "flatten", time = "stats", batchnorm = true, feature_dropout = 0.2, hidden = 16 } },
    { "cnn1d", {} },
    { "cnn2d", { freq = "flatten", time = "stats" } },
    { "cnn2d", { time = "stats" } },
    { "cnn1d", { time = "stats" } },
    { "cnn1d", { context_blocks = 2, time = "stats" } },
    { "cnn1d", { frontend = "filterbank" } },
  } do
    local name, o = case[1], case[2]
    local parts = {}
    for k, v in pairs(o) do parts[#parts + 1] = k .. "=" .. tostring(v) end
    table.sort(parts)
    local what = name .. "{" .. table.concat(parts, ",") .. "}"
    it(what .. " exports, passes the checker and gives our logits in onnxruntime", function()
      ser.manual_seed(7)
      local opts = { classes = #CLASSES }
      for k, v in pairs(o) do opts[k] = v end
      local model = ser.models.create(name, opts)
      perturb_norms(model)
      local dir = tmp.make("onnx")
      local ck, out = dir .. "/m.safetensors", dir .. "/m.onnx"
      checkpoint.save(ck, model, CLASSES, { seconds = 1, sr = 16000 }, 1, {})
      local info = assert(ser.onnx.export(ck, out))
      assert.are.equal(out, info.path)
      assert(info.bytes > 1000, "the ONNX file is implausibly small")
      assert.are.same(CLASSES, info.classes)
      if ox.python then
        local ok, msg, meta, opset, ir = ox.check(out)
        assert(ok, "onnx.checker: " .. tostring(msg))
        assert.are.equal(17, opset)
        assert.are.equal(8, ir)
        assert.are.equal('["neutral","calm","happy","sad","angry","fearful","disgust","surprised"]', meta.classes)
        assert.truthy(meta.features:match('"kind":"' .. (name == "cnn1d" and "waveform" or "logmel") .. '"'))
        assert.truthy(meta.input:match('"sr":16000'))
        assert.are.equal("m.safetensors", meta.source)
      else
        pending(ox.missing_python)
      end
      if not ox.runtime then return pending(ox.missing_runtime) end
      -- two batch sizes and two lengths through the same file: batch and time are dynamic
      local shapes = name == "cnn1d" and { { 3, 1, 16000 }, { 1, 1, 9000 } } or { { 3, 1, 64, 63 }, { 1, 1, 64, 41 } }
      local xs = { T.randn(shapes[1]), T.randn(shapes[2]) }
      local ys, infos = ox.run(out, xs, dir)
      for i, x in ipairs(xs) do
        assert.are.equal("logits", infos[i].output)
        local d = numeric.max_abs_diff(ys[i], logits(model, x))
        assert(d < TOL, ("%s [%s]: onnxruntime's logits differ from ours by %g (tolerance %g)")
          :format(what, table.concat(shapes[i], ","), d, TOL))
      end
    end)
  end

  it("a CRNN gives our logits on real speech (RAVDESS log-mels)", function()
    local data = root .. "../shared/data/ravdess16k/Actor_01/"
    local files = { "03-01-05-01-01-01-01.flac", "03-01-03-02-02-01-01.flac" }   -- angry, happy
    local probe = io.open(data .. files[1], "rb")
    if not probe then return pending("../shared/data/ravdess16k is absent; the synthetic-input cases above still ran") end
    probe:close()
    if not ox.runtime then return pending(ox.missing_runtime) end
    ser.manual_seed(3)
    local model = ser.models.create("crnn", { classes = #CLASSES })
    perturb_norms(model)
    local mels = {}
    for i, f in ipairs(files) do
      local wav = ser.audio.load(data .. f, { sr = 16000, mono = true, seconds = 3.0 })
      mels[i] = ser.features.logmel(wav, { sr = 16000, n_mels = 64 }):view(1, 64, -1)
    end
    local x = T.stack(mels, 1)   -- [2,1,64,188]
    local dir = tmp.make("onnx")
    checkpoint.save(dir .. "/c.safetensors", model, CLASSES, { seconds = 3, sr = 16000 }, 1, {})
    assert(ser.onnx.export(dir .. "/c.safetensors", dir .. "/c.onnx"))
    agrees(model, dir .. "/c.onnx", x, dir, "CRNN on RAVDESS")
  end)
end)

describe("export.lua", function()
  after_each(tmp.cleanup)
  local serlua = paths.serlua

  local function run(args)
    local p = assert(io.popen(("%s %sexperiments/export.lua %s 2>&1; echo \"rc=$?\""):format(serlua, root, args)))
    local out = p:read("a")
    p:close()
    return out, tonumber(out:match("rc=(%d+)%s*$"))
  end

  it("has --help", function()
    local out, rc = run("--help")
    assert.are.equal(0, rc)
    assert.truthy(out:match("Usage: export.lua"))
    assert.truthy(out:match("%-%-attach"))
  end)

  for _, c in ipairs { { "crnn", { 2, 1, 64, 48 } }, { "crnn_bn_stats", { 2, 1, 64, 48 } }, { "cnn1d", { 2, 1, 4000 } } } do
    it("exports the old-layout " .. c[1] .. " checkpoint with --attach, and onnxruntime gives that version's logits", function()
      local dir = tmp.make("onnx")
      local out, rc = run(old .. c[1] .. ".safetensors " .. dir .. "/m.onnx")
      assert.are.equal(1, rc)
      assert.truthy(out:match("no graph description"), out)
      assert.truthy(out:match("%-%-attach"), out)
      assert.is_nil(io.open(dir .. "/m.onnx", "rb"))
      out, rc = run("--attach " .. old .. c[1] .. ".safetensors " .. dir .. "/m.onnx")
      assert.are.equal(0, rc, out)
      assert.truthy(out:match("wrote .*m%.onnx"), out)
      assert.truthy(out:match("classes neutral,happy,sad,angry"), out)
      assert.is_nil(io.open(dir .. "/m.onnx.graph.tmp.safetensors", "rb"), "the temporary described copy was left behind")
      if not ox.runtime then return pending(ox.missing_runtime) end
      local n = 1
      for _, d in ipairs(c[2]) do n = n * d end
      local v = {}
      for i = 1, n do v[i] = math.sin(i * 0.37) + 0.5 * math.cos(i * 0.011) end   -- as tests/data/old_layout/make.lua
      local got = ox.run(dir .. "/m.onnx", T.new(v):view(c[2]), dir)
      local d = numeric.max_abs_diff(got, T.fromfile(old .. c[1] .. "_logits.f32", { 2, 4 }))
      assert(d < TOL, ("%s: onnxruntime's logits differ from the stored ones by %g"):format(c[1], d))
    end)
  end

  it("exports the notebook's .pt state_dicts (from PyTorch) with --attach, and onnxruntime gives PyTorch's logits", function()
    local py = dofile(here .. "helpers/torch_python.lua")()
    if not py then return pending("no python3 with torch (python3-torch); the PyTorch .pt case is skipped") end
    if not ox.runtime then return pending(ox.missing_runtime) end
    local dir = tmp.make("onnx")
    local p = assert(io.popen(("OPENBLAS_NUM_THREADS=1 %s %shelpers/pt_torch.py '%s' 2>&1"):format(py, here, dir)))
    local pyout = p:read("a")
    p:close()
    assert(pyout:match("ok\n$"), "python side failed:\n" .. pyout)
    for name, shape in pairs { cnn2d = { 2, 1, 64, 32 }, crnn = { 2, 1, 64, 32 }, cnn1d = { 2, 1, 4000 } } do
      local out, rc = run(("--attach %s/%s.pt %s/%s.onnx"):format(dir, name, dir, name))
      assert.are.equal(0, rc, out)
      local got = ox.run(("%s/%s.onnx"):format(dir, name), T.fromfile(("%s/%s_x.f32"):format(dir, name), shape), dir)
      local d = numeric.max_abs_diff(got, T.fromfile(("%s/%s_logits.f32"):format(dir, name), { 2, 8 }))
      assert(d < TOL, ("%s.pt: onnxruntime's logits differ from PyTorch's by %g"):format(name, d))
    end
  end)

  it("refuses a checkpoint of an unknown kind, a missing file and an unwritable output, clearly", function()
    local dir = tmp.make("onnx")
    assert(ser.save(dir .. "/odd.safetensors", { ["w"] = T.ones(2) }, { model = "transformer9", classes = { "a", "b" } }))
    local out, rc = run("--attach " .. dir .. "/odd.safetensors " .. dir .. "/o.onnx")
    assert.are.equal(1, rc)
    assert.truthy(out:match("transformer9"), out)
    assert.truthy(out:match("cannot describe its model"), out)
    out, rc = run(dir .. "/absent.safetensors " .. dir .. "/o.onnx")
    assert.are.equal(1, rc)
    assert.truthy(out:match("absent%.safetensors"), out)
    ser.manual_seed(1)
    checkpoint.save(dir .. "/c.safetensors", ser.models.create("cnn1d", { classes = 2 }), { "a", "b" }, { seconds = 1, sr = 16000 }, 1, {})
    out, rc = run(dir .. "/c.safetensors " .. dir .. "/no/such/folder/o.onnx")
    assert.are.equal(1, rc)
    assert.truthy(out:match("cannot write '.*no/such/folder/o%.onnx'"), out)
  end)
end)

-- Hand-written descriptions (docs/graph.md) for the ops no seed model emits, checked
-- against the same computation in ser.nn / tensor methods.
describe("ONNX export of hand-written graph descriptions", function()
  after_each(tmp.cleanup)

  local function graph(shape, nodes, output)
    return { format = "serlua-graph", version = 1, classes = { "a", "b", "c" },
             input = { features = { kind = "logmel" }, shape = shape }, nodes = nodes, output = output }
  end

  -- saves the description with the tensors (a checkpoint as ser.save writes it) and exports it
  local function export(dir, g, sd)
    local ck, out = dir .. "/g.safetensors", dir .. "/g.onnx"
    assert(ser.save(ck, sd, { graph = g, classes = g.classes }))
    assert(ser.onnx.export(ck, out))
    if ox.python then
      local ok, msg = ox.check(out)
      assert(ok, "onnx.checker: " .. tostring(msg))
    end
    return out
  end

  local function compare(out, x, want, dir, what)
    if not ox.runtime then return pending(ox.missing_runtime) end
    local got = ox.run(out, x, dir)
    local d = numeric.max_abs_diff(got, want)
    assert(d < TOL, ("%s: onnxruntime differs from ours by %g"):format(what, d))
  end

  it("a two-layer unidirectional LSTM, linear on a sequence, layernorm, gelu (both forms), softmax", function()
    ser.manual_seed(11)
    local lstm = nn.LSTM(5, 6, { num_layers = 2, batch_first = true })
    local lin, norm = nn.Linear(6, 3), nn.LayerNorm(3)
    local sd = {}
    for k, v in pairs(lstm:state_dict()) do sd["enc." .. k] = v end
    sd["lin.weight"], sd["lin.bias"] = lin.weight, lin.bias
    sd["ln.weight"], sd["ln.bias"] = T.randn(3) * 0.1 + 1, T.randn(3) * 0.1
    norm:load_state_dict { weight = sd["ln.weight"], bias = sd["ln.bias"] }
    local g = graph({ "batch", "time", 5 }, {
      { op = "lstm", inputs = { "input" }, output = "h", prefix = "enc", input_size = 5, hidden = 6, layers = 2,
        bidirectional = false, bias = true, batch_first = true },
      { op = "linear", inputs = { "h" }, output = "p", weight = "lin.weight", bias = "lin.bias" },
      { op = "layernorm", inputs = { "p" }, output = "q", weight = "ln.weight", bias = "ln.bias", eps = 1e-5 },
      { op = "gelu", inputs = { "q" }, output = "r" },
      { op = "gelu", inputs = { "r" }, output = "s", approximate = "tanh" },
      { op = "mean", inputs = { "s" }, output = "m", dims = { 1 }, keepdim = false },
      { op = "softmax", inputs = { "m" }, output = "out", axis = 1 },
    }, "out")
    local dir = tmp.make("onnx")
    local out = export(dir, g, sd)
    local x = T.randn(2, 7, 5)
    local want = ser.no_grad(function()
      local q = norm(lin(lstm(x)))
      local r = nn.GELU()(q)
      local s = 0.5 * r * (1 + ((r + 0.044715 * r * r * r) * math.sqrt(2 / math.pi)):tanh())
      return s:mean(2):softmax(2)
    end)
    compare(out, x, want, dir, "lstm/linear/layernorm/gelu/softmax")
  end)

  it("std and var over a dynamic axis (unbiased), pooling to bins, param, arithmetic, sum, slice, reshape", function()
    ser.manual_seed(12)
    local sd = { ["p.scale"] = T.randn(4), ["p.shift"] = T.randn(1, 4, 1) }
    local g = graph({ "batch", 4, 12, "time" }, {
      { op = "adaptive_avgpool2d", inputs = { "input" }, output = "a", output_size = { 3, 1 } },   -- [B,4,3,1]
      { op = "reshape", inputs = { "a" }, output = "b", shape = { 0, 0, -1 } },                   -- [B,4,3]
      { op = "std", inputs = { "input" }, output = "s", dims = { 3 }, keepdim = false, unbiased = true }, -- [B,4,12]
      { op = "maxpool1d", inputs = { "s" }, output = "sp", kernel = { 4 }, stride = { 4 }, padding = { 0 } }, -- [B,4,3]
      { op = "var", inputs = { "input" }, output = "v", dims = { 2, 3 }, keepdim = true, unbiased = true }, -- [B,4,1,1]
      { op = "reshape", inputs = { "v" }, output = "vr", shape = { 0, 4, 1 } },
      { op = "param", inputs = {}, output = "scale", tensor = "p.scale", shape = { 1, 4, 1 } },
      { op = "param", inputs = {}, output = "shift", tensor = "p.shift", shape = { 1, 4, 1 } },
      { op = "mul", inputs = { "b", "scale" }, output = "c" },
      { op = "add", inputs = { "c", "sp" }, output = "d" },
      { op = "sub", inputs = { "d", "shift" }, output = "e" },
      { op = "add", inputs = { "vr", "scale" }, output = "vs" },
      { op = "mul", inputs = { "vs", "vs" }, output = "vq" },
      { op = "div", inputs = { "e", "vq" }, output = "f" },
      { op = "sum", inputs = { "f" }, output = "h", dims = { 1 }, keepdim = false },                -- [B,3]
      { op = "transpose", inputs = { "f" }, output = "ft", perm = { 0, 2, 1 } },                    -- [B,3,4]
      { op = "slice", inputs = { "ft" }, output = "fs", axis = 2, start = 1, length = 1 },          -- [B,3,1]
      { op = "flatten", inputs = { "fs" }, output = "fl", start_dim = 1 },
      { op = "concat", inputs = { "h", "fl" }, output = "hc", axis = 1 },                            -- [B,6]
      { op = "reshape", inputs = { "hc" }, output = "out3", shape = { -1, 2, 3 } },
      { op = "sum", inputs = { "out3" }, output = "out", dims = { 1 }, keepdim = false },
    }, "out")
    local dir = tmp.make("onnx")
    local out = export(dir, g, sd)
    local x = T.randn(2, 4, 12, 9)
    local want = ser.no_grad(function()
      local b = x:view(2, 4, 3, 4, 9):mean(4):mean(4)                          -- adaptive pool 12 -> 3 bins, time -> 1
      local s = x:var(4, { unbiased = true }):sqrt()                             -- [2,4,12]
      local sp = s:view(2, 4, 3, 4):max(4)
      if type(sp) == "table" then sp = sp[1] end
      local v = x:view(2, 4, -1):var(3, { unbiased = true }):view(2, 4, 1)
      local scale, shift = sd["p.scale"]:view(1, 4, 1), sd["p.shift"]
      local vs = v + scale
      local f = ((b * scale + sp) - shift) / (vs * vs)
      local h = f:sum(2)                                                         -- [2,3]
      local fs = f:permute(1, 3, 2):narrow(3, 2, 1):reshape { 2, 3 }
      return T.cat({ h, fs }, 2):view(2, 2, 3):sum(2)
    end)
    compare(out, x, want, dir, "std/var/pool/param/arith/sum/slice")
  end)
end)

-- The whisper family: the frozen encoder (a small random one, tests/lua/helpers/whisper_random.lua)
-- written out as ONNX ops with the pooling, then the head; against the encoder's hidden states
-- pooled as ser.data.embedding_cache pools them and the model's forward.
describe("ONNX export of the whisper family", function()
  after_each(tmp.cleanup)
  local random_whisper = dofile(here .. "helpers/whisper_random.lua")

  -- [B, L+1, 2, d]: mean and population std of each hidden state over each clip's frames
  -- (frames: the clips' own log-mel frames at the start of a padded window; nil: all of x)
  local function pooled(enc, x, frames)
    local hs = ser.no_grad(function() return enc:hidden_states(x) end)
    local rows = {}
    for b = 1, x:shape()[1] do
      local per = {}
      for l, h in ipairs(hs) do
        local xb = h:select(1, b)
        if frames then xb = xb:narrow(1, 1, (frames[b] + 1) // 2) end
        local m = xb:mean(1)
        local dev = xb - m:view(1, -1)
        per[l] = T.cat({ m:view(1, 1, -1), (dev * dev):mean(1):sqrt():view(1, 1, -1) }, 2)
      end
      rows[b] = T.cat(per, 1):view(1, #hs, 2, -1)
    end
    return T.cat(rows, 1)
  end

  -- Standardises around ref (one clip's pooled features) with a small spread and gives the head
  -- random weights, so that the logits depend clearly on the clip (keys in sorted order: pairs'
  -- order changes from run to run, and with it which tensor got which draw — one draw in some
  -- runs left two clips' first logits within 1e-3).
  local function randomise(model, ref)
    local sd, state, keys = {}, model:state_dict(), {}
    for k in pairs(state) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = state[k]
      if k == "feature_mean" then sd[k] = ref:reshape(v:shape())
      elseif k == "feature_std" then sd[k] = T.randn(v:shape()):abs() * 0.05 + 0.05
      else sd[k] = T.randn(v:shape()) * 0.3 end
    end
    model:load_state_dict(sd)
    model:eval()
  end

  -- The model's checkpoint (classes a-d, its recipe in the metadata) exported to dir/w.onnx and,
  -- with python3-onnx, checked: the file's path, export's info and the metadata (nil without).
  local function export_checked(dir, model, r)
    local ck, out = dir .. "/w.safetensors", dir .. "/w.onnx"
    ser.train.save_checkpoint(ck, model, { "a", "b", "c", "d" }, { seconds = 2, sr = 16000, meta = { recipe = ser.recipe.to_meta(r) } }, 1, {})
    local info = assert(ser.onnx.export(ck, out))
    if not ox.python then return out, info end
    local ok, msg, meta = ox.check(out)
    assert(ok, "onnx.checker: " .. tostring(msg))
    return out, info, meta
  end

  for _, head in ipairs { "superb", "stats", "concat" } do
    it(head .. " head: onnxruntime's logits equal ours at two clip lengths", function()
      local dir = tmp.make("onnx")
      local encdir = dir .. "/enc"
      random_whisper(encdir, { layers = 2, d_model = 64 })
      local r = ser.recipe.resolve({ model = { name = "whisper", encoder = encdir, head = head, hidden = 32 }, data = { seconds = 2 } })
      ser.manual_seed(21)
      local model = ser.recipe.build_model(r, 4)
      local enc = assert(ser.pretrained.load(encdir))
      local xs = { T.randn(2, 80, 150), T.randn(1, 80, 97) }
      randomise(model, pooled(enc, xs[1]):select(1, 1))
      local out, info, meta = export_checked(dir, model, r)
      assert.are.equal("WhisperClassifier", info.model)
      if meta then assert.truthy(meta.features:match('"kind":"whisper_logmel"'), meta.features) end
      if not ox.runtime then return pending(ox.missing_runtime) end
      local ys = ox.run(out, xs, dir)
      for i, x in ipairs(xs) do
        local want = ser.no_grad(function() return model(pooled(enc, x)) end)
        local d = numeric.max_abs_diff(ys[i], want)
        assert(d < TOL, ("whisper %s [%s]: onnxruntime's logits differ from ours by %g"):format(head, table.concat(x:shape(), ","), d))
      end
      local y1 = ys[1]
      assert(numeric.max_abs_diff(y1:narrow(1, 1, 1), y1:narrow(1, 2, 1)) > 1e-3,
        "the two clips give the same logits: the test would not see the encoder")
    end)
  end

  it("refuses an encoder that changed since training", function()
    local dir = tmp.make("onnx")
    local encdir = dir .. "/enc"
    random_whisper(encdir, { layers = 2, d_model = 64 })
    local r = ser.recipe.resolve({ model = { name = "whisper", encoder = encdir, head = "superb" }, data = { seconds = 2 } })
    local model = ser.recipe.build_model(r, 4)
    model:eval()
    ser.train.save_checkpoint(dir .. "/w.safetensors", model, { "a", "b", "c", "d" },
      { seconds = 2, sr = 16000, meta = { recipe = ser.recipe.to_meta(r) } }, 1, {})
    random_whisper(encdir, { layers = 2, d_model = 64, seed = 9 })
    local ok, err = ser.onnx.export(dir .. "/w.safetensors", dir .. "/w.onnx")
    assert.is_nil(ok)
    assert.truthy(err:match("has changed since the model was trained"), err)
  end)

  it("a speaker-normalised model takes the speaker's statistics as inputs and gives the pooled states to compute them", function()
    local dir = tmp.make("onnx")
    local encdir = dir .. "/enc"
    random_whisper(encdir, { layers = 2, d_model = 64 })
    local r = ser.recipe.resolve({ model = { name = "whisper", encoder = encdir, head = "concat", hidden = 32,
                                             speaker_norm = true, layers = { 1, 2 } }, data = { seconds = 2 } })
    ser.manual_seed(23)
    local model = ser.recipe.build_model(r, 4)
    local enc = assert(ser.pretrained.load(encdir))
    -- one speaker's three clips (a batch), and a fourth clip of another length alone; levels
    -- and spreads far apart, so that the clips' pooled states spread widely (a speaker's
    -- statistics over near-identical clips would divide by near-zero spreads, and any
    -- difference in the last float digit of the pooled states would show in the logits)
    local xs = { T.cat({ T.randn(1, 80, 120) * 0.5, T.randn(1, 80, 120) + 1, T.randn(1, 80, 120) * 2 - 1 }, 1),
                 T.randn(1, 80, 97) * 1.5 + 0.5 }
    local all = T.cat({ pooled(enc, xs[1]), pooled(enc, xs[2]) }, 1)   -- [4, L+1, 2, d]
    local spk = { "s", "s", "s", "s" }
    local picked = all:narrow(2, 2, 2)   -- model.layers {1, 2}: hidden states 1 and 2 of 0..2
    randomise(model, model:speaker_normalise(picked, spk):select(1, 1))
    -- speaker-normalised features are already of unit spread: randomise's narrow standardisation
    -- (for the pooled states of near-identical random clips) would amplify float rounding here
    local fs = model:state_dict().feature_std
    ser.no_grad(function() fs:copy_(T.ones_like(fs)) end)
    local out, _, meta = export_checked(dir, model, r)
    -- the metadata names the floor the C core applies (and ser.frozen_encoder with it)
    local floor = require("ser.core.pretrained").POOLED_STD_FLOOR
    if meta then
      local said = meta.speaker_norm and tonumber(meta.speaker_norm:match("standard deviation, ([^)]+)%)"))
      assert.are.equal(floor, said, tostring(meta.speaker_norm))
    end
    if not ox.runtime then return pending(ox.missing_runtime) end
    local dims = all:shape()
    -- first pass: any statistics; the second output is the encoder's pooled states
    local none = { shift = T.zeros(dims[2], dims[3], dims[4]), scale = T.ones(dims[2], dims[3], dims[4]) }
    local _, infos = ox.run(out, xs, dir, nil, nil, none)
    local got = T.cat({ infos[1].pooled, infos[2].pooled }, 1)
    assert(numeric.max_abs_diff(got, all) < TOL, "the pooled output differs from the encoder's pooled states by "
      .. numeric.max_abs_diff(got, all))
    -- the statistics over the speaker's four clips, as the metadata says, then the logits
    local flat = got:view(4, -1)
    local mean = flat:mean(1)
    local dev = flat - mean:view(1, -1)
    local sd = (dev * dev):mean(1):sqrt():clamp(floor, math.huge)
    local stats = { shift = mean:view(dims[2], dims[3], dims[4]), scale = (T.ones(sd:shape()) / sd):view(dims[2], dims[3], dims[4]) }
    local ys = ox.run(out, xs, dir, nil, nil, stats)
    local want = ser.no_grad(function() return model(model:speaker_normalise(picked, spk)) end)
    local y = T.cat(ys, 1)
    local d = numeric.max_abs_diff(y, want)
    assert(d < TOL, ("speaker-normalised whisper: onnxruntime's logits differ from ours by %g"):format(d))
    -- the statistics matter: the unnormalised run gives other logits
    assert(numeric.max_abs_diff(T.cat(ox.run(out, xs, dir, nil, nil, none), 1), want) > 1e-2,
      "the logits do not depend on the speaker's statistics: the test would not see them")
  end)

  it("a model inside a padded window (model.context): input frames says which frames are the clip's (and model.layers)", function()
    local dir = tmp.make("onnx")
    local encdir = dir .. "/enc"
    random_whisper(encdir, { layers = 2, d_model = 64 })
    local r = ser.recipe.resolve({ model = { name = "whisper", encoder = encdir, head = "concat", hidden = 32, context = 3,
                                             layers = { 0, 2 } }, data = { seconds = 2 } })
    ser.manual_seed(22)
    local model = ser.recipe.build_model(r, 4)
    local enc = assert(ser.pretrained.load(encdir))
    -- windows of 3 s (300 log-mel frames) holding clips of 150 and 120 frames, and of 97
    local xs, frames = { T.randn(2, 80, 300), T.randn(1, 80, 300) }, { { 150, 120 }, { 97 } }
    local frozen = require "ser.frozen_encoder"
    local function pooled_own(x, f)   -- the whole window encoded, each clip's own frames pooled, layers 0 and 2
      return frozen.pick_layers(pooled(enc, x, f), model.hidden)
    end
    randomise(model, pooled_own(xs[1], frames[1]):select(1, 1))
    local out, _, meta = export_checked(dir, model, r)
    if meta then assert.truthy(meta.input:match('"context":3'), meta.input) end
    if not ox.runtime then return pending(ox.missing_runtime) end
    local ys = ox.run(out, xs, dir, nil, frames)
    for i, x in ipairs(xs) do
      local want = ser.no_grad(function() return model(pooled_own(x, frames[i])) end)
      local d = numeric.max_abs_diff(ys[i], want)
      assert(d < TOL, ("whisper window [%s]: onnxruntime's logits differ from ours by %g"):format(table.concat(x:shape(), ","), d))
      -- the clip's frames, not the window's: pooling all 150 encoder frames gives other logits
      local whole = ser.no_grad(function() return model(pooled_own(x, { 300, 300 })) end)
      assert(numeric.max_abs_diff(ys[i], whole) > 1e-3, "the logits do not depend on the clip's frame count")
    end
    -- a frame count out of range pools one frame (0) or the whole window (past its end), never NaN
    local odd = ox.run(out, { xs[2], xs[2] }, dir, nil, { { 0 }, { 100000 } })
    for k, f in ipairs { 1, 300 } do
      local want = ser.no_grad(function() return model(pooled_own(xs[2], { f })) end)
      assert(numeric.max_abs_diff(odd[k], want) < TOL, ("frames out of range (%d): %g"):format(f, numeric.max_abs_diff(odd[k], want)))
    end
  end)
end)

describe("ONNX export refuses bad descriptions clearly", function()
  after_each(tmp.cleanup)
  local sd = { ["fc.weight"] = T.ones(3, 4), ["fc.bias"] = T.zeros(3), ["c.weight"] = T.ones(8, 2, 3, 3) }
  local function g(nodes, extra)
    local t = { format = "serlua-graph", version = 1, classes = { "a", "b", "c" },
                input = { features = { kind = "logmel" }, shape = { "batch", 4 } }, nodes = nodes, output = "y" }
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end
  local function build_error(graph)
    local dir = tmp.make("onnx")
    assert(ser.save(dir .. "/g.safetensors", sd, { graph = graph, classes = { "a", "b", "c" } }))
    local ok, err = ser.onnx.export(dir .. "/g.safetensors", dir .. "/g.onnx")
    assert.is_nil(ok)
    assert.is_nil(io.open(dir .. "/g.onnx", "rb"), "a failed export left a file")
    return err
  end

  it("an op the exporter does not know, naming the node and the ops it knows", function()
    local err = build_error(g { { op = "fft", inputs = { "input" }, output = "y" } })
    assert.truthy(err:match("node 0 %(fft%)"), err)
    assert.truthy(err:match("does not know this op; it knows conv1d, conv2d"), err)
  end)

  it("a whisper-family model whose encoder is missing, saying where it looked", function()
    local err = build_error(g { { op = "whisper_encoder", inputs = { "input" }, output = "y",
                                  encoder = { path = "no/such/encoder", sha256 = ("0"):rep(64) } } })
    assert.truthy(err:match("node 0 %(whisper_encoder%): the model's Whisper encoder no/such/encoder cannot be read"), err)
  end)

  it("a tensor the checkpoint lacks, a shape that disagrees, an unknown input, a bad attribute", function()
    local err = build_error(g { { op = "linear", inputs = { "input" }, output = "y", weight = "head.weight" } })
    assert.truthy(err:match("weight names tensor 'head.weight', which the checkpoint does not hold"), err)
    err = build_error(g({ { op = "linear", inputs = { "input" }, output = "y", weight = "fc.weight" } },
      { input = { shape = { "batch", 5 } } }))
    assert.truthy(err:match("with 5 features; weight 'fc.weight' %[3,4%] expects 4"), err)
    err = build_error(g { { op = "relu", inputs = { "h9" }, output = "y" } })
    assert.truthy(err:match("input 'h9' is not the graph's input nor the output of an earlier node"), err)
    err = build_error(g({ { op = "conv2d", inputs = { "input" }, output = "y", weight = "c.weight", stride = "two" } },
      { input = { shape = { "batch", 2, 8, "time" } } }))
    assert.truthy(err:match("attribute 'stride' must be a whole number"), err)
    err = build_error(g({ { op = "adaptive_avgpool2d", inputs = { "input" }, output = "y", output_size = { 4, 2 } } },
      { input = { shape = { "batch", 2, 8, "time" } } }))
    assert.truthy(err:match("axis 3 of 'input' %[batch,2,8,time%] %(size known only at run time%) to 2 bins"), err)
    err = build_error(g({ { op = "adaptive_avgpool2d", inputs = { "input" }, output = "y", output_size = { 3, 1 } } },
      { input = { shape = { "batch", 2, 8, "time" } } }))
    assert.truthy(err:match("from 8 to 3 bins gives unequal bins"), err)
  end)

  it("not a description at all, another version, no nodes, too few classes, malformed JSON", function()
    assert.truthy(build_error({ format = "other" }):match("not a serlua graph description"))
    assert.truthy(build_error(g({ { op = "relu", inputs = { "input" }, output = "y" } }, { version = 2 })):match("reads version 1"))
    assert.truthy(build_error(g {}):match("has no nodes"))
    assert.truthy(build_error(g({ { op = "relu", inputs = { "input" }, output = "y" } }, { classes = { "a" } })):match("2 or more"))
    local ok, err = onnx_core.build("{\"format\": ", {})
    assert.is_nil(ok)
    assert.truthy(err:match("not valid JSON"), err)
  end)

  it("a failed export over an existing file keeps the old file whole and leaves no temporary file", function()
    local dir = tmp.make("onnx")
    local f = assert(io.open(dir .. "/g.onnx", "wb"))
    f:write("previous model")
    f:close()
    assert(ser.save(dir .. "/g.safetensors", sd, { graph = g { { op = "nope", inputs = { "input" }, output = "y" } } }))
    assert.is_nil((ser.onnx.export(dir .. "/g.safetensors", dir .. "/g.onnx")))
    assert.are.equal("previous model", read(dir .. "/g.onnx"))
    local p = assert(io.popen("ls -a " .. dir))
    local listing = p:read("a")
    p:close()
    assert.is_nil(listing:match("%.tmp"), listing)
  end)
end)
