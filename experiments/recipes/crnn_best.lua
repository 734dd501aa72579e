-- The CRNN recipe (README results table: 67.6 ± 0.5 % over seeds 1-3): speed perturbation,
-- a weight EMA, dropout 0.3 before the classifier, mean and standard deviation over time,
-- 60 epochs.
return {
  name = "crnn",
  model = { name = "crnn", freq = "flatten", hidden = 128, time = "stats", dropout = 0.3 },
  features = { kind = "logmel", n_mels = 64 },
  augment = "speed",
  ema = 0.999,
  epochs = 60,
  early_stopping = { patience = 60 },
  seeds = { 1, 2, 3 },
}
