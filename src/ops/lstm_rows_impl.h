/* The row functions of the LSTM cell (lstm.c), included three times there:
 * for the -march baseline, x86-64-v3 and x86-64-v4, K(name) naming each copy.
 * They use lstm.c's v4f helpers. Not a public header. */
/* One row of pre-activations [i f g o] (4H) -> activated, in place. */
static void K(activate_row)(float *g, int H) {
  const int n4 = H / 4 * 4;
  for (int k = 0; k < 4; k++) {
    float *q = g + k * H;
    const int is_tanh = k == 2;
    for (int j = 0; j < n4; j += 4) v4_store(q + j, is_tanh ? v4_tanh(v4_load(q + j)) : v4_sigmoid(v4_load(q + j)));
    for (int j = n4; j < H; j++) q[j] = is_tanh ? tanh1(q[j]) : sigmoid1(q[j]);
  }
}

/* c = f c_prev + i g (c_prev NULL = 0), tc = tanh c, h = o tc */
static void K(cell_row)(float *c, float *tc, float *h, const float *g, const float *cp, int H) {
  const float *ig = g, *fg = g + H, *gg = g + 2 * H, *og = g + 3 * H;
  const int n4 = H / 4 * 4;
  for (int j = 0; j < n4; j += 4) {
    v4f cv = v4_load(ig + j) * v4_load(gg + j);
    if (cp) cv += v4_load(fg + j) * v4_load(cp + j);
    const v4f t = v4_tanh(cv);
    v4_store(c + j, cv);
    v4_store(tc + j, t);
    v4_store(h + j, v4_load(og + j) * t);
  }
  for (int j = n4; j < H; j++) {
    c[j] = ig[j] * gg[j] + (cp ? fg[j] * cp[j] : 0.0f);
    tc[j] = tanh1(c[j]);
    h[j] = og[j] * tc[j];
  }
}

/* Gradients of one row: dG = d(pre-activations) from dh (the row's output
 * gradient plus the recurrent one) and dc (from the next step, updated in place). */
static void K(cell_row_backward)(float *dg, float *dc, const float *dh_out, const float *dh_rec,
                                 const float *g, const float *tc, const float *cp, int H) {
  const float *ig = g, *fg = g + H, *gg = g + 2 * H, *og = g + 3 * H;
  const v4f one = v4_splat(1.0f);
  const int n4 = H / 4 * 4;
  for (int j = 0; j < n4; j += 4) {
    const v4f i = v4_load(ig + j), f = v4_load(fg + j), gv = v4_load(gg + j), o = v4_load(og + j);
    const v4f t = v4_load(tc + j);
    const v4f dhv = v4_load(dh_out + j) + v4_load(dh_rec + j);
    const v4f dcv = v4_load(dc + j) + dhv * o * (one - t * t);
    v4_store(dg + j, dcv * gv * i * (one - i));
    v4_store(dg + H + j, cp ? dcv * v4_load(cp + j) * f * (one - f) : v4_splat(0.0f));
    v4_store(dg + 2 * H + j, dcv * i * (one - gv * gv));
    v4_store(dg + 3 * H + j, dhv * t * o * (one - o));
    v4_store(dc + j, dcv * f);
  }
  for (int j = n4; j < H; j++) {
    const float dhv = dh_out[j] + dh_rec[j];
    const float dcv = dc[j] + dhv * og[j] * (1.0f - tc[j] * tc[j]);
    dg[j] = dcv * gg[j] * ig[j] * (1.0f - ig[j]);
    dg[H + j] = cp ? dcv * cp[j] * fg[j] * (1.0f - fg[j]) : 0.0f;
    dg[2 * H + j] = dcv * ig[j] * (1.0f - gg[j] * gg[j]);
    dg[3 * H + j] = dhv * tc[j] * og[j] * (1.0f - og[j]);
    dc[j] = dcv * fg[j];
  }
}
