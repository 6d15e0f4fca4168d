#!/usr/bin/env bash
# Build and gather everything the GPU device check needs, on this (build) machine.
#
#   scripts/build-device-bundle.sh [BUNDLE] [--plans-only] [--targets "sm_90 sm_100a sm_120"]
#                                  [--run-target sm_90]
#
# BUNDLE defaults to target/device-bundle. Steps:
#   1. build `dqc-run` (release, --features cuda: x86-64, no LLVM, the CUDA driver loaded at
#      run time), the CUDA executor's GPU tests (one test binary) and `dqc` (release, with
#      the PTX backend); skipped with --plans-only (then target/release/{dqc,dqc-run} must
#      exist, or $DQC / $DQC_RUN point at them);
#   2. compile every fixture (models/fixtures/*/model.onnx) for each target, copying its
#      inputs.npz / outputs.npz;
#   3. compile the per-family check models (scripts/device/families/*.dqc, see MANIFEST
#      there) and write checks.txt (one `dqc-run check` per line);
#   4. write and compile the benchmark models (GEMM bf16/int8 at DiT-XL shapes, attention
#      B2 H16 S4096 D72, one DiT-XL block at N 1024 and 4096; bf16);
#   5. extract every plan's PTX into ptx/ (for ptxas on the device);
#   6. copy the device scripts and write MANIFEST.txt.
# A model that does not compile (e.g. a kernel family the PTX backend lacks so far) is
# reported and skipped; the script exits 0 unless a build step fails. The GPU machine runs
# `BUNDLE/device-check.sh BUNDLE OUTDIR` (see docs/gpu.md).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=""
PLANS_ONLY=0
TARGETS="sm_90 sm_100a sm_120"
# The target the device runs; the others are checked with ptxas only.
RUN_TARGET="sm_90"
while [ $# -gt 0 ]; do
    case "$1" in
        --plans-only) PLANS_ONLY=1 ;;
        --targets) shift; TARGETS="$1" ;;
        --run-target) shift; RUN_TARGET="$1" ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) BUNDLE="$1" ;;
    esac
    shift
done
BUNDLE="${BUNDLE:-$ROOT/target/device-bundle}"
DQC="${DQC:-$ROOT/target/release/dqc}"
DQC_RUN="${DQC_RUN:-$ROOT/target/release/dqc-run}"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT" || die "cannot enter $ROOT"

if [ "$PLANS_ONLY" = 0 ]; then
    export LLVM_SYS_221_PREFIX="${LLVM_SYS_221_PREFIX:-/usr/lib/llvm-22}"
    log "== building dqc-run (release, --features cuda)"
    cargo build --release -p dqc-runtime --features cuda --bin dqc-run || die "building dqc-run failed"
    log "== building the CUDA executor's GPU tests"
    TEST_BIN=$(cargo test --release -p dqc-runtime --features cuda --test cuda --no-run \
        --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda":
        print(m["executable"])' | tail -n 1)
    [ -n "$TEST_BIN" ] && [ -x "$TEST_BIN" ] || die "building the GPU tests failed"
    log "== building dqc (release, PTX backend)"
    cargo build --release --bin dqc || die "building dqc failed"
fi
[ -x "$DQC" ] || die "$DQC not found (build it, or set DQC)"
[ -x "$DQC_RUN" ] || die "$DQC_RUN not found (build it, or set DQC_RUN)"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"/{bin,fixtures,plans/fixtures,plans/families,plans/bench,models/bench,ptx} ||
    die "cannot create $BUNDLE"
cp "$DQC_RUN" "$BUNDLE/bin/dqc-run"
if [ "$PLANS_ONLY" = 0 ]; then
    cp "$TEST_BIN" "$BUNDLE/bin/cuda-tests"
fi
# Symbols are not needed on the device; the bundle should stay small enough to carry.
if command -v strip > /dev/null; then
    strip --strip-debug "$BUNDLE"/bin/* 2> /dev/null || true
fi
COMPILED=0
SKIPPED=0
SKIP_LOG="$BUNDLE/skipped.txt"
: > "$SKIP_LOG"

# compile MODEL TARGET OUT [dqc compile options…]: report and continue on failure.
compile() {
    local model=$1 target=$2 out=$3
    shift 3
    local msg
    if msg=$("$DQC" compile "$model" --target "$target" -o "$out" "$@" 2>&1); then
        COMPILED=$((COMPILED + 1))
        log "   ok   $(basename "$out")"
        return 0
    fi
    SKIPPED=$((SKIPPED + 1))
    msg=$(printf '%s' "$msg" | grep -m1 'error' || printf '%s' "$msg" | tail -n 1)
    log "   SKIP $(basename "$out"): $msg"
    printf '%s\t%s\n' "$(basename "$out")" "$msg" >> "$SKIP_LOG"
    rm -f "$out"
    return 1
}

log "== fixtures (targets: $TARGETS)"
for dir in "$ROOT"/models/fixtures/*/; do
    name=$(basename "$dir")
    [ -f "$dir/model.onnx" ] || continue
    [ -f "$dir/inputs.npz" ] && [ -f "$dir/outputs.npz" ] || continue
    mkdir -p "$BUNDLE/fixtures/$name"
    cp "$dir/inputs.npz" "$dir/outputs.npz" "$BUNDLE/fixtures/$name/"
    for t in $TARGETS; do
        compile "$dir/model.onnx" "$t" "$BUNDLE/plans/fixtures/$name.$t.dqcplan"
    done
done

log "== per-family check models"
CHECKS="$BUNDLE/checks.txt"
: > "$CHECKS"
while IFS='|' read -r fam maxima runs; do
    fam=$(echo "$fam" | xargs)
    case "$fam" in ''|'#'*) continue ;; esac
    model="$ROOT/scripts/device/families/$fam.dqc"
    [ -f "$model" ] || { log "   SKIP $fam: no $model"; continue; }
    max_args=()
    for kv in $maxima; do max_args+=(--max-dim "$kv"); done
    for t in $TARGETS; do
        out="$BUNDLE/plans/families/$fam.$t.dqcplan"
        if compile "$model" "$t" "$out" "${max_args[@]}" && [ "$t" = "$RUN_TARGET" ]; then
            IFS=';' read -ra sets <<< "$runs"
            seed=1
            for set in "${sets[@]}"; do
                dims=""
                for kv in $set; do dims="$dims --dim $kv"; done
                printf 'plans/families/%s --seed %d%s\n' "$(basename "$out")" "$seed" "$dims" >> "$CHECKS"
                seed=$((seed + 1))
            done
        fi
    done
done < "$ROOT/scripts/device/families/MANIFEST"

log "== benchmark models"
BENCH="$BUNDLE/bench.txt"
: > "$BENCH"
M=8192
# GEMM shapes of DiT-XL (hidden 1152): qkv, proj, fc1, fc2.
for nk in "3456 1152" "1152 1152" "4608 1152" "1152 4608"; do
    set -- $nk
    N=$1
    K=$2
    m="$BUNDLE/models/bench/gemm_bf16_${M}x${N}x${K}.dqc"
    cat > "$m" <<EOF
// GEMM bf16: [$M,$K] x [$K,$N].
graph @gemm_bf16(%a: bf16[$M,$K], %b: bf16[$K,$N]) -> (bf16[$M,$N]) {
  %c = matmul(%a, %b)
  return %c
}
EOF
    compile "$m" "$RUN_TARGET" "$BUNDLE/plans/bench/gemm_bf16_${M}x${N}x${K}.$RUN_TARGET.dqcplan" &&
        echo "gemm_bf16_${M}x${N}x${K} plans/bench/gemm_bf16_${M}x${N}x${K}.$RUN_TARGET.dqcplan gemm --dtype bf16 --m $M --n $N --k $K" >> "$BENCH"
    m="$BUNDLE/models/bench/gemm_i8_${M}x${N}x${K}.dqc"
    cat > "$m" <<EOF
// GEMM int8: [$M,$K] x [$K,$N] -> i32.
graph @gemm_i8(%a: i8[$M,$K], %b: i8[$K,$N]) -> (i32[$M,$N]) {
  %c = matmul(%a, %b)
  return %c
}
EOF
    compile "$m" "$RUN_TARGET" "$BUNDLE/plans/bench/gemm_i8_${M}x${N}x${K}.$RUN_TARGET.dqcplan" &&
        echo "gemm_i8_${M}x${N}x${K} plans/bench/gemm_i8_${M}x${N}x${K}.$RUN_TARGET.dqcplan gemm --dtype int8 --m $M --n $N --k $K" >> "$BENCH"
done
m="$BUNDLE/models/bench/attention_b2h16s4096d72.dqc"
cat > "$m" <<'EOF'
// Attention bf16: B 2, H 16, S 4096, D 72 (packed heads, hidden 1152), non-causal.
graph @attention(%q: bf16[2,4096,1152], %k: bf16[2,4096,1152], %v: bf16[2,4096,1152]) -> (bf16[2,4096,1152]) {
  %o = attention(%q, %k, %v) {heads = 16, kv_heads = 16, scale = none, causal = false, has_mask = false}
  return %o
}
EOF
compile "$m" "$RUN_TARGET" "$BUNDLE/plans/bench/attention_b2h16s4096d72.$RUN_TARGET.dqcplan" &&
    echo "attention_b2h16s4096d72 plans/bench/attention_b2h16s4096d72.$RUN_TARGET.dqcplan attention --b 2 --h 16 --s 4096 --d 72" >> "$BENCH"
for N in 1024 4096; do
    m="$BUNDLE/models/bench/dit_xl_block_n$N.dqc"
    sed "s/@NTOK@/$N/g" "$ROOT/scripts/device/dit_xl_block.dqc.in" > "$m"
    compile "$m" "$RUN_TARGET" "$BUNDLE/plans/bench/dit_xl_block_n$N.$RUN_TARGET.dqcplan" &&
        echo "dit_xl_block_n$N plans/bench/dit_xl_block_n$N.$RUN_TARGET.dqcplan dit-block --b 2 --n $N --hidden 1152 --heads 16" >> "$BENCH"
done

# The PTX travels inside the plans only (the bundle must stay under the device's 64 MiB);
# device-check.sh extracts it with `dqc-run ptx` before running ptxas. Check here that
# every GPU plan has some.
log "== PTX"
for plan in "$BUNDLE"/plans/*/*.dqcplan; do
    [ -f "$plan" ] || continue
    case "$plan" in *.cpu.dqcplan) continue ;; esac
    tmp_ptx=$(mktemp -d)
    "$DQC_RUN" ptx "$plan" "$tmp_ptx" > /dev/null || log "   no PTX in $(basename "$plan")"
    rm -rf "$tmp_ptx"
done

cp "$ROOT/scripts/device-check.sh" "$ROOT/scripts/device_check.py" "$BUNDLE/"
{
    echo "dqc device bundle"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "targets: $TARGETS (runs: $RUN_TARGET)"
    echo "plans compiled: $COMPILED, skipped: $SKIPPED (skipped.txt)"
    echo "dqc-run needs glibc >= $(objdump -T "$BUNDLE/bin/dqc-run" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 | sed 's/GLIBC_//')"
} > "$BUNDLE/MANIFEST.txt"
SIZE_MB=$(du -sm "$BUNDLE" | cut -f1)
log "== bundle: $BUNDLE (${SIZE_MB} MiB), $COMPILED plans, $SKIPPED skipped"
if [ "$SIZE_MB" -gt 60 ]; then
    log "warning: the bundle is over 60 MiB; a device session may carry at most 64 MiB"
fi
cat "$BUNDLE/MANIFEST.txt"
