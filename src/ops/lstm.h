/* LSTM (PyTorch 1.13 semantics and weight layout).
 *
 * Weights per layer k and direction (suffix "_reverse" for the backward one),
 * in PyTorch's `_all_weights` order: weight_ih_l{k} [4H, in], weight_hh_l{k}
 * [4H, H], bias_ih_l{k} [4H], bias_hh_l{k} [4H]; rows stacked by gate i, f, g, o.
 *   i = σ(W_ii x + b_ii + W_hi h + b_hi)   (likewise f, o; g uses tanh)
 *   c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c'),  h0 = c0 = 0.
 * Layer k > 0 reads the concatenated [forward, reverse] outputs of layer k-1.
 *
 * Sequence layout. The kernels never transpose the input: row r of a [rows, width]
 * buffer holds (batch b, time t) at r = b*sb + t*st, with sb = T, st = 1 for
 * batch_first ([B,T,*]) and sb = 1, st = B for time-major ([T,B,*]). The B rows
 * of one time step are then one strided matrix (leading dimension sb*width), so
 * each recurrent step is a single GEMM whatever the layout. */
#ifndef SER_OPS_LSTM_H
#define SER_OPS_LSTM_H

#include <stdint.h>

#include "../core/tensor.h"

struct ser_node;

typedef struct ser_lstm_dims {
  int B, T;          /* batch, time steps */
  int I, H;          /* input width, hidden size */
  int batch_first;   /* row layout, see above */
  int reverse;       /* runs t = T-1 .. 0 */
  int ldh;           /* row stride of h and dh in floats (0 = H); 2H lets the two
                        directions write their halves of one [rows, 2H] output */
} ser_lstm_dims;

/* One direction of one layer, forward.
 *   x [rows, I] -> h [rows, H] (row stride ldh); also keeps what backward needs:
 *   gates [rows, 4H] (activated i, f, g, o), cell [rows, H] (c_t) and
 *   tcell [rows, H] (tanh c_t). b_ih, b_hh may be NULL (bias=False).
 *   Overwrites h, gates, cell, tcell. */
void ser_lstm_dir_forward(float *h, float *gates, float *cell, float *tcell, const float *x, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, const ser_lstm_dims *d);

/* One direction of one layer, backward through time.
 *   dh [rows, H] (row stride ldh): gradient w.r.t. h (the layer output; read only).
 *   Accumulates (+=) into dx [rows, I], dw_ih [4H, I], dw_hh [4H, H], db_ih, db_hh [4H];
 *   any of them may be NULL (not needed). dgates [rows, 4H] and dstate [2*B*H] are
 *   scratch. */
void ser_lstm_dir_backward(float *dx, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dgates,
                           float *dstate, const float *dh, const float *gates, const float *cell, const float *tcell,
                           const float *h, const float *x, const float *w_ih, const float *w_hh,
                           const ser_lstm_dims *d);

typedef struct ser_lstm_opts {
  int64_t input_size, hidden_size;
  int num_layers;      /* >= 1 */
  int bidirectional;
  int batch_first;     /* x is [B,T,in] instead of [T,B,in] */
  int no_bias;         /* bias=False: two weights per layer and direction instead of four */
} ser_lstm_opts;

/* Number of weight tensors ser_lstm expects (4 or 2 per layer and direction). */
int ser_lstm_num_weights(const ser_lstm_opts *o);
/* PyTorch name of weight i ("weight_ih_l0_reverse"), written into buf. */
const char *ser_lstm_weight_name(const ser_lstm_opts *o, int i, char *buf, int bufsize);

/* Multi-layer (bi)LSTM. x: [B,T,in] (batch_first), [T,B,in], or unbatched [T,in].
 * out: [B,T,D*H] / [T,B,D*H] / [T,D*H], forward direction in [..., 0:H].
 * h_n, c_n: [L*D, B, H] ([L*D, H] unbatched), may be NULL; they carry no
 * gradient (compute the loss from out). Gradients flow to x and every weight. */
int ser_lstm(ser_tensor **out, ser_tensor **h_n, ser_tensor **c_n, ser_tensor *x, ser_tensor *const *weights,
             const ser_lstm_opts *o);

/* One layer (D = 1 or 2 directions) as one autograd op, the directions run
 * concurrently on two threads when there are. w holds 3 tensors per direction:
 * w_ih [4H,in], w_hh [4H,H], b [4H] = b_ih + b_hh or NULL (ser_lstm adds the two
 * bias vectors with a recorded ser_add, so both get their gradient). x is
 * [B,T,in] (batch_first), [T,B,in] or [T,in]. h gets [..., D*H] (forward
 * direction first); h_last and c_last, when not NULL, the final states [D,B,H]. */
int ser_lstm_layer(ser_tensor **h, ser_tensor **h_last, ser_tensor **c_last, ser_tensor *x, ser_tensor *const *w,
                   int D, int batch_first);

int ser_lstm_backward(struct ser_node *node, const ser_tensor *gout, ser_tensor **gin);

#endif
