-- CNN1D on the 16 kHz waveform (z-normalised per clip) with the notebook's training, which the
-- main job ran by default until 2026-12; ser.recipe's defaults otherwise (cnn2d_notebook.lua).
return {
  model = { name = "cnn1d" },
  features = { kind = "waveform" },
}
