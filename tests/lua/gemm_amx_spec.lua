-- The AMX switch and amp's measured per-shape rule, seen from Lua and from the
-- command line: serlua -v names the kernels in use (and why AMX is not used),
-- SER_AMX=0 turns AMX off, SER_AMP_GEMM picks the rule, ser.core.nn_cnn's
-- amp_rule / amp_rule_lookup check their arguments. The AMX kernel itself is
-- tested in tests/c/test_gemm_amx.c (over a tile emulator; on the hardware
-- only where the CPU has AMX).
local ser = require "ser"
local cnn = require "ser.core.nn_cnn"
local tmp = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/tmpdir.lua")

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local serlua = (os.getenv("SER_TEST_BUILD") or (root .. "/build")) .. "/serlua"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local dir
local function run(env, code)
  local err = dir .. "/stderr"
  local p = io.popen(("env SER_NUM_THREADS=1 SER_AMP_TABLE=%s %s %s %s 2>%s"):format(q(dir .. "/amp.tsv"), env, q(serlua),
    code and ("-e " .. q(code)) or "-v", q(err)))
  local out = p:read("a")
  p:close()
  local f = io.open(err)
  local e = f:read("a")
  f:close()
  return out, e
end

describe("AMX and the amp rule", function()
  before_each(function() dir = tmp.make("gemm-amx") end)
  after_each(function() tmp.cleanup() end)

  it("serlua -v names the fp32 kernel, the amp kernel and the rule", function()
    local out = run("", nil)
    local gemm = out:match("\nGEMM: ([^\n]*)")
    assert.is_not_nil(gemm, out)
    assert.matches("^fp32 ", gemm)
    if cnn.bf16_supported() then
      assert.is_truthy(gemm:find("amp AMX tiles", 1, true) or gemm:find("amp AVX512-BF16 kernel (AMX: ", 1, true), gemm)
      assert.matches("amp rule: bf16 per shape class where measured faster", gemm)
    else
      assert.matches("amp unavailable", gemm)
    end
  end)

  local it_bf16 = cnn.bf16_supported() and it or pending
  it_bf16("SER_AMX=0 turns AMX off and says so", function()
    local out = run("SER_AMX=0", nil)
    assert.matches("amp AVX512-BF16 kernel (AMX: off (SER_AMX=0))", out, 1, true)
  end)

  local amx = ser.gemm_info():find("amp AMX tiles", 1, true)
  local it_amx = amx and it or pending
  it_amx("runs amp on AMX tiles where the CPU has them" .. (amx and "" or
    " (pending: " .. (ser.gemm_info():match("%(AMX: ([^)]*)") or "no AVX512-BF16") .. ")"), function()
    -- a conv under amp on AMX stays within bf16 rounding of fp32
    ser.manual_seed(3)
    local x, w = ser.tensor.randn(2, 16, 12, 12), ser.tensor.randn(32, 16, 3, 3)
    local f = ser.nn.functional.conv2d(x, w, nil, { padding = 1 })
    local prev, rule = ser.set_amp(true), cnn.amp_rule("bf16")
    local a = ser.nn.functional.conv2d(x, w, nil, { padding = 1 })
    ser.set_amp(prev)
    cnn.amp_rule(rule)
    local d = (a - f):abs():max():item()
    assert.is_true(d > 0 and d < 0.05 * f:abs():max():item())
  end)

  it("SER_AMP_GEMM picks the rule; a bad value is named and ignored", function()
    assert.are.equal("bf16", (run("SER_AMP_GEMM=bf16", "require('ser'); io.write(require('ser.core.nn_cnn').amp_rule())")))
    assert.are.equal("fp32", (run("SER_AMP_GEMM=fp32", "require('ser'); io.write(require('ser.core.nn_cnn').amp_rule())")))
    local out, err = run("SER_AMP_GEMM=fast", "require('ser'); io.write(require('ser.core.nn_cnn').amp_rule())")
    assert.are.equal("auto", out)
    assert.matches("ignoring SER_AMP_GEMM='fast' (expected auto, bf16 or fp32)", err, 1, true)
  end)

  it("amp_rule and amp_rule_lookup check their arguments", function()
    local prev = cnn.amp_rule("fp32")
    assert.are.equal("fp32", cnn.amp_rule(prev))
    assert.has_error(function() cnn.amp_rule("fast") end)
    local ok, err = pcall(cnn.amp_rule_lookup, false, false, 0, 16, 16)
    assert.is_false(ok)
    assert.matches("amp_rule_lookup: M, N, K must be in 1..2^20, got 0, 16, 16", err, 1, true)
    prev = cnn.amp_rule("bf16")
    assert.is_true((cnn.amp_rule_lookup(false, true, 64, 64, 64)))
    cnn.amp_rule(prev)
  end)
end)
