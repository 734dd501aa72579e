-- F.lstm and the losses (ser.core.nn_rnn) through the Lua surface: PyTorch
-- fixtures (skipped when ../shared is absent), nn.LSTM wiring, 1-based
-- targets, and the error messages.
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local numeric = dofile(here .. "helpers/numeric.lua")
local fixtures = dofile(here .. "helpers/fixtures.lua")

local fixture = fixtures.load
local have_fixtures = fixtures.have("lstm_x")

local WNAMES = { "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                 "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse" }
local WSHAPES = { { 12, 4 }, { 12, 3 }, { 12 }, { 12 } }

describe("F.lstm", function()
  it("matches PyTorch's bidirectional batch_first LSTM, outputs and all gradients", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local x = fixture("lstm_x", { 2, 6, 4 }):requires_grad(true)
    local w = {}
    for i, n in ipairs(WNAMES) do w[i] = fixture("lstm_" .. n, WSHAPES[(i - 1) % 4 + 1]):requires_grad(true) end
    local out, h_n, c_n = F.lstm(x, w, { batch_first = true, bidirectional = true })
    assert.are.same({ 2, 6, 6 }, out:shape())
    assert.is_true(numeric.max_abs_diff(out, fixture("lstm_out", { 2, 6, 6 })) < 1e-5)
    assert.is_true(numeric.max_abs_diff(h_n, fixture("lstm_h_n", { 2, 2, 3 })) < 1e-5)
    assert.is_true(numeric.max_abs_diff(c_n, fixture("lstm_c_n", { 2, 2, 3 })) < 1e-5)
    out:backward(fixture("lstm_R", { 2, 6, 6 }))
    assert.is_true(numeric.max_abs_diff(x:grad(), fixture("lstm_dx", { 2, 6, 4 })) < 1e-4)
    for i, n in ipairs(WNAMES) do
      local d = numeric.max_abs_diff(w[i]:grad(), fixture("lstm_d" .. n, WSHAPES[(i - 1) % 4 + 1]))
      assert(d < 1e-4, ("%s: worst abs err %g"):format(n, d))
    end
  end)

  it("is what nn.LSTM runs, with PyTorch's parameter names", function()
    ser.manual_seed(3)
    local m = ser.nn.LSTM(4, 3, { batch_first = true, bidirectional = true, num_layers = 2 })
    local keys = m:state_dict_keys()
    assert.are.equal("weight_ih_l1_reverse", keys[13])
    local x = T.randn(2, 5, 4)
    local out, hc = m(x)
    assert.are.same({ 2, 5, 6 }, out:shape())
    assert.are.same({ 4, 2, 3 }, hc[1]:shape())
    local sd = m:state_dict()
    local w = {}
    for i, k in ipairs(keys) do w[i] = sd[k] end
    local out2 = F.lstm(x, w, { batch_first = true, bidirectional = true, num_layers = 2, hidden_size = 3 })
    assert.are.equal(0, numeric.max_abs_diff(out, out2))
  end)

  it("reports wrong weight counts and shapes", function()
    local x = T.randn(2, 5, 4)
    local w = { T.randn(12, 4), T.randn(12, 3), T.randn(12), T.randn(12) }
    local ok, err = pcall(F.lstm, x, w, { bidirectional = true })
    assert.is_false(ok)
    assert.matches("expected 8 weight tensors %(1 layer%(s%), bidirectional, with bias%), got 4", err)
    ok, err = pcall(F.lstm, T.randn(2, 5, 7), w, { batch_first = true })
    assert.is_false(ok)
    assert.matches("input has shape %[2,5,7%]", err)
    w[2] = T.randn(12, 5)
    ok, err = pcall(F.lstm, x, w)
    assert.is_false(ok)
    assert.matches("weight_hh_l0 has shape %[12,5%], expected %[12,3%]", err)
    ok, err = pcall(F.lstm, x, { T.randn(12, 4), "x", T.randn(12), T.randn(12) })
    assert.is_false(ok)
    assert.matches("weight 2 %(weight_hh_l0%) is a string", err)
  end)
end)

describe("losses", function()
  it("cross_entropy matches PyTorch with weight and label_smoothing (targets 1-based)", function()
    if not have_fixtures then pending("no fixtures in " .. fixtures.dir) return end
    local z = fixture("ce_logits", { 6, 8 }):requires_grad(true)
    local y = fixture("ce_targets", { 6 }) + 1
    local loss = F.cross_entropy(z, y, { weight = fixture("ce_weight", { 8 }), label_smoothing = 0.1 })
    assert.is_true(math.abs(loss:item() - fixture("ce_ls_loss", { 1 }):item()) < 1e-5)
    loss:backward()
    assert.is_true(numeric.max_abs_diff(z:grad(), fixture("ce_ls_dlogits", { 6, 8 })) < 1e-6)
    -- the same targets as a Lua array
    local ys = {}
    for i, v in ipairs(y:totable()) do ys[i] = v end
    local plain = F.cross_entropy(z, ys)
    assert.is_true(math.abs(plain:item() - fixture("ce_plain_loss", { 1 }):item()) < 1e-5)
  end)

  it("nll_loss of log_softmax equals cross_entropy; mse_loss is the mean square", function()
    local z = T.new { { 0.5, -1, 2 }, { 0.1, 0.2, -0.3 } }
    local ce = F.cross_entropy(z, { 3, 1 }):item()
    local nll = F.nll_loss(z:log_softmax(2), { 3, 1 }):item()
    assert.is_true(math.abs(ce - nll) < 1e-6)
    assert.is_true(math.abs(F.mse_loss(T.new { 1, 2 }, T.new { 2, 4 }):item() - 2.5) < 1e-6)
  end)

  it("explain bad targets in 1-based terms", function()
    local z = T.randn(3, 4)
    local ok, err = pcall(F.cross_entropy, z, { 1, 5, 2 })
    assert.is_false(ok)
    assert.matches("target 5%.0 at position 2 is not a class number; expected a whole number in 1%.%.4", err)
    ok, err = pcall(F.cross_entropy, z, T.new { 0, 1, 1 })
    assert.is_false(ok)
    assert.matches("target 0%.0 at position 1", err)
    ok, err = pcall(F.nll_loss, z, { 1.5, 1, 1 })
    assert.is_false(ok)
    assert.matches("target 1%.5", err)
    ok, err = pcall(F.cross_entropy, z, { 1, 2 })
    assert.is_false(ok)
    assert.matches("targets have shape %[2%], expected %[3%]", err)
    ok, err = pcall(F.cross_entropy, z, { 1, 2, 3 }, { weight = T.ones(3) })
    assert.is_false(ok)
    assert.matches("weight has shape %[3%], expected %[4%]", err)
    ok, err = pcall(F.cross_entropy, z, { 1, 2, 3 }, { weight = { 1, 2, 3, 4 } })
    assert.is_false(ok)
    assert.matches("option 'weight' must be a tensor", err)
    ok, err = pcall(F.cross_entropy, z, "abc")
    assert.is_false(ok)
    assert.matches("targets must be a tensor or an array", err)
    ok, err = pcall(F.cross_entropy, z, { 1, 2, 3 }, { label_smooth = 0.1 })
    assert.is_false(ok)
    assert.matches("unknown option 'label_smooth' %(expected weight, label_smoothing%)", err)
    ok, err = pcall(F.lstm, T.randn(2, 5, 4), { T.randn(12, 4), T.randn(12, 3), T.randn(12), T.randn(12) },
      { batchfirst = true })
    assert.matches("unknown option 'batchfirst'", err)
  end)
end)
