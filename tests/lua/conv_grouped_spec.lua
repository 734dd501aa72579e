-- F.conv1d{ groups = G } (src/ops/conv_grouped.c, the positional convolution of wav2vec 2.0 /
-- HuBERT / WavLM): equal to the groups run as separate convolutions, forward and gradients; equal
-- to torch.nn.functional.conv1d(groups=G) when python3-torch is there; clear errors.
local ser = require "ser"
require "ser.core.audio" -- pins ser.so (see models_spec.lua)
local T, F = ser.tensor, ser.nn.functional
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")
local py = dofile(here .. "helpers/torch_python.lua")()

describe("F.conv1d with groups", function()
  after_each(tmp.cleanup)
  local it_torch = py and it or pending
  local G, C, OC, K, opts = 3, 6, 9, 4, { stride = 2, padding = 2, dilation = 2 }

  local function inputs()
    ser.manual_seed(3)
    local x, w, b = T.randn(2, C, 17), T.randn(OC, C // G, K), T.randn(OC)
    x:requires_grad(true); w:requires_grad(true); b:requires_grad(true)
    return x, w, b
  end

  it("equals its groups run as separate convolutions, outputs and gradients", function()
    local x, w, b = inputs()
    local y = F.conv1d(x, w, b, { stride = 2, padding = 2, dilation = 2, groups = G })
    local g = T.randn(table.unpack(y:shape()));
    (y * g):sum():backward()
    local gx, gw, gb = x:grad(), w:grad(), b:grad()
    local x2, w2, b2 = inputs()
    local parts = {}
    for k = 1, G do
      parts[k] = F.conv1d(x2:narrow(2, (k - 1) * (C // G) + 1, C // G), w2:narrow(1, (k - 1) * (OC // G) + 1, OC // G),
        b2:narrow(1, (k - 1) * (OC // G) + 1, OC // G), opts)
    end
    local y2 = T.cat(parts, 2)
    assert.is_true(numeric.max_abs_diff(y, y2) < 1e-5)
    ;(y2 * g):sum():backward()
    assert.is_true(numeric.max_abs_diff(gx, x2:grad()) < 1e-5)
    assert.is_true(numeric.max_abs_diff(gw, w2:grad()) < 1e-5)
    assert.is_true(numeric.max_abs_diff(gb, b2:grad()) < 1e-5)
  end)

  it_torch("equals torch.nn.functional.conv1d(groups=3)", function()
    local dir = tmp.make("convg")
    local x, w, b = inputs()
    x:tofile(dir .. "/x.f32"); w:tofile(dir .. "/w.f32"); b:tofile(dir .. "/b.f32")
    local script = ([[
import numpy as np, torch
d = "%s"
x = torch.from_numpy(np.fromfile(d + "/x.f32", dtype=np.float32).reshape(2, 6, 17))
w = torch.from_numpy(np.fromfile(d + "/w.f32", dtype=np.float32).reshape(9, 2, 4))
b = torch.from_numpy(np.fromfile(d + "/b.f32", dtype=np.float32))
torch.nn.functional.conv1d(x.double(), w.double(), b.double(), stride=2, padding=2, dilation=2, groups=3).float().numpy().tofile(d + "/y.f32")
print("ok")]]):format(dir)
    local f = assert(io.open(dir .. "/ref.py", "w")); f:write(script); f:close()
    local p = assert(io.popen(py .. " " .. dir .. "/ref.py 2>&1"))
    local out = p:read("a"); p:close()
    assert.matches("ok", out)
    local y = F.conv1d(x, w, b, { stride = 2, padding = 2, dilation = 2, groups = G })
    local want = T.fromfile(dir .. "/y.f32", y:shape())
    assert.is_true(numeric.max_abs_diff(y, want) < 1e-4)
  end)

  it("refuses groups that do not divide the channels, and groups on conv2d", function()
    local ok, err = pcall(F.conv1d, T.randn(1, 6, 10), T.randn(4, 3, 3), nil, { groups = 4 })
    assert.is_false(ok)
    assert.matches("4 groups must divide the input's 6 channels and the weight's 4 outputs", err)
    ok, err = pcall(F.conv1d, T.randn(1, 6, 10), T.randn(4, 2, 3), nil, { groups = 2 })
    assert.matches("input has 6 channels in 2 groups %(3 each%), weight expects 2 per group", err)
    ok, err = pcall(F.conv1d, T.randn(1, 6, 10), T.randn(4, 3, 3), nil, { groups = 0 })
    assert.matches("groups", err)
    ok, err = pcall(F.conv2d, T.randn(1, 6, 5, 5), T.randn(4, 3, 3, 3), nil, { groups = 2 })
    assert.matches("conv2d: option 'groups' is implemented for conv1d only", err)
  end)
end)
