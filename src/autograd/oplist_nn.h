/* nn-layer ops; see oplist.h for the checklist. */
#ifndef SER_AUTOGRAD_OPLIST_NN_H
#define SER_AUTOGRAD_OPLIST_NN_H

#define SER_OPS_NN(X) \
  X(CONV2D, "conv2d", ser_conv2d_backward_node) \
  X(CONV1D, "conv1d", ser_conv1d_backward_node) \
  X(CONV1D_GROUPED, "conv1d_grouped", ser_conv1d_grouped_backward_node) \
  X(BATCH_NORM, "batch_norm", ser_batch_norm_backward_node) \
  X(BATCH_NORM_RELU, "batch_norm_relu", ser_batch_norm_backward_node) \
  X(MAX_POOL, "max_pool", ser_max_pool_backward_node) \
  X(AVG_POOL, "avg_pool", ser_avg_pool_backward_node) \
  X(ADAPTIVE_AVG_POOL, "adaptive_avg_pool", ser_adaptive_avg_pool_backward_node) \
  X(LINEAR, "linear", ser_linear_backward_node) \
  X(DROPOUT, "dropout", ser_dropout_backward_node) \
  X(LEAKY_RELU, "leaky_relu", ser_leaky_relu_backward_node) \
  X(LSTM, "lstm", ser_lstm_backward) \
  X(CROSS_ENTROPY, "cross_entropy", ser_cross_entropy_backward_op) \
  X(NLL_LOSS, "nll_loss", ser_nll_loss_backward_op) \
  X(MSE_LOSS, "mse_loss", ser_mse_loss_backward_op) \
  X(LAYER_NORM, "layer_norm", ser_layer_norm_backward_node) \
  X(GELU, "gelu", ser_gelu_backward_node) \
  X(ATTENTION, "scaled_dot_product_attention", ser_attention_backward_node)

#endif
