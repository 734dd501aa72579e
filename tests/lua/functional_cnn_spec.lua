-- ser.nn.functional, convolutional half (ser.core.nn_cnn): PyTorch fixtures
-- through the Lua surface (skipped when ../shared is absent), option parsing,
-- error messages, gradients reaching the parameters, and the amp switch.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local numeric = dofile(here .. "helpers/numeric.lua")
local fixtures = dofile(here .. "helpers/fixtures.lua")

local fixture = fixtures.load
local have_fixtures = fixtures.have("conv2d_x")

describe("ser.nn.functional (cnn)", function()
  it("matches PyTorch conv2d and its gradients", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local x = fixture("conv2d_x", { 2, 3, 5, 7 }):requires_grad(true)
    local w = fixture("conv2d_weight", { 4, 3, 3, 3 }):requires_grad(true)
    local b = fixture("conv2d_bias", { 4 }):requires_grad(true)
    local y = F.conv2d(x, w, b, { padding = 1 })
    assert.is_true(numeric.max_abs_diff(y, fixture("conv2d_y", { 2, 4, 5, 7 })) <= 1e-4)
    y:backward(fixture("conv2d_R", { 2, 4, 5, 7 }))
    assert.is_true(numeric.max_abs_diff(x:grad(), fixture("conv2d_dx", { 2, 3, 5, 7 })) <= 1e-4)
    assert.is_true(numeric.max_abs_diff(w:grad(), fixture("conv2d_dweight", { 4, 3, 3, 3 })) <= 1e-4)
    assert.is_true(numeric.max_abs_diff(b:grad(), fixture("conv2d_dbias", { 4 })) <= 1e-4)
  end)

  it("matches PyTorch conv1d with stride and padding given as tables", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local y = F.conv1d(fixture("conv1d_x", { 2, 2, 40 }), fixture("conv1d_weight", { 3, 2, 9 }),
      fixture("conv1d_bias", { 3 }), { stride = { 2 }, padding = { 4 } })
    assert.same({ 2, 3, 20 }, y:shape())
    assert.is_true(numeric.max_abs_diff(y, fixture("conv1d_y", { 2, 3, 20 })) <= 1e-4)
  end)

  it("matches PyTorch batch_norm in train and eval mode, updating the running stats", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local x = fixture("bn2d_x", { 3, 4, 5, 6 })
    local rm, rv = fixture("bn2d_running_mean_in", { 4 }), fixture("bn2d_running_var_in", { 4 })
    local w, b = fixture("bn2d_weight", { 4 }), fixture("bn2d_bias", { 4 })
    local y = F.batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5)
    assert.is_true(numeric.max_abs_diff(y, fixture("bn2d_y", { 3, 4, 5, 6 })) <= 1e-4)
    assert.is_true(numeric.max_abs_diff(rm, fixture("bn2d_running_mean_out", { 4 })) <= 1e-5)
    assert.is_true(numeric.max_abs_diff(rv, fixture("bn2d_running_var_out", { 4 })) <= 1e-5)
    local ye = F.batch_norm(x, rm, rv, w, b, false)
    assert.is_true(numeric.max_abs_diff(ye, fixture("bn2d_eval_y", { 3, 4, 5, 6 })) <= 1e-4)
  end)

  it("matches PyTorch max_pool2d, adaptive pooling and linear", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local x = fixture("maxpool2d_x", { 2, 3, 5, 7 })
    assert.is_true(numeric.max_abs_diff(F.max_pool2d(x, 2), fixture("maxpool2d_y", { 2, 3, 2, 3 })) == 0)
    assert.is_true(numeric.max_abs_diff(F.adaptive_avg_pool2d(fixture("adaptavg2d_x", { 2, 3, 5, 7 }), 1),
      fixture("adaptavg2d_y", { 2, 3, 1, 1 })) <= 1e-6)
    assert.is_true(numeric.max_abs_diff(F.adaptive_avg_pool1d(fixture("adaptavg1d_x", { 2, 3, 11 }), 1),
      fixture("adaptavg1d_y", { 2, 3, 1 })) <= 1e-6)
    local y = F.linear(fixture("linear_x", { 3, 6 }), fixture("linear_weight", { 5, 6 }), fixture("linear_bias", { 5 }))
    assert.is_true(numeric.max_abs_diff(y, fixture("linear_y", { 3, 5 })) <= 1e-5)
  end)

  it("computes pooling shapes like PyTorch (floor mode, stride defaults to the kernel)", function()
    local x = T.randn(2, 3, 9, 11)
    assert.same({ 2, 3, 4, 5 }, F.max_pool2d(x, 2):shape())
    assert.same({ 2, 3, 4, 3 }, F.max_pool2d(x, { 2, 3 }):shape())
    assert.same({ 2, 3, 5, 6 }, F.avg_pool2d(x, 3, { stride = 2, padding = 1 }):shape())
    assert.same({ 2, 3, 3, 2 }, F.adaptive_avg_pool2d(x, { 3, 2 }):shape())
    local l = T.randn(2, 3, 9)
    assert.same({ 2, 3, 4 }, F.max_pool1d(l, 2):shape())
    assert.same({ 2, 3, 3 }, F.avg_pool1d(l, 3):shape())
    assert.same({ 2, 3, 1 }, F.adaptive_avg_pool1d(l, 1):shape())
    assert.same({ 2, 3, 4, 5 }, F.max_pool2d(x, 4 / 2):shape()) -- 2.0 is the integer 2
  end)

  it("trains a tiny conv net: every parameter gets a gradient", function()
    ser.manual_seed(3)
    local x = T.randn(4, 1, 8, 8)
    local w1, b1 = T.randn(6, 1, 3, 3):requires_grad(true), T.zeros(6):requires_grad(true)
    local g, be = T.ones(6):requires_grad(true), T.zeros(6):requires_grad(true)
    local rm, rv = T.zeros(6), T.ones(6)
    local w2, b2 = T.randn(3, 6):requires_grad(true), T.zeros(3):requires_grad(true)
    local h = F.conv2d(x, w1, b1, { padding = 1 })
    h = F.leaky_relu(F.batch_norm(h, rm, rv, g, be, true), 0.01)
    h = F.adaptive_avg_pool2d(F.max_pool2d(h, 2), 1):view(4, 6)
    local out = F.linear(F.dropout(h, 0.2, true), w2, b2)
    out:sum():backward()
    for _, p in ipairs { w1, b1, g, be, w2, b2 } do
      assert.is_not_nil(p:grad())
      assert.same(p:shape(), p:grad():shape())
    end
    assert.is_true(numeric.num(rm:abs():sum()) > 0) -- running mean moved
  end)

  it("dropout: identity in eval, seeded masks in training", function()
    local x = T.ones(1000)
    assert.equal(1000, numeric.num(F.dropout(x, 0.5, false):sum()))
    ser.manual_seed(9)
    local a = F.dropout(x, 0.5):totable()
    ser.manual_seed(9)
    assert.same(a, F.dropout(x, 0.5):totable())
    for _, v in ipairs(a) do assert.is_true(v == 0 or v == 2) end
  end)

  it("reports bad shapes and options with the values", function()
    local x = T.zeros(4, 8, 16, 16)
    local ok, err = pcall(F.conv2d, x, T.zeros(32, 16, 3, 3))
    assert.is_false(ok)
    assert.matches("conv2d: input has 8 channels, weight expects 16; input %[4,8,16,16%], weight %[32,16,3,3%]", err)
    ok, err = pcall(F.conv2d, x, T.zeros(32, 8, 3, 3), nil, { padding = -1 })
    assert.matches("conv2d: option 'padding' must be an integer >= 0, got %-1", err)
    ok, err = pcall(F.conv2d, x, T.zeros(32, 8, 3, 3), nil, { pad = 1 })
    assert.matches("unknown option 'pad'", err)
    ok, err = pcall(F.conv1d, x, T.zeros(4, 8, 3))
    assert.matches("conv1d: input must be 3D %[B,C,L%], got %[4,8,16,16%]", err)
    ok, err = pcall(F.max_pool2d, x, 1.5)
    assert.matches("max_pool2d: kernel size must be an integer >= 1, got 1.5", err)
    ok, err = pcall(F.linear, T.zeros(2, 5), T.zeros(3, 4))
    assert.matches("linear: input has 5 features, weight expects 4", err)
    ok, err = pcall(F.batch_norm, x, T.zeros(3), T.ones(3), nil, nil, true)
    assert.matches("running_mean must be %[8%]", err)
    ok, err = pcall(F.dropout, x, 2)
    assert.matches("dropout: probability must be in %[0, 1%], got 2", err)
  end)

  it("switches amp and returns the previous setting", function()
    local cnn = require "ser.core.nn_cnn"
    local prev = ser.set_amp(true)
    local prev_rule = cnn.amp_rule("bf16") -- every product in bf16, whatever this CPU measured
    assert.is_false(prev)
    assert.equal(cnn.bf16_supported(), cnn.amp())
    if cnn.amp() then
      -- bf16 GEMM inputs: close to fp32, not identical
      ser.manual_seed(5)
      local x, w = T.randn(2, 16, 12, 12), T.randn(32, 16, 3, 3)
      local a = F.conv2d(x, w, nil, { padding = 1 })
      ser.set_amp(false)
      local f = F.conv2d(x, w, nil, { padding = 1 })
      local d = numeric.max_abs_diff(a, f)
      assert.is_true(d > 0 and d < 0.1 * numeric.num(f:abs():max()))
    end
    ser.set_amp(false)
    cnn.amp_rule(prev_rule)
    assert.is_false(cnn.amp())
  end)
end)
