#!/usr/bin/env bash
# Audio front-end throughput, ours (serlua) vs torchaudio 0.13, in one
# invocation, with ratios (clips/s of 4 s clips; medians of the repeats):
#   decode        48 kHz 16-bit WAV -> 16 kHz mono, 4 s (ours: load_many, cache off;
#                 torch: torchaudio.load + functional.resample per file)
#   logmel        the reference log-mel (mel 64, dB, clamp -80, z-norm); per clip
#                 ([T] calls, one thread) and batched ([B, T] in one call)
#   mfcc          40 MFCCs + z-norm, likewise
#   pitch         +2 semitones (ours: phase vocoder + soxr, batched; reference:
#                 librosa 0.10's algorithm transcribed in numpy/scipy, one clip at
#                 a time; BASELINES.md: librosa 0.9.2 itself takes ~65 ms per clip)
#
#   bench/bench_audio.sh [--threads 1,2] [--batch 64] [--repeats 5] [--files N]
#
# The machine is shared and noisy: compare only ratios taken in one run.
set -euo pipefail
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=1,2 batch=64 repeats=5 nfiles=32
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --files) nfiles=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_audio.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
serlua=$BUILD/serlua
[ -x "$serlua" ] || { echo "bench_audio.sh: $serlua not built (run make BUILD=$BUILD)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torchaudio' 2>/dev/null || { echo "bench_audio.sh: python3-torchaudio missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 4 s 48 kHz 16-bit WAVs (speech-like: the RAVDESS samples when present, else noise + tones).
"$py" - "$tmp" "$nfiles" <<'PY'
import glob, sys, torch, torchaudio
out, n = sys.argv[1], int(sys.argv[2])
src = sorted(glob.glob("../shared/data/ravdess48k-sample/Actor_01/*.wav"))
torch.manual_seed(0)
for i in range(n):
    if src:
        w, sr = torchaudio.load(src[i % len(src)])
        w = torch.nn.functional.pad(w, (0, max(0, 4 * sr - w.shape[1])))[:, :4 * sr]
    else:
        sr, t = 48000, torch.arange(4 * 48000) / 48000
        w = (0.1 * torch.randn(4 * sr) + 0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t)).unsqueeze(0)
    torchaudio.save(f"{out}/clip{i:03d}.wav", w, sr, encoding="PCM_S", bits_per_sample=16)
PY

out=$tmp/results
echo "serlua: $("$serlua" -e 'print(require("ser").blas_info())')"
echo "torch:  $("$py" -c 'import torch, torchaudio; print(torch.__version__, "torchaudio", torchaudio.__version__)')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine has $(nproc) cores)"
echo "clips:  $nfiles files for decode, batch $batch for features, 4 s at 16 kHz"
"$serlua" bench/bench_audio.lua --files "$tmp" --threads "$threads" --batch "$batch" --repeats "$repeats" >>"$out"
OPENBLAS_NUM_THREADS=1 "$py" bench/bench_audio.py --files "$tmp" --threads "$threads" --batch "$batch" --repeats "$repeats" >>"$out"

lua5.4 - "$out" <<'LUA'
local r, cpu, tasks, seen = {}, {}, {}, {}
for line in io.lines(arg[1]) do
  local t = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do t[k] = v end
  if t.task then
    local key = t.side .. "/" .. t.task .. "/" .. t.threads
    r[key], cpu[key] = tonumber(t.clips_s), tonumber(t.cpu_clips_s)
    if not seen[t.task] then seen[t.task] = true; tasks[#tasks + 1] = t.task end
  end
end
local function best(side, kind)
  local b
  for k, v in pairs(r) do
    if k:match("^" .. side .. "/" .. kind .. "_") and (not b or v > b) then b = v end
  end
  return b
end
local function f(v) return v and ("%9.1f"):format(v) or "        -" end
local function ratio(o, t) return (o and t) and ("%.2fx"):format(o / t) or "-" end
print("clips/s by wall clock; 1-thread rows also by CPU time (the clip's own cost on a busy machine)")
print(("%-14s %4s  %9s  %9s  %7s   %9s  %9s  %7s"):format("task", "thr", "ours", "torch", "ratio", "ours cpu", "torch cpu", "ratio"))
for _, task in ipairs(tasks) do
  for _, th in ipairs{ "1", "2" } do
    local k = "/" .. task .. "/" .. th
    local o, t = r["ours" .. k], r["torch" .. k]
    if o or t then
      local line = ("%-14s %4s  %s  %s  %7s"):format(task, th, f(o), f(t), ratio(o, t))
      if th == "1" then
        local oc, tc = cpu["ours" .. k], cpu["torch" .. k]
        line = line .. ("   %s  %s  %7s"):format(f(oc), f(tc), ratio(oc, tc))
      end
      print(line)
    end
  end
end
-- The issue's targets: log-mel/MFCC >= 3x torchaudio's best (any mode, any thread count).
for _, k in ipairs{ "logmel", "mfcc" } do
  local o, t = best("ours", k), best("torch", k)
  if o and t then print(("%s: our best %.0f clips/s vs torchaudio's best %.0f = %.2fx (wall clock)"):format(k, o, t, o / t)) end
end
local p1 = cpu["ours/pitch/1"] or r["ours/pitch/1"]
if p1 then
  print(("pitch: ours %.1f ms CPU per clip on 1 thread; librosa 0.9.2 ~65 ms (BASELINES.md) = %.0fx"):format(1000 / p1, 65 * p1 / 1000))
end
LUA
