-- The best CNN2D measured (README results table: 64.6 ± 1.3 % over seeds 1-3): the reference
-- augmentation with a weight EMA over 100 epochs, no early stop before the end.
return {
  name = "cnn2d",
  model = { name = "cnn2d", freq = "flatten" },
  features = { kind = "logmel", n_mels = 64 },
  augment = "reference",
  ema = 0.999,
  epochs = 100,
  early_stopping = { patience = 100 },
  seeds = { 1, 2, 3 },
}
