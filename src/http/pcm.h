/* Raw PCM bodies of the live view's chunks (the browser sends its microphone
 * samples as little-endian float32 or int16, no header) decoded into a
 * waveform. Outside data: the length must be a whole number of samples and
 * float samples must be finite; anything else is refused with a message. */
#ifndef SER_HTTP_PCM_H
#define SER_HTTP_PCM_H
#include <stddef.h>

#include "core/tensor.h"

typedef enum { SER_PCM_F32, SER_PCM_S16 } ser_pcm_format;

/* "f32" / "s16" -> format; anything else is an error naming the two. */
int ser_pcm_format_parse(ser_pcm_format *out, const char *name);

/* bytes -> a new 1-D tensor [n] of samples in [-1, 1] (s16 divided by 32768). */
int ser_pcm_decode(ser_tensor **out, const void *bytes, size_t nbytes, ser_pcm_format fmt);

#endif
