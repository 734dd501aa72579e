#!/usr/bin/env bash
# Runs every test suite and ends with one line "N passed, N failed, N skipped"
# (skipped: C tests of instruction-set paths this CPU lacks, e.g. AVX-512, and
# busted specs left pending, e.g. without python3-torch; fixture tests without ../shared).
# Called by `make test` (BUILD names the build folder). Suites:
#   1. C unit tests: every $BUILD/tests/test_* binary (cmocka)
#   1b. the kernel tests again under each SER_ISA level below this CPU's (the paths
#      CPUs with less run: AVX-512 without BF16, AVX2, plain C; on an AMX CPU also
#      AVX512-BF16 without AMX; docs/engine.md, "Instruction-set dispatch")
#   2. busted specs: tests/lua/*_spec.lua against $BUILD/ser.so
#   3. the end-to-end smoke run of experiments/compare.lua (when it exists)
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0
failed=0
skipped=0
log=$BUILD/test-logs
mkdir -p "$log"

count() { # adds $1 passed, $2 failed, $3 skipped
  passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + ${3:-0}))
}

echo "== C unit tests"
t_stage=$SECONDS
# The binaries are independent (each its own process, own temporary files), so they run
# SER_TEST_JOBS at a time (default 2: CI's machine has two cores and the longest tests spend
# part of their time single-threaded); the report below is in name order either way.
jobs_max=${SER_TEST_JOBS:-2}
run_ctest() { # $1 binary, $2 log folder: writes $2/NAME.log, NAME.rc and NAME.secs
  local name t0
  name=$(basename "$1")
  t0=$(date +%s.%N)
  CMOCKA_MESSAGE_OUTPUT=stdout "$1" >"$2/$name.log" 2>&1
  echo $? >"$2/$name.rc"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$2/$name.secs"
}
run_ctests() { # $1 log folder, then the binaries
  local dir=$1 t
  shift
  for t in "$@"; do
    [ -x "$t" ] || continue
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
    run_ctest "$t" "$dir" &
  done
  wait
}
report_ctests() { # $1 log folder, then the binaries: one line each, counted
  local dir=$1 t name rc p f s
  shift
  for t in "$@"; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    rc=$(cat "$dir/$name.rc" 2>/dev/null || echo 1)
    p=$(grep -oE '\[  PASSED  \] [0-9]+' "$dir/$name.log" | grep -oE '[0-9]+$' | tail -1)
    f=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$dir/$name.log" | grep -oE '[0-9]+' | tail -1)
    s=$(grep -oE '\[  SKIPPED \] [0-9]+ test' "$dir/$name.log" | grep -oE '[0-9]+' | tail -1)
    p=${p:-0}; f=${f:-0}; s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
    printf '  %-28s %3d passed, %d failed%s  (%.1f s)\n' "$name" "$p" "$f" \
      "$( [ "$s" -gt 0 ] && echo ", $s skipped")" "$(cat "$dir/$name.secs" 2>/dev/null || echo 0)"
    [ "$f" -ne 0 ] && grep -vE '^\[ +(RUN|OK) +\]|worst (relative|rel|abs) err' "$dir/$name.log" | head -40
    count "$p" "$f" "$s"
  done
}
run_ctests "$log" "$BUILD"/tests/test_*
report_ctests "$log" "$BUILD"/tests/test_*

# 1b. This machine's best paths hide the ones CPUs with less run (AVX-512 without
# BF16, AVX2, plain C; on an AMX CPU also AVX512-BF16 without AMX); SER_ISA caps
# every kernel's choice, so the tests of kernels with several paths run again at
# each lower level (test_cpu first fails if the cap did not
# take). Skipped, saying so, under the sanitizers (the paths are the same C the
# normal pass instruments; the time is not) and for levels this CPU is at or below.
isa_tests="test_cpu test_gemm test_pool test_transformer test_optim test_audio_features test_conv test_umap
  test_gradcheck test_lstm test_linear test_batchnorm test_infer test_stream test_wav2vec2 test_pretrained
  test_gemm_amx test_gemm_rule"
levels="generic avx2 avx512 avx512_bf16 amx"
level_rank() { echo "$levels" | tr ' ' '\n' | grep -nx "$1" | cut -d: -f1; }
t_isa=$SECONDS
cpu_level=$(env -u SER_ISA "$BUILD/serlua" -v 2>/dev/null | sed -n 's/^ISA: \([a-z0-9_]*\).*/\1/p')
for lvl in avx512_bf16 avx512 avx2 generic; do
  echo "== C kernel tests under SER_ISA=$lvl"
  if [ -n "${SER_TEST_SANITIZED:-}" ]; then
    echo "  skipped under the sanitizers (make test runs them)"; continue
  fi
  if [ -z "$cpu_level" ]; then
    echo "  failed: no 'ISA:' line in $BUILD/serlua -v"; count 0 1; continue
  fi
  if [ "$(level_rank "$cpu_level")" -le "$(level_rank "$lvl")" ]; then
    echo "  skipped: this CPU's level is $cpu_level, so the pass above ran these paths"; continue
  fi
  mkdir -p "$log/isa-$lvl"
  bins=$(for t in $isa_tests; do echo "$BUILD/tests/$t"; done)
  for t in $bins; do   # a renamed test must not drop out of the pass unnoticed
    [ -x "$t" ] || { echo "  $(basename "$t"): not built (listed in isa_tests)"; count 0 1; }
  done
  # shellcheck disable=SC2086 # one binary per word
  (export SER_ISA=$lvl; run_ctests "$log/isa-$lvl" $bins)
  # shellcheck disable=SC2086
  report_ctests "$log/isa-$lvl" $bins
done
t_isa=$((SECONDS - t_isa))

t_c=$((SECONDS - t_stage)); t_stage=$SECONDS
echo "== busted specs"
if ls tests/lua/*_spec.lua >/dev/null 2>&1; then
  # Specs run in stock lua5.4 against ser.so. A sanitizer build cannot be
  # dlopen'ed into an uninstrumented interpreter (the ASan runtime must come
  # first), so check-asan runs them in its own instrumented serlua instead.
  lua=$(command -v lua5.4)
  [ -n "${SER_TEST_SANITIZED:-}" ] && lua="$root/$BUILD/serlua"
  # SER_TEST_LUA: the interpreter specs use for the child processes they start
  LUA_CPATH="$root/$BUILD/?.so;;" SER_TEST_BUILD="$root/$BUILD" SER_TEST_LUA="$lua" \
  SER_TEST_TIMES="$log/spec-times.tsv" \
    "$lua" /usr/bin/busted --output=tests/lua/helpers/timed_output.lua --pattern=_spec tests/lua >"$log/busted.log" 2>&1
  rc=$?
  summary=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$log/busted.log" | tail -1)
  p=$(echo "$summary" | grep -oE '^[0-9]+')
  f=$(echo "$summary" | grep -oE '[0-9]+ failures?' | grep -oE '[0-9]+')
  e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
  s=$(echo "$summary" | grep -oE '[0-9]+ pending' | grep -oE '[0-9]+')
  p=${p:-0}; f=$(( ${f:-0} + ${e:-0} )); s=${s:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  printf '  %-28s %3d passed, %d failed%s\n' busted "$p" "$f" "$( [ "$s" -gt 0 ] && echo ", $s skipped")"
  if [ "$f" -ne 0 ]; then
    # the failures' own blocks: the log's head is progress marks and the specs' printed
    # measurements, which hid the failure of a CI run; the whole head when busted died first
    fails=$(awk '/^(Failure|Error) -> /{ n = 25 } n-- > 0' "$log/busted.log" | head -150)
    if [ -n "$fails" ]; then echo "$fails"; else grep -vE '^[●◼✱]+$' "$log/busted.log" | head -80; fi
  fi
  count "$p" "$f" "$s"
  # where the time goes (the whole table is in $log/spec-times.tsv)
  if [ -s "$log/spec-times.tsv" ]; then
    echo "  slowest specs (s): $(sort -rn "$log/spec-times.tsv" | head -8 |
      awk -F'\t' '{ sub(".*/", "", $2); printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')"
  fi
fi

t_busted=$((SECONDS - t_stage)); t_stage=$SECONDS
if [ -f experiments/compare.lua ]; then
  echo "== end-to-end smoke run (experiments/compare.lua --quick on a made-up corpus)"
  out=$BUILD/smoke
  rm -rf "$out"
  if scripts/smoke.sh "$BUILD" "$out" >"$log/smoke.log" 2>&1; then
    echo "  smoke                          1 passed, 0 failed"; count 1 0
  else
    echo "  smoke                          0 passed, 1 failed"; tail -40 "$log/smoke.log"; count 0 1
  fi
fi

echo "time: C tests ${t_c} s (${t_isa} s of them the SER_ISA passes), busted ${t_busted} s, smoke $((SECONDS - t_stage)) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
