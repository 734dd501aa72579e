-- CNN1D with the filterbank front end (docs/train.md, model.frontend): the waveform through 64
-- learnt band-pass filters (sinc-initialised on the mel scale), their log energies every 10 ms,
-- then the four convolutions -- about a quarter of the notebook layers' multiply-adds. Trained
-- as cnn1d.lua (no augmentation, bfloat16 GEMMs where they pay, 25 epochs) but without the
-- weight EMA: averaged filters do not match the log energies BatchNorm's statistics were
-- gathered on, and the EMA model's validation collapsed (docs/results.md).
return {
  name = "cnn1d_filterbank",
  model = { name = "cnn1d", frontend = "filterbank" },
  features = { kind = "waveform" },
  augment = "none",
  amp = true,
  ema = 0,
  epochs = 25,
}
