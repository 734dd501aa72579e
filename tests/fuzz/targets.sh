# The fuzz targets: one list for run.sh (libFuzzer runs) and replay.sh (CI's replay of the
# regression inputs). Target T is tests/fuzz/fuzz_T.c with its regression inputs in
# tests/fuzz/regress/T/. fuzz_kind T says what it links besides libser.a: "lua" the Lua harness
# and the bindings, "onnx" the generated protobuf headers, "plain" nothing more.
FUZZ_TARGETS=(audio safetensors manifest names torch graph onnx w2v_config whisper_config pcm http amp_table train_state)

fuzz_kind() {
  case $1 in
    manifest|names|train_state) echo lua ;;
    onnx) echo onnx ;;
    *) local t; for t in "${FUZZ_TARGETS[@]}"; do [ "$t" = "$1" ] && { echo plain; return; }; done
       echo "fuzz: unknown target '$1' (expected one of: ${FUZZ_TARGETS[*]})" >&2; return 2 ;;
  esac
}
