#!/usr/bin/env python3
"""CPU benchmark of dqc against onnxruntime on DiT-S/2 (see scripts/bench-cpu.sh).

    python scripts/bench_cpu.py --dqc target/release/dqc --out target/bench-cpu [--threads N]

Each engine runs in its own child process, so that peak memory (max RSS, from wait4)
belongs to one engine only:
  1. export   DiT-S/2 (diffusers DiTTransformer2DModel: hidden 384, depth 12, 6 heads,
              patch 2, latent 32x32x4, learned sigma), seeded random weights, TorchScript
              exporter opset 17, dynamic batch; inputs.npz for batch 2.
  2. compile  `dqc compile model.onnx --target cpu` (wall time; goal < 5 s).
  3. time     onnxruntime CPU and `dqc bench PLAN --inputs inputs.npz --threads T`, same
              inputs, same threads, --iters timed forwards each after --warmup.
Prints one table (median/p10/p90 and peak RSS of each) and the ratio dqc / onnxruntime.

By default (interleaved) both engines load once, each in its own long-lived child, and
take turns one forward at a time (ort, dqc, dqc, ort, ..., with --gap ms of idle before
each turn), driven over pipes (`dqc bench --lockstep`, and the same protocol for
onnxruntime). The host's slow and fast phases (neighbours on shared cores and caches, each
lasting seconds) then fall on both engines alike; the ratio is the median, over all
forwards, of each dqc forward's time over the onnxruntime forward next to it in time.
This repeats for --pairs fresh pairs of processes, alternating which engine loads first
(a process started second has measured a few per cent faster than an identical one
started first). The per-forward times are kept in OUT/interleaved_ms.json.

--model gemm-chain runs the same comparison on the matrix products of DiT-S/2's MLPs
alone (24 MatMuls, nothing fused): it compares the two GEMM cores, which the full model's
fusions hide.

With --separate (or --rounds R > 1) each engine instead runs all its forwards in one
process of its own, R times, in the order ort, dqc, dqc, ort, ...; each engine's figures
are then the medians over its rounds and the ratio is the median of the per-round ratios.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def export(out: Path) -> None:
    import collections

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "models" / "export"))
    from export_onnx import _export, _First  # noqa: E402
    from diffusers import DiTTransformer2DModel

    cfg = dict(
        num_attention_heads=6,
        attention_head_dim=64,
        in_channels=4,
        out_channels=8,
        num_layers=12,
        sample_size=32,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    torch.manual_seed(0)
    m = DiTTransformer2DModel(**cfg).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(
        hidden_states=torch.randn(2, 4, 32, 32, generator=g),
        timestep=torch.tensor([999, 10], dtype=torch.int64),
        class_labels=torch.tensor([3, 7], dtype=torch.int64),
    )
    spec = dict(
        module=_First(m, list(inputs)),
        inputs=inputs,
        outputs=["sample"],
        dynamic_batch=list(inputs),
    )
    out.mkdir(parents=True, exist_ok=True)
    _export(spec, "torchscript", 17, out / "model.onnx")
    np.savez(out / "inputs.npz", **{k: v.numpy() for k, v in inputs.items()})
    params = sum(p.numel() for p in m.parameters())
    (out / "config.json").write_text(json.dumps(dict(cfg, params=params), indent=1))


def export_gemm_chain(out: Path) -> None:
    """The GEMM core alone: the MatMuls of DiT-S/2's twelve MLPs, nothing between them
    (x[2,256,384] through 384->1536 and 1536->384, twelve times; 54 MB of seeded random
    weights, so like the model's they do not stay in cache). Both engines run only their
    matrix products here."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    for i in range(12):
        for j, (k, n) in enumerate([(384, 1536), (1536, 384)]):
            w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}_{j}"))
            nxt = "sample" if (i, j) == (11, 1) else f"h{i}_{j}"
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}_{j}"], [nxt]))
            cur = nxt
    g = helper.make_graph(
        nodes, "gemm_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 256, 384])],
        [helper.make_tensor_value_info("sample", TensorProto.FLOAT, [2, 256, 384])],
        inits)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              str(out / "model.onnx"))
    np.savez(out / "inputs.npz", x=rng.standard_normal((2, 256, 384)).astype(np.float32))
    (out / "config.json").write_text(json.dumps(dict(model="gemm-chain",
                                                     params=12 * 2 * 384 * 1536)))


def ort_session(out: Path, threads: int, warmup: int):
    """An onnxruntime CPU session of the model with all graph optimizations, `threads`
    intra-op threads, run `warmup` times; returns (session, feeds)."""
    import numpy as np
    import onnxruntime as rt

    so = rt.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = rt.InferenceSession(str(out / "model.onnx"), so, providers=["CPUExecutionProvider"])
    feeds = dict(np.load(out / "inputs.npz"))
    for _ in range(warmup):
        sess.run(None, feeds)
    return sess, feeds


def ort(out: Path, threads: int, iters: int, warmup: int) -> None:
    import numpy as np

    sess, feeds = ort_session(out, threads, warmup)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        res = sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    np.savez(out / "ort_outputs.npz", sample=res[0])
    times.sort()
    print(json.dumps(dict(median=times[len(times) // 2], p10=times[len(times) // 10],
                          p90=times[(len(times) * 9) // 10])))


def ort_worker(out: Path, threads: int, iters: int, warmup: int) -> None:
    """onnxruntime under the `dqc bench --lockstep` protocol: `ready` after the warm-up,
    then one timed forward per line read from stdin, each answered with `ms <time>`."""
    import numpy as np

    sess, feeds = ort_session(out, threads, warmup)
    print("ready", flush=True)
    res = None
    for i in range(iters):
        if not sys.stdin.readline():
            sys.exit(f"error: stdin closed before timed run {i + 1} of {iters}")
        t = time.perf_counter()
        res = sess.run(None, feeds)
        print(f"ms {(time.perf_counter() - t) * 1e3:.3f}", flush=True)
    np.savez(out / "ort_outputs.npz", sample=res[0])


class Turns:
    """An engine in a child process under the lockstep protocol."""

    def __init__(self, name: str, cmd: list[str], env: dict | None = None):
        self.name, self.cmd = name, cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env, text=True)
        self.times: list[float] = []
        self.expect("ready")

    def expect(self, what: str) -> str:
        line = self.p.stdout.readline()
        if not line.startswith(what):
            self.p.kill()
            sys.exit(f"error: {self.name} ({' '.join(self.cmd)}): expected `{what}`, "
                     f"got {line!r}")
        return line

    def turn(self) -> None:
        """One timed forward."""
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        self.times.append(float(self.expect("ms ").split()[1]))

    def finish(self) -> int:
        """Wait for the exit; return the peak RSS in MiB."""
        self.p.stdin.close()
        self.p.stdout.read()
        _, status, usage = os.wait4(self.p.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"error: {self.name} ({' '.join(self.cmd)}) failed (exit {code})")
        return usage.ru_maxrss // 1024


def med(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def pct(xs: list[float], p: int) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, (len(xs) * p) // 100)]


def child(cmd: list[str], env: dict | None = None) -> tuple[str, float, int]:
    """Run `cmd`, return (stdout, wall seconds, max RSS in MiB)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    stdout = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return stdout, wall, usage.ru_maxrss // 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dqc", default=str(ROOT / "target" / "release" / "dqc"))
    ap.add_argument("--model", choices=["dit-s2", "gemm-chain"], default="dit-s2",
                    help="gemm-chain: only the matrix products of DiT-S/2's MLPs, to "
                         "compare the GEMM cores (default out: target/bench-cpu-chain)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--separate", action="store_true",
                    help="time each engine in a process of its own instead of taking turns "
                         "one forward at a time (see the module doc)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="implies --separate: run each engine this many times, alternating "
                         "which goes first")
    ap.add_argument("--pairs", type=int, default=2,
                    help="interleaved: process pairs, alternating which engine loads first")
    ap.add_argument("--gap", type=float, default=50.0,
                    help="interleaved: idle milliseconds before each turn")
    ap.add_argument("--step", choices=["all", "export", "ort", "ort-worker"], default="all")
    a = ap.parse_args()
    if a.out is None:
        a.out = str(ROOT / "target" / ("bench-cpu" if a.model == "dit-s2" else "bench-cpu-chain"))
    out = Path(a.out)
    interleave = not a.separate and a.rounds <= 1
    if a.step == "export":
        (export if a.model == "dit-s2" else export_gemm_chain)(out)
        return 0
    if a.step == "ort":
        ort(out, a.threads, a.iters, a.warmup)
        return 0
    if a.step == "ort-worker":
        ort_worker(out, a.threads, a.iters, a.warmup)
        return 0

    me = [sys.executable, __file__, "--model", a.model, "--out", str(out),
          "--threads", str(a.threads),
          "--iters", str(a.iters), "--warmup", str(a.warmup)]
    if not (out / "model.onnx").exists():
        child(me + ["--step", "export"])
    cfg = json.loads((out / "config.json").read_text())
    plan = out / f"{a.model}.dqcplan"
    _, compile_s, _ = child([a.dqc, "compile", str(out / "model.onnx"), "--target", "cpu",
                             "-o", str(plan)])
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))

    def run_ort() -> tuple[dict, int]:
        ort_out, _, rss = child(me + ["--step", "ort"])
        return json.loads(ort_out.strip().splitlines()[-1]), rss

    def dqc_cmd() -> list[str]:
        return [a.dqc, "bench", str(plan), "--inputs", str(out / "inputs.npz"),
                "--iters", str(a.iters), "--warmup", str(a.warmup),
                "--threads", str(a.threads), "--outputs", str(out / "dqc_outputs.npz")]

    def run_dqc() -> tuple[dict, int]:
        dqc_out, _, rss = child(dqc_cmd(), env)
        m = re.search(r"median\s+([0-9.]+)\s*ms.*p10\s+([0-9.]+)\s*ms.*p90\s+([0-9.]+)\s*ms",
                      dqc_out)
        if not m:
            sys.exit(f"error: cannot read `dqc bench` output:\n{dqc_out}")
        return dict(median=float(m.group(1)), p10=float(m.group(2)), p90=float(m.group(3))), rss

    runs: dict[str, list[dict]] = {"ort": [], "dqc": []}
    rss = {"ort": 0, "dqc": 0}
    if interleave:
        pairs: list[float] = []
        per_fwd: dict[str, list[float]] = {"ort": [], "dqc": []}
        for p in range(a.pairs):
            # Loaded and warmed up one after the other (so the warm-ups do not overlap);
            # which engine loads first alternates: of two processes of the same engine,
            # the one started second has measured a few per cent faster here.
            first = ("ort", "dqc") if p % 2 == 0 else ("dqc", "ort")
            eng: dict[str, Turns] = {}
            for name in first:
                eng[name] = (Turns("onnxruntime", me + ["--step", "ort-worker"])
                             if name == "ort"
                             else Turns("dqc", dqc_cmd() + ["--lockstep"], env))
            for i in range(a.iters):
                for name in (first if i % 2 == 0 else first[::-1]):
                    time.sleep(a.gap / 1e3)
                    eng[name].turn()
            for k, e in eng.items():
                rss[k] = max(rss[k], e.finish())
                per_fwd[k] += e.times
            ratios = [d / o for o, d in zip(eng["ort"].times, eng["dqc"].times)]
            pairs += ratios
            print(f"pair {p + 1} ({' then '.join(first)} loaded): onnxruntime "
                  f"{med(eng['ort'].times):.2f} ms, dqc {med(eng['dqc'].times):.2f} ms, "
                  f"median ratio {med(ratios):.3f}", flush=True)
        for k, ts in per_fwd.items():
            runs[k].append(dict(median=med(ts), p10=pct(ts, 10), p90=pct(ts, 90)))
        (out / "interleaved_ms.json").write_text(json.dumps(
            {"onnxruntime": per_fwd["ort"], "dqc": per_fwd["dqc"]}))
        ratio = med(pairs)
        print(f"per-forward ratios dqc / onnxruntime: p10 {pct(pairs, 10):.3f}, "
              f"median {ratio:.3f}, p90 {pct(pairs, 90):.3f}; dqc faster in "
              f"{sum(r < 1 for r in pairs)} of {len(pairs)}")
    else:
        for r in range(max(a.rounds, 1)):
            order = ("ort", "dqc") if r % 2 == 0 else ("dqc", "ort")
            for name in order:
                t, m = run_ort() if name == "ort" else run_dqc()
                runs[name].append(t)
                rss[name] = max(rss[name], m)
            if a.rounds > 1:
                o, d = runs["ort"][-1]["median"], runs["dqc"][-1]["median"]
                print(f"round {r + 1} ({' then '.join(order)}): onnxruntime {o:.2f} ms, "
                      f"dqc {d:.2f} ms, ratio {d / o:.3f}")
        ratio = med([d["median"] / o["median"] for o, d in zip(runs["ort"], runs["dqc"])])

    ort_t = {k: med([t[k] for t in runs["ort"]]) for k in ("median", "p10", "p90")}
    dqc_t = {k: med([t[k] for t in runs["dqc"]]) for k in ("median", "p10", "p90")}
    ort_rss, dqc_rss = rss["ort"], rss["dqc"]

    import numpy as np
    ref = np.load(out / "ort_outputs.npz")["sample"]
    got = np.load(out / "dqc_outputs.npz")["sample"]
    rel = float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-30))

    what = ("DiT-S/2" if a.model == "dit-s2"
            else "MatMul chain of DiT-S/2's MLPs (24 products)")
    print(f"{what} ({cfg['params'] / 1e6:.1f} M params), batch 2, latent 32x32x4, "
          f"{a.threads} threads, {a.iters} iterations after {a.warmup} warm-up")
    print(f"{'engine':<12} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} {'peak RSS MiB':>13}")
    for name, t, rss in (("onnxruntime", ort_t, ort_rss), ("dqc", dqc_t, dqc_rss)):
        print(f"{name:<12} {t['median']:>10.2f} {t['p10']:>8.2f} {t['p90']:>8.2f} {rss:>13}")
    print(f"dqc compile: {compile_s:.2f} s (incl. process start)")
    print(f"max |dqc - ort| / max |ort| = {rel:.2e}")
    if interleave:
        how = f" over {a.pairs} process pairs x {a.iters} interleaved forwards"
    else:
        how = f", median of {a.rounds} rounds" if a.rounds > 1 else ""
    print(f"ratio dqc / onnxruntime (median{how}) = {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
