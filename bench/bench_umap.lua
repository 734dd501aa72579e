-- Our side of bench/bench_umap.sh: ser.umap wall time and quality.
--   serlua bench/bench_umap.lua --fixtures DIR --threads 1,2 --repeats 5 --out DIR
-- For each data set (the umap-learn reference data in DIR when present, else
-- generated clusters of the same sizes) prints one line per thread count:
--   RESULT data=... n=... d=... threads=... seconds=<median wall> cpu=<median CPU, all threads>
--          min=... knn=... graph=... init=... sgd=...
--          trust5=... trust15=... recall15=...
-- and writes the embedding of the first run to OUT/<data>.f32 so that the
-- shell script can score it with scikit-learn as a cross-check.
local argparse = require "argparse"
local ser = require "ser"
local T = ser.tensor

local p = argparse("bench_umap.lua", "UMAP time and quality (our side)")
p:option("--fixtures", "Folder with umap_synth_1440x256.f32 and umap_digits_1797x64.f32", "../shared/fixtures/umap")
p:option("--threads", "Thread counts, comma separated", "1,2")
p:option("--repeats", "Timed repeats (median reported)", "5")
p:option("--out", "Folder for the embeddings")
local a = p:parse()

-- wall clock (os.clock is CPU time over all threads)
local clock = require("ser.core.nn_cnn").monotonic

local function median(v)
  local c = { table.unpack(v) }
  table.sort(c)
  return c[(#c + 1) // 2]
end

-- Generated stand-in: k anisotropic clusters (used only without the fixtures).
local function generated(n, d, k)
  ser.manual_seed(5)
  local centres = T.randn(k, d):mul(3)
  local rows = {}
  local noise = T.randn(n, d):totable()
  local c = centres:totable()
  for i = 1, n do
    local ci = c[(i - 1) % k + 1]
    local r = {}
    for j = 1, d do r[j] = ci[j] + noise[i][j] * (0.5 + (j % 3) * 0.5) end
    rows[i] = r
  end
  return T.new(rows)
end

local sets = {
  { name = "synth", file = "umap_synth_1440x256.f32", n = 1440, d = 256, k = 8 },
  { name = "digits", file = "umap_digits_1797x64.f32", n = 1797, d = 64, k = 10 },
}
local repeats = tonumber(a.repeats)
for _, s in ipairs(sets) do
  local path = a.fixtures .. "/" .. s.file
  local f = io.open(path, "rb")
  local X, source
  if f then
    f:close()
    X, source = T.fromfile(path, { s.n, s.d }), "fixture"
  else
    X, source = generated(s.n, s.d, s.k), "generated"
  end
  for th in a.threads:gmatch("%d+") do
    ser.set_num_threads(tonumber(th))
    local times, cpu, parts, Y = {}, {}, { knn = {}, graph = {}, init = {}, sgd = {} }, nil
    ser.umap(X, { seed = 42, n_epochs = 5 }) -- warm-up: page in the libraries, start the thread pool
    for r = 1, repeats do
      local t0, c0 = clock(), os.clock()
      local y, info = ser.umap(X, { seed = 42 })
      times[r], cpu[r] = clock() - t0, os.clock() - c0
      for k, v in pairs(info.seconds) do parts[k][r] = v end
      Y = Y or y
    end
    local t5 = ser.metrics.trustworthiness(X, Y, 5)
    local t15 = ser.metrics.trustworthiness(X, Y, 15)
    local r15 = ser.metrics.knn_recall(X, Y, 15)
    if a.out then Y:tofile(("%s/%s_t%s.f32"):format(a.out, s.name, th)) end
    print(("RESULT data=%s source=%s n=%d d=%d threads=%s seconds=%.4f cpu=%.4f min=%.4f knn=%.4f graph=%.4f init=%.4f sgd=%.4f trust5=%.4f trust15=%.4f recall15=%.4f")
      :format(s.name, source, s.n, s.d, th, median(times), median(cpu), math.min(table.unpack(times)), median(parts.knn),
        median(parts.graph), median(parts.init), median(parts.sgd), t5, t15, r15))
  end
end
