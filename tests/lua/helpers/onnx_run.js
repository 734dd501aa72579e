// Runs an ONNX model with onnxruntime-node (one thread) on float32 inputs read from raw
// little-endian files and writes the first output of each the same way
// (tests/lua/helpers/onnx_tools.lua, bench/bench_onnx.lua).
//   node onnx_run.js MODEL.onnx INPUT.f32 DIM,DIM,... OUTPUT.f32 [INPUT2 DIMS2 OUTPUT2 ...]
// A model with a second input "frames" (int64 [batch]: a whisper model with input.context) reads
// it for each INPUT.f32 from INPUT.f32.frames, the whole numbers separated by commas; a model
// with inputs "speaker_shift" and "speaker_scale" (a speaker-normalised whisper model) reads
// them from INPUT.f32.speaker_shift and INPUT.f32.speaker_scale (raw float32), their dims from
// INPUT.f32.speaker_dims. Outputs after the first are written to OUTPUT.f32.<output name>.
// ONNX_RUN_REPEATS=N also times N runs of each input after a warm-up run.
// Prints one JSON line per input: output dims, output name, mean milliseconds (or null).
// Needs onnxruntime-node on NODE_PATH.
const fs = require("fs");
const ort = require("onnxruntime-node");

async function main() {
  const [model, ...rest] = process.argv.slice(2);
  if (!model || rest.length === 0 || rest.length % 3 !== 0) {
    console.error("usage: node onnx_run.js MODEL.onnx INPUT.f32 DIM,DIM,... OUTPUT.f32 [INPUT DIMS OUTPUT ...]");
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const repeats = Number(process.env.ONNX_RUN_REPEATS || 0);
  for (let k = 0; k < rest.length; k += 3) {
    const [input, dims, output] = rest.slice(k, k + 3);
    const buf = fs.readFileSync(input);
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, dims.split(",").map(Number)) };
    if (session.inputNames.includes("frames")) {
      const frames = fs.readFileSync(input + ".frames", "utf8").trim().split(",").map((v) => BigInt(v));
      feeds.frames = new ort.Tensor("int64", BigInt64Array.from(frames), [frames.length]);
    }
    if (session.inputNames.includes("speaker_shift")) {
      const dims = fs.readFileSync(input + ".speaker_dims", "utf8").trim().split(",").map(Number);
      for (const name of ["speaker_shift", "speaker_scale"]) {
        const b = fs.readFileSync(input + "." + name);
        feeds[name] = new ort.Tensor("float32", new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), dims);
      }
    }
    let result = await session.run(feeds);
    let ms = null;
    if (repeats > 0) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < repeats; i++) result = await session.run(feeds);
      ms = Number(process.hrtime.bigint() - t0) / 1e6 / repeats;
    }
    const out = result[session.outputNames[0]];
    fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    for (const name of session.outputNames.slice(1)) {
      const o = result[name];
      fs.writeFileSync(output + "." + name, Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength));
    }
    console.log(JSON.stringify({ dims: out.dims, output: session.outputNames[0], ms }));
  }
}
main().catch((e) => {
  console.error("onnx_run: " + (e && e.message ? e.message : e));
  process.exit(1);
});
