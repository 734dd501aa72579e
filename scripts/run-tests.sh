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
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$log/$name.log" 2>&1
  rc=$?
  p=$(grep -oE '\[  PASSED  \] [0-9]+' "$log/$name.log" | grep -oE '[0-9]+$' | tail -1)
  f=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$log/$name.log" | grep -oE '[0-9]+' | tail -1)
  s=$(grep -oE '\[  SKIPPED \] [0-9]+ test' "$log/$name.log" | grep -oE '[0-9]+' | tail -1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
  printf '  %-28s %3d passed, %d failed%s\n' "$name" "$p" "$f" "$( [ "$s" -gt 0 ] && echo ", $s skipped")"
  [ "$f" -ne 0 ] && grep -vE '^\[ +(RUN|OK) +\]|worst (relative|rel|abs) err' "$log/$name.log" | head -40
  count "$p" "$f" "$s"
done

echo "== busted specs"
if ls tests/lua/*_spec.lua >/dev/null 2>&1; then
  # Specs run in stock lua5.4 against ser.so. A sanitizer build cannot be
  # dlopen'ed into an uninstrumented interpreter (the ASan runtime must come
  # first), so check-asan runs them in its own instrumented serlua instead.
  lua=$(command -v lua5.4)
  [ -n "${SER_TEST_SANITIZED:-}" ] && lua="$root/$BUILD/serlua"
  # SER_TEST_LUA: the interpreter specs use for the child processes they start
  LUA_CPATH="$root/$BUILD/?.so;;" SER_TEST_BUILD="$root/$BUILD" SER_TEST_LUA="$lua" \
    "$lua" /usr/bin/busted --output=plainTerminal --pattern=_spec tests/lua >"$log/busted.log" 2>&1
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
fi

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

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
