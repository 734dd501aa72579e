-- CNN2D as the plain main job trains it: the best CNN2D recipe (cnn2d_best.lua: 64 log-mels
-- with the frequency bands kept, the reference augmentation, a weight EMA) cut to the epochs
-- the 30-minute budget of the default run leaves it, with statistics pooling over time (the
-- last block's mean and standard deviation: 63.8 +- 0.8 % against 61.7 +- 1.7 % with the
-- mean alone at these 50 epochs; docs/results.md, "The default run").
-- cnn2d_best.lua's 100 epochs score more; cnn2d_notebook.lua is the notebook's own recipe.
return {
  model = { name = "cnn2d", freq = "flatten", time = "stats" },
  features = { kind = "logmel", n_mels = 64 },
  augment = "reference",
  ema = 0.999,
  epochs = 50,
  early_stopping = { patience = 50 },
}
