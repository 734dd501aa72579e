/* FFTW3f plans, created once per (size, direction) and shared by all threads.
 *
 * FFTW's planner is not thread-safe, its execute functions are: planning
 * happens under one mutex, execution uses the new-array interface
 * (fftwf_execute_dft_r2c / _c2r) on per-call buffers from ser_fft_alloc, which
 * have the alignment the plans were made with. Plans are measured
 * (FFTW_MEASURE) because every size is reused thousands of times; set
 * SER_FFTW_ESTIMATE=1 to skip the measurement (faster start, slower runs). */
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

void *ser_fft_alloc(size_t floats);   /* SIMD-aligned; NULL with ser_error on failure */
void ser_fft_free(void *p);

#endif
