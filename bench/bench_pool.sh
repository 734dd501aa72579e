#!/usr/bin/env bash
# Adaptive average pooling, ours (serlua) vs PyTorch 1.13, in one invocation, with ratios
# (best of the repeats, ms per call; forward alone, and forward + backward of its sum):
#   rows      [16, 128, 8, 250] -> [., ., 1, 250]   rows pooled, columns kept (CNN2D freq = "mean")
#   plane1d   [8, 256, 4000]    -> [., ., 1]         a whole plane to one value (CNN1D's pool)
#   general   [16, 64, 15, 100] -> [., ., 4, 30]    overlapping windows of unequal size
#
#   bench/bench_pool.sh [--threads 1] [--repeats 20]
#
# The machine may be shared: compare only ratios taken in one run.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=1 repeats=20
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench_pool.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$threads$repeats" in *[!0-9]*|'') echo "bench_pool.sh: --threads and --repeats take whole numbers" >&2; exit 2 ;; esac
[ "$threads" -ge 1 ] && [ "$repeats" -ge 1 ] || { echo "bench_pool.sh: --threads and --repeats must be >= 1" >&2; exit 2; }
# The cases, one list for both sides: name:input shape:output size (one number for a 1-d pool).
cases="rows:16,128,8,250:1,250 plane1d:8,256,4000:1 general:16,64,15,100:4,30"
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_pool.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_pool.sh: python3-torch missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine has $(nproc) cores), $threads thread(s)"

"$serlua" - "$threads" "$repeats" "$cases" >>"$out" <<'LUA'
local ser = require "ser"
local T, F = ser.tensor, ser.nn.functional
local clock = require("ser.core.nn_cnn").monotonic
local threads, repeats = tonumber(arg[1]), tonumber(arg[2])
ser.set_num_threads(threads)
ser.manual_seed(1)
local function numbers(text)
  local t = {}
  for v in text:gmatch("%d+") do t[#t + 1] = tonumber(v) end
  return t
end
for name, shape_text, size_text in arg[3]:gmatch("(%w+):([%d,]+):([%d,]+)") do
  local shape, size = numbers(shape_text), numbers(size_text)
  if #size == 1 then size = size[1] end
  local pool = #shape == 4 and F.adaptive_avg_pool2d or F.adaptive_avg_pool1d
  local x = T.randn(table.unpack(shape))
  local xg = T.randn(table.unpack(shape)):requires_grad(true)
  local fwd, both = math.huge, math.huge
  for _ = 1, repeats do
    local t0 = clock()
    for _ = 1, 10 do local _ = pool(x, size) end
    fwd = math.min(fwd, (clock() - t0) / 10)
    t0 = clock()
    for _ = 1, 10 do pool(xg, size):sum():backward() end
    both = math.min(both, (clock() - t0) / 10)
  end
  print(("side=ours case=%s fwd=%.4f both=%.4f"):format(name, fwd * 1e3, both * 1e3))
end
LUA

OPENBLAS_NUM_THREADS=1 "$py" - "$threads" "$repeats" "$cases" >>"$out" <<'PY'
import sys, time, torch
import torch.nn.functional as F
threads, repeats = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(1)
for case in sys.argv[3].split():
    name, shape_text, size_text = case.split(":")
    shape, size = tuple(int(v) for v in shape_text.split(",")), tuple(int(v) for v in size_text.split(","))
    if len(size) == 1: size = size[0]
    pool = F.adaptive_avg_pool2d if len(shape) == 4 else F.adaptive_avg_pool1d
    x = torch.randn(*shape)
    xg = torch.randn(*shape, requires_grad=True)
    fwd = both = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(10): pool(x, size)
        fwd = min(fwd, (time.perf_counter() - t0) / 10)
        t0 = time.perf_counter()
        for _ in range(10): pool(xg, size).sum().backward()
        both = min(both, (time.perf_counter() - t0) / 10)
    print(f"side=torch case={name} fwd={fwd * 1e3:.4f} both={both * 1e3:.4f}")
PY

lua5.4 - "$out" <<'LUA'
local r, order = {}, {}
for line in io.lines(arg[1]) do
  local t = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do t[k] = v end
  if t.case then
    if not r[t.case] then r[t.case] = {}; order[#order + 1] = t.case end
    r[t.case][t.side] = t
  end
end
print(("%-8s  %10s %10s %8s   %10s %10s %8s"):format("case", "ours fwd", "torch fwd", "ratio", "ours f+b", "torch f+b", "ratio"))
for _, c in ipairs(order) do
  local o, t = r[c].ours, r[c].torch
  local function cell(side, k) return side and ("%10.3f"):format(tonumber(side[k])) or "         -" end
  local function ratio(k) return (o and t) and ("%7.2fx"):format(tonumber(t[k]) / tonumber(o[k])) or "       -" end
  print(("%-8s  %s %s %s   %s %s %s"):format(c, cell(o, "fwd"), cell(t, "fwd"), ratio("fwd"), cell(o, "both"), cell(t, "both"), ratio("both")))
end
print("ms per call, best of the repeats; ratio = torch / ours (> 1: ours faster)")
LUA
