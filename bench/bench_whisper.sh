#!/usr/bin/env bash
# The Whisper encoder's forward (inference), ours (serlua) vs a plain torch.nn
# re-implementation in PyTorch 1.13 (tests/lua/helpers/whisper_ref.py), fp32 and
# mixed precision (ours: ser.set_amp, the bf16 GEMM kernel; torch:
# torch.autocast("cpu", dtype=torch.bfloat16)), batch 8 x 4 s (T = 400 input
# frames) of random log-mel, 2 threads, for whisper-tiny.en and whisper-base from
# ../shared/models (a random encoder of base's shape when absent).
#
#   bench/bench_whisper.sh [--repeats 7] [--threads 2] [--batch 8] [--frames 400]
#                          [--models tiny.en,base] [--blas asis,unset] [--passive]
#
# Both sides run as servers that load the models once; the driver alternates
# single forwards (ours, torch, ours, torch, ...) so that both see the same load,
# and prints medians of wall time and of CPU time (all threads; the steadier
# measure when other jobs share the cores) and the ratios torch / ours (> 1: ours
# faster). --passive exports OMP_WAIT_POLICY=passive to both sides (threads sleep
# at barriers instead of spinning: on a loaded machine active waiting measures
# the scheduler, and CPU time then counts the spinning).
# --blas runs everything once per environment: "asis" as exported, "unset"
# without OPENBLAS_CORETYPE (OpenBLAS picks its kernels from the CPU). Both
# sides use OpenBLAS (torch's fp32 Linear goes through it; its convolutions and
# bf16 products through oneDNN). The machine is shared: compare only ratios of
# one run, and quote the load printed.
#
#   bench/bench_whisper.sh --encode-all [DIR]   (default ../shared/data/ravdess16k)
# encodes every clip of DIR with whisper-base (batches sorted by length, mean-pooled
# outputs kept), fp32 and amp, and prints clips/s and total seconds.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
repeats=7 threads=2 batch=8 frames=400 models=tiny.en,base blas=asis encode_all=""
shared=${SER_SHARED:-$root/../shared}
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --blas) blas=$2; shift 2 ;;
    --passive) export OMP_WAIT_POLICY=passive; shift ;;
    --encode-all) encode_all=${2:-$shared/data/ravdess16k}; [ $# -ge 2 ] && shift; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench_whisper.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_whisper.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_whisper.sh: python3-torch missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; flags:$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx512f|avx512_bf16|amx_bf16' | tr '\n' ' ' | sed 's/^/ /')"
echo "torch:  $("$py" -c 'import torch; print(torch.__version__, "capability", torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?")')"

if [ -n "$encode_all" ]; then
  model=$shared/models/whisper-base
  [ -f "$model/model.safetensors" ] || { echo "bench_whisper.sh: --encode-all needs $model" >&2; exit 1; }
  echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
  "$serlua" bench/bench_whisper.lua --encode-all "$encode_all" --model "$model" --batch "$batch" --threads "$threads"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, after)"
  exit 0
fi

# models: NAME=PATH; a random encoder of base's shape when the shared one is absent
spec=""
IFS=, read -ra mlist <<<"$models"
for m in "${mlist[@]}"; do
  path=$shared/models/whisper-$m
  if [ ! -f "$path/model.safetensors" ]; then
    if [ "$m" = base ]; then
      path=$tmp/random-base
      "$py" tests/lua/helpers/whisper_ref.py make "$path" 6 512 8 80 1 >/dev/null
      m=random-base
      echo "note:   ../shared/models/whisper-base is absent: a random encoder of its shape (6 x 512, 8 heads)"
    else
      echo "note:   $path is absent: skipped"
      continue
    fi
  fi
  spec=${spec:+$spec,}$m=$path
done
[ -n "$spec" ] || { echo "bench_whisper.sh: no models" >&2; exit 1; }
precs=(fp32)
"$serlua" -e 'require("ser"); os.exit(require("ser.core.nn_cnn").bf16_supported() and 0 or 1)' && precs+=(amp)

run_env() { # $1: asis | unset
  local label=$1
  local envcmd=(env)
  [ "$label" = unset ] && envcmd=(env -u OPENBLAS_CORETYPE)
  echo
  echo "== BLAS environment: $label (OPENBLAS_CORETYPE=$([ "$label" = unset ] && echo '(unset)' || echo "${OPENBLAS_CORETYPE:-(unset)}"))"
  echo "serlua: $("${envcmd[@]}" "$serlua" -e 'print(require("ser").blas_info())')"
  echo "GEMM:   $("${envcmd[@]}" "$serlua" -e 'print(require("ser").gemm_info())')"
  echo "torch:  OpenBLAS core $("${envcmd[@]}" OPENBLAS_VERBOSE=2 "$py" -c 'import torch; torch.mm(torch.ones(64, 64), torch.ones(64, 64))' 2>&1 | sed -n 's/^Core: //p' | head -1)"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before); OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
  mkfifo "$tmp/oi" "$tmp/oo" "$tmp/ti" "$tmp/to"
  local args=(--serve --models "$spec" --batch "$batch" --frames "$frames" --threads "$threads")
  "${envcmd[@]}" "$serlua" bench/bench_whisper.lua "${args[@]}" <"$tmp/oi" >"$tmp/oo" &
  pids+=($!)
  "${envcmd[@]}" "$py" bench/bench_whisper.py "${args[@]}" <"$tmp/ti" >"$tmp/to" &
  pids+=($!)
  exec 3>"$tmp/oi" 4<"$tmp/oo" 5>"$tmp/ti" 6<"$tmp/to"
  local line
  read -r line <&4; [ "$line" = ready ] || { echo "serlua side: $line" >&2; exit 1; }
  read -r line <&6; [ "$line" = ready ] || { echo "torch side: $line" >&2; exit 1; }
  local res=$tmp/res
  : >"$res"
  IFS=, read -ra specs <<<"$spec"
  for s in "${specs[@]}"; do
    local name=${s%%=*}
    for prec in "${precs[@]}"; do
      for r in $(seq 0 "$repeats"); do # round 0 warms up
        echo "$name $prec" >&3; read -r line <&4
        [ "$r" -gt 0 ] && echo "ours $name $prec $line" >>"$res"
        echo "$name $prec" >&5; read -r line <&6
        [ "$r" -gt 0 ] && echo "torch $name $prec $line" >>"$res"
      done
    done
  done
  echo quit >&3; echo quit >&5
  exec 3>&- 4<&- 5>&- 6<&-
  wait
  pids=()
  rm -f "$tmp/oi" "$tmp/oo" "$tmp/ti" "$tmp/to"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, after)"
  echo "batch $batch x $frames frames, $threads threads, $repeats alternating repeats, medians (ms per batch):"
  lua5.4 - "$res" "$label" <<'LUA'
local t, order = {}, {}
for line in io.lines(arg[1]) do
  local side, name, prec, ms, cpu = line:match("^(%S+) (%S+) (%S+) ms=(%S+) cpu=(%S+)")
  if side then
    local key = name .. " " .. prec
    if not t[key] then t[key] = { ours = {}, torch = {}, ours_cpu = {}, torch_cpu = {} }; order[#order + 1] = key end
    table.insert(t[key][side], tonumber(ms))
    table.insert(t[key][side .. "_cpu"], tonumber(cpu))
  elseif line:match("error=") then
    io.stderr:write(line, "\n")
  end
end
local function median(v)
  table.sort(v)
  local n = #v
  return n == 0 and 0 / 0 or (n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2)
end
print(("%-12s %-5s %9s %9s %7s   %9s %9s %7s"):format("model", "prec", "ours ms", "torch ms", "speed", "ours cpu", "torch cpu",
  "cpu"))
for _, key in ipairs(order) do
  local name, prec = key:match("(%S+) (%S+)")
  local r = t[key]
  local o, tt, oc, tc = median(r.ours), median(r.torch), median(r.ours_cpu), median(r.torch_cpu)
  print(("%-12s %-5s %9.1f %9.1f %6.2fx   %9.1f %9.1f %6.2fx"):format(name, prec, o, tt, tt / o, oc, tc, tc / oc))
  print(("RESULT blas=%s model=%s prec=%s ours_ms=%.2f torch_ms=%.2f ratio=%.3f ours_cpu_ms=%.2f torch_cpu_ms=%.2f cpu_ratio=%.3f"):format(
    arg[2], name, prec, o, tt, tt / o, oc, tc, tc / oc))
end
print("(speed = torch / ours: above 1, ours is faster; cpu = CPU ms of all threads per batch)")
LUA
}

IFS=, read -ra blist <<<"$blas"
for b in "${blist[@]}"; do
  case "$b" in
    asis|unset) run_env "$b" ;;
    *) echo "bench_whisper.sh: --blas takes asis and/or unset, got '$b'" >&2; exit 2 ;;
  esac
done
echo "(amp: ours bf16 GEMMs via AVX512-BF16; torch bf16 autocast via oneDNN)"
