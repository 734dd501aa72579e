// Runs an ONNX model with onnxruntime-node on float32 input read from a raw little-endian
// file and writes the first output the same way (tests/lua/onnx_spec.lua, bench/).
//   node onnx_run.js MODEL.onnx INPUT.f32 DIM,DIM,... OUTPUT.f32 [REPEATS]
// Prints one JSON line: output dims, metadata_props keys, and with REPEATS the mean
// milliseconds of one run (after a warm-up run). Needs onnxruntime-node on NODE_PATH.
const fs = require("fs");
const ort = require("onnxruntime-node");

async function main() {
  const [model, input, dims, output, repeats] = process.argv.slice(2);
  if (!output) {
    console.error("usage: node onnx_run.js MODEL.onnx INPUT.f32 DIM,DIM,... OUTPUT.f32 [REPEATS]");
    process.exit(2);
  }
  const shape = dims.split(",").map(Number);
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  const session = await ort.InferenceSession.create(model, opts);
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data.slice(), shape) };
  let result = await session.run(feeds);
  let ms = null;
  const n = Number(repeats || 0);
  if (n > 0) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) result = await session.run(feeds);
    ms = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  }
  const out = result[session.outputNames[0]];
  fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({ dims: out.dims, input: session.inputNames[0], output: session.outputNames[0], ms }));
}
main().catch((e) => {
  console.error("onnx_run: " + (e && e.message ? e.message : e));
  process.exit(1);
});
