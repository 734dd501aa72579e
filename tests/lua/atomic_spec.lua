-- Interruption and atomicity (issue 6). A writer process saves a checkpoint (ser.save) and a
-- results file (ser.fs.write, used for results.csv/results.md), alternating between two
-- versions of different sizes; it is killed with SIGKILL at every file-writing call it makes,
-- one run per call (helpers/killat.c, an LD_PRELOAD library, kills mid-write: after half the
-- bytes), so every point of every write is hit, deterministically, whatever the machine's load.
-- After every kill each file must be byte-for-byte one of the two complete versions (or absent
-- if the first write never finished) -- never truncated or mixed. A second test interrupts
-- training with SIGINT, sent once the first best checkpoint is written, and checks that the
-- run stops after that batch with the best checkpoint and the partial history.
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
-- Three saves of each file (A, B, A), then a normal exit: a run without a kill counts the
-- writing calls, and every run up to that count is killed at one of them.
for i = 1, 3 do
  local odd = i % 2 == 1
  assert(ser.save(dir .. "/ckpt.safetensors", odd and A or B, { v = odd and "a" or "b" }))
  files.write(dir .. "/results.csv", odd and csvA or csvB)
end
]]

-- helpers/killat.c built into dir; nil and the compiler's output when it cannot be.
local function build_killat(dir)
  local so = dir .. "/killat.so"
  local src = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/killat.c"
  local p = io.popen(("cc -shared -fPIC -O1 -o %s %s -ldl 2>&1"):format(H.quote(so), H.quote(src)))
  local out = p:read("a")
  local ok = p:close()
  return ok and so or nil, out
end

describe_if("robustness: SIGKILL during writes", function()
  teardown(H.cleanup)

  it("checkpoint and results files are always a complete old or new version", function()
    local dir = H.tmpdir("atomic")
    local so, cc_out = build_killat(dir)
    assert.is_truthy(so, "cannot build helpers/killat.c (the C compiler the build uses is needed):\n" .. cc_out)
    local w = H.write(dir .. "/writer.lua", WRITER)
    assert.is_true(H.sh(("%s %s %s refs"):format(serlua, w, dir)))
    local refs = {
      ckpt = { H.read(dir .. "/ref_a.safetensors"), H.read(dir .. "/ref_b.safetensors") },
      csv = { H.read(dir .. "/ref_a.csv"), H.read(dir .. "/ref_b.csv") },
    }
    assert.is_true(#refs.ckpt[1] ~= #refs.ckpt[2] and #refs.csv[1] ~= #refs.csv[2])
    -- (an ASan build of serlua would refuse a preloaded library ahead of its runtime)
    local env = ("LD_PRELOAD=%s ASAN_OPTIONS=%s"):format(H.quote(so),
      H.quote(((os.getenv("ASAN_OPTIONS") or "") .. ":verify_asan_link_order=0"):gsub("^:", "")))
    local function writer(kill_at, count_file)
      return ("%s SER_KILLAT=%d SER_KILLAT_COUNT=%s %s %s %s >/dev/null 2>&1; echo $?"):format(env, kill_at,
        H.quote(count_file or "/dev/null"), serlua, H.quote(w), H.quote(dir))
    end
    local function status(cmd)
      local p = io.popen(cmd)
      local rc = tonumber(p:read("a"):match("%d+"))
      p:close()
      return rc
    end
    -- A run without a kill: how many writing calls there are to interrupt.
    assert.are.equal(0, status(writer(0, dir .. "/count")))
    local calls = tonumber(H.read(dir .. "/count"))
    -- each save is at least a write, an fsync and a rename (the checkpoint) or an fwrite and a rename
    assert.is_true(calls and calls >= 15, "the preloaded library saw " .. tostring(calls) .. " writing calls")
    os.remove(dir .. "/ckpt.safetensors")
    os.remove(dir .. "/results.csv")
    local seen = { ckpt = {}, csv = {} }
    for k = 1, calls do
      assert.are.equal(137, status(writer(k)), ("the writer was not killed at call %d of %d"):format(k, calls))
      for what, file in pairs{ ckpt = "/ckpt.safetensors", csv = "/results.csv" } do
        local bytes = H.read(dir .. file)
        if bytes then
          local which = bytes == refs[what][1] and "a" or bytes == refs[what][2] and "b" or nil
          assert.is_truthy(which, ("killed at writing call %d of %d: %s is neither version (%d bytes; versions have %d and %d)")
            :format(k, calls, file, #bytes, #refs[what][1], #refs[what][2]))
          seen[what][which] = true
        end
      end
      local sd, meta = ser.load(dir .. "/ckpt.safetensors")
      if H.exists(dir .. "/ckpt.safetensors") then assert.is_truthy(sd, meta) end
    end
    -- Kills after the second save of each file found its version B, after the first its A.
    assert.is_true(seen.ckpt.a and seen.ckpt.b, "the checkpoint was never seen in both versions")
    assert.is_true(seen.csv.a and seen.csv.b, "results.csv was never seen in both versions")
    -- A kill mid-write leaves at most a temporary file beside the target, never a damaged target.
    local p = io.popen("ls " .. H.quote(dir))
    for name in p:lines() do
      assert.is_truthy(name:match("^ref_") or name == "writer.lua" or name == "ckpt.safetensors" or name == "count"
        or name == "killat.so" or name == "results.csv" or name:match("^ckpt%.safetensors%.tmp")
        or name:match("^results%.csv%.tmp"), "unexpected file " .. name)
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
-- Ctrl-C from another process, sent from inside the first training batch after the first best
-- checkpoint exists (epoch 2, batch 1): the run must finish that batch and stop. The signal is
-- delivered before `kill` returns, so where it lands does not depend on timing. (io.popen, not
-- os.execute: system() ignores SIGINT in the caller while its child runs.)
local pid = assert(io.open("/proc/self/stat")):read("n")
local sent = false
local signal = nn.Lambda(function(x)
  local best = not sent and io.open(dir .. "/best.safetensors", "rb")
  if best then
    best:close()
    sent = true
    assert(io.popen("kill -INT " .. pid)):close()
  end
  return x
end, "Signal")
model = nn.Sequential{ signal, model }
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
    local cmd = ("%s %s %s >%s/out.txt 2>&1; echo $? >%s/rc"):format(serlua, H.quote(t), H.quote(dir), H.quote(dir),
      H.quote(dir))
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
    check(dir, rc, out, "interrupted at epoch 2, batch 1/8; best weights %(epoch 1%) kept")
  end)

  it("the same when the script called ser.catch_interrupt(true) before fit", function()
    local dir, rc, out = run_interrupted(true)
    check(dir, rc, out, "interrupted at epoch 2, batch 1/8; best weights %(epoch 1%) kept")
  end)
end)
