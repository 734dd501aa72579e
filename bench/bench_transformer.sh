#!/usr/bin/env bash
# Transformer op forward times, ours (serlua) vs PyTorch 1.13, in one invocation,
# with ratios (median ms of the repeats; inference, no autograd), on Whisper-base
# shapes by default (batch 8 clips of 4 s = 200 encoder frames, d 512, 8 heads):
#   attention         scaled dot-product attention, q, k, v [B, T, d], no mask
#   attention_masked  the same with key lengths T, T-10, ... (a padded batch)
#   layer_norm        [B, T, d]            gelu   [B, T, 4d]
# fp32 for all, and bf16 for attention (ours: ser.set_amp, torch: autocast) when
# the CPU has AVX512-BF16 (torch uses AMX where the CPU has it, we do not).
#
#   bench/bench_transformer.sh [--threads 1,2] [--repeats 5] [--frames 200] [--batch 8]
#
# The machine is shared and noisy: compare only ratios taken in one run.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=1,2 repeats=5 frames=200 batch=8
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench_transformer.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_transformer.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_transformer.sh: python3-torch missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
args=(--threads "$threads" --repeats "$repeats" --frames "$frames" --batch "$batch" --dim 512 --heads 8)
echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
echo "torch:  $("$py" -c 'import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "")')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine has $(nproc) cores)"
echo "shapes: batch $batch, T $frames, d 512, 8 heads (head dim 64); gelu on [B, T, 2048]"
"$serlua" bench/bench_transformer.lua "${args[@]}" >>"$out"
OPENBLAS_NUM_THREADS=1 "$py" bench/bench_transformer.py "${args[@]}" >>"$out"

lua5.4 - "$out" <<'LUA'
local r, rows, seen = {}, {}, {}
for line in io.lines(arg[1]) do
  local t = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do t[k] = v end
  if t.op then
    local row = t.op .. "/" .. t.prec .. "/" .. t.threads
    r[t.side .. "/" .. row] = tonumber(t.ms)
    if not seen[row] then seen[row] = true; rows[#rows + 1] = { t.op, t.prec, t.threads } end
  end
end
print(("%-18s %-5s %4s  %9s  %9s  %s"):format("op", "prec", "thr", "ours ms", "torch ms", "speed-up (torch / ours)"))
for _, k in ipairs(rows) do
  local key = table.concat(k, "/")
  local o, t = r["ours/" .. key], r["torch/" .. key]
  local function f(v) return v and ("%9.3f"):format(v) or "        -" end
  print(("%-18s %-5s %4s  %s  %s  %s"):format(k[1], k[2], k[3], f(o), f(t), (o and t) and ("%.2fx"):format(t / o) or "-"))
end
LUA
