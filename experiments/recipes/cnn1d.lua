-- CNN1D as the plain main job trains it: the best CNN1D recipe (cnn1d_best.lua: the 16 kHz
-- waveform z-normalised per clip, no augmentation, bfloat16 GEMMs where they pay, a weight EMA)
-- cut from 30 to the 25 epochs the 30-minute budget of the default run leaves it
-- (docs/results.md, "The default run"). cnn1d_notebook.lua is the notebook's own recipe.
return {
  model = { name = "cnn1d" },
  features = { kind = "waveform" },
  augment = "none",
  amp = true,
  ema = 0.999,
  epochs = 25,
}
