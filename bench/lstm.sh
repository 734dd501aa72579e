#!/usr/bin/env bash
# BiLSTM of the CRNN: ours vs PyTorch side by side (see bench/lstm_bench.lua).
set -eu
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
exec "$BUILD/serlua" bench/lstm_bench.lua "$@"
