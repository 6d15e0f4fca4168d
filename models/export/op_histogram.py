#!/usr/bin/env python3
"""Print the ONNX op-type histogram of every fixture (or of the given .onnx files).

    /work/venv/bin/python models/export/op_histogram.py [path/to/model.onnx ...]

Counts nodes of the main graph, of If/Loop/Scan subgraphs and of model-local
functions; a final table lists the union of op types and which fixtures use them.
"""

import collections
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]


def histogram(model: onnx.ModelProto) -> collections.Counter:
    hist: collections.Counter = collections.Counter()

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            dom = node.domain if node.domain not in ("", "ai.onnx") else ""
            hist[f"{dom}::{node.op_type}" if dom else node.op_type] += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    for fn in model.functions:
        for node in fn.node:
            hist[f"fn:{fn.name}/{node.op_type}"] += 1
    return hist


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "models" / "fixtures").glob("*/model.onnx"))
    users: dict[str, list[str]] = collections.defaultdict(list)
    for p in paths:
        m = onnx.load(str(p), load_external_data=False)
        h = histogram(m)
        name = p.parent.name
        opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
        print(f"== {name} (opset {opset}, {sum(h.values())} nodes, {len(m.graph.initializer)} initializers)")
        print("   " + ", ".join(f"{k} {v}" for k, v in sorted(h.items(), key=lambda kv: (-kv[1], kv[0]))))
        for k in h:
            users[k].append(name)
    print(f"== union: {len(users)} op types")
    for k in sorted(users):
        print(f"   {k:24s} {', '.join(users[k])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
