/* The CPU's instruction sets, detected once, and the levels the kernels
 * dispatch on (docs/engine.md, "Instruction-set dispatch").
 *
 * Every kernel with a wider path asks ser_cpu_has() for exactly the features
 * its target("...") attribute compiles for, so nothing runs an instruction the
 * CPU lacks. SER_ISA=generic|avx2|avx512|avx512_bf16|amx (read once) caps the
 * features at a level: every kernel then behaves as on a CPU that has at most
 * that level, which is how `make test` runs the AVX2 and plain C paths on an
 * AVX-512 machine. A cap only removes features; it never adds one. */
#ifndef SER_CORE_CPU_H
#define SER_CORE_CPU_H

/* The levels, each including the ones before it. */
typedef enum {
  SER_ISA_GENERIC = 0,  /* plain C (x86-64-v2, the build's baseline) */
  SER_ISA_AVX2,         /* + AVX2, FMA */
  SER_ISA_AVX512,       /* + AVX512F, CD, BW, DQ, VL (Skylake-X and later, Zen 4 and later) */
  SER_ISA_AVX512_BF16,  /* + AVX512-BF16 (amp's bf16 products) */
  SER_ISA_AMX,          /* + AMX-TILE/AMX-BF16 with the OS's tile state */
  SER_ISA_COUNT
} ser_isa;

/* Feature bits; each belongs to the level named beside it. */
enum {
  SER_CPU_AVX2 = 1u << 0,       /* avx2 */
  SER_CPU_FMA = 1u << 1,        /* avx2 */
  SER_CPU_AVX512F = 1u << 2,    /* avx512 */
  SER_CPU_AVX512CD = 1u << 3,   /* avx512 */
  SER_CPU_AVX512BW = 1u << 4,   /* avx512 */
  SER_CPU_AVX512DQ = 1u << 5,   /* avx512 */
  SER_CPU_AVX512VL = 1u << 6,   /* avx512 */
  SER_CPU_AVX512BF16 = 1u << 7, /* avx512_bf16 */
  SER_CPU_AMX = 1u << 8,        /* amx: AMX-TILE and AMX-BF16 in CPUID, XCR0 bits 17/18 set */
  /* The psABI levels, for code built with target("arch=x86-64-v3"/"v4") (the
   * LSTM cell): v3 adds BMI1/2, F16C, LZCNT, MOVBE to AVX2+FMA, v4 is v3 plus
   * AVX512F/BW/CD/DQ/VL. A cap at avx2 keeps v3, a cap at generic removes it;
   * neither is needed for a level (an AVX2 CPU without MOVBE is still avx2). */
  SER_CPU_X86_64_V3 = 1u << 9,  /* avx2 */
  SER_CPU_X86_64_V4 = 1u << 10  /* avx512 */
};

/* The features the kernels may use: the CPU's, minus those above the SER_ISA
 * cap. Thread-safe; the first call detects and reads SER_ISA, later calls are
 * one load. Call it where a kernel is chosen, not per element. */
unsigned ser_cpu_features(void);
/* 1 when every feature in mask is usable (ser_cpu_features() & mask == mask). */
int ser_cpu_has(unsigned mask);
/* The CPU's own features and level, the cap not applied. */
unsigned ser_cpu_detected(void);
ser_isa ser_cpu_detected_level(void);
/* The level the kernels run at: the highest whose features are all usable. */
ser_isa ser_cpu_level(void);
/* SER_ISA's level, or SER_ISA_COUNT when it is unset (or invalid: see below). */
ser_isa ser_cpu_cap(void);

/* "generic", "avx2", "avx512", "avx512_bf16", "amx" ("?" out of range). */
const char *ser_isa_name(ser_isa level);
/* The level named s; SER_EINVAL with a message naming the allowed values. */
int ser_isa_parse(const char *s, ser_isa *out);
/* The features a cap at level leaves of detected (pure; the tests' entry). */
unsigned ser_cpu_capped(unsigned detected, ser_isa cap);
/* The highest level whose features are all in features. */
ser_isa ser_cpu_level_of(unsigned features);

/* An invalid SER_ISA is not an error of the library's callers (a kernel cannot
 * fail over it): the first detection prints one line on stderr and runs
 * uncapped. ser_cpu_env_error() returns that message (NULL when SER_ISA is
 * unset or valid) so that a program can refuse instead; serlua shows it in -v
 * and the banner. */
const char *ser_cpu_env_error(void);
/* Why features in mask are not usable, for a skip message: "not on this CPU"
 * or "above the SER_ISA=avx2 cap"; "usable" when they are. */
const char *ser_cpu_why_not(unsigned mask);
/* For -v and the banner: "avx512_bf16" or "avx2 (SER_ISA=avx2; the CPU has
 * avx512_bf16)", with any SER_ISA error appended. */
const char *ser_cpu_info(void);

/* AMX for amp's GEMM: the amx feature usable (not capped), AVX512-BF16 usable
 * (the packers need it), SER_AMX not 0, and Linux granting the tile data
 * permission (arch_prctl ARCH_REQ_XCOMP_PERM, asked here once, on the first
 * call: only a process that would use AMX asks). */
int ser_cpu_amx_ready(void);
/* Why not, or "in use": e.g. "no AMX-TILE/AMX-BF16 in CPUID", "off (SER_AMX=0)". */
const char *ser_cpu_amx_reason(void);

#endif
