/* Compiling a region of a file for a wider instruction set than -march:
 *
 *   SER_ISA_BEGIN("avx2,fma")
 *   ... functions ...
 *   SER_ISA_END
 *
 * GCC's push_options/target pragmas, or clang's attribute push (clang has no
 * target pragma). Internal to src/ops (not in ser.h). */
#ifndef SER_OPS_ISA_H
#define SER_OPS_ISA_H

#define SER_ISA_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define SER_ISA_BEGIN(isa) SER_ISA_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define SER_ISA_END _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define SER_ISA_BEGIN(isa) _Pragma("GCC push_options") SER_ISA_PRAGMA(GCC target(isa))
#define SER_ISA_END _Pragma("GCC pop_options")
#endif

#endif
