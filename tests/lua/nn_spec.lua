-- nn.Module base and layer classes: names, order, state dicts, modes,
-- initialisation, printing, errors.
local ser = require "ser"
-- Opening ser.core.audio pins ser.so (RTLD_NODELETE): without that, lua5.4's
-- dlclose at exit unmaps the code of live OpenMP worker threads (segfault).
-- The pin belongs in luaopen_ser; until the lead moves it there, this does it.
require "ser.core.audio"
local nn = ser.nn
local T = ser.tensor

local function shape(t) return table.concat(t:shape(), "x") end
local function F_relu(x) return nn.functional.relu(x) end

local function small()
  return nn.Sequential{ nn.Conv2d(1, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3) }
end

local function flat(t)
  local out = {}
  local function walk(v) if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end end
  walk(t:totable())
  return out
end

describe("nn.Module", function()
  it("names parameters and buffers like PyTorch, in PyTorch's order", function()
    local m = small()
    local names = {}
    for _, np in ipairs(m:named_parameters()) do names[#names + 1] = np[1] .. ":" .. shape(np[2]) end
    assert.are.same({ "0.weight:4x1x3x3", "0.bias:4", "1.weight:4", "1.bias:4", "6.weight:3x4", "6.bias:3" }, names)
    assert.are.same({ "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                      "1.num_batches_tracked", "6.weight", "6.bias" }, m:state_dict_keys())
    assert.are.equal(4 * 9 + 4 + 4 + 4 + 12 + 3, m:num_parameters())
    for _, p in ipairs(m:parameters()) do assert.is_true(p:requires_grad()) end
  end)

  it("is callable and train()/eval() reach every submodule", function()
    local m = small()
    assert.is_true(m:get(2).training)
    m:eval()
    for _, sub in ipairs(m:modules()) do assert.is_false(sub.training) end
    m:train()
    for _, sub in ipairs(m:modules()) do assert.is_true(sub.training) end
    local seen = {}
    m:apply(function(sub) seen[#seen + 1] = sub.__name end)
    assert.are.equal("Sequential", seen[#seen])   -- children first, like PyTorch
    assert.are.equal(8, #seen)
  end)

  it("gives the same weights for the same seed and different ones otherwise", function()
    ser.manual_seed(7)
    local a = flat(nn.Linear(5, 4).weight)
    ser.manual_seed(7)
    local b = flat(nn.Linear(5, 4).weight)
    ser.manual_seed(8)
    local c = flat(nn.Linear(5, 4).weight)
    assert.are.same(a, b)
    assert.are_not.same(a, c)
  end)

  it("initialises like PyTorch: U(+-1/sqrt(fan_in)) for conv/linear, U(+-1/sqrt(H)) for LSTM, BN 1/0", function()
    ser.manual_seed(1)
    local cases = {
      { nn.Conv2d(8, 16, 3).weight, 1 / math.sqrt(8 * 9) },
      { nn.Conv2d(8, 16, 3).bias, 1 / math.sqrt(8 * 9) },
      { nn.Conv1d(4, 32, 9).weight, 1 / math.sqrt(4 * 9) },
      { nn.Linear(100, 64).weight, 1 / math.sqrt(100) },
      { nn.LSTM(10, 25).weight_hh_l0, 1 / math.sqrt(25) },
    }
    for _, c in ipairs(cases) do
      local v, bound = flat(c[1]), c[2]
      local s2, maxabs = 0, 0
      for _, x in ipairs(v) do
        s2 = s2 + x * x
        maxabs = math.max(maxabs, math.abs(x))
      end
      assert.is_true(maxabs <= bound * (1 + 1e-6), "values exceed the bound")
      assert.is_true(maxabs > bound * 0.8, "values do not fill the range")
      -- the standard deviation of U(-b, b) is b / sqrt(3)
      local std = math.sqrt(s2 / #v)
      assert.is_true(math.abs(std - bound / math.sqrt(3)) < 0.25 * bound / math.sqrt(3),
        ("std %.4f, expected about %.4f"):format(std, bound / math.sqrt(3)))
    end
    local bn = nn.BatchNorm1d(3)
    assert.are.same({ 1, 1, 1 }, flat(bn.weight))
    assert.are.same({ 0, 0, 0 }, flat(bn.bias))
    assert.are.same({ 0, 0, 0 }, flat(bn.running_mean))
    assert.are.same({ 1, 1, 1 }, flat(bn.running_var))
    assert.are.same({ 0 }, flat(bn.num_batches_tracked))
  end)

  it("names LSTM weights weight_ih_l0 ... _reverse in PyTorch's order", function()
    local l = nn.LSTM(6, 5, { num_layers = 2, bidirectional = true, batch_first = true })
    local names = {}
    for _, np in ipairs(l:named_parameters()) do names[#names + 1] = np[1] .. ":" .. shape(np[2]) end
    assert.are.same({
      "weight_ih_l0:20x6", "weight_hh_l0:20x5", "bias_ih_l0:20", "bias_hh_l0:20",
      "weight_ih_l0_reverse:20x6", "weight_hh_l0_reverse:20x5", "bias_ih_l0_reverse:20", "bias_hh_l0_reverse:20",
      "weight_ih_l1:20x10", "weight_hh_l1:20x5", "bias_ih_l1:20", "bias_hh_l1:20",
      "weight_ih_l1_reverse:20x10", "weight_hh_l1_reverse:20x5", "bias_ih_l1_reverse:20", "bias_hh_l1_reverse:20",
    }, names)
  end)

  it("prints as PyTorch's repr tree", function()
    local m = nn.Sequential{ nn.Conv1d(1, 32, 9, { stride = 2, padding = 4 }), nn.BatchNorm1d(32), nn.LeakyReLU(0.2),
                             nn.Dropout(0.3), nn.Linear(32, 8, { bias = false }), nn.LSTM(8, 4, { batch_first = true }) }
    assert.are.equal([[Sequential(
  (0): Conv1d(1, 32, kernel_size=(9,), stride=(2,), padding=(4,))
  (1): BatchNorm1d(32, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  (2): LeakyReLU(negative_slope=0.2)
  (3): Dropout(p=0.3, inplace=False)
  (4): Linear(in_features=32, out_features=8, bias=False)
  (5): LSTM(8, 4, batch_first=True)
)]], tostring(m))
  end)

  it("round-trips state_dict through load_state_dict", function()
    ser.manual_seed(1)
    local a = small()
    ser.manual_seed(2)
    local b = small()
    assert.are_not.same(flat(a:get(1).weight), flat(b:get(1).weight))
    b:load_state_dict(a:state_dict())
    for _, k in ipairs(a:state_dict_keys()) do
      assert.are.same(flat(a:state_dict()[k]), flat(b:state_dict()[k]), k)
    end
    -- copies, not shared tensors
    assert.are_not.equal(a:get(1).weight, b:get(1).weight)
  end)

  it("reports every mismatch of load_state_dict in one error and loads nothing", function()
    local m = small()
    local before = flat(m:get(1).weight)
    local sd = {}
    for k, v in pairs(small():state_dict()) do sd[k] = v end
    sd["6.bias"] = nil                      -- missing
    sd["7.weight"] = T.zeros(2, 2)           -- unexpected
    sd["6.weight"] = T.zeros(3, 5)           -- wrong shape
    local ok, err = pcall(m.load_state_dict, m, sd)
    assert.is_false(ok)
    assert.matches("missing keys %(1%): 6%.bias", err)
    assert.matches("unexpected keys %(1%): 7%.weight", err)
    assert.matches("6%.weight: checkpoint has %[3,5%], model has %[3,4%]", err)
    assert.matches("3 problem", err)
    assert.are.same(before, flat(m:get(1).weight))
    -- strict = false tolerates missing/unexpected, never a wrong shape
    sd["6.weight"] = T.zeros(3, 4)
    local r = m:load_state_dict(sd, { strict = false })
    assert.are.same({ "6.bias" }, r.missing)
    assert.are.same({ "7.weight" }, r.unexpected)
    for _, v in ipairs(flat(m:get(7).weight)) do assert.are.equal(0, v) end
  end)

  it("accepts a 0-d num_batches_tracked the way PyTorch saves it", function()
    local m = nn.BatchNorm1d(2)
    local sd = {}
    for k, v in pairs(m:state_dict()) do sd[k] = v:clone() end
    sd.num_batches_tracked = T.new(5):reshape({})
    m:load_state_dict(sd)
    assert.are.same({ 5 }, flat(m.num_batches_tracked))
  end)

  it("rejects bad constructor arguments with clear messages", function()
    assert.has_error(function() nn.Conv2d(1, 0, 3) end, nil)
    local ok, err = pcall(nn.Conv2d, 1, 4, 3, { pading = 1 })
    assert.is_false(ok)
    assert.matches("unknown option 'pading'", err)
    ok, err = pcall(nn.Conv2d, 1, 4, { 3, 3, 3 })
    assert.matches("kernel_size must be a number or a table of 2 numbers", err)
    ok, err = pcall(nn.Dropout, 1.5)
    assert.matches("probability", err)
    ok, err = pcall(nn.Linear, 4.5, 2)
    assert.matches("in_features must be a positive whole number, got 4.5", err)
    ok, err = pcall(function() return nn.Sequential{}:add_module("a.b", nn.ReLU()) end)
    assert.matches("without '%.'", err)
  end)
end)

describe("nn layers forward", function()
  local has_cnn = pcall(require, "ser.core.nn_cnn")
  local it_cnn = has_cnn and it or pending

  it_cnn("computes output shapes as PyTorch does and summary() lists them", function()
    ser.manual_seed(3)
    local m = small()
    local y = m(T.randn(2, 1, 9, 11))
    assert.are.same({ 2, 3 }, y:shape())
    local rm = flat(m:get(2).running_mean)
    local s = m:summary({ 2, 1, 9, 11 })
    assert.matches("0 %(Conv2d%)%s+%[2,4,9,11%]%s+40", s)
    assert.matches("3 %(MaxPool2d%)%s+%[2,4,4,5%]%s+0", s)
    assert.matches("6 %(Linear%)%s+%[2,3%]%s+15", s)
    assert.matches("Total params: 63", s)
    -- summary runs in eval mode and restores the mode; running stats untouched
    assert.is_true(m.training)
    assert.are.same(rm, flat(m:get(2).running_mean))
  end)

  it_cnn("summarises a CRNN, LSTM included, without changing what it returns", function()
    ser.manual_seed(4)
    local m = ser.models.CRNN{ classes = 8, hidden = 16 }
    local s = m:summary({ 1, 1, 64, 40 })
    assert.matches("rnn %(LSTM%)%s+%[1,5,32%]%s+18688", s)
    assert.matches("head%.0 %(Linear%)%s+%[1,8%]%s+264", s)
    local out, hc = m.rnn(T.zeros(1, 5, 128))
    assert.are.same({ 1, 5, 32 }, out:shape())
    assert.are.same({ 2, 1, 16 }, hc[1]:shape())
  end)

  it_cnn("updates BatchNorm running statistics and num_batches_tracked only in train mode", function()
    local bn = nn.BatchNorm1d(2)
    local x = T.new{ { { 1, 2, 3 }, { 4, 5, 6 } }, { { 3, 4, 5 }, { 0, 0, 0 } } }
    bn(x)
    assert.are.same({ 1 }, flat(bn.num_batches_tracked))
    local rm = flat(bn.running_mean)
    assert.is_true(math.abs(rm[1] - 0.1 * 3) < 1e-6)
    bn:eval()
    bn(x)
    assert.are.same({ 1 }, flat(bn.num_batches_tracked))
    assert.are.same(rm, flat(bn.running_mean))
  end)

  it_cnn("fuses BatchNorm + ReLU in Sequential with the same values, gradients and running stats", function()
    for _, case in ipairs{ { nn.BatchNorm2d, { 3, 4, 5, 7 } }, { nn.BatchNorm1d, { 3, 4, 33 } } } do
      for _, train in ipairs{ true, false } do
        ser.manual_seed(7)
        local a, b = case[1](4), case[1](4)
        local fused = nn.Sequential{ a, nn.ReLU() }
        local x = T.randn(table.unpack(case[2]))
        local xa, xb = x:clone():requires_grad(true), x:clone():requires_grad(true)
        if not train then fused:eval(); b:eval() end
        local ya = fused(xa)
        local yb = F_relu(b(xb)) -- the two ops, unfused
        assert.are.same(flat(yb), flat(ya))
        local r = T.randn(table.unpack(case[2]))
        local la, lb = (ya * r):sum(), (yb * r):sum()
        la:backward()
        lb:backward()
        -- gradients: the same formulas; the fused loops may sum in another
        -- SIMD order, so allow float rounding
        local function close(want, got)
          local w, g = flat(want), flat(got)
          assert.are.equal(#w, #g)
          for i = 1, #w do
            assert.is_true(math.abs(w[i] - g[i]) <= 1e-5 * math.max(1, math.abs(w[i])), ("[%d] %g vs %g"):format(i, g[i], w[i]))
          end
        end
        close(xb:grad(), xa:grad())
        close(b.weight:grad(), a.weight:grad())
        close(b.bias:grad(), a.bias:grad())
        assert.are.same(flat(b.running_var), flat(a.running_var))
        assert.are.same(flat(b.num_batches_tracked), flat(a.num_batches_tracked))
      end
    end
  end)

  it_cnn("drops out only in train mode", function()
    local d = nn.Dropout(0.5)
    local x = T.ones(1000)
    local y = flat(d(x))
    local zeros = 0
    for _, v in ipairs(y) do if v == 0 then zeros = zeros + 1 else assert.is_true(math.abs(v - 2) < 1e-6) end end
    assert.is_true(zeros > 400 and zeros < 600, "zeros: " .. zeros)
    d:eval()
    assert.are.same(flat(x), flat(d(x)))
  end)
end)

describe("ser.nn constructors", function()
  local nn = require("ser").nn
  it("refuse sizes a layer could never run with, naming the layer and the value", function()
    assert.error_matches(function() nn.Conv2d(1, 8, 0) end, "Conv2d: kernel_size must be at least 1, got 0")
    assert.error_matches(function() nn.Conv1d(1, 8, 3, { stride = 0 }) end, "Conv1d: stride must be at least 1, got 0")
    assert.error_matches(function() nn.Conv2d(1, 8, 3, { padding = { 1, -1 } }) end,
      "Conv2d: padding%[2%] must be at least 0, got %-1")
    assert.error_matches(function() nn.MaxPool2d(0) end, "MaxPool2d: kernel_size must be at least 1, got 0")
    assert.error_matches(function() nn.AdaptiveAvgPool2d(0) end, "output_size must be at least 1")
  end)
end)
