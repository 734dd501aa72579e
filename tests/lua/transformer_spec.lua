-- The transformer ops from Lua: F.layer_norm, F.gelu, F.scaled_dot_product_attention,
-- nn.LayerNorm, nn.GELU, nn.MultiheadAttention; their error messages; the
-- key-padding mask (a clip's output does not depend on its padding); and
-- PyTorch 1.13 parity, forward and backward, for layer_norm, gelu, softmax,
-- log_softmax, batched matmul, attention and a multi-head attention block
-- (helpers/transformer_torch.py; pending where /usr/bin/python3 has no torch).
local ser = require "ser"
require "ser.core.audio" -- pins ser.so (see nn_spec.lua)
local T, nn, F = ser.tensor, ser.nn, ser.nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local tmp = dofile(here .. "helpers/tmpdir.lua")
local numeric = dofile(here .. "helpers/numeric.lua")

local torch_python = dofile(here .. "helpers/torch_python.lua")

local function err_of(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok)
  return tostring(msg)
end

describe("transformer ops: errors", function()
  local x = T.randn(2, 5, 8)

  it("layer_norm names the shapes", function()
    assert.matches("layer_norm: normalized_shape %[7%] does not match the last dim of input %[2,5,8%]",
      err_of(F.layer_norm, x, 7))
    assert.matches("normalized_shape has 2 entries; only the last dim is supported %(normalized_shape = {8}%)",
      err_of(F.layer_norm, x, { 5, 8 }))
    assert.matches("layer_norm: weight must be %[8%] %(the input's last dim%), got %[7%]; input %[2,5,8%]",
      err_of(F.layer_norm, x, 8, T.ones(7)))
    assert.matches("layer_norm: bias must be %[8%]", err_of(F.layer_norm, x, 8, nil, T.ones(3)))
    assert.matches("eps must be a finite number >= 0, got %-1", err_of(F.layer_norm, x, 8, nil, nil, -1))
    assert.matches("LayerNorm: normalized_shape must be a positive whole number, got 0", err_of(nn.LayerNorm, 0))
    assert.matches("LayerNorm: unknown option 'epsilon'", err_of(nn.LayerNorm, 8, { epsilon = 1 }))
    assert.matches("does not match the last dim of input %[2,5,8%]", err_of(nn.LayerNorm(4), x))
  end)

  it("gelu refuses the tanh approximation by name", function()
    assert.matches("gelu: approximate = 'tanh' is not supported; expected 'none'",
      err_of(F.gelu, x, { approximate = "tanh" }))
    assert.matches("GELU: approximate = 'tanh' is not supported", err_of(nn.GELU, { approximate = "tanh" }))
  end)

  it("scaled_dot_product_attention names both shapes", function()
    local sdpa = F.scaled_dot_product_attention
    assert.matches("k %[2,5,8%] and v %[2,5,4%] must have the same shape", err_of(sdpa, x, x, T.randn(2, 5, 4)))
    assert.matches("q %[2,5,8%] and k %[3,5,8%] have different batch sizes %(2 vs 3%)",
      err_of(sdpa, x, T.randn(3, 5, 8), T.randn(3, 5, 8)))
    assert.matches("q %[2,5,8%] and k %[2,5,6%] have different feature sizes %(8 vs 6%)",
      err_of(sdpa, x, T.randn(2, 5, 6), T.randn(2, 5, 6)))
    assert.matches("q must be 3%-d %[B, Tq, heads%*head_dim%], got %[5,8%]", err_of(sdpa, T.randn(5, 8), x, x))
    assert.matches("feature size 8 of q %[2,5,8%] is not divisible by heads = 3", err_of(sdpa, x, x, x, { heads = 3 }))
    assert.matches("option 'heads' must be >= 1, got 0", err_of(sdpa, x, x, x, { heads = 0 }))
    assert.matches("unknown option 'head' %(expected lengths, heads, scale%)", err_of(sdpa, x, x, x, { head = 2 }))
    assert.matches("key length 6 of batch item 2 is outside 1..5 %(k %[2,5,8%]%)",
      err_of(sdpa, x, x, x, { lengths = { 5, 6 } }))
    assert.matches("key length 0 of batch item 1 is outside 1..5", err_of(sdpa, x, x, x, { lengths = T.new { 0, 5 } }))
    assert.matches("option 'lengths' has 1 entries, q has batch size 2", err_of(sdpa, x, x, x, { lengths = { 3 } }))
    assert.matches("lengths%[2%] must be a whole number of keys, got 2.5",
      err_of(sdpa, x, x, x, { lengths = { 3, 2.5 } }))
    assert.matches("option 'lengths' must be a table of 2 integers or a 1%-d tensor, got string",
      err_of(sdpa, x, x, x, { lengths = "3,4" }))
  end)

  it("MultiheadAttention checks its configuration and input", function()
    assert.matches("MultiheadAttention: embed_dim 8 is not divisible by num_heads 3", err_of(nn.MultiheadAttention, 8, 3))
    assert.matches("MultiheadAttention%(8, 2 heads%): input must be %[B, T, 8%], got %[2,5,6%]",
      err_of(nn.MultiheadAttention(8, 2), T.randn(2, 5, 6)))
    assert.matches("MultiheadAttention: unknown option 'mask'",
      err_of(nn.MultiheadAttention(8, 2), x, { mask = { 1, 2 } }))
  end)
end)

describe("transformer ops: modules", function()
  it("LayerNorm and GELU have PyTorch's parameters and repr", function()
    local ln = nn.LayerNorm(6, { eps = 1e-6 })
    assert.are.equal("LayerNorm((6,), eps=1e-06, elementwise_affine=True)", tostring(ln))
    assert.are.same({ "weight", "bias" }, ln:state_dict_keys())
    assert.are.same({ 1, 1, 1, 1, 1, 1 }, ln.weight:totable())
    assert.are.same({}, nn.LayerNorm({ 6 }, { elementwise_affine = false }):state_dict_keys())
    assert.are.equal("GELU(approximate='none')", tostring(nn.GELU()))
    local y = ln(T.randn(3, 4, 6))
    -- each row normalised: mean 0, biased variance 1 (to eps)
    assert.is_true(numeric.max_abs(y:mean(3)) < 1e-6)
    assert.is_true(numeric.max_abs(y:var(3, { unbiased = false }) - 1) < 1e-4)
  end)

  it("MultiheadAttention uses Hugging Face's names and Whisper's bias-free k_proj", function()
    local m = nn.MultiheadAttention(8, 2, { k_bias = false })
    assert.are.same({ "k_proj.weight", "v_proj.weight", "v_proj.bias", "q_proj.weight", "q_proj.bias",
                      "out_proj.weight", "out_proj.bias" }, m:state_dict_keys())
    assert.are.equal(4 * 64 + 3 * 8, m:num_parameters())
    local full = nn.MultiheadAttention(8, 2)
    assert.are.equal(8, #full:state_dict_keys())
    local y = m(T.randn(3, 5, 8), { lengths = { 5, 2, 4 } })
    assert.are.same({ 3, 5, 8 }, y:shape())
  end)

  it("a clip's output does not depend on its padding or its batch", function()
    ser.manual_seed(3)
    local m = nn.MultiheadAttention(16, 4, { k_bias = false })
    local a, b = T.randn(1, 7, 16), T.randn(1, 4, 16)
    local alone_a = ser.no_grad(function() return m(a) end)
    local alone_b = ser.no_grad(function() return m(b) end)
    -- b padded to 7 frames with garbage, batched with a
    local batch = T.cat({ a, T.cat({ b, T.randn(1, 3, 16):mul(1e3) }, 2) }, 1)
    local y = ser.no_grad(function() return m(batch, { lengths = { 7, 4 } }) end)
    assert.is_true(numeric.max_abs(y:narrow(1, 1, 1) - alone_a) < 1e-5)
    assert.is_true(numeric.max_abs(y:narrow(1, 2, 1):narrow(2, 1, 4) - alone_b) < 1e-5)
  end)

  it("masked keys and values get exactly zero gradient", function()
    ser.manual_seed(4)
    local q, k, v = T.randn(2, 3, 8), T.randn(2, 6, 8), T.randn(2, 6, 8)
    k:requires_grad(true)
    v:requires_grad(true)
    F.scaled_dot_product_attention(q, k, v, { heads = 2, lengths = { 6, 2 } }):sum():backward()
    assert.are.equal(0, numeric.max_abs(k:grad():narrow(1, 2, 1):narrow(2, 3, 4)))
    assert.are.equal(0, numeric.max_abs(v:grad():narrow(1, 2, 1):narrow(2, 3, 4)))
    assert.is_true(numeric.max_abs(v:grad():narrow(1, 2, 1):narrow(2, 1, 2)) > 0)
  end)
end)

describe("transformer ops: PyTorch 1.13 parity", function()
  after_each(function() tmp.cleanup() end)
  local py = torch_python()
  local it_torch = py and it or pending

  it_torch("layer_norm, gelu, softmax, log_softmax, bmm, attention and MultiheadAttention, forward and backward",
    function()
      local dir = tmp.make("transformer")
      ser.manual_seed(20)
      local manifest, cases = {}, {}
      -- inputs: name -> tensor (differentiable unless R or lengths); args: name -> value
      local function case(name, op, inputs, args, fn)
        local parts = { name, op }
        for _, kv in ipairs(inputs) do
          local key, t = kv[1], kv[2]
          t:tofile(("%s/%s_%s.f32"):format(dir, name, key))
          parts[#parts + 1] = ("t:%s=%s"):format(key, table.concat(t:shape(), "x"))
          if key ~= "R" and key ~= "lengths" then t:requires_grad(true) end
        end
        for _, kv in ipairs(args or {}) do parts[#parts + 1] = ("a:%s=%s"):format(kv[1], tostring(kv[2])) end
        manifest[#manifest + 1] = table.concat(parts, " ")
        local named = {}
        for _, kv in ipairs(inputs) do named[kv[1]] = kv[2] end
        local out = fn(named)
        out:mul(named.R):sum():backward()
        cases[#cases + 1] = { name = name, inputs = inputs, out = out }
      end

      local x = T.randn(3, 7, 16):add(2)
      case("ln", "layer_norm", { { "x", x }, { "weight", T.rand(16):add(0.5) }, { "bias", T.randn(16) },
        { "R", T.randn(3, 7, 16) } }, { { "eps", 1e-5 } },
        function(t) return F.layer_norm(t.x, 16, t.weight, t.bias, 1e-5) end)
      case("ln_plain", "layer_norm", { { "x", T.randn(4, 33) }, { "R", T.randn(4, 33) } }, { { "eps", 1e-3 } },
        function(t) return F.layer_norm(t.x, { 33 }, nil, nil, 1e-3) end)
      case("gelu", "gelu", { { "x", T.randn(5, 37):mul(3) }, { "R", T.randn(5, 37) } }, nil,
        function(t) return F.gelu(t.x) end)
      case("softmax", "softmax", { { "x", T.randn(3, 5, 7):mul(4) }, { "R", T.randn(3, 5, 7) } }, { { "dim", 2 } },
        function(t) return F.softmax(t.x, 2) end)
      case("log_softmax", "log_softmax", { { "x", T.randn(3, 5, 7):mul(4) }, { "R", T.randn(3, 5, 7) } },
        { { "dim", 3 } }, function(t) return F.log_softmax(t.x, 3) end)
      case("bmm", "bmm", { { "a", T.randn(4, 3, 5) }, { "b", T.randn(4, 5, 6) }, { "R", T.randn(4, 3, 6) } }, nil,
        function(t) return t.a:matmul(t.b) end)
      local lengths = { 9, 4, 1 }
      case("attn", "attention", { { "q", T.randn(3, 70, 16) }, { "k", T.randn(3, 9, 16) }, { "v", T.randn(3, 9, 16) },
        { "lengths", T.new(lengths) }, { "R", T.randn(3, 70, 16) } }, { { "heads", 4 }, { "scale", 0.3 } },
        function(t) return F.scaled_dot_product_attention(t.q, t.k, t.v, { heads = 4, scale = 0.3, lengths = lengths }) end)
      case("attn_nomask", "attention", { { "q", T.randn(2, 5, 12) }, { "k", T.randn(2, 8, 12) },
        { "v", T.randn(2, 8, 12) }, { "R", T.randn(2, 5, 12) } }, { { "heads", 2 }, { "scale", 1 / math.sqrt(6) } },
        function(t) return F.scaled_dot_product_attention(t.q, t.k, t.v, { heads = 2 }) end)
      local mha = nn.MultiheadAttention(16, 4, { k_bias = false })
      local inputs = { { "x", T.randn(2, 6, 16) }, { "lengths", T.new { 6, 3 } }, { "R", T.randn(2, 6, 16) } }
      for _, np in ipairs(mha:named_parameters()) do inputs[#inputs + 1] = { np[1], np[2] } end
      case("mha", "mha", inputs, { { "heads", 4 } }, function(t) return mha(t.x, { lengths = { 6, 3 } }) end)

      local f = assert(io.open(dir .. "/manifest.txt", "w"))
      f:write(table.concat(manifest, "\n"), "\n")
      f:close()
      local p = assert(io.popen(("OMP_NUM_THREADS=1 %s %shelpers/transformer_torch.py '%s' 2>&1"):format(py, here, dir)))
      local log = p:read("a")
      p:close()
      assert(log:match("ok\n$"), "python side failed:\n" .. log)

      local worst = 0
      for _, c in ipairs(cases) do
        local function check(what, ours, file)
          local want = T.fromfile(("%s/%s_%s.f32"):format(dir, c.name, file), ours:shape())
          local e = numeric.rel_err(ours, want, 1e-30)
          worst = math.max(worst, e)
          assert(e < 1e-5, ("%s %s: relative error %.3g vs PyTorch (tolerance 1e-5)"):format(c.name, what, e))
        end
        check("forward", c.out, "out")
        for _, kv in ipairs(c.inputs) do
          if kv[1] ~= "R" and kv[1] ~= "lengths" then check("d" .. kv[1], kv[2]:grad(), "d" .. kv[1]) end
        end
      end
      print(("  transformer parity: worst relative error %.3g over %d cases"):format(worst, #cases))
    end)
end)
