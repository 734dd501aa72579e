-- CRNN as the plain main job trains it: the feature-dropout CRNN (crnn_fd.lua: 64 log-mels
-- with the frequency axis kept, speed perturbation, dropout 0.2 on the BiLSTM's input and 0.3
-- before the head, mean + std over time, a weight EMA, 60 epochs: it needs all of them, 40 gave
-- 62.5 % against 69.2 % for seed 1; docs/results.md, "The default run").
-- crnn_distilled.lua scores more; crnn_notebook.lua is the notebook's own recipe.
return {
  model = { name = "crnn", freq = "flatten", hidden = 128, time = "stats", dropout = 0.3, feature_dropout = 0.2 },
  features = { kind = "logmel", n_mels = 64 },
  augment = "speed",
  ema = 0.999,
  epochs = 60,
  early_stopping = { patience = 60 },
}
