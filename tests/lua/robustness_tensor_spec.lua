-- Bad input catalogue, tensors and models from Lua (issue 6): wrong types and shapes to public
-- functions and layers, negative/zero sizes, 3-D where 4-D is needed, backward twice, a released
-- tensor, NaN loss. Every case raises a message naming the function, the values and what is
-- expected (never a crash, never an empty message), or — for NaN loss in training — stops with
-- the epoch and batch and keeps the best weights.
local ser = require "ser"
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "robustness_helpers.lua")
local T, nn, F = ser.tensor, ser.nn, ser.nn.functional

local function fails(expected, fn, ...)
  assert.are.equal(expected, H.err(fn, ...))
end

describe("robustness: tensors", function()
  it("negative, fractional and non-number sizes", function()
    fails("tensor: negative size -1 in shape [-1,3]", T.zeros, -1, 3)
    fails("tensor.zeros: size 1 is string, expected an integer", T.zeros, "a")
    fails("tensor.randn: size 1 is not a whole number, expected an integer", T.randn, 2.5)
    assert.are.same({ 0, 3 }, T.zeros(0, 3):shape()) -- zero is a valid (empty) size, as in PyTorch
  end)

  it("shape mismatches name both shapes", function()
    fails("add: shapes [2,3] and [4,5] cannot be broadcast (dim 1: 2 vs 4)", function() return T.zeros(2, 3) + T.zeros(4, 5) end)
    fails("matmul: inner sizes differ: [2,3] @ [4,5] (3 vs 4)", function() return T.zeros(2, 3):matmul(T.zeros(4, 5)) end)
    fails("view: shape [4,2] is invalid for input of size 6 [2,3]", function() return T.zeros(2, 3):view(4, 2) end)
    fails("select: index 5 out of range 1..2 for dim 1 of [2,3]", function() return T.zeros(2, 3):select(1, 5) end)
    fails("item: tensor [3] has 3 elements; item() needs exactly one", function() return T.zeros(3):item() end)
  end)

  it("malformed tables", function()
    fails("tensor.new: ragged table: a row at depth 2 has 1 elements, expected 2", T.new, { { 1, 2 }, { 3 } })
    fails("tensor.new: table element 1 at depth 1 is a string; expected a number or a table", T.new, { "a" })
  end)

  it("backward twice and backward of a non-scalar", function()
    local x = T.randn(3, 3):requires_grad(true)
    local y = (x * x):sum()
    y:backward()
    fails("backward: trying to backward through the graph a second time (its buffers were freed); "
      .. "pass retain_graph = true to the first backward if you need to", function() y:backward() end)
    local v = T.randn(3):requires_grad(true)
    fails("backward: grad can be implicitly created only for one-element outputs, got [3]; pass a gradient",
      function() (v * v):backward() end)
  end)

  it("a released (closed) tensor raises instead of touching freed memory", function()
    local kept
    do
      local t <close> = T.ones(4)
      kept = t
    end
    fails("calling 'shape' on bad self (tensor was released (used after close))", function() return kept:shape() end)
    assert.matches("tensor was released", H.err(function() return kept + 1 end))
    assert.matches("tensor was released", H.err(function() return T.zeros(4) + kept end))
    collectgarbage("collect") -- __gc after __close must not release twice
  end)
end)

describe("robustness: layers and models", function()
  it("3-D input where 4-D is required", function()
    fails("conv2d: input must be 4D [B,C,H,W], got [1,8,8]", function() return nn.Conv2d(1, 4, 3)(T.zeros(1, 8, 8)) end)
    fails("BatchNorm2d(4): expected a 4-d [N,C,H,W] input, got shape [2,4,8]", function()
      return nn.BatchNorm2d(4)(T.zeros(2, 4, 8)) end)
    fails("conv2d: input must be 4D [B,C,H,W], got [2,64,100]", function()
      return ser.models.CNN2D{ classes = 8 }(T.zeros(2, 64, 100)) end)
  end)

  it("wrong channel/feature counts name the layer's expectation", function()
    fails("conv2d: input has 3 channels, weight expects 1; input [2,3,8,8], weight [4,1,3,3]", function()
      return nn.Conv2d(1, 4, 3)(T.zeros(2, 3, 8, 8)) end)
    fails("linear: input has 7 features, weight expects 10; input [3,7], weight [2,10]", function()
      return nn.Linear(10, 2)(T.zeros(3, 7)) end)
    fails("lstm: input has shape [2,3,7], expected [B,T,in] with in = input_size 10 (or unbatched [T,10])", function()
      return nn.LSTM(10, 4, { batch_first = true })(T.zeros(2, 3, 7)) end)
    fails("max_pool2d: window 16x16 does not fit the input 8x8 with padding 0x0; input [1,1,8,8]", function()
      return nn.MaxPool2d(16)(T.zeros(1, 1, 8, 8)) end)
  end)

  it("wrong types and non-positive sizes in constructors", function()
    fails("Conv2d: out_channels must be a positive whole number, got -4", nn.Conv2d, 1, -4, 3)
    fails("Conv2d: in_channels must be a positive whole number, got a", nn.Conv2d, "a", 4, 3)
    fails("Linear: in_features must be a positive whole number, got 0", nn.Linear, 0, 2)
    fails("Dropout: p must be a probability in [0, 1], got 1.5", nn.Dropout, 1.5)
    fails("Sequential: child '0' is not a module (got number)", nn.Sequential, { 1, 2 })
    fails("ser.models.CNN2D: classes must be a whole number >= 2, got 0", ser.models.CNN2D, { classes = 0 })
    fails("bad argument #1 to 'linear' (tensor expected, got table)", function() return nn.Linear(10, 2)({}) end)
  end)

  it("a zero-size kernel is refused with a message, never an empty one", function()
    -- after another error, so a stale message would show (it did: "conv2d: max_pool2d: ...")
    pcall(function() return nn.MaxPool2d(16)(T.zeros(1, 1, 8, 8)) end)
    fails("conv2d: kernel size must be >= 1, got 0x0; input [1,1,8,8], weight [4,1,0,0]",
      function() return F.conv2d(T.zeros(1, 1, 8, 8), T.zeros(4, 1, 0, 0)) end)
    -- the layer refuses it already when it is built
    fails("Conv2d: kernel_size must be at least 1, got 0", function() return nn.Conv2d(1, 4, 0) end)
  end)

  it("loss targets out of range, fractional, or of the wrong length", function()
    fails("cross_entropy: target 0.0 at position 1 is not a class number; expected a whole number in 1..3 "
      .. "(targets are 1-based)", F.cross_entropy, T.zeros(4, 3), T.new{ 0, 1, 2, 3 })
    fails("cross_entropy: target 1.5 at position 1 is not a class number; expected a whole number in 1..3 "
      .. "(targets are 1-based)", F.cross_entropy, T.zeros(4, 3), T.new{ 1.5, 1, 2, 3 })
    fails("cross_entropy: targets have shape [2], expected [4] (one class number per row of the input)",
      F.cross_entropy, T.zeros(4, 3), { 1, 2 })
  end)

  it("optimizer settings", function()
    fails("AdamW: invalid learning rate -1; expected a finite number >= 0", function()
      return ser.optim.AdamW(nn.Linear(2, 2):parameters(), { lr = -1 }) end)
    fails("AdamW: expected a non-empty list of parameter tensors or of groups as the first argument, got an empty table",
      function() return ser.optim.AdamW({}, { lr = 1e-3 }) end)
  end)

  it("a state dict with wrong keys and shapes loads nothing and lists every problem", function()
    local m = nn.Linear(2, 2)
    local before = m.weight:clone()
    fails("Linear:load_state_dict: 2 problem(s), nothing was loaded:\n  missing keys (1): bias\n"
      .. "  shape mismatches: weight: checkpoint has [3,3], model has [2,2]",
      function() return m:load_state_dict({ weight = T.zeros(3, 3) }) end)
    assert.are.same(before:totable(), m.weight:totable())
  end)
end)

describe("robustness: NaN loss in training", function()
  teardown(H.cleanup)

  it("stops with the epoch and batch, keeps the best checkpoint of the epochs before", function()
    ser.manual_seed(3)
    local xs, ys = {}, {}
    for i = 1, 16 do
      local c = i % 2 + 1
      xs[i] = { c == 1 and 1 or -1, (i % 5) / 5 }
      ys[i] = c
    end
    local set = { x = T.new(xs), y = ys, classes = { "neutral", "calm" } }
    -- The model turns its output to NaN from the 3rd training batch on (epoch 2, batch 1 with
    -- 2 batches per epoch); evaluation calls run in eval mode and are left alone.
    local calls = 0
    local poison = nn.Lambda(function(x)
      if not ser.is_grad_enabled() then return x end
      calls = calls + 1
      if calls >= 3 then return x * (0 / 0) end
      return x
    end, "Poison")
    local model = nn.Sequential{ nn.Linear(2, 2), poison }
    local dir = H.tmpdir("nan")
    local ckpt = dir .. "/best.safetensors"
    local _, history, result = ser.train.fit(model, { set, set }, {
      epochs = 5, batch = 8, lr = 1e-2, checkpoint = ckpt, progress = "quiet", class_weights = false })
    assert.matches("^loss is %-?nan at epoch 2, batch 1/2; training stopped, best weights %(epoch 1%) kept$",
      result.stop_reason)
    assert.are.equal(1, #history)
    assert.are.equal(1, result.best_epoch)
    local sd, meta = ser.load(ckpt)
    assert.is_truthy(sd, meta)
    for _, t in pairs(sd) do
      for _, v in ipairs(t:view(-1):totable()) do assert.is_true(v == v, "NaN in the kept checkpoint") end
    end
  end)
end)
