-- The best model measured (README: 71.0 ± 0.6 % over seeds 1-3): one 256-unit CRNN distilled
-- from six CRNN teachers over 150 epochs. The teachers are crnn_fd.lua's checkpoints, trained
-- first under --out fd and (with --set model.hidden=256) --out h256:
--   build/serlua experiments/compare.lua --recipe experiments/recipes/crnn_fd.lua --out fd
--   build/serlua experiments/compare.lua --recipe experiments/recipes/crnn_fd.lua --out h256 --set model.hidden=256
-- Other teachers: --set distill.teachers=a.safetensors,b.safetensors
return {
  name = "crnn",
  model = { name = "crnn", freq = "flatten", hidden = 256, time = "stats", dropout = 0.3, feature_dropout = 0.2 },
  features = { kind = "logmel", n_mels = 64 },
  augment = "speed",
  ema = 0.999,
  epochs = 150,
  early_stopping = { patience = 150 },
  seeds = { 1, 2, 3 },
  distill = {
    teachers = { "fd/results/crnn_seed1.safetensors", "fd/results/crnn_seed2.safetensors",
                 "fd/results/crnn_seed3.safetensors", "h256/results/crnn_seed1.safetensors",
                 "h256/results/crnn_seed2.safetensors", "h256/results/crnn_seed3.safetensors" },
    alpha = 0.5,
    temperature = 2,
  },
}
