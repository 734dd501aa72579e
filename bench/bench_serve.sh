#!/usr/bin/env bash
# serve.lua's latency and throughput on this machine (issue 21 item 6):
#   - POST /predict of a 3 s, 16 kHz WAV clip, one client at a time: latency (curl's total time)
#   - the same with 4 clients at once: requests per second (the server answers one at a time)
#   - a live chunk (0.25 s of float32 samples) that completes a window: latency
#   - beside them, predict.lua on the same clip (a new process per file: start, load, predict)
#   bench/bench_serve.sh [CHECKPOINT]     default: an untrained CRNN (a trained one costs the same)
#   N=40 requests per measurement; SER_NUM_THREADS as for any serlua run
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$BUILD/serlua
N=${N:-40}
dir=$(mktemp -d /tmp/ser-bench-serve.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
ckpt=${1:-}
if [ -z "$ckpt" ]; then
  ckpt=$dir/crnn.safetensors
  $S -e "local ser = require 'ser'; ser.manual_seed(1)
    local classes = { 'neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised' }
    ser.train.save_checkpoint('$ckpt', ser.models.create('crnn', { classes = 8 }), classes, { seconds = 3.0, sr = 16000, name = 'crnn' })"
fi
# the clip: 3 s of RAVDESS speech when ../shared has it, else noise (the cost is the same)
clip=$dir/clip.wav
$S -e "local ser = require 'ser'
  local f = '../shared/data/ravdess16k/Actor_18/03-01-05-02-01-01-18.flac'
  local x = ser.audio.load(f, { sr = 16000, seconds = 3.0 })
  if not x then print('(no RAVDESS in ../shared: the clip is 3 s of noise)'); ser.manual_seed(1); x = ser.tensor.randn(48000):mul(0.05) end
  ser.audio.save('$clip', x, 16000)"
$S experiments/serve.lua "$ckpt" --port 0 --quiet > "$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q 'http://' "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/' "$dir/out")
[ -n "$url" ] || { cat "$dir/err"; exit 1; }
# one curl process for many requests (keep-alive), so the numbers are the server's, not process start-up
urls() { for _ in $(seq "$1"); do printf -- '-o /dev/null %s ' "$2"; done; }
post_many() { curl -s --noproxy '*' "$@" -w '%{time_total}\n' -H 'Content-Type: audio/wav' --data-binary @"$clip" $(urls "$N" "${url}predict"); }
stats() { sort -n | awk '{a[NR]=$1; s+=$1} END {printf "median %.1f ms, p90 %.1f ms, mean %.1f ms (n=%d)", 1000*a[int((NR+1)/2)], 1000*a[int(NR*0.9+0.5)], 1000*s/NR, NR}'; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; SER_NUM_THREADS=${SER_NUM_THREADS:-all}; checkpoint $(basename "$ckpt")"
N=3 post_many >/dev/null   # warm-up: the first requests build FFT plans and caches
post_many > "$dir/lat"
echo "POST /predict, 3 s clip, 1 client:   $(stats < "$dir/lat")"
t0=$(date +%s.%N)
post_many -Z --parallel-max 4 > /dev/null 2>&1
t1=$(date +%s.%N)
awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN {printf "POST /predict, 3 s clip, 4 clients:  %.1f requests/s (%.0f s of audio per second)\n", n/(b-a), 3*n/(b-a)}'
# live: a session, 2.75 s of samples in, then 0.25 s chunks of speech (the clip at 1 s); every other one
# completes a window (3 s windows, hop 0.5 s)
$S -e "local ser = require 'ser'; local x = ser.audio.load('$clip', { sr = 16000 })
  x:narrow(1, 1, 44000):contiguous():tofile('$dir/first.f32'); x:narrow(1, 16001, 4000):contiguous():tofile('$dir/chunk.f32')"
id=$(curl -s --noproxy '*' -X POST "${url}stream" | sed 's/.*"id": "\([0-9a-f]*\)".*/\1/')
curl -s --noproxy '*' -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary @"$dir/first.f32" "${url}stream/$id"
curl -s --noproxy '*' -w '%{time_total}\n' -H 'Content-Type: application/octet-stream' \
  --data-binary @"$dir/chunk.f32" $(urls "$N" "${url}stream/$id") > "$dir/chunks"
awk 'NR % 2 == 1' "$dir/chunks" > "$dir/with_window"
awk 'NR % 2 == 0' "$dir/chunks" > "$dir/without"
echo "live chunk of 0.25 s completing a window: $(stats < "$dir/with_window")"
echo "live chunk of 0.25 s, no window due:     $(stats < "$dir/without")"
for _ in 1 2 3 4 5; do
  /usr/bin/time -f '%e' $S experiments/predict.lua "$ckpt" "$clip" 2>&1 >/dev/null | tail -1
done > "$dir/pred"
echo "predict.lua, same clip (new process):    $(stats < "$dir/pred")"
