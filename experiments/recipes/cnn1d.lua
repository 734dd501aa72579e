-- CNN1D as the plain main job trains it: the waveform through the filterbank front end
-- (model.frontend, docs/train.md: 64 learnt band-pass filters, sinc-initialised on the mel scale,
-- their log energies every 10 ms, then the notebook's four convolutions at 100 frames a second),
-- no augmentation, bfloat16 GEMMs where they pay, 25 epochs, and the weight EMA with BatchNorm's
-- statistics recomputed under the averaged weights from 30 training batches before each
-- validation: averaged filters give log energies at another level than the averaged running
-- statistics, and with those the EMA model's validation collapsed (docs/results.md, "The default
-- run"). cnn1d_best.lua is the best recipe with the notebook's first convolution;
-- cnn1d_notebook.lua is the notebook's own recipe.
return {
  model = { name = "cnn1d", frontend = "filterbank" },
  features = { kind = "waveform" },
  augment = "none",
  amp = true,
  ema = 0.999,
  ema_bn = "recompute",
  ema_bn_batches = 30,
  epochs = 25,
}
