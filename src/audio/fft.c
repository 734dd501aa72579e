#include "fft.h"

#include <fftw3.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"

struct ser_fft_plan {
  int n, inverse;
  fftwf_plan plan;
};

/* A handful of sizes are ever used (n_fft of the features, the pitch shifter's
 * frame); a fixed table searched linearly is enough and never reallocates, so
 * pointers handed out stay valid for the life of the process. */
#define MAX_PLANS 32
static struct ser_fft_plan plans[MAX_PLANS];
static int nplans;
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* FFTW_ESTIMATE unless SER_FFTW_MEASURE=1. FFTW_MEASURE times candidate
 * algorithms and keeps the fastest, so on a busy machine two processes can get
 * different plans, which round differently: the features then differ in their
 * last bits and a seeded training run no longer repeats itself (seen: the same
 * --quick CNN2D run gave validation wF1 0.18, 0.13, 0.13 three times running).
 * ESTIMATE chooses without timing; it costs about 10 % of log-mel throughput,
 * a small share of a training step. */
static unsigned plan_flags(void) {
  const char *measure = getenv("SER_FFTW_MEASURE");
  return (measure && *measure && *measure != '0') ? FFTW_MEASURE : FFTW_ESTIMATE;
}

static const ser_fft_plan *get_plan(int n, int inverse) {
  if (n < 2 || n > (1 << 24)) {
    ser_error(SER_EINVAL, "fft: size %d out of range (2..16777216)", n);
    return NULL;
  }
  pthread_mutex_lock(&plan_lock);
  for (int i = 0; i < nplans; i++)
    if (plans[i].n == n && plans[i].inverse == inverse) {
      pthread_mutex_unlock(&plan_lock);
      return &plans[i];
    }
  if (nplans == MAX_PLANS) {
    pthread_mutex_unlock(&plan_lock);
    ser_error(SER_EUNSUPPORTED, "fft: more than %d distinct FFT sizes requested", MAX_PLANS);
    return NULL;
  }
  const unsigned flags = plan_flags();
  float *a = fftwf_malloc(sizeof(float) * (size_t)(n + 2));
  float *b = fftwf_malloc(sizeof(float) * (size_t)(n + 2));
  fftwf_plan p = NULL;
  if (a && b) {
    /* FFTW_MEASURE overwrites the arrays it plans with; they are scratch here. */
    p = inverse ? fftwf_plan_dft_c2r_1d(n, (fftwf_complex *)a, b, flags | FFTW_DESTROY_INPUT)
                : fftwf_plan_dft_r2c_1d(n, a, (fftwf_complex *)b, flags | FFTW_DESTROY_INPUT);
  }
  fftwf_free(a);
  fftwf_free(b);
  if (!p) {
    pthread_mutex_unlock(&plan_lock);
    ser_error(SER_ENOMEM, "fft: FFTW could not plan a size-%d %s transform", n, inverse ? "c2r" : "r2c");
    return NULL;
  }
  plans[nplans] = (struct ser_fft_plan){.n = n, .inverse = inverse, .plan = p};
  const ser_fft_plan *r = &plans[nplans++];
  pthread_mutex_unlock(&plan_lock);
  return r;
}

const ser_fft_plan *ser_fft_r2c(int n) { return get_plan(n, 0); }
const ser_fft_plan *ser_fft_c2r(int n) { return get_plan(n, 1); }

void ser_fft_exec_r2c(const ser_fft_plan *p, float *in, float *out) {
  fftwf_execute_dft_r2c(p->plan, in, (fftwf_complex *)out);
}

void ser_fft_exec_c2r(const ser_fft_plan *p, float *in, float *out) {
  fftwf_execute_dft_c2r(p->plan, (fftwf_complex *)in, out);
}

void *ser_fft_alloc(size_t floats) {
  void *p = fftwf_malloc(sizeof(float) * (floats ? floats : 1));
  if (!p) ser_error(SER_ENOMEM, "fft: cannot allocate %zu floats", floats);
  return p;
}

void ser_fft_free(void *p) { fftwf_free(p); }

char *ser_fft_plan_text(const ser_fft_plan *p) { return fftwf_sprint_plan(p->plan); }
