-- The best CNN1D measured (README results table: 51.9 ± 0.6 % over seeds 1-3): no
-- augmentation, bfloat16 GEMMs, a weight EMA, 30 epochs.
return {
  name = "cnn1d",
  model = { name = "cnn1d" },
  features = { kind = "waveform" },
  augment = "none",
  amp = true,
  ema = 0.999,
  epochs = 30,
  seeds = { 1, 2, 3 },
}
