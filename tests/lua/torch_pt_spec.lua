-- ser.load / ser.models.load of PyTorch .pt state_dicts (zip format of torch.save, PyTorch
-- >= 1.6; src/io/torch_zip.c and torch_pickle.c). Without PyTorch: the hand-made files of
-- tests/data/pt (make.py there says what each holds) — known values of every dtype, views
-- and a shared storage; a pickle that would run a shell command, a view past its storage,
-- a short storage record, a truncated zip and others refused with what was wrong. With
-- python3-torch: the notebook's three models saved by torch.save(model.state_dict()) load
-- into ser.models and give PyTorch's logits (float32, float16, bfloat16, non-contiguous and
-- offset views), and predict.lua runs on a .pt.
local ser = require "ser"
require "ser.core.audio"   -- pins ser.so (see models_spec.lua)
local T = ser.tensor

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local H = dofile(here .. "robustness_helpers.lua")   -- temporary folders, file bytes
local numeric = dofile(here .. "helpers/numeric.lua")
local torch_python = dofile(here .. "helpers/torch_python.lua")
local data = here .. "../data/pt/"

describe("ser.load of a PyTorch .pt", function()
  after_each(H.cleanup)

  it("reads every dtype, transposed and offset views and a shared storage, with no metadata", function()
    local sd, meta = ser.load(data .. "tiny.pt")
    assert(sd, meta)
    assert.are.same({}, meta)
    local n = 0
    for _ in pairs(sd) do n = n + 1 end
    assert.are.equal(6, n)
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, sd.w:totable())
    assert.are.same({ { 1, 4 }, { 2, 5 }, { 3, 6 } }, sd.wt:totable())   -- stride (1, 3)
    assert.are.same({ 2, 4 }, sd.tail:totable())                       -- offset 1, stride 2, the same storage
    assert.are.same({ 1, -5, 0.0999755859375 }, sd.h:totable())        -- float16, exact in float32
    assert.are.same({ 3, -0.5 }, sd.b:totable())                       -- bfloat16
    assert.are.same({}, sd["bn.num_batches_tracked"]:shape())          -- int64, 0-d
    assert.are.equal(12345, sd["bn.num_batches_tracked"]:item())
  end)

  it("refuses a pickle that would run code, naming what it met, and runs nothing", function()
    local dir = H.tmpdir("pt")
    local sd, msg = ser.load(data .. "os_system.pt")
    assert.is_nil(sd)
    assert.matches("os_system.pt: archive/data.pkl, byte 2: GLOBAL os system is not allowed", msg, 1, true)
    assert.matches("nothing was loaded", msg, 1, true)
    assert.is_false(H.exists("PWNED_BY_PICKLE") or H.exists(dir .. "/PWNED_BY_PICKLE"))
    local m, err = ser.models.load(data .. "os_system.pt")
    assert.is_nil(m)
    assert.matches("GLOBAL os system is not allowed", err, 1, true)
  end)

  it("refuses damaged and foreign files with what was wrong, and loads nothing", function()
    for _, c in ipairs {
      { "view_past_storage.pt", "tensor 'w' (size [2,3], stride [3,1], offset 2) reaches element 7 of storage '0', " ..
        "which has 6 elements; nothing was loaded" },
      { "short_storage.pt", "storage '0' of tensor 'w' holds 16 bytes; its 6 FloatStorage elements need 24" },
      { "missing_storage.pt", "tensor 'w' uses storage '7', but the archive has no record archive/data/7" },
      { "nested.pt", "state_dict entry 'model' is a dict, expected a tensor" },
      { "torchscript.pt", "a TorchScript archive (torch.jit.save), not a state_dict" },
    } do
      local sd, msg = ser.load(data .. c[1])
      assert(sd == nil, c[1] .. " loaded")
      assert(msg:find(c[2], 1, true), ("%s: '%s' lacks '%s'"):format(c[1], msg, c[2]))
      assert(msg:find(data .. c[1], 1, true), c[1] .. ": the message names the file")
    end
  end)

  it("refuses a truncated zip, the pre-1.6 format and a bare zip, naming the file", function()
    local dir = H.tmpdir("pt")
    local bytes = H.read(data .. "tiny.pt")
    for _, keep in ipairs { 30, #bytes // 2, #bytes - 10, #bytes - 1 } do
      local p = ("%s/cut%d.pt"):format(dir, keep)
      H.write(p, bytes:sub(1, keep))
      local sd, msg = ser.load(p)
      assert(sd == nil, "kept " .. keep .. " bytes and loaded")
      assert(msg:find(p .. ": not a readable zip archive", 1, true), msg)
      assert(msg:find("truncated or damaged", 1, true), msg)
    end
    -- torch.save before 1.6 (or _use_new_zipfile_serialization=False): bare pickles
    local p = dir .. "/legacy.pt"
    H.write(p, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.matches("legacy.pt: a PyTorch checkpoint in the format before 1.6", msg, 1, true)
    -- a zip that is no checkpoint: the first bytes of any zip, then nothing usable
    p = dir .. "/other.zip"
    H.write(p, "PK\5\6" .. ("\0"):rep(18))   -- an empty archive
    sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.matches("other.zip: a zip archive without <archive>/data.pkl (0 records)", msg, 1, true)
  end)

  it("still reads safetensors files whose first bytes could start a pickle or a zip", function()
    local dir = H.tmpdir("pt")
    -- header lengths 0x0280 (bytes 80 02: pickle's PROTO 2) and 0x4b50 (bytes 50 4b: "PK")
    for _, len in ipairs { 0x0280, 0x4b50 } do
      local json = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
      json = json .. (" "):rep(len - #json)
      local p = H.write(("%s/h%d.safetensors"):format(dir, len), string.pack("<I8", len) .. json .. string.pack("<f", 7))
      local sd, msg = ser.load(p)
      assert(sd, msg)
      assert.are.same({ 7 }, sd.w:totable())
    end
  end)

  local py = torch_python()
  local it_torch = py and it or pending

  it_torch("loads the notebook's models saved by torch.save(model.state_dict()) with PyTorch's logits", function()
    local dir = H.tmpdir("pt")
    local p = assert(io.popen(("OPENBLAS_NUM_THREADS=1 %s %shelpers/pt_torch.py '%s' 2>&1"):format(py, here, dir)))
    local out = p:read("a")
    p:close()
    assert(out:match("ok\n$"), "python side failed:\n" .. out)
    local shapes = { cnn2d = { 2, 1, 64, 32 }, crnn = { 2, 1, 64, 32 }, cnn1d = { 2, 1, 4000 } }
    for _, c in ipairs {
      { "cnn2d", "cnn2d", "cnn2d" }, { "crnn", "crnn", "crnn" }, { "cnn1d", "cnn1d", "cnn1d" },
      { "cnn2d", "cnn2d_fp16", "cnn2d_fp16" }, { "crnn", "crnn_fp16", "crnn_fp16" }, { "cnn1d", "cnn1d_fp16", "cnn1d_fp16" },
      { "cnn2d", "cnn2d_bf16", "cnn2d_bf16" }, { "crnn", "crnn_bf16", "crnn_bf16" }, { "cnn1d", "cnn1d_bf16", "cnn1d_bf16" },
      { "crnn", "crnn_views", "crnn" },   -- transposed matrices, offset views of one storage: the same model
    } do
      local kind, file, logits = c[1], c[2], c[3]
      local model, meta = ser.models.load(("%s/%s.pt"):format(dir, file))
      assert(model, meta)
      assert.are.equal(kind, meta.model)
      if kind == "crnn" then assert.are.equal(32, meta.hidden) end
      assert.are.same(require("ser.model_names").RAVDESS, meta.classes)
      local x = T.fromfile(("%s/%s_x.f32"):format(dir, kind), shapes[kind])
      local want = T.fromfile(("%s/%s_logits.f32"):format(dir, logits), { 2, 8 })
      local got = ser.no_grad(function() return model(x) end)
      local d = numeric.max_abs_diff(got, want)
      assert(d < 1e-5, ("%s: logits off by %g from PyTorch's (largest |logit| %g)"):format(file, d,
        H.num(want:abs():max())))
    end
    -- the same file through predict.lua: it says the class names are assumed, then predicts
    local helper = dofile(here .. "helpers/predict_output.lua")
    if not helper.serlua then return end
    local wav = dir .. "/tone.wav"
    local v = {}
    for i = 1, 16000 * 2 do v[i] = 0.3 * math.sin(2 * math.pi * 220 * i / 16000) * (1 + math.sin(i / 3000)) end
    local t = T.new(v)
    assert.is_true(ser.audio.save(wav, t, 16000))
    for _, kind in ipairs { "crnn", "cnn1d" } do
      local cmd = ("%s experiments/predict.lua %s/%s.pt %s 2>&1"):format(helper.serlua, dir, kind, wav)
      local h = assert(io.popen(cmd))
      local text = h:read("a")
      local ok = h:close()
      assert(ok, cmd .. "\n" .. text)
      assert.matches("note: .*" .. kind .. "%.pt has no class list; assuming neutral,calm,happy", text)
      assert.matches(wav:gsub("%p", "%%%0") .. "\t%a+\tneutral %d%.%d+  calm", text)
    end
    local h = assert(io.popen(("%s experiments/predict.lua --classes a,b %s/crnn.pt %s 2>&1"):format(helper.serlua, dir, wav)))
    local text = h:read("a")
    assert.is_falsy(h:close())
    assert.matches("the model has 8 outputs, but 2 class names were given", text, 1, true)
  end)
end)
