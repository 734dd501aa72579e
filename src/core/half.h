/* float32 <-> IEEE half (float16) and bfloat16, one value at a time: the
 * checkpoint readers and writers (safetensors, PyTorch .pt) and amp's bf16
 * packing share them. Rounding is to nearest even; NaN stays NaN; float16
 * overflow (|x| >= 65520) becomes infinity. */
#ifndef SER_CORE_HALF_H
#define SER_CORE_HALF_H

#include <stdint.h>

uint16_t ser_f32_to_f16(float f);
float ser_f16_to_f32(uint16_t h);
uint16_t ser_f32_to_bf16(float f);
float ser_bf16_to_f32(uint16_t h);

#endif
