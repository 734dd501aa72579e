/* The corpus pipeline (no Lua): walking a corpus folder, synthetic speech, batch assembly
 * and the loader's background prefetch worker. It calls src/audio and src/augment; neither
 * of those calls it. */
#ifndef SER_DATA_DATA_H
#define SER_DATA_DATA_H

#include "data/batch.h"
#include "data/prefetch.h"
#include "data/synth.h"
#include "data/walk.h"

#endif
