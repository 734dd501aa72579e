#!/usr/bin/env bash
# Runs every benchmark in bench/ (each bench/*.sh prints ours vs the PyTorch
# reference side by side, with ratios). Benchmarks are not tests: they time
# things, so run them on a quiet machine. Needs `scripts/install-deps.sh --bench`.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench >/dev/null || exit 1
status=0
for b in bench/*.sh; do
  [ -f "$b" ] || continue
  echo "== $b"
  BUILD=$BUILD bash "$b" || status=1
done
exit $status
