-- UMAP of a trained model's penultimate embeddings over a corpus:
--   serlua experiments/embed.lua results/crnn.safetensors data/ravdess [--out umap.png]
-- Points are coloured by the label read from the file names / folders.
local ser = require "ser"
local argparse = require "argparse"

local parser = argparse("embed.lua", "Plot the UMAP of a checkpoint's embeddings over a corpus folder.")
parser:argument("checkpoint", "A .safetensors checkpoint written by compare.lua / ser.train.fit.")
parser:argument("dir", "Corpus folder (any layout ser.data.scan understands).")
parser:option("--out", "PNG to write (default: plots/umap_<model>_<folder>.png).")
parser:option("--seed", "UMAP seed.", "42"):convert(tonumber)
parser:option("--neighbors", "UMAP n_neighbors.", "15"):convert(tonumber)
local args = ser.cli.parse(parser, arg) -- `--seed -1` reads -1 as the value

local model, meta = ser.train.load_checkpoint(args.checkpoint)
if not model then parser:error(meta) end
local corpus = ser.data.scan(args.dir)
if #corpus.items < 3 then parser:error(("%s has %d usable audio files; UMAP needs at least 3"):format(args.dir, #corpus.items)) end
local name = meta.model:lower()
local out = args.out or ("plots/umap_%s_%s.png"):format(name, args.dir:gsub("/+$", ""):match("[^/]+$"))

-- inputs as in training (CNN1D's waveform z-normalised per clip, trimming, normalisation)
local loader = ser.train.checkpoint_loader(corpus, model, meta)
local ev = ser.train.evaluate(model, loader, nil, { embeddings = true })
local xy = ser.umap(ser.tensor.new(ev.embeddings), { seed = args.seed, n_neighbors = math.min(args.neighbors, #ev.targets - 1) })
ser.plot.scatter(xy, ev.targets, corpus.classes, { out = out,
  title = ("UMAP of %s embeddings: %s (%d clips)"):format(name:upper(), args.dir, #ev.targets) })
print(("wrote %s (%d clips, %d-d embeddings)"):format(out, #ev.targets, #ev.embeddings[1]))
