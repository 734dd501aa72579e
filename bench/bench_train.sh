#!/usr/bin/env bash
# Training and inference throughput of CNN2D, CRNN and CNN1D: ours (serlua) vs
# PyTorch 1.13 (python3-torch), side by side in one invocation, with ratios.
#
#   bench/bench_train.sh [--models cnn2d,crnn,cnn1d,cnn1d_fb] [--threads 1,2] [--amp] [--steps N] [--repeats R]
#   (cnn1d_fb: CNN1D with the filterbank front end, the main job's; the default list leaves it out)
#
# Each model runs in its own pair of processes (ours, then PyTorch), so peak
# RSS is per model. PyTorch gets OPENBLAS_NUM_THREADS=1 (this build nests
# OpenBLAS threads inside its own and oversubscribes two cores otherwise) and
# torch.set_num_threads(T); ours gets ser.set_num_threads(T). With --amp our
# side runs amp (bf16 where amp's measured rule says it pays) and is compared
# with PyTorch fp32 and PyTorch's bf16 autocast (bench_train.py --autocast).
# clips/s = 8 / seconds per batch of
# 8 (train: forward + cross-entropy + backward + AdamW step; infer8/infer1:
# forward under no_grad, batch 8 / batch 1), medians of R repeats of N steps;
# clips/CPU-s divides by the CPU time of all threads instead of wall time, the
# steadier measure when other processes share the cores (at 1 thread it is the
# work itself). The machine is shared and noisy: compare only ratios of one run.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
models=cnn2d,crnn,cnn1d threads=1,2 amp="" steps=5 repeats=3
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --amp) amp=--amp; shift ;;
    --steps) steps=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench_train.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_train.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_train.sh: python3-torch missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
echo "GEMM:   $("$serlua" -e 'print(require("ser").gemm_info())')"
echo "CPU:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "torch:  $("$py" -c 'import torch; print(torch.__version__, torch.backends.mkldnn.is_available() and "oneDNN" or "")')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine has $(nproc) cores)"
IFS=, read -ra mlist <<<"$models"
for m in "${mlist[@]}"; do
  "$serlua" bench/bench_train.lua --model "$m" --threads "$threads" --steps "$steps" --repeats "$repeats" $amp | tee -a "$out" | grep -v '^RESULT' || true
  OPENBLAS_NUM_THREADS=1 "$py" bench/bench_train.py --model "$m" --threads "$threads" --steps "$steps" --repeats "$repeats" >>"$out"
  if [ -n "$amp" ]; then
    OPENBLAS_NUM_THREADS=1 "$py" bench/bench_train.py --model "$m" --threads "$threads" --steps "$steps" --repeats "$repeats" --autocast >>"$out"
  fi
done

# Join ours and torch per (model, threads) and print the table with ratios.
lua5.4 - "$out" <<'LUA'
local rows, order = {}, {}
for line in io.lines(arg[1]) do
  if line:match("^RESULT") then
    local r = {}
    for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = v end
    local key = r.model .. "/" .. r.threads
    if not rows[key] then rows[key] = {}; order[#order + 1] = key end
    rows[key][r.side] = r
  end
end
local function ratio(a, b) a, b = tonumber(a), tonumber(b); return (a and b and b > 0) and ("%.2fx"):format(a / b) or "-" end
print(("%-9s %-5s | %-24s | %-24s | %-24s | %-24s | %s"):format("model/thr", "amp", "train clips/s ours/torch",
  "train clips/CPU-s", "infer b8 ours/torch", "infer b1 ours/torch", "peak RSS MB ours/torch (step MB ours)"))
for _, key in ipairs(order) do
  local o, t = rows[key].ours or {}, rows[key].torch or {}
  local function cell(f) return ("%7s / %-7s %6s"):format(o[f] or "-", t[f] or "-", ratio(o[f], t[f])) end
  print(("%-9s %-5s | %s | %s | %s | %s | %s / %s (%s)"):format(key, o.amp or "-", cell("train"), cell("train_cpu"),
    cell("infer8"), cell("infer1"), o.rss_mb or "-", t.rss_mb or "-", o.step_mb or "-"))
  local b = rows[key].torch_bf16
  if b then
    print(("  vs torch bf16 autocast: train %s / %s %s, train clips/CPU-s %s / %s %s, infer b8 %s / %s %s"):format(
      o.train or "-", b.train, ratio(o.train, b.train), o.train_cpu or "-", b.train_cpu, ratio(o.train_cpu, b.train_cpu),
      o.infer8 or "-", b.infer8, ratio(o.infer8, b.infer8)))
  end
  if o.opt and o.opt ~= "AdamW" then print("  note: our side ran without an optimizer step: " .. o.opt) end
end
LUA
