#!/usr/bin/env bash
# Installs the Debian 12 packages serlua needs to build, test and run.
# Idempotent: packages already present are left alone; apt-get runs only when
# something is missing. Needs root (or sudo) when it has to install.
#
#   scripts/install-deps.sh          build + test + run dependencies
#   scripts/install-deps.sh --bench  also the PyTorch reference used by bench/
#   scripts/install-deps.sh --fuzz   also clang/libFuzzer for tests/fuzz
#   scripts/install-deps.sh --onnx   also the ONNX checkers of export.lua's tests: python3-onnx and
#                                    onnxruntime-node (npm, into .deps/onnxruntime, ignored by git)
#   scripts/install-deps.sh --browser also headless Chromium for serve.lua's browser test
set -euo pipefail

packages=(
  build-essential pkg-config
  lua5.4 liblua5.4-dev            # the language and its C API
  libsndfile1-dev                 # audio decoding (WAV, FLAC, OGG, AIFF, MP3)
  libsoxr-dev                     # resampling
  libfftw3-dev                    # STFT (single precision fftw3f)
  libopenblas-openmp-dev          # sgemm; the OpenMP build so it shares threads with our OpenMP loops
  libreadline-dev                 # REPL line editing and history
  libcjson-dev                    # safetensors JSON header
  libzip-dev                      # PyTorch .pt checkpoints (zip archives) read by ser.load
  protobuf-c-compiler libprotobuf-c-dev  # ONNX export: onnx.proto -> C at build time, protobuf writer
  libmicrohttpd-dev               # the HTTP server of experiments/serve.lua (src/http/)
  libcmocka-dev                   # C unit tests
  lua-busted                      # Lua specs
  lua-argparse                    # command-line flags of the experiment scripts
  gnuplot-nox                     # charts rendered to PNG (pngcairo terminal)
  curl unzip                      # make ravdess: download (resumable) and unpack the corpus
  libopenmpi-dev openmpi-bin      # the MPI plug-in build/ser_mpi.so (mpicc) and its tests (mpirun); not needed to run without mpirun
)
extra=()
onnx=0
for a in "$@"; do
  case "$a" in
    --bench) extra+=(python3-torch python3-torchaudio python3-numpy python3-sklearn libdnnl-dev) ;;  # sklearn: reference metrics for bench/bench_umap.sh; libdnnl-dev: oneDNN bf16 column of bench/bench_gemm.sh
    --fuzz)  extra+=(clang libclang-rt-14-dev) ;;
    --onnx)  extra+=(python3-onnx); onnx=1
             # a node that is already there (e.g. a newer one from elsewhere) is kept: Debian's
             # npm package would pull Debian's nodejs over it
             command -v node >/dev/null || extra+=(nodejs)
             command -v npm >/dev/null || extra+=(npm) ;;
    --browser) extra+=(chromium chromium-driver)  # tests/lua/serve_browser_spec.lua: the page in a real browser
               command -v node >/dev/null || extra+=(nodejs) ;;  # its WebDriver client script
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$a' (expected --bench, --fuzz, --onnx, --browser or --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}" "${extra[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# onnxruntime-node's CPU runtime comes inside the npm package; --ignore-scripts skips its
# install script (which would only fetch GPU add-ons). Runs after the Debian packages.
onnxruntime() {
  [ "$onnx" = 1 ] || return 0
  local dir; dir="$(cd "$(dirname "$0")/.." && pwd)/.deps/onnxruntime"
  [ -d "$dir/node_modules/onnxruntime-node" ] && return 0
  echo "install-deps: npm install onnxruntime-node into $dir"
  mkdir -p "$dir"
  # optional: a failed download leaves the ONNX specs skipping (visibly), not the install failed
  npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error onnxruntime-node ||
    echo "install-deps: npm install onnxruntime-node failed; the onnxruntime comparisons will be skipped" >&2
}
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  onnxruntime
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
onnxruntime
