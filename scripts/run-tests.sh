#!/usr/bin/env bash
# Runs every test suite and ends with one line "N passed, N failed, N skipped"
# (skipped: C tests of instruction-set paths this CPU lacks, e.g. AVX-512, and
# busted specs left pending, e.g. without python3-torch; fixture tests without ../shared).
# Called by `make test` (BUILD names the build folder). Suites:
#   1. C unit tests: every $BUILD/tests/test_* binary (cmocka)
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
run_ctest() { # $1 binary: writes $log/NAME.log, NAME.rc and NAME.secs
  local name t0
  name=$(basename "$1")
  t0=$(date +%s.%N)
  CMOCKA_MESSAGE_OUTPUT=stdout "$1" >"$log/$name.log" 2>&1
  echo $? >"$log/$name.rc"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$log/$name.secs"
}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  run_ctest "$t" &
done
wait
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  rc=$(cat "$log/$name.rc" 2>/dev/null || echo 1)
  p=$(grep -oE '\[  PASSED  \] [0-9]+' "$log/$name.log" | grep -oE '[0-9]+$' | tail -1)
  f=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$log/$name.log" | grep -oE '[0-9]+' | tail -1)
  s=$(grep -oE '\[  SKIPPED \] [0-9]+ test' "$log/$name.log" | grep -oE '[0-9]+' | tail -1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
  printf '  %-28s %3d passed, %d failed%s  (%.1f s)\n' "$name" "$p" "$f" \
    "$( [ "$s" -gt 0 ] && echo ", $s skipped")" "$(cat "$log/$name.secs" 2>/dev/null || echo 0)"
  [ "$f" -ne 0 ] && grep -vE '^\[ +(RUN|OK) +\]|worst (relative|rel|abs) err' "$log/$name.log" | head -40
  count "$p" "$f" "$s"
done

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
  [ "$f" -ne 0 ] && grep -vE '^[●◼✱]+$' "$log/busted.log" | head -80
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

echo "time: C tests ${t_c} s, busted ${t_busted} s, smoke $((SECONDS - t_stage)) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
