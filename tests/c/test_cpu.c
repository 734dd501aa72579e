/* src/core/cpu.c: the level names and their parsing (an unknown name is an
 * error naming the allowed values), caps that only lower (never add a feature
 * the CPU lacks), the level of a feature set, and this process's SER_ISA: under
 * `make test`'s extra passes (SER_ISA=avx2, SER_ISA=generic) this test fails
 * unless the kernels really run at the requested level, so a mistyped pass
 * cannot quietly test the AVX-512 paths again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "lib/fixture.h"

/* Every feature a level needs, cumulative: what a CPU of exactly that level has. */
static unsigned full(ser_isa level) {
  static const unsigned f[SER_ISA_COUNT] = {
      0,
      SER_CPU_AVX2 | SER_CPU_FMA,
      SER_CPU_AVX2 | SER_CPU_FMA | SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ |
          SER_CPU_AVX512VL,
      SER_CPU_AVX2 | SER_CPU_FMA | SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ |
          SER_CPU_AVX512VL | SER_CPU_AVX512BF16,
      SER_CPU_AVX2 | SER_CPU_FMA | SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ |
          SER_CPU_AVX512VL | SER_CPU_AVX512BF16 | SER_CPU_AMX,
  };
  return f[level];
}

/* The first detection runs inside whatever kernel call comes first: it must leave
 * that thread's error message alone (even with a bad SER_ISA). Runs first. */
static void test_detection_keeps_errmsg(void **state) {
  (void)state;
  ser_error(SER_EINVAL, "a caller's message");
  (void)ser_cpu_features();
  assert_string_equal(ser_errmsg(), "a caller's message");
  ser_error_clear();
}

static void test_names_parse(void **state) {
  (void)state;
  static const char *want[] = {"generic", "avx2", "avx512", "avx512_bf16", "amx"};
  for (int i = 0; i < SER_ISA_COUNT; i++) {
    assert_string_equal(ser_isa_name((ser_isa)i), want[i]);
    ser_isa lv = SER_ISA_COUNT;
    assert_int_equal(ser_isa_parse(want[i], &lv), 0);
    assert_int_equal(lv, i);
  }
  assert_string_equal(ser_isa_name(SER_ISA_COUNT), "?");
  /* Unknown, differently spelt, empty: an error that names the value and every allowed one. */
  static const char *bad[] = {"avx3", "AVX2", "avx-512", "", "avx2 ", "sse4"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    ser_isa lv = SER_ISA_AVX2;
    assert_int_equal(ser_isa_parse(bad[k], &lv), SER_EINVAL);
    assert_int_equal(lv, SER_ISA_AVX2); /* untouched */
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
    assert_non_null(strstr(ser_errmsg(), quoted));
    assert_non_null(strstr(ser_errmsg(), "generic, avx2, avx512, avx512_bf16 or amx"));
  }
  assert_int_equal(ser_isa_parse(NULL, &(ser_isa){0}), SER_EINVAL);
}

/* A cap keeps exactly the CPU's features of the levels up to it: never one the
 * CPU lacks, never one above the cap, and none below it removed. */
static void test_caps_only_lower(void **state) {
  (void)state;
  /* Real CPUs and odd ones: AVX-512F without BW/VL (Knights Landing), AVX2
   * without FMA, AMX bits without BF16, nothing at all. */
  const unsigned cpus[] = {0,
                           full(SER_ISA_AVX2),
                           full(SER_ISA_AVX512),
                           full(SER_ISA_AVX512_BF16),
                           full(SER_ISA_AMX),
                           SER_CPU_AVX2 | SER_CPU_FMA | SER_CPU_AVX512F | SER_CPU_AVX512CD,
                           SER_CPU_AVX2,
                           full(SER_ISA_AVX512) | SER_CPU_AMX};
  for (size_t k = 0; k < sizeof cpus / sizeof *cpus; k++) {
    const unsigned cpu = cpus[k];
    const ser_isa have = ser_cpu_level_of(cpu);
    for (int c = 0; c < SER_ISA_COUNT; c++) {
      const unsigned got = ser_cpu_capped(cpu, (ser_isa)c);
      assert_int_equal(got & ~cpu, 0);                       /* nothing added */
      assert_int_equal(got & ~full((ser_isa)c), 0);          /* nothing above the cap */
      assert_int_equal(got, cpu & full((ser_isa)c));         /* nothing at or below it removed */
      const ser_isa run = ser_cpu_level_of(got);
      assert_true(run <= have);
      assert_true((int)run <= c);
      assert_int_equal(run, have < (ser_isa)c ? have : (ser_isa)c);
    }
    assert_int_equal(ser_cpu_capped(cpu, SER_ISA_AMX), cpu); /* the top cap is no cap */
  }
  /* The psABI bits (the LSTM's arch=x86-64-v3/v4 copies) go with avx2 and avx512. */
  const unsigned zen = full(SER_ISA_AVX512_BF16) | SER_CPU_X86_64_V3 | SER_CPU_X86_64_V4;
  assert_int_equal(ser_cpu_capped(zen, SER_ISA_GENERIC), 0);
  assert_int_equal(ser_cpu_capped(zen, SER_ISA_AVX2), full(SER_ISA_AVX2) | SER_CPU_X86_64_V3);
  assert_int_equal(ser_cpu_capped(zen, SER_ISA_AVX512), full(SER_ISA_AVX512) | SER_CPU_X86_64_V3 | SER_CPU_X86_64_V4);
  assert_int_equal(ser_cpu_capped(zen, SER_ISA_AMX), zen);
  assert_int_equal(ser_cpu_level_of(zen), SER_ISA_AVX512_BF16);
  assert_int_equal(ser_cpu_level_of(full(SER_ISA_AVX2)), SER_ISA_AVX2); /* v3 is not needed for avx2 */
  /* A level needs all its features and those of every level below. */
  for (int i = 0; i < SER_ISA_COUNT; i++) assert_int_equal(ser_cpu_level_of(full((ser_isa)i)), i);
  assert_int_equal(ser_cpu_level_of(SER_CPU_AVX2), SER_ISA_GENERIC);                     /* no FMA */
  assert_int_equal(ser_cpu_level_of(full(SER_ISA_AVX2) | SER_CPU_AVX512F), SER_ISA_AVX2); /* KNL-like */
  assert_int_equal(ser_cpu_level_of(full(SER_ISA_AVX512) | SER_CPU_AMX), SER_ISA_AVX512); /* no BF16 */
  assert_int_equal(ser_cpu_level_of(SER_CPU_AVX512F | SER_CPU_AVX512CD | SER_CPU_AVX512BW | SER_CPU_AVX512DQ |
                                    SER_CPU_AVX512VL),
                   SER_ISA_GENERIC); /* AVX-512 bits without AVX2 are not a level */
}

/* This process: what the kernels see is the CPU's features capped by SER_ISA. */
static void test_this_process(void **state) {
  (void)state;
  const char *env = getenv("SER_ISA");
  const unsigned cpu = ser_cpu_detected(), usable = ser_cpu_features();
  printf("  CPU %s (features 0x%x), kernels run %s; %s\n", ser_isa_name(ser_cpu_detected_level()), cpu,
         ser_isa_name(ser_cpu_level()), ser_cpu_info());
  assert_int_equal(usable & ~cpu, 0);
  assert_int_equal(ser_cpu_has(0), 1);
  assert_int_equal(ser_cpu_has(usable), 1);
  assert_int_equal(ser_cpu_has(SER_CPU_AMX) && !(cpu & SER_CPU_AMX), 0);
  /* The skip messages' reason: usable, absent, or removed by the cap (checked below). */
  assert_string_equal(ser_cpu_why_not(usable), "usable");
  if (!(cpu & SER_CPU_AMX)) assert_string_equal(ser_cpu_why_not(SER_CPU_AMX), "not on this CPU");
  if (!env || !*env) {
    assert_int_equal(ser_cpu_cap(), SER_ISA_COUNT);
    assert_int_equal(usable, cpu);
    assert_null(ser_cpu_env_error());
    return;
  }
  ser_isa want;
  if (ser_isa_parse(env, &want) != 0) {
    /* A bad value runs uncapped and says so (once on stderr, and in the info line). */
    assert_int_equal(ser_cpu_cap(), SER_ISA_COUNT);
    assert_int_equal(usable, cpu);
    assert_non_null(ser_cpu_env_error());
    assert_non_null(strstr(ser_cpu_info(), "is not a level"));
    return;
  }
  assert_null(ser_cpu_env_error());
  assert_int_equal(ser_cpu_cap(), want);
  assert_int_equal(usable, ser_cpu_capped(cpu, want));
  if (ser_cpu_detected_level() < want) {
    printf("  SER_ISA=%s is above this CPU's %s: the kernels run %s\n", env, ser_isa_name(ser_cpu_detected_level()),
           ser_isa_name(ser_cpu_level()));
    assert_int_equal(ser_cpu_level(), ser_cpu_detected_level());
  } else {
    assert_int_equal(ser_cpu_level(), want); /* the extra passes of make test depend on this */
  }
  if (cpu & ~usable) {   /* a feature the CPU has and the cap removed */
    const unsigned lost = (cpu & ~usable) & -(cpu & ~usable);
    char expect[64];
    snprintf(expect, sizeof expect, "above the SER_ISA=%s cap", ser_isa_name(want));
    assert_string_equal(ser_cpu_why_not(lost), expect);
  }
  if (want < SER_ISA_AMX) {
    assert_int_equal(ser_cpu_amx_ready(), 0);
    if (cpu & SER_CPU_AMX) assert_non_null(strstr(ser_cpu_amx_reason(), "SER_ISA"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detection_keeps_errmsg),
      cmocka_unit_test(test_names_parse),
      cmocka_unit_test(test_caps_only_lower),
      cmocka_unit_test(test_this_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
