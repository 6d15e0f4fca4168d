#!/usr/bin/env python3
"""PyTorch side of the GPU device check (scripts/device-check.sh): reference timings.

    device_check.py gemm --dtype bf16|int8 --m M --n N --k K
    device_check.py attention --b B --h H --s S --d D
    device_check.py dit-block --b B --n N --hidden C --heads H
    device_check.py ratio DQC_MS TORCH_MS
    device_check.py batch BENCH_TXT

`batch` runs every line of the bundle's bench.txt (`NAME PLAN KIND ARGS…`) in this one
process and prefixes each printed line with NAME.

Each benchmark prints `median_ms=X` (CUDA-event timing of `--iters` runs after
`--warmup`, inputs already on the GPU) and a description line. `gemm --dtype int8` also
prints `bf16_median_ms=Y`: the issue's goal compares dqc's int8 GEMM with cuBLAS bf16.
"""

import argparse
import statistics
import sys


def timed(fn, warmup, iters):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def gemm(a):
    import torch

    dev = "cuda"
    if a.dtype == "int8":
        x = torch.randint(-8, 8, (a.m, a.k), dtype=torch.int8, device=dev)
        w = torch.randint(-8, 8, (a.k, a.n), dtype=torch.int8, device=dev)
        ms = timed(lambda: torch._int_mm(x, w), a.warmup, a.iters)
        xb, wb = x.to(torch.bfloat16), w.to(torch.bfloat16)
        bf = timed(lambda: torch.matmul(xb, wb), a.warmup, a.iters)
        print(f"torch._int_mm [{a.m},{a.k}]x[{a.k},{a.n}] int8->int32")
        print(f"median_ms={ms:.4f}")
        print(f"bf16_median_ms={bf:.4f}")
    else:
        x = torch.randn(a.m, a.k, dtype=torch.bfloat16, device=dev)
        w = torch.randn(a.k, a.n, dtype=torch.bfloat16, device=dev)
        ms = timed(lambda: torch.matmul(x, w), a.warmup, a.iters)
        print(f"torch.matmul [{a.m},{a.k}]x[{a.k},{a.n}] bf16 (cuBLAS)")
        print(f"median_ms={ms:.4f}")
    flops = 2.0 * a.m * a.n * a.k
    print(f"torch_tflops={flops / ms / 1e9:.1f}")


def attention(a):
    import torch
    import torch.nn.functional as F

    shape = (a.b, a.h, a.s, a.d)
    q, k, v = (torch.randn(shape, dtype=torch.bfloat16, device="cuda") for _ in range(3))
    ms = timed(lambda: F.scaled_dot_product_attention(q, k, v), a.warmup, a.iters)
    print(f"F.scaled_dot_product_attention B{a.b} H{a.h} S{a.s} D{a.d} bf16")
    print(f"median_ms={ms:.4f}")


def dit_block(a):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    c_, h_ = a.hidden, a.heads
    d_ = c_ // h_

    def rnd(*s):
        return torch.rand(*s, dtype=dt, device=dev) * 2 - 1

    x, c = rnd(a.b, a.n, c_), rnd(a.b, c_)
    w_ada, b_ada = rnd(c_, 6 * c_), rnd(6 * c_)
    w_qkv, b_qkv = rnd(c_, 3 * c_), rnd(3 * c_)
    w_proj, b_proj = rnd(c_, c_), rnd(c_)
    w_fc1, b_fc1 = rnd(c_, 4 * c_), rnd(4 * c_)
    w_fc2, b_fc2 = rnd(4 * c_, c_), rnd(c_)

    def block():
        ada = F.silu(c) @ w_ada + b_ada
        sh1, sc1, g1, sh2, sc2, g2 = ada.chunk(6, dim=1)
        n1 = F.layer_norm(x, (c_,), eps=1e-6)
        m1 = n1 * (1 + sc1[:, None]) + sh1[:, None]
        qkv = m1 @ w_qkv + b_qkv
        q, k, v = (t.reshape(a.b, a.n, h_, d_).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(a.b, a.n, c_)
        x1 = x + g1[:, None] * (o @ w_proj + b_proj)
        n2 = F.layer_norm(x1, (c_,), eps=1e-6)
        m2 = n2 * (1 + sc2[:, None]) + sh2[:, None]
        f = F.gelu(m2 @ w_fc1 + b_fc1, approximate="tanh") @ w_fc2 + b_fc2
        return x1 + g2[:, None] * f

    with torch.no_grad():
        ms = timed(block, a.warmup, a.iters)
    print(f"eager PyTorch DiT block B{a.b} N{a.n} hidden {c_} heads {h_} bf16")
    print(f"median_ms={ms:.4f}")


RUNS = {"gemm": gemm, "attention": attention, "dit-block": dit_block}


def ratio(a):
    dqc, torch_ms = float(a.dqc_ms), float(a.torch_ms)
    if dqc <= 0 or torch_ms <= 0:
        print("ratio=nan")
        return 1
    print(f"dqc_over_torch={dqc / torch_ms:.3f} torch_over_dqc={torch_ms / dqc:.3f}")
    return 0


def batch(path, parser):
    import contextlib
    import io

    import torch

    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    status = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            name, _plan, rest = parts[0], parts[1], parts[2:]
            buf = io.StringIO()
            try:
                a = parser.parse_args(rest)
                with contextlib.redirect_stdout(buf):
                    RUNS[a.cmd](a)
            except Exception as e:  # one failing benchmark must not hide the others
                print(f"{name} error: {e}")
                status = 1
            for out in buf.getvalue().splitlines():
                print(f"{name} {out}")
            sys.stdout.flush()
    return status


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("gemm", "attention", "dit-block"):
        s = sub.add_parser(name)
        s.add_argument("--iters", type=int, default=50)
        s.add_argument("--warmup", type=int, default=10)
        if name == "gemm":
            s.add_argument("--dtype", choices=["bf16", "int8"], required=True)
            for d in ("m", "n", "k"):
                s.add_argument(f"--{d}", type=int, required=True)
        elif name == "attention":
            for d in ("b", "h", "s", "d"):
                s.add_argument(f"--{d}", type=int, required=True)
        else:
            for d in ("b", "n", "hidden", "heads"):
                s.add_argument(f"--{d}", type=int, required=True)
    r = sub.add_parser("ratio")
    r.add_argument("dqc_ms")
    r.add_argument("torch_ms")
    is_batch = len(sys.argv) == 3 and sys.argv[1] == "batch"
    a = None if is_batch else p.parse_args()
    if a is not None and a.cmd == "ratio":
        return ratio(a)
    import torch

    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device", file=sys.stderr)
        return 1
    if is_batch:
        return batch(sys.argv[2], p)
    RUNS[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
