/* The C half of ser.data: folder walking (order, hidden files, symlink cycles, dangling
 * links), the synthetic speech generator (determinism across thread counts, argument
 * checks, emotion cues), and the prefetch worker (results equal the direct computation,
 * order, errors, shutdown with work queued), and batch assembly (gather, cat_rows, stack,
 * fit_rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/threads.h"
#include "data/batch.h"
#include "data/prefetch.h"
#include "data/synth.h"
#include "augment/augment.h"
#include "data/walk.h"
#include "lib/fixture.h"

static char root[256];

static void touch(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fclose(f);
}

static void sub(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  assert_int_equal(mkdir(p, 0755), 0);
}

static int setup_tree(void **state) {
  (void)state;
  snprintf(root, sizeof root, "/tmp/ser-test-data.XXXXXX");
  if (!mkdtemp(root)) return -1;
  return 0;
}

static int teardown_tree(void **state) {
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_walk_sorted_hidden_cycles(void **state) {
  (void)state;
  sub("b");
  sub("a");
  sub(".git");
  touch("b/2.wav");
  touch("b/1.wav");
  touch("a/z.flac");
  touch(".git/x.wav");
  touch("a/.hidden.wav");
  char link[512], target[512];
  snprintf(link, sizeof link, "%s/a/loop", root);
  assert_int_equal(symlink("..", link), 0); /* a/loop -> root: a cycle */
  snprintf(link, sizeof link, "%s/b/gone.wav", root);
  snprintf(target, sizeof target, "%s/nowhere.wav", root);
  assert_int_equal(symlink(target, link), 0);
  ser_filelist l;
  assert_int_equal(ser_corpus_walk(&l, root, 0), 0);
  assert_int_equal(l.n, 3);
  char want[3][512];
  snprintf(want[0], 512, "%s/a/z.flac", root);
  snprintf(want[1], 512, "%s/b/1.wav", root);
  snprintf(want[2], 512, "%s/b/2.wav", root);
  for (int i = 0; i < 3; i++) assert_string_equal(l.paths[i], want[i]);
  assert_int_equal(l.n_problems, 2);
  int cycle = 0, dangling = 0;
  for (size_t i = 0; i < l.n_problems; i++) {
    cycle |= strstr(l.problems[i], "cycle") != NULL;
    dangling |= strstr(l.problems[i], "dangling symbolic link") != NULL;
  }
  assert_true(cycle && dangling);
  ser_filelist_free(&l);
  /* max_depth 1: the files in a/ and b/ are one level down and still found; deeper ones not */
  sub("b/c");
  touch("b/c/deep.wav");
  assert_int_equal(ser_corpus_walk(&l, root, 1), 0);
  assert_int_equal(l.n, 3);
  ser_filelist_free(&l);
}

static void test_walk_errors(void **state) {
  (void)state;
  ser_filelist l;
  assert_int_equal(ser_corpus_walk(&l, "/nonexistent/ser", 0), SER_EIO);
  assert_non_null(strstr(ser_errmsg(), "cannot open folder '/nonexistent/ser'"));
  char f[512];
  snprintf(f, sizeof f, "%s/file.wav", root);
  touch("file.wav");
  assert_int_equal(ser_corpus_walk(&l, f, 0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "is not a folder"));
  assert_int_equal(ser_corpus_walk(&l, "", 0), SER_EINVAL);
  /* an empty folder: no files, no error (and nothing to sort) */
  sub("empty");
  char e[512];
  snprintf(e, sizeof e, "%s/empty", root);
  assert_int_equal(ser_corpus_walk(&l, e, 0), 0);
  assert_int_equal(l.n, 0);
  ser_filelist_free(&l);
}

static double rms(const float *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s / (double)n);
}

static void test_synth_deterministic_across_threads(void **state) {
  (void)state;
  enum { N = 6, T = 16000 };
  ser_synth_clip c[N];
  for (int i = 0; i < N; i++) c[i] = (ser_synth_clip){ .speaker = 1 + i % 3, .emotion = i % 8, .intensity = i % 2, .statement = 1, .repetition = 1 };
  float *a = malloc(sizeof(float) * N * T), *b = malloc(sizeof(float) * N * T);
  ser_set_num_threads(1);
  assert_int_equal(ser_synth_render_many(a, T, 16000, c, N, 42), 0);
  ser_set_num_threads(2);
  assert_int_equal(ser_synth_render_many(b, T, 16000, c, N, 42), 0);
  assert_memory_equal(a, b, sizeof(float) * N * T);
  for (int i = 0; i < N * T; i++) assert_true(isfinite(a[i]) && fabsf(a[i]) <= 0.99f);
  for (int i = 0; i < N; i++) assert_true(rms(a + i * T, T) > 0.005); /* every clip has speech in it */
  assert_int_equal(ser_synth_render_many(b, T, 16000, c, N, 43), 0);
  assert_true(memcmp(a, b, sizeof(float) * N * T) != 0);
  free(a);
  free(b);
}

static void test_synth_emotion_cues(void **state) {
  (void)state;
  enum { T = 32000 };
  static float x[T];
  double loud[SER_SYNTH_EMOTIONS] = { 0 };
  for (int e = 0; e < SER_SYNTH_EMOTIONS; e++)
    for (int spk = 1; spk <= 4; spk++) {
      ser_synth_clip c = { .speaker = spk, .emotion = e, .intensity = 0, .statement = 1, .repetition = 1 };
      assert_int_equal(ser_synth_render(x, T, 16000, &c, 7), 0);
      loud[e] += rms(x, T) / 4;
    }
  /* angry (4) louder than neutral (0), neutral louder than sad (3) */
  assert_true(loud[4] > 1.3 * loud[0]);
  assert_true(loud[0] > 1.3 * loud[3]);
}

static void test_synth_errors(void **state) {
  (void)state;
  float x[16];
  ser_synth_clip c = { .speaker = 1, .emotion = 8, .intensity = 0, .statement = 1, .repetition = 1 };
  assert_int_equal(ser_synth_render(x, 16, 16000, &c, 1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "emotion index 8 is out of range (0..7)"));
  c.emotion = 0;
  assert_int_equal(ser_synth_render(x, 16, 100, &c, 1), SER_EINVAL);
  c.speaker = 0;
  assert_int_equal(ser_synth_render_many(x, 16, 16000, &c, 1, 1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "clip 1 of 1"));
}

/* A waveform matrix with different content per row. */
static ser_tensor *matrix(int rows, int64_t T) {
  ser_tensor *w = ser_tensor_empty(2, SER_DIMS(rows, T));
  float *d = ser_tensor_data(w);
  for (int r = 0; r < rows; r++)
    for (int64_t i = 0; i < T; i++) d[r * T + i] = 0.3f * sinf(0.01f * (float)(r + 1) * (float)i) + 0.01f * (float)r;
  return w;
}

static void test_prefetch_matches_direct_computation(void **state) {
  (void)state;
  enum { R = 5, T = 8000 };
  ser_tensor *w = matrix(R, T);
  ser_pf_recipe r;
  memset(&r, 0, sizeof r);
  r.sr = 16000;
  r.n_steps = 1;
  r.steps[0] = (ser_aug_step){ .kind = SER_AUG_GAIN, .p = 1, .a = 0.5f, .b = 2.0f };
  r.features = 1;
  r.fopts = ser_feat_opts_default();
  ser_prefetch *pf;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), 0);
  int64_t rows1[3] = { 4, 0, 2 }, rows2[2] = { 1, 3 };
  assert_int_equal(ser_prefetch_submit(pf, rows1, 3, 99), 0);
  assert_int_equal(ser_prefetch_submit(pf, rows2, 2, 100), 0);
  assert_int_equal(ser_prefetch_pending(pf), 2);
  ser_tensor *a, *b;
  assert_int_equal(ser_prefetch_next(pf, &a), 0);
  assert_int_equal(ser_prefetch_next(pf, &b), 0);
  assert_int_equal(a->shape[0], 3);
  assert_int_equal(b->shape[0], 2);
  /* the same gain draws and the same features, computed here directly */
  int64_t frames = ser_stft_frames(T, r.fopts.hop), per = 64 * frames;
  float *clip = malloc(sizeof(float) * T), *spec = malloc(sizeof(float) * per);
  ser_rng base, rng;
  ser_rng_seed(&base, 99);
  for (int k = 0; k < 3; k++) {
    ser_aug_derive(&base, (uint64_t)k, &rng);
    memcpy(clip, ser_tensor_data(w) + rows1[k] * T, sizeof(float) * T);
    float g;
    ser_aug_gain(clip, T, 0.5f, 2.0f, 1, &rng, &g);
    assert_int_equal(ser_logmel_clip(spec, clip, T, &r.fopts), 0);
    assert_memory_equal(spec, ser_tensor_data(a) + k * per, sizeof(float) * per);
  }
  free(clip);
  free(spec);
  ser_tensor_release(a);
  ser_tensor_release(b);
  assert_int_equal(ser_prefetch_next(pf, &a), SER_ESTATE);
  ser_prefetch_free(pf);
  ser_tensor_release(w);
}

/* Per-row normalisation: the worker's output is (features - mean[row]) * scale[row], taken
 * before the masks; a frequency mask over every bin then leaves only the fill value. */
static void test_prefetch_row_normalisation(void **state) {
  (void)state;
  enum { R = 3, T = 8000, F = 64 };
  ser_tensor *w = matrix(R, T);
  ser_tensor *mean = ser_tensor_empty(2, SER_DIMS(R, F)), *scale = ser_tensor_empty(2, SER_DIMS(R, F));
  for (int i = 0; i < R * F; i++) {
    ser_tensor_data(mean)[i] = -40.0f + (float)(i % 7);
    ser_tensor_data(scale)[i] = 0.05f + 0.01f * (float)(i / F);
  }
  ser_pf_recipe r;
  memset(&r, 0, sizeof r);
  r.sr = 16000;
  r.features = 1;
  r.fopts = ser_feat_opts_default();
  r.fopts.normalize = 0;
  r.norm_mean = mean;
  r.norm_scale = scale;
  ser_prefetch *pf;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), 0);
  ser_tensor_release(mean); /* the worker holds its own references */
  ser_tensor_release(scale);
  int64_t rows[2] = { 2, 0 };
  assert_int_equal(ser_prefetch_submit(pf, rows, 2, 5), 0);
  ser_tensor *a;
  assert_int_equal(ser_prefetch_next(pf, &a), 0);
  int64_t frames = ser_stft_frames(T, r.fopts.hop), per = F * frames;
  float *spec = malloc(sizeof(float) * per);
  for (int k = 0; k < 2; k++) {
    assert_int_equal(ser_logmel_clip(spec, ser_tensor_data(w) + rows[k] * T, T, &r.fopts), 0);
    const float *m = ser_tensor_data(r.norm_mean) + rows[k] * F, *s = ser_tensor_data(r.norm_scale) + rows[k] * F;
    for (int64_t f = 0; f < F; f++)
      for (int64_t t = 0; t < frames; t++)
        assert_float_equal(ser_tensor_data(a)[k * per + f * frames + t], (spec[f * frames + t] - m[f]) * s[f], 1e-5);
  }
  ser_tensor_release(a);
  ser_prefetch_free(pf);
  free(spec);
  ser_tensor_release(w);
}

static void test_prefetch_errors_and_shutdown(void **state) {
  (void)state;
  ser_tensor *w = matrix(4, 4000);
  ser_pf_recipe r;
  memset(&r, 0, sizeof r);
  r.sr = 16000;
  r.n_steps = 1;
  r.steps[0] = (ser_aug_step){ .kind = SER_AUG_GAIN, .p = 1, .a = 2.0f, .b = 1.0f };
  ser_prefetch *pf;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "gain range 2..1"));
  r.steps[0] = (ser_aug_step){ .kind = SER_AUG_PITCH, .p = 0.5f, .a = 2.0f };
  r.time_masks = 1;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL); /* masks need spectral features */
  r.time_masks = 0;
  ser_tensor *m = ser_tensor_empty(2, SER_DIMS(4, 64));
  r.norm_mean = m;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL); /* normalisation needs spectral features */
  r.features = 1;
  r.fopts = ser_feat_opts_default();
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL); /* and both tensors */
  assert_non_null(strstr(ser_errmsg(), "needs both norm_mean and norm_scale"));
  ser_tensor *bad_scale = ser_tensor_empty(2, SER_DIMS(3, 64));
  r.norm_scale = bad_scale;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL); /* of [N, F] */
  assert_non_null(strstr(ser_errmsg(), "norm_scale must be a contiguous [4, 64] tensor"));
  ser_tensor_release(m);
  ser_tensor_release(bad_scale);
  r.norm_mean = r.norm_scale = NULL;
  r.features = 0;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), 0);
  int64_t bad[1] = { 4 };
  assert_int_equal(ser_prefetch_submit(pf, bad, 1, 1), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "row 5 of batch entry 1 is outside 1..4"));
  int64_t rows[4] = { 0, 1, 2, 3 };
  for (int i = 0; i < 6; i++) assert_int_equal(ser_prefetch_submit(pf, rows, 4, (uint64_t)i), 0);
  ser_prefetch_free(pf); /* work still queued: stops after the current job, frees the rest */
  ser_tensor_release(w);
}

/* Waveform steps and both masks: the worker's batch equals the per-clip recipe run here by
 * hand (clip b: its generator derived in order from the job seed, the steps, the features,
 * then the masks from the same generator), with one thread or several. */
static void test_prefetch_steps_and_masks_match_direct(void **state) {
  (void)state;
  enum { R = 4, T = 8000 };
  ser_tensor *w = matrix(R, T);
  ser_pf_recipe r;
  memset(&r, 0, sizeof r);
  r.sr = 16000;
  r.n_steps = 3;
  r.steps[0] = (ser_aug_step){ .kind = SER_AUG_GAIN, .p = 0.7f, .a = 0.5, .b = 2.0 };
  r.steps[1] = (ser_aug_step){ .kind = SER_AUG_SPEED, .p = 1, .factors = { 0.9f, 1.1f }, .nf = 2 };
  r.steps[2] = (ser_aug_step){ .kind = SER_AUG_SHIFT, .p = 1, .a = 400, .roll = 1 };
  r.features = 2;
  r.fopts = ser_feat_opts_for(SER_FEAT_MFCC);
  r.time_masks = 2, r.time_width = 6, r.time_p = 0.8f;
  r.freq_masks = 1, r.freq_width = 5, r.freq_p = 1;
  r.mask_value = -3.0f;
  int64_t rows[5] = { 3, 1, 1, 0, 2 };
  int64_t F = r.fopts.n_mfcc, frames = ser_stft_frames(T, r.fopts.hop), per = F * frames;
  float *clip = malloc(sizeof(float) * T), *spec = malloc(sizeof(float) * (size_t)per);
  for (int threads = 1; threads <= 2; threads++) {
    ser_set_num_threads(threads);
    ser_prefetch *pf;
    assert_int_equal(ser_prefetch_new(&pf, w, &r), 0);
    assert_int_equal(ser_prefetch_submit(pf, rows, 5, 1234), 0);
    ser_tensor *a;
    assert_int_equal(ser_prefetch_next(pf, &a), 0);
    ser_prefetch_free(pf);
    ser_rng base, rng;
    ser_rng_seed(&base, 1234);
    for (int k = 0; k < 5; k++) {
      ser_aug_derive(&base, (uint64_t)k, &rng);
      memcpy(clip, ser_tensor_data(w) + rows[k] * T, sizeof(float) * T);
      float g, f;
      int64_t s;
      ser_aug_gain(clip, T, 0.5f, 2.0f, 0.7f, &rng, &g);
      ser_aug_speed(clip, T, 16000, r.steps[1].factors, 2, 1, &rng, &f);
      ser_aug_time_shift(clip, T, 400, 1, 1, &rng, &s);
      assert_int_equal(ser_mfcc_clip(spec, clip, T, &r.fopts), 0);
      ser_aug_mask(spec, F, frames, 1, 2, 6, -3.0f, 0.8f, &rng, NULL, NULL);
      ser_aug_mask(spec, F, frames, 0, 1, 5, -3.0f, 1, &rng, NULL, NULL);
      assert_memory_equal(spec, ser_tensor_data(a) + k * per, sizeof(float) * (size_t)per);
    }
    ser_tensor_release(a);
  }
  ser_set_num_threads(0);
  r.time_masks = SER_PF_MAX_MASKS + 1;
  ser_prefetch *pf;
  assert_int_equal(ser_prefetch_new(&pf, w, &r), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "1001 time masks and 1 frequency masks; at most 1000 each"));
  free(clip);
  free(spec);
  ser_tensor_release(w);
}

static void test_batch_gather_and_fit_rows(void **state) {
  (void)state;
  ser_tensor *src = ser_tensor_empty(3, SER_DIMS(4, 2, 3));
  for (int i = 0; i < 24; i++) ser_tensor_data(src)[i] = (float)i;
  int64_t rows[3] = { 3, 0, 3 };
  ser_tensor *g;
  assert_int_equal(ser_data_gather(&g, src, rows, 3), 0);
  assert_int_equal(g->ndim, 3);
  assert_int_equal(g->shape[0], 3);
  assert_int_equal(g->shape[2], 3);
  for (int k = 0; k < 3; k++)
    for (int j = 0; j < 6; j++) assert_float_equal(ser_tensor_data(g)[k * 6 + j], (float)(rows[k] * 6 + j), 0);
  ser_tensor_release(g);
  int64_t bad[2] = { 1, 4 };
  assert_int_equal(ser_data_gather(&g, src, bad, 2), SER_EINVAL);
  assert_null(g);
  assert_non_null(strstr(ser_errmsg(), "gather: entry 2 is row 4, expected 0..3"));
  assert_int_equal(ser_data_gather(&g, src, rows, 0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "empty row list"));
  ser_tensor *tr;
  assert_int_equal(ser_transpose(&tr, src, 1, 2), 0);
  assert_int_equal(ser_data_gather(&g, tr, rows, 1), SER_EINVAL); /* a strided view */
  assert_non_null(strstr(ser_errmsg(), "expected a contiguous tensor"));
  ser_tensor_release(tr);

  /* fit_rows: trimmed at the end, or zero-padded at the end */
  ser_tensor *m = ser_tensor_empty(2, SER_DIMS(2, 5)), *f;
  for (int i = 0; i < 10; i++) ser_tensor_data(m)[i] = (float)(i + 1);
  assert_int_equal(ser_data_fit_rows(&f, m, 3), 0);
  const float want3[6] = { 1, 2, 3, 6, 7, 8 };
  assert_memory_equal(ser_tensor_data(f), want3, sizeof want3);
  ser_tensor_release(f);
  assert_int_equal(ser_data_fit_rows(&f, m, 7), 0);
  const float want7[14] = { 1, 2, 3, 4, 5, 0, 0, 6, 7, 8, 9, 10, 0, 0 };
  assert_memory_equal(ser_tensor_data(f), want7, sizeof want7);
  ser_tensor_release(f);
  assert_int_equal(ser_data_fit_rows(&f, m, 0), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "fit_rows: length 0 must be positive"));
  assert_int_equal(ser_data_fit_rows(&f, src, 4), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "expected a contiguous [N, T] tensor, got [4,2,3]"));
  ser_tensor_release(m);
  ser_tensor_release(src);
}

static void test_batch_cat_rows_and_stack(void **state) {
  (void)state;
  ser_tensor *a = ser_tensor_empty(2, SER_DIMS(1, 3)), *b = ser_tensor_empty(2, SER_DIMS(2, 3));
  for (int i = 0; i < 3; i++) ser_tensor_data(a)[i] = (float)(10 + i);
  for (int i = 0; i < 6; i++) ser_tensor_data(b)[i] = (float)(20 + i);
  ser_tensor *parts[2] = { a, b }, *c;
  assert_int_equal(ser_data_cat_rows(&c, parts, 2), 0);
  assert_int_equal(c->shape[0], 3);
  assert_int_equal(c->shape[1], 3);
  const float want[9] = { 10, 11, 12, 20, 21, 22, 23, 24, 25 };
  assert_memory_equal(ser_tensor_data(c), want, sizeof want);
  ser_tensor_release(c);
  ser_tensor *odd = ser_tensor_empty(2, SER_DIMS(2, 4));
  parts[1] = odd;
  assert_int_equal(ser_data_cat_rows(&c, parts, 2), SER_EINVAL);
  assert_non_null(strstr(ser_errmsg(), "cat_rows: part 2 has shape [2,4], part 1 has [1,3]"));
  assert_int_equal(ser_data_cat_rows(&c, parts, 0), SER_EINVAL);

  /* stack: any shapes and strides with the same element count, one a row */
  ser_tensor *t;
  assert_int_equal(ser_transpose(&t, b, 0, 1), 0); /* [3, 2], strided */
  ser_tensor *items[3] = { b, t, odd }, *s;
  assert_int_equal(ser_data_stack(&s, items, 2), 0);
  assert_int_equal(s->shape[0], 2);
  assert_int_equal(s->shape[1], 6);
  const float rows[12] = { 20, 21, 22, 23, 24, 25, 20, 23, 21, 24, 22, 25 };
  assert_memory_equal(ser_tensor_data(s), rows, sizeof rows);
  ser_tensor_release(s);
  assert_int_equal(ser_data_stack(&s, items, 3), SER_EINVAL);
  assert_null(s);
  assert_non_null(strstr(ser_errmsg(), "stack: item 3 has 8 elements [2,4], item 1 has 6"));
  ser_tensor_release(t);
  ser_tensor_release(odd);
  ser_tensor_release(a);
  ser_tensor_release(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_walk_sorted_hidden_cycles, setup_tree, teardown_tree),
    cmocka_unit_test_setup_teardown(test_walk_errors, setup_tree, teardown_tree),
    cmocka_unit_test(test_synth_deterministic_across_threads),
    cmocka_unit_test(test_synth_emotion_cues),
    cmocka_unit_test(test_synth_errors),
    cmocka_unit_test(test_prefetch_matches_direct_computation),
    cmocka_unit_test(test_prefetch_row_normalisation),
    cmocka_unit_test(test_prefetch_errors_and_shutdown),
    cmocka_unit_test(test_prefetch_steps_and_masks_match_direct),
    cmocka_unit_test(test_batch_gather_and_fit_rows),
    cmocka_unit_test(test_batch_cat_rows_and_stack),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
