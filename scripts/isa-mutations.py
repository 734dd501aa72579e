#!/usr/bin/env python3
"""Checks that make test's SER_ISA passes really run the lower kernel paths.

Applies one deliberate bug at a time to a kernel path that only a CPU below
AVX-512 (or below AVX2) runs, rebuilds the C tests that cover it, runs them
natively and under SER_ISA=avx2 and SER_ISA=generic, prints which runs failed,
and puts the source back (also on Ctrl-C or a failed build). The expected
outcome is in each mutation's `want`: the pass of the mutated level fails.
docs/engine.md, "Instruction-set dispatch", has the table this prints.

Refuses to touch a file with uncommitted changes. Run from the tree's root
after `make`; one build folder at a time (it rebuilds $BUILD/tests/...).
"""
import argparse
import os
import subprocess
import sys

# name: (file, original text, mutated text, tests, the runs that must fail)
MUTATIONS = {
    "rowops_avx2_bias_gelu": (
        "src/ops/rowops_impl.h",
        "    float v = x[i] + bias[i];\n    x[i] = 0.5f",
        "#if defined(__AVX2__) && !defined(__AVX512F__) /* the AVX2 copy only */\n"
        "    float v = x[i] + 1.01f * bias[i];\n#else\n    float v = x[i] + bias[i];\n#endif\n    x[i] = 0.5f",
        ["test_wav2vec2"], {"avx2"}),
    "pool_avx2_argmax": (
        "src/ops/pool.c",
        "\n  const int off[3] = {1, W, W + 1};",
        "\n  const int off[3] = {1, W + 1, W};",
        ["test_pool"], {"native", "avx2"}),  # native too: its fast-path test forces each level
    "adamw_scalar_last": (
        "src/optim/adamw.c",
        "  for (size_t i = 0; i < n; i++)\n    p[i] = adamw_element(",
        "  for (size_t i = 0; i + 1 < n; i++)\n    p[i] = adamw_element(",
        ["test_optim"], {"generic"}),
    "audio_base_window": (
        "src/audio/kernels_impl.h",
        "  for (int i = 0; i < n; i++) dst[i] = src[i] * win[i];",
        "#ifndef __AVX2__ /* the baseline copy only */\n"
        "  for (int i = 0; i < n; i++) dst[i] = src[i] * win[i] * 1.001f;\n#else\n"
        "  for (int i = 0; i < n; i++) dst[i] = src[i] * win[i];\n#endif",
        ["test_audio_features"], {"generic"}),
    "lstm_v3_cell": (
        "src/ops/lstm_rows_impl.h",
        "    v4f cv = v4_load(ig + j) * v4_load(gg + j);",
        "#if defined(__AVX2__) && !defined(__AVX512F__) /* the x86-64-v3 copy only */\n"
        "    v4f cv = v4_load(ig + j) * v4_load(gg + j) * v4_splat(1.001f);\n#else\n"
        "    v4f cv = v4_load(ig + j) * v4_load(gg + j);\n#endif",
        ["test_lstm"], {"avx2"}),
    "batchnorm_base_affine": (
        "src/ops/batchnorm_rows_impl.h",
        "    for (int i = 0; i < S; i++) q[i] = p[i] * scale + shift;",
        "#ifndef __AVX512F__ /* the baseline copy only */\n"
        "    for (int i = 0; i < S; i++) q[i] = p[i] * scale + shift * 1.001f;\n#else\n"
        "    for (int i = 0; i < S; i++) q[i] = p[i] * scale + shift;\n#endif",
        ["test_batchnorm"], {"avx2", "generic"}),
}


def write_atomic(path, text):
    tmp = path + ".isa-mutations.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run_test(build, test, level):
    env = dict(os.environ, SER_NUM_THREADS="1", CMOCKA_MESSAGE_OUTPUT="stdout")
    env.pop("SER_ISA", None)
    if level != "native":
        env["SER_ISA"] = level
    r = subprocess.run([os.path.join(build, "tests", test)], env=env, capture_output=True, text=True)
    return r.returncode != 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help="mutations to run (default: all): " + ", ".join(MUTATIONS))
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"), help="build folder (default: build)")
    args = ap.parse_args()
    unknown = [n for n in args.names if n not in MUTATIONS]
    if unknown:
        ap.error("unknown mutation %s (expected one of %s)" % (", ".join(unknown), ", ".join(MUTATIONS)))
    ok = True
    for name in args.names or list(MUTATIONS):
        path, orig_text, mutated, tests, want = MUTATIONS[name]
        if subprocess.run(["git", "diff", "--quiet", "--", path]).returncode != 0:
            sys.exit("isa-mutations: %s has uncommitted changes; commit or stash them first" % path)
        with open(path) as f:
            orig = f.read()
        if orig.count(orig_text) != 1:
            sys.exit("isa-mutations: %s: the text to mutate occurs %d times, expected once (the source changed?)"
                     % (path, orig.count(orig_text)))
        bins = [os.path.join(args.build, "tests", t) for t in tests]
        try:
            write_atomic(path, orig.replace(orig_text, mutated))
            if subprocess.run(["make", "-s", "BUILD=" + args.build] + bins, capture_output=True).returncode != 0:
                sys.exit("isa-mutations: %s: the mutated build failed" % name)
            for t in tests:
                failed = {lv for lv in ("native", "avx2", "generic") if run_test(args.build, t, lv)}
                row = " ".join("%s:%s" % (lv, "FAILS" if lv in failed else "passes") for lv in ("native", "avx2", "generic"))
                good = failed == want
                ok = ok and good
                print("%-24s %-20s %s  %s" % (name, t, row, "as expected" if good else "NOT as expected"), flush=True)
        finally:
            write_atomic(path, orig)
    # rebuild the unmutated tests so the folder is left as it was
    subprocess.run(["make", "-s", "BUILD=" + args.build] +
                   sorted({os.path.join(args.build, "tests", t) for m in MUTATIONS.values() for t in m[3]}),
                   capture_output=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
