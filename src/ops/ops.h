/* Umbrella for the op headers (one per file in src/ops/). */
#ifndef SER_OPS_OPS_H
#define SER_OPS_OPS_H

#include "elementwise.h"
#include "reduce.h"
#include "matmul.h"
#include "softmax.h"
#include "shape.h"
#include "gemm.h"
#include "conv.h"
#include "conv_grouped.h"
#include "batchnorm.h"
#include "pool.h"
#include "linear.h"
#include "dropout.h"
#include "activation.h"
#include "lstm.h"
#include "loss.h"
#include "layernorm.h"
#include "attention.h"

#endif
