/* FFTW3f plans, created once per (size, direction) and shared by all threads.
 *
 * FFTW's planner is not thread-safe, its execute functions are: planning
 * happens under one mutex, execution uses the new-array interface
 * (fftwf_execute_dft_r2c / _c2r) on per-call buffers from ser_fft_alloc, which
 * have the alignment the plans were made with. Plans are FFTW_ESTIMATE, which
 * picks the same algorithm in every process, so features (and so seeded
 * training) repeat to the bit; SER_FFTW_MEASURE=1 times the candidates instead
 * (about 10 % faster log-mels, but the choice, and the rounding, can change from
 * run to run on a busy machine). */
#ifndef SER_AUDIO_FFT_H
#define SER_AUDIO_FFT_H

#include <stddef.h>

typedef struct ser_fft_plan ser_fft_plan;

/* Real-to-complex forward of size n (n/2+1 complex outputs), and the
 * unnormalised complex-to-real inverse. NULL with ser_error set on failure. */
const ser_fft_plan *ser_fft_r2c(int n);
const ser_fft_plan *ser_fft_c2r(int n);
/* in: n floats; out: n/2+1 interleaved (re, im) pairs. Both from ser_fft_alloc. */
void ser_fft_exec_r2c(const ser_fft_plan *p, float *in, float *out);
/* in: n/2+1 complex (destroyed); out: n floats, scaled by n. */
void ser_fft_exec_c2r(const ser_fft_plan *p, float *in, float *out);

/* FFTW's description of the plan (fftwf_sprint_plan; free() it): for tests and
 * diagnostics. */
char *ser_fft_plan_text(const ser_fft_plan *p);

void *ser_fft_alloc(size_t floats);   /* SIMD-aligned; NULL with ser_error on failure */
void ser_fft_free(void *p);

#endif
