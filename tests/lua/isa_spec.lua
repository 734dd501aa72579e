-- SER_ISA from the command line (src/core/cpu.c; docs/engine.md, "Instruction-set
-- dispatch"): serlua -v names the level the kernels run at and the cap, a cap only
-- lowers, an unknown value is named on stderr with the allowed ones and ignored, and
-- one training step of a small model (conv, BatchNorm, pooling, LayerNorm, GELU,
-- attention's softmax, AdamW, EMA) on log-mel features gives the same numbers, within
-- float rounding, at every level this CPU has. The kernels themselves are compared
-- with their references at each level by the C tests, which make test runs again
-- under SER_ISA=avx2 and SER_ISA=generic.
local paths = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/paths.lua")
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")

local levels = { "generic", "avx2", "avx512", "avx512_bf16", "amx" }
local rank = {}
for i, l in ipairs(levels) do rank[l] = i end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local dir
-- serlua with SER_ISA set to isa (nil: unset) and args; returns stdout, stderr, exit code.
local function run(isa, args)
  local err = dir .. "/stderr"
  local env = isa and ("SER_ISA=" .. q(isa)) or "-u SER_ISA"
  local p = io.popen(("env %s SER_NUM_THREADS=1 %s %s 2>%s"):format(env, q(paths.serlua), args, q(err)))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, paths.read(err), code
end

local function isa_line(out) return out:match("\nISA: ([^\n]*)") end

local it_serlua = paths.have_serlua and it or pending

describe("SER_ISA", function()
  before_each(function() dir = tmp.make("isa") end)
  after_each(function() tmp.cleanup() end)

  it_serlua("serlua -v names the level in use; a cap lowers it and names what the CPU has", function()
    local out, err, code = run(nil, "-v")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    local line = isa_line(out)
    assert.is_not_nil(line, out)
    local cpu = line:match("^([%w_]+) %(set SER_ISA to lower it%)$")
    assert.is_not_nil(rank[cpu], line)
    for _, l in ipairs(levels) do
      out, err, code = run(l, "-v")
      assert.are.equal(0, code)
      assert.are.equal("", err)
      -- never above the CPU's level, never above the cap
      local want = rank[l] < rank[cpu] and l or cpu
      assert.are.equal(("%s (SER_ISA=%s; the CPU has %s)"):format(want, l, cpu), isa_line(out))
      if rank[l] < rank.avx512_bf16 then
        assert.matches("amp unavailable (", out, 1, true)
        if rank[cpu] >= rank.avx512_bf16 then assert.matches("SER_ISA caps the kernels below avx512_bf16", out, 1, true) end
      end
      if rank[l] < rank.avx512 then assert.matches("\nGEMM: fp32 OpenBLAS;", out, 1, true) end
      -- the same from Lua: ser.isa_info() -> the line, the level, the CPU's level
      out = run(l, "-e " .. q("io.write(table.concat({ require('ser').isa_info() }, '|'))"))
      assert.are.equal(("%s (SER_ISA=%s; the CPU has %s)|%s|%s"):format(want, l, cpu, want, cpu), out)
    end
  end)

  it_serlua("an unknown value is named on stderr with the allowed ones, and the CPU's level runs", function()
    local native = isa_line((run(nil, "-v"))):match("^[%w_]+")
    for _, bad in ipairs({ "avx3", "AVX2", "native" }) do
      local out, err, code = run(bad, "-v")
      assert.are.equal(0, code)
      local msg = ("SER_ISA='%s' is not a level (expected generic, avx2, avx512, avx512_bf16 or amx); ignored"):format(bad)
      assert.matches(msg, err, 1, true)
      assert.are.equal(("%s (%s)"):format(native, msg), isa_line(out))
    end
    -- the library says it once, not per kernel call
    local _, err = run("avx3", "-e " .. q("local ser = require 'ser'; local x = ser.tensor.randn(2, 3, 8, 8); " ..
      "for i = 1, 3 do ser.nn.functional.max_pool2d(x, 2); ser.nn.functional.gelu(x) end"))
    local _, n = err:gsub("is not a level", "")
    assert.are.equal(1, n, err)
  end)

  -- One step of a model whose every layer has a kernel with several paths; prints
  -- the loss, the gradients' and parameters' sums and the EMA's, in full precision.
  local step = [[
local ser = require "ser"
local T, nn, F = ser.tensor, ser.nn, ser.nn.functional
ser.manual_seed(5)
local wav = T.randn(16000) * 0.1
local mel = ser.features.logmel(wav, { sr = 16000, n_fft = 512, hop = 160, n_mels = 32 })
local x = mel:view(1, 1, 32, -1)
-- no conv bias: before BatchNorm its gradient is 0 up to rounding, which AdamW's first
-- step (lr * g / |g|) would turn into level-dependent updates of +-lr
local conv = nn.Conv2d(1, 8, 3, { padding = 1, bias = false })
local bn, ln, head = nn.BatchNorm2d(8), nn.LayerNorm(16), nn.Linear(16, 4)
local model = nn.Sequential{ conv, bn, ln, head }          -- a holder of the parameters, not called
local params = model:parameters()
local opt = ser.optim.AdamW(params, { lr = 1e-2, weight_decay = 1e-2 })
local ema = ser.optim.EMA(model, { decay = 0.9, warmup = false })
local h = F.max_pool2d(F.relu(bn(conv(x))), 2)                -- [1, 8, 16, T/2]
h = F.adaptive_avg_pool2d(h, { 16, 1 }):view(8, 16)           -- 8 rows of 16
h = F.gelu(ln(h))
local logits = head(h):softmax(2):log()
local loss = F.nll_loss(logits, T.new{ 1, 2, 3, 4, 1, 2, 3, 4 })
loss:backward()
local gsum = 0
for _, p in ipairs(params) do gsum = gsum + p:grad():abs():sum():item() end
opt:step(); ema:update()
local psum, esum = 0, 0
for _, p in ipairs(params) do psum = psum + p:abs():sum():item() end
for _, t in pairs(ema:state_dict()) do esum = esum + t:abs():sum():item() end
io.write(("%.9g %.9g %.9g %.9g %.9g"):format(mel:abs():sum():item(), loss:item(), gsum, psum, esum))
]]

  it_serlua("one training step gives the same numbers at every level this CPU has", function()
    local path = dir .. "/step.lua"
    local f = assert(io.open(path, "w"))
    f:write(step)
    f:close()
    local native = isa_line((run(nil, "-v"))):match("^[%w_]+")
    local ref, err, code = run(nil, q(path))
    assert.are.equal(0, code, err)
    local want = {}
    for v in ref:gmatch("%S+") do want[#want + 1] = tonumber(v) end
    assert.are.equal(5, #want, ref)
    for _, l in ipairs({ "generic", "avx2", "avx512" }) do
      if rank[l] < rank[native] then
        local out, e, c = run(l, q(path))
        assert.are.equal(0, c, e)
        local i = 0
        for v in out:gmatch("%S+") do
          i = i + 1
          local got = tonumber(v)
          -- different instruction orders round differently; a wrong path is far off
          assert.is_true(math.abs(got - want[i]) <= 1e-4 * math.max(1, math.abs(want[i])),
            ("SER_ISA=%s: value %d is %s, %s at %s"):format(l, i, v, want[i], native))
        end
        assert.are.equal(5, i, out)
      end
    end
  end)
end)
