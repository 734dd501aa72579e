#!/usr/bin/env bash
# UMAP: ser.umap vs umap-learn 0.5.4, time and embedding quality side by side.
#
# Debian 12 does not package umap-learn, so its side is the figures measured
# on this machine with umap-learn 0.5.4 (../shared/BASELINES.md and
# ../shared/fixtures/umap/README.md): time per call in a warm process and for a
# process's first call, trust@5/@15 and recall@15 of its embedding. Ours is
# measured here (median of the repeats, 1 and 2 threads), and our embedding is
# also scored by scikit-learn's trustworthiness (python3-sklearn, from
# scripts/install-deps.sh --bench) to cross-check our metric.
#
#   bench/bench_umap.sh [--threads 1,2] [--repeats 5]
#
# The machine is shared and noisy: look at the load line, compare ratios.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=1,2 repeats=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_umap.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_umap.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
fixtures=${SER_FIXTURES:-../shared/fixtures}/umap
py=/usr/bin/python3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine has $(nproc) cores)"
"$serlua" bench/bench_umap.lua --fixtures "$fixtures" --threads "$threads" --repeats "$repeats" --out "$tmp" >"$tmp/ours"

# scikit-learn's trustworthiness of our embeddings (only with the fixtures: the
# generated stand-ins are not written for Python to re-create)
if "$py" -c 'import sklearn' 2>/dev/null && [ -f "$fixtures/umap_synth_1440x256.f32" ]; then
  "$py" - "$fixtures" "$tmp" <<'PY' >"$tmp/sk"
import glob, os, sys
import numpy as np
from sklearn.manifold import trustworthiness
fx, tmp = sys.argv[1], sys.argv[2]
shapes = {"synth": ("umap_synth_1440x256.f32", 1440, 256), "digits": ("umap_digits_1797x64.f32", 1797, 64)}
for path in sorted(glob.glob(os.path.join(tmp, "*_t*.f32"))):
    name, th = os.path.basename(path)[:-4].split("_t")
    f, n, d = shapes[name]
    X = np.fromfile(os.path.join(fx, f), "<f4").reshape(n, d)
    Y = np.fromfile(path, "<f4").reshape(n, 2)
    print(name, th, "%.4f" % trustworthiness(X, Y, n_neighbors=5), "%.4f" % trustworthiness(X, Y, n_neighbors=15))
PY
else
  : >"$tmp/sk"
fi

lua5.4 - "$tmp/ours" "$tmp/sk" <<'LUA'
-- umap-learn 0.5.4 on this machine (BASELINES.md, fixtures/umap/README.md)
local ref = {
  synth = { warm = 2.4, first = 7.0, t5 = 0.982, t15 = 0.982, r15 = 0.432, pca = { 0.898, 0.901, 0.098 } },
  digits = { warm = 3.0, first = 8.0, t5 = 0.990, t15 = 0.988, r15 = 0.530, pca = { 0.830, 0.829, 0.151 } },
}
local sk = {}
for line in io.lines(arg[2]) do
  local name, th, a, b = line:match("(%S+) (%S+) (%S+) (%S+)")
  sk[name .. th] = { tonumber(a), tonumber(b) }
end
print(("%-7s %-9s %3s | %8s %8s %8s %8s | %6s %6s | %-17s %-17s %-17s | %s")
  :format("data", "n x d", "thr", "ours s", "ours cpu", "learn s", "speedup", "knn", "sgd", "trust@5 ours/ref", "trust@15 ours/ref",
    "recall@15 ours/ref", "sklearn trust@5/@15 of ours"))
for line in io.lines(arg[1]) do
  local r = {}
  for k, v in line:gmatch("(%w+)=(%S+)") do r[k] = tonumber(v) or v end
  local f = ref[r.data]
  local s = sk[r.data .. r.threads]
  local learn = f and f.warm
  print(("%-7s %-9s %3d | %8.3f %8.3f %8s %8s | %6.3f %6.3f | %.4f / %-8s %.4f / %-8s %.4f / %-8s | %s%s")
    :format(r.data, r.n .. "x" .. r.d, r.threads, r.seconds, r.cpu, learn and ("%.1f"):format(learn) or "-",
      learn and ("%.1fx"):format(learn / r.seconds) or "-", r.knn, r.sgd,
      r.trust5, f and ("%.3f"):format(f.t5) or "-", r.trust15, f and ("%.3f"):format(f.t15) or "-",
      r.recall15, f and ("%.3f"):format(f.r15) or "-",
      s and ("%.4f / %.4f"):format(s[1], s[2]) or "-", r.source == "generated" and "  (generated stand-in data)" or ""))
end
print("ours s: median wall time; ours cpu: CPU time of all threads (with 1 thread, the wall time of a quiet machine).")
print("umap-learn: warm-process time per call, one thread; its first call in a process takes 7-9 s (numba compilation).")
print("PCA-2D on the same data: synth 0.898/0.901/0.098, digits 0.830/0.829/0.151 (trust@5/trust@15/recall@15).")
LUA
