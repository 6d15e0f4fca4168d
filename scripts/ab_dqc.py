#!/usr/bin/env python3
"""A/B timing of two dqc variants on one plan, for CPU performance work.

    python3 scripts/ab_dqc.py PLAN --inputs in.npz [--threads T] [--iters N] [--pairs K]
        [--a-bin DQC] [--b-bin DQC] [--a-env NAME=VALUE ...] [--b-env NAME=VALUE ...]

A variant is a `dqc` binary plus environment variables (for a temporary switch read from
the environment while experimenting). Each of K process pairs loads both variants, each in
its own `dqc bench --lockstep` child, and lets them take turns one forward at a time
(a, b, b, a, ...) with --gap ms of idle before each turn, so both see the same phases of a
shared host. Which variant starts first alternates between pairs.

Two processes of the *same* variant differ by a few per cent for their whole life on the
build machine (2026-11: A/A pairs gave 0.97-1.02), so one pair proves little: use several
pairs, and run an A/A comparison (no --b-* options) to see the spread before trusting a
difference. Prints each pair's median ratio b / a and the median over all forwards.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu import Turns, med, pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def env_of(pairs: list[str]) -> dict:
    env = dict(os.environ)
    for kv in pairs:
        name, sep, value = kv.partition("=")
        if not sep or not name:
            sys.exit(f"error: `{kv}` is not NAME=VALUE")
        env[name] = value
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plan")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=30, help="forwards per variant and pair")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=4, help="process pairs")
    ap.add_argument("--gap", type=float, default=50.0, help="idle ms before each turn")
    default_bin = str(ROOT / "target" / "release" / "dqc")
    ap.add_argument("--a-bin", default=default_bin)
    ap.add_argument("--b-bin", default=None, help="default: --a-bin")
    ap.add_argument("--a-env", nargs="*", default=[], metavar="NAME=VALUE")
    ap.add_argument("--b-env", nargs="*", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()
    variants = {
        "a": (a.a_bin, env_of(a.a_env)),
        "b": (a.b_bin or a.a_bin, env_of(a.b_env)),
    }

    def start(name: str) -> Turns:
        binary, env = variants[name]
        env = dict(env, RAYON_NUM_THREADS=str(a.threads))
        return Turns(name, [binary, "bench", a.plan, "--inputs", a.inputs,
                            "--iters", str(a.iters), "--warmup", str(a.warmup),
                            "--threads", str(a.threads), "--lockstep"], env)

    every: list[float] = []
    times = {"a": [], "b": []}
    for p in range(a.pairs):
        first, second = ("a", "b") if p % 2 == 0 else ("b", "a")
        eng = {first: start(first)}
        eng[second] = start(second)
        for i in range(a.iters):
            for name in ((first, second) if i % 2 == 0 else (second, first)):
                time.sleep(a.gap / 1e3)
                eng[name].turn()
        for e in eng.values():
            e.finish()
        ratios = [tb / ta for ta, tb in zip(eng["a"].times, eng["b"].times)]
        every += ratios
        for k in times:
            times[k] += eng[k].times
        print(f"pair {p + 1} ({first} loaded first): a {med(eng['a'].times):.2f} ms, "
              f"b {med(eng['b'].times):.2f} ms, b / a median {med(ratios):.3f}, "
              f"b faster in {sum(r < 1 for r in ratios)} of {len(ratios)}", flush=True)
    print(f"all {len(every)} forwards: a {med(times['a']):.2f} ms, b {med(times['b']):.2f} ms; "
          f"b / a median {med(every):.3f} (p10 {pct(every, 10):.3f}, "
          f"p90 {pct(every, 90):.3f}), b faster in {sum(r < 1 for r in every)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
