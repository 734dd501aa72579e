-- Bad input catalogue, checkpoints (issue 6): ser.load answers `nil, message` for every damaged
-- file (truncated, corrupt JSON, header length beyond the file, future format, not a file), and
-- load_state_dict refuses a wrong architecture, missing/extra keys and wrong shapes while loading
-- nothing. Every damaged file is made here from a good one.
local ser = require "ser"
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "robustness_helpers.lua")
local T, nn = ser.tensor, ser.nn

local dir, good, bytes, hlen
local function model() return nn.Sequential{ nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2) } end
local function variant(name, b) return H.write(dir .. "/" .. name, b) end

describe("robustness: checkpoints", function()
  setup(function()
    dir = H.tmpdir("ckpt")
    ser.manual_seed(1)
    good = dir .. "/good.safetensors"
    assert(ser.save(good, model():state_dict(), { classes = { "a", "b" }, model = "mlp" }))
    bytes = H.read(good)
    hlen = string.unpack("<I8", bytes)
  end)
  teardown(H.cleanup)

  it("the good file loads with its metadata", function()
    local sd, meta = ser.load(good)
    assert.is_truthy(sd, meta)
    assert.are.same({ "a", "b" }, meta.classes)
    assert.are.equal("serlua-1", meta.format)
    local m = model()
    m:load_state_dict(sd)
  end)

  it("truncated file: nil, names the tensor that runs past the end", function()
    local p = variant("trunc.safetensors", bytes:sub(1, #bytes - 5))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.matches("^" .. p:gsub("%p", "%%%0") .. ": tensor '[%w%.]+' has data_offsets %[%d+, %d+%] beyond the %d+ data "
      .. "bytes %(truncated file%?%)$", msg)
    -- cut inside the header and inside the length field too
    sd, msg = ser.load(variant("trunc2.safetensors", bytes:sub(1, 8 + hlen // 2)))
    assert.is_nil(sd)
    assert.matches("header length %d+ is larger than the %d+ bytes that follow it", msg)
    sd, msg = ser.load(variant("trunc3.safetensors", bytes:sub(1, 5)))
    assert.is_nil(sd)
    assert.matches(": truncated: 5 bytes, a safetensors file starts with an 8%-byte header length$", msg)
  end)

  it("corrupt JSON header: nil, not valid JSON with the position", function()
    local header = bytes:sub(9, 8 + hlen)
    local broken = header:gsub('"dtype"', '"dtype" oops', 1)
    broken = broken:sub(1, #header) -- same length so the data offsets stay put
    local p = variant("json.safetensors", bytes:sub(1, 8) .. broken .. bytes:sub(9 + hlen))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.matches("^" .. p:gsub("%p", "%%%0") .. ": header is not valid JSON %(error near header byte %d+ of " .. hlen .. "%)$", msg)
  end)

  it("header length larger than the file: nil, says so with both numbers", function()
    local p = variant("hlen.safetensors", string.pack("<I8", #bytes) .. bytes:sub(9))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.are.equal(("%s: header length %d is larger than the %d bytes that follow it (truncated or not a "
      .. "safetensors file)"):format(p, #bytes, #bytes - 8), msg)
  end)

  it("a future format version: nil, written by a newer serlua", function()
    local header = bytes:sub(9, 8 + hlen)
    local newer = header:gsub('"serlua%-1"', '"serlua-9"')
    assert.are.equal(#header, #newer)
    local p = variant("future.safetensors", bytes:sub(1, 8) .. newer .. bytes:sub(9 + hlen))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.are.equal(p .. ": written by a newer serlua (format serlua-9); this build reads up to serlua-1", msg)
  end)

  it("not a file at all", function()
    local sd, msg = ser.load(dir .. "/missing.safetensors")
    assert.is_nil(sd)
    assert.are.equal(("cannot open '%s/missing.safetensors': No such file or directory"):format(dir), msg)
    sd, msg = ser.load(dir)
    assert.is_nil(sd)
    assert.are.equal(("'%s' is not a regular file"):format(dir), msg)
    sd, msg = ser.load(variant("text.safetensors", "hello, I am text and not a checkpoint at all"))
    assert.is_nil(sd)
    assert.matches("header length %d+ is larger than the 36 bytes that follow it", msg)
  end)

  it("missing and extra keys: nothing loaded, both listed", function()
    local sd = assert(ser.load(good))
    sd["2.bias"] = nil
    sd["9.weight"] = T.zeros(2)
    local m = model()
    local before = m:state_dict()["0.weight"]:clone()
    assert.are.equal("Sequential:load_state_dict: 2 problem(s), nothing was loaded:\n"
      .. "  missing keys (1): 2.bias\n  unexpected keys (1): 9.weight", H.err(m.load_state_dict, m, sd))
    assert.are.same(before:totable(), m:state_dict()["0.weight"]:totable())
  end)

  it("wrong shapes: nothing loaded, each mismatch with both shapes", function()
    local sd = assert(ser.load(good))
    sd["0.weight"] = T.zeros(3, 5)
    assert.are.equal("Sequential:load_state_dict: 1 problem(s), nothing was loaded:\n"
      .. "  shape mismatches: 0.weight: checkpoint has [3,5], model has [3,4]",
      H.err(function() return model():load_state_dict(sd) end))
  end)

  it("wrong architecture: a CNN2D checkpoint into a CRNN is refused, counts of both kinds", function()
    local p = dir .. "/cnn2d.safetensors"
    assert(ser.save(p, ser.models.CNN2D{ classes = 4 }:state_dict(), { model = "cnn2d" }))
    local sd = assert(ser.load(p))
    local crnn = ser.models.CRNN{ classes = 4 }
    local msg = H.err(crnn.load_state_dict, crnn, sd)
    -- CRNN shares no name with CNN2D (cnn.*, rnn.*, head.0.*): all 16 of its tensors are missing
    assert.matches("^CRNN:load_state_dict: 48 problem%(s%), nothing was loaded:\n  missing keys %(16%): ", msg)
    assert.matches("\n  unexpected keys %(%d+%): ", msg)
  end)

  it("ser.save into a folder that does not exist: nil and the reason, nothing left behind", function()
    local ok, msg = ser.save(dir .. "/nodir/x.safetensors", model():state_dict())
    assert.is_nil(ok)
    assert.are.equal(("save '%s/nodir/x.safetensors': cannot create a temporary file beside it: No such file or "
      .. "directory"):format(dir), msg)
    assert.are.equal("ser.save: state_dict['w'] is a number, expected a tensor",
      H.err(ser.save, dir .. "/b.safetensors", { w = 3 }))
  end)
end)

describe("robustness: checkpoint names (fuzz_safetensors regressions)", function()
  teardown(H.cleanup)
  local function raw(header, data)
    local d = H.tmpdir("names")
    return H.write(d .. "/x.safetensors", string.pack("<I8", #header) .. header .. data)
  end

  it("an empty tensor name is refused", function()
    local p = raw('{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', string.pack("<f", 1))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.are.equal(p .. ": a tensor has an empty name; expected a state_dict key", msg)
  end)

  it("a name cut short by a raw NUL byte cannot pass for another key", function()
    local p = raw('{"fc.weight\0junk":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', string.pack("<f", 1))
    local sd, msg = ser.load(p)
    assert.is_nil(sd)
    assert.are.equal(p .. ": header holds a raw control byte 0x00 at header byte 11 (not valid JSON)", msg)
  end)
end)
