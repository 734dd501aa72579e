#!/usr/bin/env bash
# Replays every committed fuzz input (tests/fuzz/regress/<target>/: each crasher found so far,
# which must stay fixed) once through its target, deterministically: what CI runs
# (`FUZZ_REPLAY_ONLY=1 make fuzz` comes here; tests/fuzz/run.sh is the fuzzing itself).
#
#   tests/fuzz/replay.sh [TARGET...]     (default: every target of tests/fuzz/run.sh)
#
# The targets are built with the project's compiler against the AddressSanitizer + UBSan build
# of `make check-asan` (build-asan/, made here if missing) and a plain driver
# (tests/fuzz/replay_main.c), not with clang + libFuzzer: the clang build compiles the whole
# library again with coverage instrumentation (about 5 minutes of CI's 2 cores) and coverage
# is of no use to a replay. The checks per input stay libFuzzer's: sanitizer reports, 512 MB per
# allocation, 1 GB RSS, 10 s. FUZZ_REPLAY_CLANG=1 replays with the clang build instead.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
# The tensor block cache would count kept blocks against the RSS limit (as in run.sh).
export SER_CACHE_MB=0
cd "$(dirname "$0")/../.."
B=build-asan
R=$B/fuzz-replay
source tests/fuzz/targets.sh
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${FUZZ_TARGETS[@]}")

# the flags of `make check-asan` (Makefile): make then finds its objects up to date
make -s -j2 BUILD=$B OPT=-O1 \
  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  $B/libser.a $B/ser.so >/dev/null
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
lua_objs=$(ls src/lua/*.c | sed "s|^|$B/|; s|\.c\$|.o|")
core_libs="$(pkg-config --libs sndfile fftw3f soxr libcjson libzip libprotobuf-c libmicrohttpd) -lopenblas -lm -fopenmp"
cflags="-std=c11 -D_GNU_SOURCE -O1 -g -Isrc $(pkg-config --cflags lua5.4 sndfile)"
mkdir -p $R
status=0
for t in "${targets[@]}"; do
  kind=$(fuzz_kind "$t") || exit 2
  case $kind in
    plain) extra=() ; libs="$core_libs" ;;
    onnx) extra=(-I$B/gen/onnx) ; libs="$core_libs" ;;
    lua) extra=(tests/fuzz/lua_harness.c $lua_objs $B/gen/embedded_lua.o $B/gen/embedded_web.o)
         libs="$(pkg-config --libs lua5.4) $core_libs" ;;
  esac
  ${CC:-cc} $cflags $san -o $R/replay_$t tests/fuzz/replay_main.c tests/fuzz/fuzz_$t.c "${extra[@]}" $B/libser.a $libs
  mkdir -p tests/fuzz/regress/$t
  ls tests/fuzz/regress/$t/* >/dev/null 2>&1 || continue
  echo "== fuzz_$t: $(ls tests/fuzz/regress/$t | wc -l) regression inputs"
  if ! ASAN_OPTIONS="max_allocation_size_mb=512:allocator_may_return_null=0:hard_rss_limit_mb=1024:${ASAN_OPTIONS:-}" \
      $R/replay_$t tests/fuzz/regress/$t/* 2>$R/regress-$t.log; then
    grep -E '^Running:|fuzz_[a-z]+:|replay:|SUMMARY|ERROR|runtime error' $R/regress-$t.log | tail -8
    status=1
  fi
done
exit $status
