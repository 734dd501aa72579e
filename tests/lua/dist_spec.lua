-- Data-parallel training over MPI (ser.dist, ser.train.parallel, docs/distributed.md).
-- The equivalence tests run 2 processes x 1 thread under mpirun against 1 process with
-- the doubled batch; they are pending, with the reason, where Open MPI or the plug-in
-- (build/ser_mpi.so) is absent. The sharding and the single-process behaviour are
-- tested everywhere.
local ser = require "ser"
local tmp = dofile("tests/lua/helpers/tmpdir.lua")
local paths = dofile("tests/lua/helpers/paths.lua")
local build, serlua = paths.build, paths.serlua

local exists = paths.exists

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end

local have_mpirun = sh_ok("command -v mpirun")
local have_plugin = exists(build .. "/ser_mpi.so")
local why_not = not have_mpirun and "mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)"
  or not have_plugin and ("%s/ser_mpi.so was not built (needs mpicc: libopenmpi-dev)"):format(build)
  -- make check-asan: Open MPI's runtime is not instrumented, and running it inside sanitized
  -- processes has not been validated (its allocations at exit would count as leaks)
  or os.getenv("SER_TEST_SANITIZED") and "the multi-process runs are not made under the sanitizers" or nil
local it_mpi = why_not and function(name) pending(name .. " -- skipped: " .. why_not) end or it

-- Runs cmd, returns its output (stdout and stderr) and exit status.
local run = dofile("tests/lua/helpers/shell.lua").run

-- Root may start mpirun only when it says so (CI containers run as root). One thread per
-- process: the two processes share this machine's two cores.
local MPI_ENV = "SER_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
local function mpirun(n, args)
  return run(("%stimeout 300 mpirun -n %d --oversubscribe %s %s"):format(MPI_ENV, n, serlua, args))
end
local function single(args)
  return run(("SER_NUM_THREADS=1 %s %s"):format(serlua, args))
end

-- The largest |a - b| over the entries both files hold, relative to the largest |a|
-- of that tensor; and the key where it is.
local function worst(file_a, file_b, only)
  local a, b = assert(ser.load(file_a)), assert(ser.load(file_b))
  local w, wk = 0, nil
  for k, t in pairs(a) do
    if not only or k:match(only) then
      assert(b[k], "missing " .. k)
      local scale = math.max(t:abs():max(), 1e-6)
      local d = (t - b[k]):abs():max() / scale
      if d > w then w, wk = d, k end
    end
  end
  return w, wk
end

describe("ser.dist without mpirun", function()
  it("is one process, loads no MPI library, and its collectives are identities", function()
    local rank, size = ser.dist.init()
    assert.are.same({ 0, 1 }, { rank, size })
    assert.is_nil(ser.dist.library())
    assert.is_true(ser.dist.is_root())
    local t = ser.tensor.new({ 1, 2, 3 })
    ser.dist.allreduce(t)
    ser.dist.broadcast(t, 0)
    assert.are.same({ 1, 2, 3 }, t:totable())
    assert.are.same({ "x" }, ser.dist.allgather_string("x"))
    assert.is_false(ser.dist.any(false))
    assert.has_error(function() ser.dist.broadcast(t, 1) end, "dist.broadcast: root 1 is not a rank of this job (0..0)")
  end)

  it("says what is missing when mpirun started it but the plug-in cannot be found", function()
    local out, rc = run(("OMPI_COMM_WORLD_SIZE=2 SER_MPI_PLUGIN=/nonexistent/ser_mpi.so %s -e 'require([[ser]]).dist.init()'")
      :format(serlua))
    assert.are_not.equal(0, rc)
    assert.matches("started by mpirun (2 processes) but the MPI plug-in ser_mpi.so was not found (looked for "
      .. "/nonexistent/ser_mpi.so)", out, 1, true)
  end)

  it("shards a global batch into contiguous shares that cover it once", function()
    for m = 2, 9 do
      for n = 1, 4 do
        local rows = {}
        for i = 1, m do rows[i] = 100 + i end
        local seen = {}
        for r = 0, n - 1 do
          local share = ser.dist.shard(rows, r, n)
          assert.is_true(#share >= m // n and #share <= m // n + 1)
          for _, v in ipairs(share) do seen[#seen + 1] = v end
        end
        assert.are.same(rows, seen)
      end
    end
  end)

  it("gives each process of a sharded loader its share of the unsharded loader's batches", function()
    local corpus = ser.data.synthetic{ speakers = 2, per_class = 3, classes = 3, seconds = 0.25, seed = 2 }
    local whole = ser.data.loader(corpus, { batch = 6, shuffle = true, seed = 4, features = "logmel" })
    local parts = {}
    for r = 0, 1 do
      parts[r] = ser.data.loader(corpus, { batch = 6, shuffle = true, seed = 4, features = "logmel",
        shard = { rank = r, size = 2 } })
    end
    assert.are.equal(whole:count(), parts[0]:count())
    local it0, it1 = parts[0]:iter(1), parts[1]:iter(1)
    for b in whole:iter(1) do
      local b0, b1 = it0(), it1()
      local joined = {}
      for _, i in ipairs(b0.index) do joined[#joined + 1] = i end
      for _, i in ipairs(b1.index) do joined[#joined + 1] = i end
      assert.are.same(b.index, joined)
      assert.are.equal(#b.index, b0.x:shape()[1] + b1.x:shape()[1])
    end
    assert.has_error(function() ser.data.loader(corpus, { shard = { rank = 2, size = 2 } }) end,
      "loader: shard must be { rank = 0..size-1, size = processes }, got { rank = 2, size = 2 }")
  end)

  it("leaves out a last global batch smaller than the number of processes", function()
    local corpus = ser.data.synthetic{ speakers = 1, per_class = 3, classes = 3, seconds = 0.25, seed = 2 } -- 9 clips
    local l = ser.data.loader(corpus, { batch = 8, shard = { rank = 0, size = 2 } })
    assert.are.equal(1, l:count())   -- 8 + 1: the lone ninth clip cannot be split over two processes
    l = ser.data.loader(corpus, { batch = 7, shard = { rank = 1, size = 2 } })
    assert.are.equal(2, l:count())   -- 7 + 2
  end)

  it("refuses unknown gradient compressions and a non-boolean sync_bn", function()
    local ds = { x = ser.tensor.randn(4, 3), y = { 1, 2, 1, 2 }, classes = { "a", "b" } }
    local m = ser.nn.Linear(3, 2)
    assert.has_error(function() ser.train.fit(m, { ds }, { epochs = 1, grad_compression = "int8", progress = "quiet" }) end,
      "ser.train.fit: grad_compression 'int8' is unknown (expected none, bf16 or fp16)")
    assert.has_error(function() ser.train.fit(m, { ds }, { epochs = 1, sync_bn = "yes", progress = "quiet" }) end,
      "ser.train.fit: option sync_bn = yes is invalid (expected true or false)")
  end)
end)

describe("data-parallel training, 2 processes x 1 thread", function()
  local dir
  before_each(function() dir = tmp.make("dist") end)
  after_each(function() tmp.cleanup() end)

  local grad = "tests/lua/helpers/dist_grad.lua"
  local fit = "tests/lua/helpers/dist_fit.lua"

  it_mpi("gives one step the gradient of the whole batch (CNN2D, synchronised BatchNorm, uneven shares)", function()
    local out, rc = single(("%s --model cnn2d --rows 9 --out %s/one.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    out, rc = mpirun(2, ("%s --model cnn2d --rows 9 --sync-bn --out %s/two.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    local w, k = worst(dir .. "/one.safetensors", dir .. "/two.safetensors")
    assert.is_true(w < 1e-5, ("worst relative difference %g at %s"):format(w, tostring(k)))
    -- per-process statistics (the default) are another computation: the test can tell
    out, rc = mpirun(2, ("%s --model cnn2d --rows 9 --out %s/local.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    w = worst(dir .. "/one.safetensors", dir .. "/local.safetensors", "running_mean")
    assert.is_true(w > 1e-3, ("per-process BatchNorm statistics should differ, worst %g"):format(w))
  end)

  it_mpi("gives one step the gradient of the whole batch (CRNN), and close to it with bf16 compression", function()
    local out, rc = single(("%s --model crnn --rows 8 --out %s/one.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    out, rc = mpirun(2, ("%s --model crnn --rows 8 --out %s/two.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    local w, k = worst(dir .. "/one.safetensors", dir .. "/two.safetensors")
    assert.is_true(w < 1e-5, ("worst relative difference %g at %s"):format(w, tostring(k)))
    out, rc = mpirun(2, ("%s --model crnn --rows 8 --compress bf16 --out %s/bf16.safetensors"):format(grad, dir))
    assert.are.equal(0, rc, out)
    w = worst(dir .. "/one.safetensors", dir .. "/bf16.safetensors", "^grad$")
    assert.is_true(w > 1e-6 and w < 2e-2, ("bf16 gradients: worst relative difference %g"):format(w))
  end)

  -- After an epoch of AdamW the weights agree to float rounding amplified by Adam's
  -- normalisation (a gradient entry near zero may flip sign between summation orders):
  -- within 1 % of each tensor's largest entry, and the epoch's loss to 1e-5.
  local function same_training(model, extra)
    local out, rc = single(("%s --model %s --batch 8 --epochs 2 --out %s/one.safetensors"):format(fit, model, dir))
    assert.are.equal(0, rc, out)
    local out2
    out2, rc = mpirun(2, ("%s --model %s --batch 4 --epochs 2 %s --out %s/two.safetensors"):format(fit, model, extra, dir))
    assert.are.equal(0, rc, out2)
    local l1, l2 = tonumber(out:match("train loss ([%d.]+)")), tonumber(out2:match("train loss ([%d.]+)"))
    assert.is_true(math.abs(l1 - l2) <= 1e-5 * l1, ("train loss %s vs %s"):format(l1, l2))
    local w, k = worst(dir .. "/one.safetensors", dir .. "/two.safetensors")
    assert.is_true(w < 1e-2, ("worst relative difference %g at %s"):format(w, tostring(k)))
  end

  it_mpi("trains a CRNN on 2 x batch 4 to the weights of 1 x batch 8", function()
    same_training("crnn", "")
  end)

  it_mpi("trains a CNN2D with synchronised BatchNorm on 2 x batch 4 to the weights of 1 x batch 8", function()
    same_training("cnn2d", "--sync-bn")
  end)

  -- Every column of <name>_history.csv but the seconds: the runs' numbers, per seed and epoch.
  local function history(path)
    local rows = {}
    for line in io.lines(path) do rows[#rows + 1] = line:gsub(",[^,]*$", "") end
    return rows
  end

  it_mpi("runs compare.lua data-parallel with one set of outputs and messages, from rank 0", function()
    local out, rc = mpirun(2, "experiments/compare.lua --quick --models crnn --epochs 1 --out " .. dir .. "/dp")
    assert.are.equal(0, rc, out)
    local _, notes = out:gsub("data%-parallel: 2 processes", "")
    assert.are.equal(1, notes, out)
    local _, tables = out:gsub("model%s+split%s+accuracy", "")
    assert.are.equal(1, tables, out)
    local rows = 0
    for _ in io.lines(dir .. "/dp/results/results.csv") do rows = rows + 1 end
    assert.are.equal(3, rows)   -- the header, val and test: written once
    local _, meta = ser.load(dir .. "/dp/results/crnn.safetensors")
    assert.is_truthy(meta and meta.recipe)
    -- rerun with --resume: the finished run is scored again by both processes, not retrained
    local first = io.open(dir .. "/dp/results/results.csv"):read("a")
    out, rc = mpirun(2, "experiments/compare.lua --quick --models crnn --epochs 1 --resume --out " .. dir .. "/dp")
    assert.are.equal(0, rc, out)
    local _, finished = out:gsub("this run finished", "")
    assert.are.equal(1, finished, out)
    local again = io.open(dir .. "/dp/results/results.csv"):read("a")
    assert.are.equal((first:gsub(",[%d.]+,42", "")), (again:gsub(",[%d.]+,42", "")))   -- all but train_seconds
  end)

  it_mpi("spreads a sweep's seeds over the processes and writes the serial run's table once (compare.lua --spread)", function()
    local args = "experiments/compare.lua --quick --models crnn --seeds 1,2,3 --epochs 1 --out "
    local out, rc = single(args .. dir .. "/serial")
    assert.are.equal(0, rc, out)
    out, rc = mpirun(2, args .. dir .. "/spread --spread")
    assert.are.equal(0, rc, out)
    local serial, spread = history(dir .. "/serial/results/crnn_history.csv"), history(dir .. "/spread/results/crnn_history.csv")
    assert.are.equal(4, #serial)   -- the header and one epoch of each seed
    assert.are.same(serial, spread)
    local _, tables = out:gsub("model%s+split%s+accuracy", "")
    assert.are.equal(1, tables)    -- printed by rank 0 only
    for _, seed in ipairs { 1, 2, 3 } do
      assert.is_truthy(ser.load(("%s/spread/results/crnn_seed%d.safetensors"):format(dir, seed)))
    end
    -- --resume over the spread job with seed 2's state gone (as if its process had died before
    -- its first epoch): seeds 1 and 3 (rank 0's) are scored again, not retrained; rank 1
    -- trains seed 2 again; the table is the serial run's
    os.remove(dir .. "/spread/state/crnn_seed2.safetensors")
    out, rc = mpirun(2, args .. dir .. "/spread --spread --resume")
    assert.are.equal(0, rc, out)
    local _, finished = out:gsub("this run finished", "")
    assert.are.equal(2, finished, out)
    assert.are.same(serial, history(dir .. "/spread/results/crnn_history.csv"))
    assert.is_truthy(ser.load(dir .. "/spread/state/crnn_seed2.safetensors"))
  end)

  it_mpi("fills an embedding cache in shares, one writer per file, and a rerun encodes only what is missing", function()
    local random_whisper = dofile("tests/lua/helpers/whisper_random.lua")
    local frozen = require "ser.frozen_encoder"
    local cachemod = require "ser.data.embedding_cache"
    random_whisper(dir .. "/enc", { layers = 2, d_model = 64 })
    ser.data.synthetic { speakers = 3, per_class = 2, seconds = 0.5, seed = 3, out = dir .. "/wav",
                         classes = { "neutral", "happy" } }
    local paths = {}
    for i, it in ipairs(ser.data.scan(dir .. "/wav", { quiet = true }).items) do paths[i] = it.path end
    assert.are.equal(12, #paths)
    local enc, id = frozen.encoder(dir .. "/enc")
    local reference = cachemod.new { encoder = enc, identity = id, config = enc.config, dir = nil,
      settings = { seconds = 4, sr = 16000 }, log = function() end }:pooled(paths)
    local cmd = ("tests/lua/helpers/dist_cache.lua %s/enc %s/wav %s/cache %s/out.safetensors"):format(dir, dir, dir, dir)
    local out, rc = mpirun(2, cmd)
    assert.are.equal(0, rc, out)
    local got, meta = ser.load(dir .. "/out.safetensors")
    local a, b = meta.encoded:match("^(%d+),(%d+)$")
    a, b = tonumber(a), tonumber(b)
    assert.are.equal(12, a + b)                    -- every clip encoded once, by one process
    assert.is_true(a > 0 and b > 0, meta.encoded)  -- both took a share
    assert.is_true((got.pooled - reference):abs():max() < 1e-5)
    local p = io.popen("find " .. dir .. "/cache -type f")
    local files = {}
    for line in p:lines() do files[#files + 1] = line end
    p:close()
    assert.are.equal(12, #files)                   -- one file per clip, no temporary file left
    -- a killed run leaves whole files only: three gone, a rerun encodes those three
    for i = 1, 3 do os.remove(files[i]) end
    out, rc = mpirun(2, cmd)
    assert.are.equal(0, rc, out)
    got, meta = ser.load(dir .. "/out.safetensors")
    a, b = meta.encoded:match("^(%d+),(%d+)$")
    assert.are.equal(3, tonumber(a) + tonumber(b))
    assert.is_true((got.pooled - reference):abs():max() < 1e-5)
  end)

  it_mpi("ends the whole job, naming the rank and what it did, when one process fails", function()
    local out, rc = mpirun(2, ("%s --epochs 3 --batch 4 --fail 1:5 --checkpoint %s/ck.safetensors --out %s/w.safetensors")
      :format(fit, dir, dir))
    assert.are_not.equal(0, rc, out)
    assert.are_not.equal(124, rc, "the job hung until timeout:\n" .. out)
    assert.matches("injected failure", out, 1, true)
    assert.matches("rank 1 of 2 failed (exit status 1) while training epoch 2, batch 2/3", out, 1, true)
    -- rank 0 wrote the checkpoint of epoch 1 whole (atomically) before the failure
    assert.is_truthy(ser.load(dir .. "/ck.safetensors"))
    assert.is_false(exists(dir .. "/w.safetensors"))
  end)

  -- A job killed mid-epoch (SIGKILL of rank 1) and rerun with resume ends with the weights of
  -- the uninterrupted 2-process job, bit for bit: every process restores its own generator
  -- (dropout masks differ per process), the moments, the schedule, the EMA and the epoch.
  for _, model in ipairs { "crnn", "cnn2d" } do
    it_mpi(("resumes a killed job where it stopped (%s, augmentation, EMA, OneCycle; CNN2D's dropout)"):format(model), function()
      -- without validation the final weights are the EMA of every step (not an earlier best epoch's)
      local common = ("%s --model %s --batch 4 --epochs 3 --no-val --dropout --augment reference --ema 0.9"):format(fit, model)
      local out, rc = mpirun(2, ("%s --state %s/full.state --out %s/full.safetensors"):format(common, dir, dir))
      assert.are.equal(0, rc, out)
      -- 24 training clips, global batch 8: 3 steps per epoch; rank 1 dies in epoch 3, step 2
      out, rc = mpirun(2, ("%s --state %s/cut.state --die 1:8 --out %s/cut.safetensors"):format(common, dir, dir))
      assert.are_not.equal(0, rc, out)
      assert.matches("process rank 1 .* exited on signal 9", out)
      local sd, meta = assert(ser.load(dir .. "/cut.state"))
      assert.are.equal(2, meta.epoch)
      -- the processes held the same weights and optimiser moments (rank 0's copy suffices)
      assert.are.equal(2, #meta.replicas)
      assert.are.equal(meta.replicas[1], meta.replicas[2])
      assert.are.equal(2, #meta.rng)
      assert.are_not.same(meta.rng[1], meta.rng[2])
      assert.is_truthy(sd["optim.state.1.exp_avg"])
      out, rc = mpirun(2, ("%s --state %s/cut.state --resume --out %s/cut.safetensors"):format(common, dir, dir))
      assert.are.equal(0, rc, out)
      local w, k = worst(dir .. "/full.safetensors", dir .. "/cut.safetensors")
      assert.are.equal(0, w, ("resumed vs uninterrupted: worst relative difference %g at %s"):format(w, tostring(k)))
      -- one process cannot continue a 2-process state
      out, rc = single(("%s --state %s/cut.state --resume --out %s/one.safetensors"):format(common, dir, dir))
      assert.are_not.equal(0, rc, out)
      assert.matches("it was trained by 2 process(es), now 1", out, 1, true)
    end)
  end

  it_mpi("ends the whole job when a process is killed, and mpirun names the rank", function()
    local out, rc = mpirun(2, ("%s --epochs 3 --batch 4 --die 1:5 --checkpoint %s/ck.safetensors --out %s/w.safetensors")
      :format(fit, dir, dir))
    assert.are_not.equal(0, rc, out)
    assert.are_not.equal(124, rc, "the job hung until timeout:\n" .. out)
    assert.matches("process rank 1 .* exited on signal 9", out)
    assert.is_truthy(ser.load(dir .. "/ck.safetensors"))
    local p = io.popen("ls -A " .. dir)
    local listing = p:read("a")
    p:close()
    assert.are.equal("ck.safetensors\n", listing)   -- no temporary file left behind
  end)
end)
