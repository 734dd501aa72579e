/* The audio front end (no Lua): files, resampling, cache, STFT / mel / MFCC. */
#ifndef SER_AUDIO_AUDIO_H
#define SER_AUDIO_AUDIO_H

#include "audio/cache.h"
#include "audio/features.h"
#include "audio/io.h"
#include "audio/mel.h"
#include "audio/resample.h"
#include "audio/stream.h"
#include "audio/trim.h"
#include "audio/whisper_mel.h"

#endif
