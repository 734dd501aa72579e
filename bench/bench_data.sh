#!/usr/bin/env bash
# Data pipeline: ours (serlua, bench/bench_data.lua) beside the original pipeline's
# per-epoch data preparation in torchaudio (bench/bench_data.py), one invocation.
#   bench/bench_data.sh [DATA_DIR] [N_CLIPS]     (defaults ../shared/data/ravdess16k 960)
# The machine is shared and noisy: compare only ratios taken in one run.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${1:-../shared/data/ravdess16k}
n=${2:-960}
[ -x "$BUILD/serlua" ] || { echo "bench_data.sh: build first (make BUILD=$BUILD)" >&2; exit 1; }
ours=$("$BUILD/serlua" bench/bench_data.lua "$dir" "$n" | tee /dev/stderr | sed -n 's/^RESULT ours_clips_per_s=//p')
if [ -d "$dir" ] && /usr/bin/python3 -c "import torchaudio" 2>/dev/null; then
  ref=$(/usr/bin/python3 bench/bench_data.py "$dir" "$n" | tee /dev/stderr | sed -n 's/^RESULT ref_clips_per_s=//p')
  awk -v o="$ours" -v r="$ref" 'BEGIN { if (r > 0) printf "ratio      augmented epoch preparation without pitch, ours / torchaudio best: %.1fx\n", o / r }'
else
  echo "reference  skipped (no $dir or no python3-torchaudio; BASELINES.md: ~7 s per 960-clip epoch of data preparation)"
fi
