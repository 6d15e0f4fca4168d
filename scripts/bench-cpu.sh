#!/usr/bin/env bash
# CPU benchmark: DiT-S/2 with onnxruntime vs dqc (`dqc bench`: the runtime `dqc run` uses),
# same inputs, same threads.
#
#   scripts/bench-cpu.sh [--threads N] [--iters N] [--pairs P] [--separate] [--rounds R]
#                        [--model dit-s2|gemm-chain]
#
# Builds the release CLI, makes a Python venv with torch/diffusers/onnx/onnxruntime if
# $DQC_VENV is not set (target/bench-venv, needs network once), exports DiT-S/2 to ONNX,
# and prints both engines' median/p10/p90 forward times, peak memory and the ratio. The
# engines take turns one forward at a time; --separate (or --rounds R) times each in a
# process of its own instead (see scripts/bench_cpu.py).
# Record results in docs/performance.md with the command and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin dqc
VENV="${DQC_VENV:-target/bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch
    "$VENV/bin/pip" install --quiet numpy onnx onnxruntime diffusers transformers
fi
exec "$VENV/bin/python" scripts/bench_cpu.py --dqc target/release/dqc "$@"
