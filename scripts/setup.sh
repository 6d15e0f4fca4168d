#!/usr/bin/env bash
# Prepare a machine to build dqc. Idempotent; safe to run before every build.
#
# Today dqc needs only a Rust toolchain (cargo, stable, edition 2024). The PTX backend
# will need LLVM 22 (inkwell): set NEED_LLVM=1 to have this script install it with apt
# when /usr/lib/llvm-22 is missing. It defaults to 0, so the script installs nothing.
set -euo pipefail

NEED_LLVM="${NEED_LLVM:-0}"
LLVM_DIR="${LLVM_DIR:-/usr/lib/llvm-22}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found. Install Rust (https://rustup.rs), then re-run." >&2
    exit 1
fi
echo "setup: $(cargo --version)"

if [ "$NEED_LLVM" = "1" ]; then
    if [ -d "$LLVM_DIR" ]; then
        echo "setup: LLVM found at $LLVM_DIR"
    else
        echo "setup: $LLVM_DIR missing; installing LLVM 22 with apt-get"
        SUDO=""
        if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
        $SUDO apt-get update
        $SUDO apt-get install -y llvm-22-dev libpolly-22-dev libzstd-dev
    fi
fi
