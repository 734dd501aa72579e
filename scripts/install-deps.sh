#!/usr/bin/env bash
# Installs the Debian 12 packages serlua needs to build, test and run.
# Idempotent: packages already present are left alone; apt-get runs only when
# something is missing. Needs root (or sudo) when it has to install.
#
#   scripts/install-deps.sh          build + test + run dependencies
#   scripts/install-deps.sh --bench  also the PyTorch reference used by bench/
#   scripts/install-deps.sh --fuzz   also clang/libFuzzer for tests/fuzz
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
  libmicrohttpd-dev               # the HTTP server of experiments/serve.lua (src/http/)
  libcmocka-dev                   # C unit tests
  lua-busted                      # Lua specs
  lua-argparse                    # command-line flags of the experiment scripts
  gnuplot-nox                     # charts rendered to PNG (pngcairo terminal)
  curl unzip                      # make ravdess: download (resumable) and unpack the corpus
)
extra=()
for a in "$@"; do
  case "$a" in
    --bench) extra+=(python3-torch python3-torchaudio python3-numpy python3-sklearn libdnnl-dev) ;;  # sklearn: reference metrics for bench/bench_umap.sh; libdnnl-dev: oneDNN bf16 column of bench/bench_gemm.sh
    --fuzz)  extra+=(clang libclang-rt-14-dev) ;;
    --browser) extra+=(chromium chromium-driver nodejs) ;;  # tests/lua/serve_browser_spec.lua: the page in a real browser
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$a' (expected --bench, --fuzz, --browser or --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}" "${extra[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
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
