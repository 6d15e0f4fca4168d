#!/usr/bin/env bash
# The GPU device check: run on a Linux x86-64 machine with an NVIDIA GPU, its driver, the
# CUDA toolkit (ptxas, compute-sanitizer) and PyTorch; no Rust or LLVM needed.
#
#   device-check.sh BUNDLE OUTDIR
#
# BUNDLE comes from scripts/build-device-bundle.sh (prebuilt dqc-run, plans, PTX, fixture
# inputs and references). Every step is logged to OUTDIR/device-check.log as PASS or FAIL
# and all steps run; the exit status is 1 if any failed. Steps:
#   0. environment (GPU, driver, toolkit, torch) and plans the bundle could not build;
#   1. the CUDA executor's tests on hand-written PTX (bin/cuda-tests --include-ignored);
#   2. every fixture plan (sm_90) on the GPU against the stored onnxruntime outputs
#      (rtol 1e-3, max-norm relative);
#   3. every per-family plan: `dqc-run check` (GPU vs the CPU backend, random inputs,
#      several shapes; rtol 1e-3 for f32 outputs, 2e-2 for bf16);
#   4. ptxas on every PTX file (sm_90, sm_100a, sm_120);
#   5. compute-sanitizer memcheck on one whole fixture plan;
#   6. benchmarks against PyTorch on the same GPU (cuBLAS GEMM bf16 / int8,
#      scaled_dot_product_attention, an eager bf16 DiT block), printed as ratios.
# Environment: PYTHON (default python3), DEADLINE (seconds for steps 1-5, default 420;
# later steps are marked FAIL "not run"), BENCH_DEADLINE (default 560, for step 6),
# STEP_TIMEOUT (seconds for one plan run or check, default 30: a hung kernel costs no more).
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 BUNDLE OUTDIR" >&2
    exit 2
fi
BUNDLE=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" || exit 2
OUT=$(cd "$2" && pwd) || exit 2
LOG="$OUT/device-check.log"
: > "$LOG"
RUN="$BUNDLE/bin/dqc-run"
PY="${PYTHON:-python3}"
HELPER="$BUNDLE/device_check.py"
DEADLINE="${DEADLINE:-420}"
BENCH_DEADLINE="${BENCH_DEADLINE:-560}"
STEP_TIMEOUT="${STEP_TIMEOUT:-30}"
T0=$(date +%s)
PASSES=0
FAILS=0
FAILED=()

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
elapsed() { echo $(( $(date +%s) - T0 )); }

# record NAME RC SECONDS: count and print one PASS/FAIL line.
record() {
    local name=$1 rc=$2 secs=$3
    if [ "$rc" = 0 ]; then
        PASSES=$((PASSES + 1))
        say "PASS  $name (${secs}s)"
    else
        FAILS=$((FAILS + 1))
        FAILED+=("$name")
        local why="exit $rc"
        [ "$rc" = 124 ] && why="timed out"
        say "FAIL  $name ($why, ${secs}s)"
    fi
}

# step NAME TIMEOUT LIMIT CMD…: run CMD with its output in the log (and in $STEP_OUT, for
# the caller), unless the run is past LIMIT seconds (then FAIL "not run").
STEP_N=0
mkdir -p "$OUT/steps"
step() {
    local name=$1 t=$2 limit=$3
    shift 3
    if [ "$(elapsed)" -ge "$limit" ]; then
        FAILS=$((FAILS + 1))
        FAILED+=("$name")
        say "FAIL  $name (not run: past the ${limit}s time budget)"
        return 1
    fi
    local s
    s=$(date +%s)
    STEP_N=$((STEP_N + 1))
    STEP_OUT="$OUT/steps/$STEP_N.txt"
    printf -- '---- %s\n$ %s\n' "$name" "$*" >> "$LOG"
    timeout "$t" "$@" > "$STEP_OUT" 2>&1
    local rc=$?
    cat "$STEP_OUT" >> "$LOG"
    record "$name" "$rc" $(( $(date +%s) - s ))
    return "$rc"
}

find_tool() {
    local t=$1
    for p in "$(command -v "$t" 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/$t" /usr/local/cuda/bin/"$t"; do
        [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

say "== dqc device check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
say "== 0. environment"
{
    cat "$BUNDLE/MANIFEST.txt" 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv 2>&1
    ldd --version 2>&1 | head -n 1
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
} | tee -a "$LOG"
PTXAS=$(find_tool ptxas) && say "ptxas: $PTXAS ($("$PTXAS" --version 2>&1 | tail -n 1))" || say "ptxas: not found"
SANITIZER=$(find_tool compute-sanitizer) && say "compute-sanitizer: $SANITIZER" || say "compute-sanitizer: not found"
step "dqc-run starts" 20 "$DEADLINE" "$RUN" --version
if [ -s "$BUNDLE/skipped.txt" ]; then
    while IFS=$'\t' read -r plan why; do
        record "build plan $plan (not built on the build machine: $why)" 1 0
    done < "$BUNDLE/skipped.txt"
fi

say "== 1. CUDA executor tests (hand-written PTX)"
if [ -x "$BUNDLE/bin/cuda-tests" ]; then
    step "executor tests" 120 "$DEADLINE" "$BUNDLE/bin/cuda-tests" --include-ignored --test-threads=1
else
    record "executor tests (bin/cuda-tests missing from the bundle)" 1 0
fi

say "== 2. fixtures on the GPU vs onnxruntime"
SANITIZE_PLAN=""
for plan in "$BUNDLE"/plans/fixtures/*.sm_90.dqcplan; do
    [ -f "$plan" ] || continue
    name=$(basename "$plan" .sm_90.dqcplan)
    fx="$BUNDLE/fixtures/$name"
    if step "fixture $name: run" "$STEP_TIMEOUT" "$DEADLINE" "$RUN" run "$plan" --inputs "$fx/inputs.npz" --outputs "$OUT/$name.gpu.npz" &&
        step "fixture $name: outputs vs onnxruntime (rtol 1e-3)" "$STEP_TIMEOUT" "$DEADLINE" "$RUN" compare "$OUT/$name.gpu.npz" "$fx/outputs.npz" --rtol 1e-3; then
        if [ -z "$SANITIZE_PLAN" ] || [ "$name" = dit ]; then
            SANITIZE_PLAN=$plan
        fi
    fi
done

say "== 3. kernel families: GPU vs CPU on random shapes"
if [ -f "$BUNDLE/checks.txt" ]; then
    while read -r plan rest; do
        [ -n "$plan" ] || continue
        # shellcheck disable=SC2086
        step "check $(basename "$plan" .dqcplan) $rest" "$STEP_TIMEOUT" "$DEADLINE" "$RUN" check "$BUNDLE/$plan" $rest < /dev/null
    done < "$BUNDLE/checks.txt"
fi

say "== 4. ptxas on every PTX file"
# the PTX travels inside the plans: extract it first
mkdir -p "$OUT/ptx"
for plan in "$BUNDLE"/plans/*/*.dqcplan; do
    [ -f "$plan" ] || continue
    "$RUN" ptx "$plan" "$OUT/ptx" > /dev/null 2>&1 || true
done
if [ -n "${PTXAS:-}" ]; then
    # one ptxas per file, all cores at once; a file's log ends in its exit status
    mkdir -p "$OUT/ptxas"
    s=$(date +%s)
    find "$OUT/ptx" -name '*.ptx' -print0 | xargs -0 -P "$(nproc)" -I{} sh -c \
        'f=$1; a=$(basename "$f" .ptx); a=${a##*.}; "$2" -arch="$a" -o /dev/null "$f" > "$3/$(basename "$f").log" 2>&1; echo "rc=$?" >> "$3/$(basename "$f").log"' \
        _ {} "$PTXAS" "$OUT/ptxas"
    secs=$(( $(date +%s) - s ))
    for f in "$OUT"/ptx/*.ptx; do
        [ -f "$f" ] || continue
        l="$OUT/ptxas/$(basename "$f").log"
        arch=$(basename "$f" .ptx)
        arch=${arch##*.}
        if grep -qx 'rc=0' "$l" 2>/dev/null; then
            PASSES=$((PASSES + 1))
            printf 'PASS  ptxas -arch=%s %s\n' "$arch" "$(basename "$f")" >> "$LOG"
        else
            cat "$l" >> "$LOG" 2>/dev/null
            record "ptxas -arch=$arch $(basename "$f")" 1 "$secs"
        fi
    done
    say "ptxas: $(ls "$OUT"/ptx/*.ptx 2>/dev/null | wc -l) files in ${secs}s (each PASS line is in the log)"
else
    record "ptxas (not found: install the CUDA toolkit or set CUDA_HOME)" 1 0
fi

say "== 5. compute-sanitizer memcheck on one whole plan"
if [ -z "${SANITIZER:-}" ]; then
    record "compute-sanitizer (not found)" 1 0
elif [ -z "$SANITIZE_PLAN" ]; then
    record "compute-sanitizer (no fixture plan ran correctly to check)" 1 0
else
    name=$(basename "$SANITIZE_PLAN" .sm_90.dqcplan)
    san_log="$OUT/sanitizer-$name.log"
    step "compute-sanitizer memcheck $name" 150 "$DEADLINE" \
        "$SANITIZER" --tool memcheck --error-exitcode 3 --log-file "$san_log" \
        "$RUN" run "$SANITIZE_PLAN" --inputs "$BUNDLE/fixtures/$name/inputs.npz" --outputs "$OUT/$name.sanitizer.npz"
    cat "$san_log" >> "$LOG" 2>/dev/null
    if grep -q "ERROR SUMMARY: 0 errors" "$san_log" 2>/dev/null; then
        record "compute-sanitizer: 0 errors" 0 0
    else
        record "compute-sanitizer: errors reported (see $san_log)" 1 0
    fi
fi

say "== 6. benchmarks vs PyTorch on the same GPU"
# median_ms FILE: the dqc-run or helper median from a captured output.
dqc_median() { sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$1" | head -n 1; }
if [ -f "$BUNDLE/bench.txt" ]; then
    # dqc first, every benchmark; then PyTorch, all in one process (one import, one
    # context); then the ratios.
    declare -A DQC_MS
    while read -r name plan kind args; do
        [ -n "$name" ] || continue
        graph=()
        [ "$kind" = dit-block ] && graph=(--graph --profile)
        step "bench $name: dqc" 60 "$BENCH_DEADLINE" \
            "$RUN" bench "$BUNDLE/$plan" --iters 50 --warmup 10 "${graph[@]+"${graph[@]}"}" < /dev/null || continue
        DQC_MS[$name]=$(dqc_median "$STEP_OUT")
    done < "$BUNDLE/bench.txt"
    if step "bench: torch (all)" 180 "$BENCH_DEADLINE" "$PY" "$HELPER" batch "$BUNDLE/bench.txt" < /dev/null; then
        t_out=$STEP_OUT
        while read -r name plan kind args; do
            [ -n "$name" ] || continue
            dm=${DQC_MS[$name]:-}
            tm=$(sed -n "s/^$name median_ms=\([0-9.]*\)$/\1/p" "$t_out" | head -n 1)
            say "BENCH $name: dqc ${dm:-?} ms, torch ${tm:-?} ms; $("$PY" "$HELPER" ratio "${dm:-0}" "${tm:-0}")"
            bf=$(sed -n "s/^$name bf16_median_ms=\([0-9.]*\)$/\1/p" "$t_out" | head -n 1)
            if [ -n "$bf" ]; then
                say "BENCH $name: vs cuBLAS bf16 at the same shape ($bf ms): $("$PY" "$HELPER" ratio "${dm:-0}" "$bf")"
            fi
        done < "$BUNDLE/bench.txt"
    fi
fi

say "== summary: $PASSES passed, $FAILS failed, $(elapsed)s"
for f in "${FAILED[@]+"${FAILED[@]}"}"; do
    say "   failed: $f"
done
[ "$FAILS" = 0 ]
