-- CNN1D on the 16 kHz waveform (z-normalised per clip), as the plain main job trains it.
return {
  model = { name = "cnn1d" },
  features = { kind = "waveform" },
}
