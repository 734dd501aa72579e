/* Shared by the ONNX emitters (onnx_ops_nn.c, onnx_ops_tensor.c, onnx_whisper.c), defined in
 * onnx_attr.c. Attribute readers fail through ox_fail, so messages name the node, its op and
 * the attribute; absent optional attributes take dflt. Not a public header. */
#ifndef SER_EXPORT_ONNX_ATTR_H
#define SER_EXPORT_ONNX_ATTR_H

#include <cjson/cJSON.h>

#include "onnx_proto.h"

const cJSON *ox_field(const cJSON *nd, const char *key);
int ox_whole(ox_ctx *c, const cJSON *j, const char *key, int64_t *out);
int ox_get_int(ox_ctx *c, const cJSON *nd, const char *key, int required, int64_t dflt, int64_t *out);
/* k ints: a number (repeated k times) or a list of k (or 1) numbers */
int ox_get_ints(ox_ctx *c, const cJSON *nd, const char *key, int k, int required, int64_t dflt, int64_t *out);
/* a list of 1 .. SER_MAX_DIMS ints (a single number is a list of one); *k its length */
int ox_get_list(ox_ctx *c, const cJSON *nd, const char *key, int64_t *out, int *k);
int ox_get_num(ox_ctx *c, const cJSON *nd, const char *key, double dflt, double *out);
int ox_get_bool(ox_ctx *c, const cJSON *nd, const char *key, int dflt, int *out);
/* NULL when absent and !required (*rc 0); NULL with *rc set on a bad value */
const char *ox_get_str(ox_ctx *c, const cJSON *nd, const char *key, int required, int *rc);
/* a dim index of a rank-r value, negatives from the end -> 0 .. r-1 */
int ox_axis(ox_ctx *c, const char *key, int64_t a, int r, int64_t *out);

int ox_has_init(ox_ctx *c, const char *name);
float *ox_values_of(ox_ctx *c, const ser_tensor *t);   /* contiguous copy, malloc'd */
/* the state_dict tensor attribute attr names, as an initializer under its own name */
int ox_weight(ox_ctx *c, const cJSON *nd, const char *attr, int required, int want_rank, ser_tensor **t, const char **name);
/* a 1-D parameter of n entries (BatchNorm's, LayerNorm's) */
int ox_vector(ox_ctx *c, const cJSON *nd, const char *attr, int64_t n, const char **name);

extern const ox_dim OX_DYN;   /* a size known only at run time */
static inline ox_dim ox_dim_of(int64_t v) { return (ox_dim){v, NULL}; }
int ox_need_rank(ox_ctx *c, const ox_value *x, int lo, int hi);
int ox_unary(ox_ctx *c, const char *op_type, const ox_value *x, const char *out);   /* records out's shape = x's */

#endif
