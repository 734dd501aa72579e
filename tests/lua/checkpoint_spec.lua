-- ser.save / ser.load: safetensors round trips, metadata, bad files, and
-- interop with PyTorch 1.13 (a minimal reader/writer in
-- helpers/safetensors_torch.py; runs only where python3 can import torch).
local ser = require "ser"
local T = ser.tensor

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")

local torch_python = dofile(here .. "helpers/torch_python.lua")

local function files_in(d)
  local p = assert(io.popen("ls -A '" .. d .. "'"))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end
local function write_bytes(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
local function read_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
-- A hand-made file: header length, JSON, data.
local function craft(json, data) return string.pack("<I8", #json) .. json .. (data or "") end

describe("ser.save / ser.load", function()
  local dir
  before_each(function() dir = tmp.make("ckpt") end)
  after_each(tmp.cleanup)

  it("round-trip tensors and JSON metadata, atomically", function()
    local path = dir .. "/m.safetensors"
    local sd = { ["features.0.weight"] = T.randn(4, 1, 3, 3), ["fc.bias"] = T.new { 1, 2, 3 },
                 ["bn.num_batches_tracked"] = T.new(7):view {} }
    local meta = { classes = { "angry", "calm", "happy" }, model = "crnn", epoch = 12, lr = 1e-3,
                   features = { kind = "logmel", n_mels = 64, fmax = 7600.5 }, amp = false }
    assert.is_true(ser.save(path, sd, meta))
    assert.are.same({ "m.safetensors" }, files_in(dir))
    local sd2, meta2 = ser.load(path)
    assert.is_not_nil(sd2, meta2)
    for k, v in pairs(sd) do
      assert.are.same(v:shape(), sd2[k]:shape())
      assert.are.equal(0, numeric.max_abs_diff(v, sd2[k]))
    end
    assert.are.same(meta.classes, meta2.classes)
    assert.are.equal("crnn", meta2.model)
    assert.are.equal(12, meta2.epoch)
    assert.is_true(math.type(meta2.epoch) == "integer")
    assert.are.equal(1e-3, meta2.lr)
    assert.are.same(meta.features, meta2.features)
    assert.is_false(meta2.amp)
    assert.are.equal("serlua-1", meta2.format)
    -- overwrite in place
    assert.is_true(ser.save(path, { w = T.ones(2) }))
    sd2 = ser.load(path)
    assert.is_nil(sd2["fc.bias"])
    assert.are.same({ "m.safetensors" }, files_in(dir))
  end)

  it("store tensors as F16 or BF16 when asked, rounded to nearest even", function()
    local x = T.new { 1, 0.1, -65504, 1e-8, 3.140625 }
    assert(ser.save(dir .. "/f32.safetensors", { x = x }))
    assert(ser.save(dir .. "/f16.safetensors", { x = x }, { note = "half" }, { dtype = "F16" }))
    assert(ser.save(dir .. "/bf16.safetensors", { x = x }, nil, { dtype = "BF16" }))
    local f16, meta = ser.load(dir .. "/f16.safetensors")
    assert.are.equal("half", meta.note)
    -- float16 neighbours of 0.1 are 0.099975586 and 0.10003662: nearest is the first
    assert.are.same({ 1, 0.0999755859375, -65504, 0, 3.140625 }, f16.x:totable())
    local b = ser.load(dir .. "/bf16.safetensors").x:totable()
    assert.are.same({ 1, 0.10009765625, -65536, 3.140625 }, { b[1], b[2], b[3], b[5] })
    assert.is_true(math.abs(b[4] - 1e-8) < 1e-10)   -- bfloat16 keeps float32's range, 8 bits of precision
    assert.has_error(function() ser.save(dir .. "/x.safetensors", { x = x }, nil, { dtype = "F8" }) end,
      'ser.save: option \'dtype\' must be "F32", "F16" or "BF16", got F8')
    assert.has_error(function() ser.save(dir .. "/x.safetensors", { x = x }, nil, { dype = "F16" }) end)
  end)

  it("raise on bad arguments, return nil and a message when the file system fails", function()
    local ok, err = pcall(ser.save, dir .. "/x", { w = 3 })
    assert.is_false(ok)
    assert.matches("state_dict%['w'%] is a number, expected a tensor", err)
    ok, err = pcall(ser.save, dir .. "/x", { w = T.ones(1) }, { f = print })
    assert.matches("meta%['f'%] is a function", err)
    ok, err = pcall(ser.save, dir .. "/x", { w = T.ones(1) }, { format = "mine" })
    assert.matches("meta key 'format' is reserved", err)
    ok, err = pcall(ser.save, dir .. "/x", { w = T.ones(1) }, { x = 0 / 0 })
    assert.matches("NaN", err)
    ok, err = pcall(ser.save, dir .. "/x", { ["w\0x"] = T.ones(1) })
    assert.matches("contains a NUL byte", err)
    ok, err = pcall(ser.save, dir .. "/x", { w = T.ones(1) }, { note = "a\0b" })
    assert.matches("meta%['note'%] is a string with a NUL byte", err)
    local r, msg = ser.save(dir .. "/no/such/dir/x.safetensors", { w = T.ones(1) })
    assert.is_nil(r)
    assert.matches("no/such/dir/x%.safetensors", msg)
    assert.are.same({}, files_in(dir))
  end)

  it("return nil and a message for damaged or foreign files", function()
    local good = dir .. "/good.safetensors"
    assert.is_true(ser.save(good, { a = T.randn(10), b = T.randn(3, 3) }, { model = "cnn2d" }))
    local bytes = read_bytes(good)
    local cases = {
      { bytes:sub(1, #bytes - 5), "beyond the %d+ data bytes" },             -- truncated data
      { bytes:sub(1, 5), "truncated: 5 bytes" },
      { string.pack("<I8", 1e6) .. "{}", "header length 1000000 is larger" },
      { craft('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', "abcd"), "not valid JSON" },
      { craft('{"w": {"dtype": "Q8", "shape": [1], "data_offsets": [0, 1]}}', "a"), "dtype 'Q8'" },
      { craft('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        .. '"v": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}', "abcdef"), "overlaps" },
      { craft('{"__metadata__": {"format": "serlua-2"}}'), "newer serlua %(format serlua%-2%)" },
      { craft('{"__metadata__": {"format": "serlua-1", "model": "{oops"}}'), "metadata 'model' is not valid JSON" },
    }
    for i, c in ipairs(cases) do
      local p = ("%s/bad%d.safetensors"):format(dir, i)
      write_bytes(p, c[1])
      local sd, msg = ser.load(p)
      assert(sd == nil, "case " .. i .. " loaded")
      assert(msg:match(c[2]), ("case %d: '%s' does not match '%s'"):format(i, msg, c[2]))
      assert(msg:find(p, 1, true), "message names the file")
    end
    local sd, msg = ser.load(dir .. "/missing.safetensors")
    assert.is_nil(sd)
    assert.matches("cannot open", msg)
  end)

  local py = torch_python()
  local it_torch = py and it or pending
  it_torch("load into PyTorch with equal logits, and PyTorch checkpoints load here", function()
    local specs = {
      { name = "crnn", classes = 8, hidden = 16, make = function() return ser.models.CRNN { classes = 8, hidden = 16 } end,
        x = { 2, 1, 64, 32 } },
      { name = "cnn2d", classes = 8, hidden = 0, make = function() return ser.models.CNN2D { classes = 8 } end,
        x = { 2, 1, 64, 32 } },
      { name = "cnn1d", classes = 5, hidden = 0, make = function() return ser.models.CNN1D { classes = 5 } end,
        x = { 2, 1, 4000 } },
    }
    local manifest = {}
    ser.manual_seed(11)
    local ours = {}
    for _, s in ipairs(specs) do
      local m = s.make()
      m:eval()
      local x = T.randn(s.x)
      local y = ser.no_grad(function() return m(x) end)
      x:tofile(("%s/%s_x.f32"):format(dir, s.name))
      local classes = {}
      for c = 1, s.classes do classes[c] = "c" .. c end
      assert.is_true(ser.save(("%s/%s.safetensors"):format(dir, s.name), m:state_dict(),
        { model = s.name, classes = classes }))
      manifest[#manifest + 1] = ("%s %d %d %s"):format(s.name, s.classes, s.hidden, table.concat(s.x, "x"))
      ours[s.name] = { model = m, x = x, y = y }
    end
    write_bytes(dir .. "/manifest.txt", table.concat(manifest, "\n") .. "\n")
    local p = assert(io.popen(("OPENBLAS_NUM_THREADS=1 %s %shelpers/safetensors_torch.py '%s' 2>&1")
      :format(py, here, dir)))
    local out = p:read("a")
    p:close()
    assert(out:match("ok\n$"), "python side failed:\n" .. out)
    for _, s in ipairs(specs) do
      local o = ours[s.name]
      -- ours -> PyTorch: same logits
      local theirs = T.fromfile(("%s/%s_torch_logits.f32"):format(dir, s.name), o.y:shape())
      local d = numeric.max_abs_diff(o.y, theirs)
      assert(d < 1e-4, ("%s: our checkpoint in PyTorch gives logits off by %g"):format(s.name, d))
      -- PyTorch -> ours: foreign metadata stays a raw string, weights load strictly
      local sd, meta = ser.load(("%s/torch_%s.safetensors"):format(dir, s.name))
      assert(sd, meta)
      assert.matches("^torch ", meta.written_by)
      assert.is_nil(meta.format)
      local m = s.make()
      m:load_state_dict(sd)
      m:eval()
      local y = ser.no_grad(function() return m(o.x) end)
      local want = T.fromfile(("%s/torch_%s_logits.f32"):format(dir, s.name), y:shape())
      d = numeric.max_abs_diff(y, want)
      assert(d < 1e-4, ("%s: PyTorch checkpoint gives logits off by %g here"):format(s.name, d))
    end
    local sd, meta = ser.load(dir .. "/dtypes.safetensors")
    assert(sd, meta)
    assert.are.equal("plain text, not JSON", meta.note)
    assert.is_true(numeric.max_abs_diff(sd.f64, T.new { 0.1, -2.5 }) < 1e-7)
    assert.is_true(numeric.max_abs_diff(sd.f16, T.new { 1, -5, 0.099975586 }) < 1e-7)
    assert.is_true(numeric.max_abs_diff(sd.bf16, T.new { 3, -0.5 }) == 0)
    assert.are.equal(12345, sd.i64:item())
    assert.are.same({}, sd.i64:shape())
    assert.are.same({ 1, 0, 1 }, sd.mask:totable())
  end)
end)
