-- Interruption and atomicity (issue 6). A writer process saves a checkpoint (ser.save) and a
-- results file (ser.fs.write, used for results.csv/results.md) in a tight loop,
-- alternating between two versions of different sizes; it is killed with SIGKILL at varying
-- moments. After every kill each file must be byte-for-byte one of the two complete versions
-- (or absent if the first write never finished) — never truncated or mixed. A second test
-- interrupts training with SIGINT and checks that the best checkpoint and the partial history
-- survive.
local H = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "robustness_helpers.lua")
local ser = require "ser"

local serlua = H.serlua()
local describe_if = H.exists(serlua) and describe or pending

local WRITER = [[
local ser = require "ser"
local files = require "ser.fs"
local T = ser.tensor
local dir = arg[1]
-- Two versions that differ in size and content, big enough that a write takes a while.
local A = { ["a.weight"] = T.full({ 256, 256 }, 1.0) }
local B = { ["a.weight"] = T.full({ 256, 256 }, 2.0), ["b.weight"] = T.full({ 384, 256 }, 3.0) }
local csvA = ("model,split,accuracy\n" .. ("cnn2d,test,0.5\n"):rep(20000))
local csvB = ("model,split,accuracy\n" .. ("crnn,val,0.25\n"):rep(30000))
-- Reference copies written once, before the loop (the parent compares against them).
if arg[2] == "refs" then
  assert(ser.save(dir .. "/ref_a.safetensors", A, { v = "a" }))
  assert(ser.save(dir .. "/ref_b.safetensors", B, { v = "b" }))
  files.write(dir .. "/ref_a.csv", csvA)
  files.write(dir .. "/ref_b.csv", csvB)
  return
end
local i = 0
while true do
  i = i + 1
  local odd = i % 2 == 1
  assert(ser.save(dir .. "/ckpt.safetensors", odd and A or B, { v = odd and "a" or "b" }))
  files.write(dir .. "/results.csv", odd and csvA or csvB)
end
]]

describe_if("robustness: SIGKILL during writes", function()
  teardown(H.cleanup)

  it("checkpoint and results files are always a complete old or new version", function()
    local dir = H.tmpdir("atomic")
    local w = H.write(dir .. "/writer.lua", WRITER)
    assert.is_true(H.sh(("%s %s %s refs"):format(serlua, w, dir)))
    local refs = {
      ckpt = { H.read(dir .. "/ref_a.safetensors"), H.read(dir .. "/ref_b.safetensors") },
      csv = { H.read(dir .. "/ref_a.csv"), H.read(dir .. "/ref_b.csv") },
    }
    assert.is_true(#refs.ckpt[1] ~= #refs.ckpt[2] and #refs.csv[1] ~= #refs.csv[2])
    local seen = { ckpt = {}, csv = {} }
    local kills = 24
    for k = 1, kills do
      -- 30..330 ms: early kills hit start-up and the first write, later ones the loop.
      local delay = 0.03 + (k * 0.0137) % 0.3
      local cmd = ("%s %s %s & p=$!; sleep %.3f; kill -9 $p; wait $p 2>/dev/null; true"):format(
        serlua, H.quote(w), H.quote(dir), delay)
      assert.is_true(H.sh(cmd))
      for what, file in pairs{ ckpt = "/ckpt.safetensors", csv = "/results.csv" } do
        local bytes = H.read(dir .. file)
        if bytes then
          local which = bytes == refs[what][1] and "a" or bytes == refs[what][2] and "b" or nil
          assert.is_truthy(which, ("kill %d (after %.3f s): %s is neither version (%d bytes; versions have %d and %d)")
            :format(k, delay, file, #bytes, #refs[what][1], #refs[what][2]))
          seen[what][which] = true
        end
      end
      local sd, meta = ser.load(dir .. "/ckpt.safetensors")
      if H.exists(dir .. "/ckpt.safetensors") then assert.is_truthy(sd, meta) end
    end
    -- The loop must really have alternated, or the test proved nothing.
    assert.is_true(seen.ckpt.a and seen.ckpt.b, "the checkpoint was never seen in both versions")
    assert.is_true(seen.csv.a and seen.csv.b, "results.csv was never seen in both versions")
    -- A kill mid-write leaves at most a temporary file beside the target, never a damaged target.
    local p = io.popen("ls " .. H.quote(dir))
    for name in p:lines() do
      assert.is_truthy(name:match("^ref_") or name == "writer.lua" or name == "ckpt.safetensors"
        or name == "results.csv" or name:match("^ckpt%.safetensors%.tmp") or name:match("^results%.csv%.tmp"),
        "unexpected file " .. name)
    end
    p:close()
  end)
end)

local TRAINER = [[
local ser = require "ser"
local files = require "ser.fs"
local T, nn = ser.tensor, ser.nn
local dir = arg[1]
ser.manual_seed(7)
local xs, ys = {}, {}
for i = 1, 64 do
  local c = i % 2 + 1
  xs[i] = { c == 1 and 1 or -1, (i % 7) / 7, (i % 3) / 3, 0.5 }
  ys[i] = c
end
local set = { x = T.new(xs), y = ys, classes = { "neutral", "calm" } }
local model = nn.Sequential{ nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2) }
-- Slow each training batch down so that the signal arrives mid-run, not after it.
local slow = nn.Lambda(function(x)
  local t = os.clock() + 0.01
  while os.clock() < t do end
  return x
end, "Slow")
model = nn.Sequential{ slow, model }
local _, history, result = ser.train.fit(model, { set, set }, {
  epochs = 100000, batch = 8, lr = 1e-3, patience = 100000, checkpoint = dir .. "/best.safetensors",
  progress = "quiet" })
local lines = { "stop=" .. result.stop_reason, "epochs=" .. #history, "best=" .. result.best_epoch }
files.write(dir .. "/history.txt", table.concat(lines, "\n") .. "\n")
]]

describe_if("robustness: SIGINT during training", function()
  teardown(H.cleanup)

  local function run_interrupted(catch)
    local dir = H.tmpdir("sigint")
    local script = (catch and "require('ser').catch_interrupt(true)\n" or "") .. TRAINER
    local t = H.write(dir .. "/train.lua", script)
    -- Start, wait until the first best checkpoint exists (an epoch finished), then Ctrl-C.
    local cmd = ([[%s %s %s >%s/out.txt 2>&1 & p=$!
      for i in $(seq 1 300); do [ -f %s/best.safetensors ] && break; sleep 0.05; done
      sleep 0.3; kill -INT $p; wait $p; echo $? >%s/rc]]):format(serlua, H.quote(t), H.quote(dir), H.quote(dir),
      H.quote(dir), H.quote(dir))
    assert.is_true(H.sh("bash -c " .. H.quote(cmd)))
    return dir, tonumber(H.read(dir .. "/rc")), H.read(dir .. "/out.txt") or ""
  end

  local function check(dir, rc, out, stop_pattern)
    assert.are.equal(0, rc, "the interrupted run should end normally; output:\n" .. out)
    local hist = H.read(dir .. "/history.txt")
    assert.is_truthy(hist, "no partial history written; output:\n" .. out)
    assert.matches("stop=" .. stop_pattern, hist)
    local epochs = tonumber(hist:match("epochs=(%d+)"))
    local best = tonumber(hist:match("best=(%d+)"))
    assert.is_true(epochs >= 1 and best >= 1 and best <= epochs, hist)
    local sd, meta = ser.load(dir .. "/best.safetensors")
    assert.is_truthy(sd, meta)
  end

  -- fit installs ser.catch_interrupt itself, so a plain script and one that already called it
  -- both stop at a batch boundary.
  it("stops after the current batch, keeps the best checkpoint and the partial history", function()
    local dir, rc, out = run_interrupted(false)
    check(dir, rc, out, "interrupted at epoch %d+, batch %d+/8; best weights %(epoch %d+%) kept")
  end)

  it("the same when the script called ser.catch_interrupt(true) before fit", function()
    local dir, rc, out = run_interrupted(true)
    check(dir, rc, out, "interrupted at epoch %d+, batch %d+/8; best weights %(epoch %d+%) kept")
  end)
end)
