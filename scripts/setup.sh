#!/usr/bin/env bash
# Prepare a machine to build dqc. Idempotent; safe to run before every build.
#
# dqc needs a Rust toolchain (cargo, stable, edition 2024) and LLVM 22 for the PTX backend
# (inkwell, feature llvm22-1, LLVM_SYS_221_PREFIX=/usr/lib/llvm-22). When /usr/lib/llvm-22 is
# missing this script installs llvm-22-dev, libpolly-22-dev and libzstd-dev with apt:
#   1. from the machine's configured apt sources, when they carry LLVM 22;
#   2. otherwise from Debian testing (forky), added as an extra source pinned at priority 100
#      so that nothing else on the machine moves unless LLVM 22 needs it. On Debian 12 this
#      also upgrades libc6 and libstdc++6 (LLVM 22 is built against them).
# Set NEED_LLVM=0 to skip LLVM entirely (the CPU-only crates still build; the PTX backend is
# behind the `ptx` feature of dqc-codegen, on by default in the CLI).
set -euo pipefail

NEED_LLVM="${NEED_LLVM:-1}"
LLVM_DIR="${LLVM_DIR:-/usr/lib/llvm-22}"
LLVM_PKGS=(llvm-22-dev libpolly-22-dev libzstd-dev)

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found. Install Rust (https://rustup.rs), then re-run." >&2
    exit 1
fi
echo "setup: $(cargo --version)"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

have_candidate() {
    local cand
    cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$cand" ] && [ "$cand" != "(none)" ]
}

if [ "$NEED_LLVM" = "1" ]; then
    if [ -x "$LLVM_DIR/bin/llvm-config" ]; then
        echo "setup: LLVM found at $LLVM_DIR ($("$LLVM_DIR/bin/llvm-config" --version))"
    else
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "setup: $LLVM_DIR missing and apt-get not available; install LLVM 22" \
                 "(llvm-config, headers, static libraries) and set LLVM_SYS_221_PREFIX" >&2
            exit 1
        fi
        echo "setup: $LLVM_DIR missing; installing LLVM 22 with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update
        if have_candidate llvm-22-dev; then
            $SUDO apt-get install -y "${LLVM_PKGS[@]}"
        else
            echo "setup: configured apt sources lack llvm-22-dev; adding Debian forky (pinned 100)"
            $SUDO tee /etc/apt/sources.list.d/dqc-forky.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
            $SUDO tee /etc/apt/preferences.d/dqc-forky >/dev/null <<'PIN'
Package: *
Pin: release n=forky
Pin-Priority: 100
PIN
            $SUDO apt-get update
            $SUDO apt-get install -y -t forky "${LLVM_PKGS[@]}"
        fi
        "$LLVM_DIR/bin/llvm-config" --version
    fi
fi

# ptxas, to assemble the generated PTX in tests (no GPU needed). Taken from NVIDIA's
# nvidia-cuda-nvcc wheel on PyPI (the CUDA compiler tools, no driver); optional — the tests
# that use it say so and only generate PTX when it is missing. NEED_PTXAS=0 skips it.
NEED_PTXAS="${NEED_PTXAS:-1}"
PTXAS_DIR="${PTXAS_DIR:-/opt/cuda-nvcc}"
PTXAS_WHEEL_VERSION="13.5.37"
if [ "$NEED_PTXAS" = "1" ]; then
    if [ -x "$PTXAS_DIR/nvidia/cu13/bin/ptxas" ] || command -v ptxas >/dev/null 2>&1; then
        echo "setup: ptxas found"
    elif command -v python3 >/dev/null 2>&1; then
        echo "setup: fetching ptxas (nvidia-cuda-nvcc $PTXAS_WHEEL_VERSION wheel)"
        tmp="$(mktemp -d)"
        if python3 -m pip download --quiet --no-deps --dest "$tmp" \
                "nvidia-cuda-nvcc==$PTXAS_WHEEL_VERSION" \
            && $SUDO mkdir -p "$PTXAS_DIR" \
            && $SUDO python3 -m zipfile -e "$tmp"/nvidia_cuda_nvcc-*.whl "$PTXAS_DIR" \
            && $SUDO chmod +x "$PTXAS_DIR/nvidia/cu13/bin/ptxas"; then
            "$PTXAS_DIR/nvidia/cu13/bin/ptxas" --version | tail -1
        else
            echo "setup: warning: could not fetch ptxas; PTX tests will not assemble" >&2
        fi
        rm -rf "$tmp"
    else
        echo "setup: warning: no python3 to fetch ptxas; PTX tests will not assemble" >&2
    fi
fi
