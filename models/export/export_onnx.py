#!/usr/bin/env python3
"""Export tiny, seeded configurations of real diffusers / transformers models to ONNX.

Run by hand (CI never runs Python):

    nice -n 15 /work/venv/bin/python models/export/export_onnx.py [name ...]

With no names every fixture is exported.  Each fixture lands in
models/fixtures/<name>/ as

  model.onnx    weights inline (no external data)
  inputs.npz    fixed seeded inputs, keys = ONNX graph input names
  outputs.npz   onnxruntime CPU outputs, keys = ONNX graph output names
  meta.json     exporter, opset, config, input/output names/shapes/dtypes,
                ORT-vs-PyTorch max abs diff, op histogram

A fixture whose export fails gets meta.json with status "failed" and the error; if
the exporter wrote a model that onnx/onnxruntime reject, it is kept as
model.rejected.onnx (a negative fixture).
"""

import collections
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "models" / "fixtures"
B = 2  # batch of the stored inputs

# ----------------------------------------------------------------------------- fixtures
#
# Each builder returns a dict:
#   module        nn.Module whose forward takes the inputs positionally and returns
#                 a tensor or a tuple of tensors
#   inputs        ordered dict name -> torch tensor
#   outputs       list of output names
#   dynamic_batch list of input names whose dim 0 is the batch
#   config        JSON-able config


def _seed() -> None:
    torch.manual_seed(0)


class _First(nn.Module):
    """Call `inner(*args, **kw, return_dict=False)` and return its first element."""

    def __init__(self, inner: nn.Module, names: list[str], extra: dict | None = None):
        super().__init__()
        self.inner = inner
        self.names = names
        self.extra = extra or {}

    def forward(self, *args):
        kw = dict(zip(self.names, args))
        out = self.inner(**kw, **self.extra, return_dict=False)
        return out[0]


def build_dit():
    from diffusers import DiTTransformer2DModel

    cfg = dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=10,
        norm_num_groups=4,
    )
    _seed()
    m = DiTTransformer2DModel(**cfg).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(
        hidden_states=torch.randn(B, 4, 8, 8, generator=g),
        timestep=torch.tensor([999, 10], dtype=torch.int64),
        class_labels=torch.tensor([3, 7], dtype=torch.int64),
    )
    return dict(
        module=_First(m, list(inputs)),
        inputs=inputs,
        outputs=["sample"],
        dynamic_batch=list(inputs),
        config=cfg,
    )


def build_pixart():
    from diffusers import PixArtTransformer2DModel

    cfg = dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=32,
        sample_size=8,
        patch_size=2,
        caption_channels=24,
        norm_num_groups=4,
        use_additional_conditions=False,
    )
    _seed()
    m = PixArtTransformer2DModel(**cfg).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(
        hidden_states=torch.randn(B, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(B, 6, 24, generator=g),
        timestep=torch.tensor([999, 10], dtype=torch.int64),
    )
    extra = dict(added_cond_kwargs={"resolution": None, "aspect_ratio": None})
    return dict(
        module=_First(m, list(inputs), extra),
        inputs=inputs,
        outputs=["sample"],
        dynamic_batch=list(inputs),
        config=cfg,
    )


def build_pixart_static():
    """PixArt with a static batch: with dynamic_axes the TorchScript exporter turns
    `hidden_states.squeeze(1)` into an If whose then-branch squeezes a dim of 16,
    which onnx shape inference and onnxruntime reject."""
    spec = build_pixart()
    spec["dynamic_batch"] = []
    return spec


def build_sd3():
    from diffusers import SD3Transformer2DModel

    cfg = dict(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=24,
        caption_projection_dim=32,
        pooled_projection_dim=16,
        out_channels=4,
        pos_embed_max_size=8,
    )
    _seed()
    m = SD3Transformer2DModel(**cfg).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(
        hidden_states=torch.randn(B, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(B, 6, 24, generator=g),
        pooled_projections=torch.randn(B, 16, generator=g),
        timestep=torch.tensor([999.0, 10.0], dtype=torch.float32),
    )
    return dict(
        module=_First(m, list(inputs)),
        inputs=inputs,
        outputs=["sample"],
        dynamic_batch=list(inputs),
        config=cfg,
    )


def build_flux():
    from diffusers import FluxTransformer2DModel

    cfg = dict(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=24,
        pooled_projection_dim=16,
        guidance_embeds=False,
        axes_dims_rope=[4, 6, 6],
    )
    _seed()
    m = FluxTransformer2DModel(**{**cfg, "axes_dims_rope": tuple(cfg["axes_dims_rope"])}).eval()
    g = torch.Generator().manual_seed(1)
    h = w = 4  # latent tokens grid (already packed 2x2 in a real pipeline)
    n_txt = 6
    img_ids = torch.zeros(h, w, 3)
    img_ids[..., 1] = torch.arange(h)[:, None].float()
    img_ids[..., 2] = torch.arange(w)[None, :].float()
    inputs = collections.OrderedDict(
        hidden_states=torch.randn(B, h * w, 16, generator=g),
        encoder_hidden_states=torch.randn(B, n_txt, 24, generator=g),
        pooled_projections=torch.randn(B, 16, generator=g),
        timestep=torch.tensor([1.0, 0.25], dtype=torch.float32),
        img_ids=img_ids.reshape(h * w, 3),
        txt_ids=torch.zeros(n_txt, 3),
    )
    class Wrap(nn.Module):
        """Explicit signature: torch.export cannot map dynamic_shapes onto *args."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids):
            return self.inner(
                hidden_states=hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                pooled_projections=pooled_projections,
                timestep=timestep,
                img_ids=img_ids,
                txt_ids=txt_ids,
                return_dict=False,
            )[0]

    return dict(
        module=Wrap(m),
        inputs=inputs,
        outputs=["sample"],
        dynamic_batch=["hidden_states", "encoder_hidden_states", "pooled_projections", "timestep"],
        config=cfg,
    )


def build_mamba():
    from transformers import MambaConfig, MambaModel

    cfg = dict(
        vocab_size=64,
        hidden_size=32,
        state_size=8,
        num_hidden_layers=2,
        expand=2,
        conv_kernel=4,
        time_step_rank=4,
        use_cache=False,
    )
    _seed()
    m = MambaModel(MambaConfig(**cfg)).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(input_ids=torch.randint(0, 64, (1, 16), generator=g))

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    return dict(
        module=Wrap(m),
        inputs=inputs,
        outputs=["last_hidden_state"],
        dynamic_batch=["input_ids"],
        config=cfg,
    )


def _lm_wrap(m):
    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    return Wrap(m)


def build_gpt2():
    from transformers import GPT2Config, GPT2Model

    cfg = dict(
        vocab_size=64,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        use_cache=False,
        attn_implementation="eager",
    )
    _seed()
    m = GPT2Model(GPT2Config(**cfg)).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(input_ids=torch.randint(0, 64, (B, 16), generator=g))
    return dict(
        module=_lm_wrap(m),
        inputs=inputs,
        outputs=["last_hidden_state"],
        dynamic_batch=["input_ids"],
        config=cfg,
    )


def build_gpt2_mask():
    """GPT-2 with an explicit attention_mask input (as inference exporters feed it).

    Without attention_mask, transformers' mask code calls torch.diff on position ids
    (packed-sequence detection), which the TorchScript exporter cannot export.
    """
    spec = build_gpt2()
    ids = spec["inputs"]["input_ids"]
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding on the second row
    spec["inputs"]["attention_mask"] = mask

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=False
            )[0]

    spec["module"] = Wrap(spec["module"].inner)
    spec["dynamic_batch"] = ["input_ids", "attention_mask"]
    return spec


def build_llama():
    from transformers import LlamaConfig, LlamaModel

    cfg = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        use_cache=False,
        attn_implementation="eager",
    )
    _seed()
    m = LlamaModel(LlamaConfig(**cfg)).eval()
    g = torch.Generator().manual_seed(1)
    inputs = collections.OrderedDict(input_ids=torch.randint(0, 64, (B, 16), generator=g))
    return dict(
        module=_lm_wrap(m),
        inputs=inputs,
        outputs=["last_hidden_state"],
        dynamic_batch=["input_ids"],
        config=cfg,
    )


# name -> (builder, exporter, opset)
FIXTURE_SPECS = {
    "dit": (build_dit, "torchscript", 17),
    "pixart": (build_pixart, "dynamo", 18),
    "pixart_torchscript": (build_pixart, "torchscript", 17),
    "pixart_torchscript_static": (build_pixart_static, "torchscript", 17),
    "sd3": (build_sd3, "torchscript", 17),
    "flux": (build_flux, "dynamo", 18),
    "mamba": (build_mamba, "torchscript", 17),
    "gpt2": (build_gpt2, "dynamo", 18),
    "gpt2_torchscript": (build_gpt2_mask, "torchscript", 17),
    "gpt2_torchscript_nomask": (build_gpt2, "torchscript", 17),
    "llama": (build_llama, "dynamo", 18),
}

# ----------------------------------------------------------------------------- export machinery


def _export(spec: dict, exporter: str, opset: int, path: Path) -> None:
    module, inputs = spec["module"], spec["inputs"]
    args = tuple(inputs.values())
    names = list(inputs)
    if exporter == "torchscript":
        dyn = {n: {0: "batch"} for n in spec["dynamic_batch"]}
        if dyn:
            for o in spec["outputs"]:
                dyn[o] = {0: "batch"}
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=spec["outputs"],
            dynamic_axes=dyn,
            do_constant_folding=True,
        )
    elif exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=64)
        dyn = tuple({0: batch} if n in spec["dynamic_batch"] else None for n in names)
        if not spec["dynamic_batch"]:
            dyn = None
        elif isinstance(module, _First):
            dyn = (dyn,)  # forward(*args): one top-level entry for the varargs
        prog = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=spec["outputs"],
            dynamic_shapes=dyn,
            external_data=False,
            optimize=True,
            verify=False,
        )
        prog.save(str(path), external_data=False)
    else:
        raise ValueError(exporter)


def _value_info(vi) -> dict:
    import onnx

    tt = vi.type.tensor_type
    dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None) for d in tt.shape.dim]
    return dict(name=vi.name, shape=dims, dtype=onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name)


def op_histogram(model) -> dict:
    """Op types of every node, including nodes inside subgraphs and local functions."""
    hist: collections.Counter = collections.Counter()

    def walk(graph):
        for node in graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            hist[key] += 1
            for attr in node.attribute:
                if attr.g is not None and attr.HasField("g"):
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    for fn in model.functions:
        for node in fn.node:
            hist[f"(fn {fn.name}) {node.op_type}"] += 1
    return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))


def run_fixture(name: str) -> dict:
    import onnx
    import onnxruntime as ort

    builder, exporter, opset = FIXTURE_SPECS[name]
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in ("model.onnx", "model.rejected.onnx", "model.onnx.data", "inputs.npz", "outputs.npz", "meta.json"):
        (out_dir / f).unlink(missing_ok=True)
    meta = dict(
        name=name,
        exporter=("torch.onnx.export(dynamo=False) (TorchScript)" if exporter == "torchscript" else "torch.onnx.export(dynamo=True)"),
        opset_requested=opset,
        command=f"nice -n 15 /work/venv/bin/python models/export/export_onnx.py {name}",
    )
    t0 = time.time()
    try:
        spec = builder()
        meta["config"] = spec["config"]
        meta["params"] = sum(p.numel() for p in spec["module"].parameters())
        with torch.no_grad():
            ref = spec["module"](*spec["inputs"].values())
        ref = ref if isinstance(ref, tuple) else (ref,)
        path = out_dir / "model.onnx"
        _export(spec, exporter, opset, path)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        try:
            onnx.checker.check_model(model, full_check=True)
            meta["checker_full_check"] = "ok"
        except Exception as e:  # strict shape inference; recorded, ORT may still run it
            meta["checker_full_check"] = f"{type(e).__name__}: {str(e)[:1500]}"
        meta["opset"] = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        meta["ir_version"] = model.ir_version
        meta["producer"] = f"{model.producer_name} {model.producer_version}"
        meta["inputs"] = [_value_info(v) for v in model.graph.input]
        meta["outputs"] = [_value_info(v) for v in model.graph.output]
        meta["initializers"] = len(model.graph.initializer)
        meta["op_histogram"] = op_histogram(model)

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        graph_inputs = [i.name for i in sess.get_inputs()]
        feeds = {}
        for gname, (iname, t) in zip(graph_inputs, spec["inputs"].items()):
            feeds[gname] = t.numpy()
        if len(graph_inputs) != len(spec["inputs"]):
            raise RuntimeError(f"graph has inputs {graph_inputs}, expected {list(spec['inputs'])}")
        out_names = [o.name for o in sess.get_outputs()]
        outs = sess.run(out_names, feeds)
        diffs = {n: float(np.abs(o - r.numpy()).max()) for n, o, r in zip(out_names, outs, ref)}
        meta["ort_vs_torch_max_abs_diff"] = diffs
        meta["output_concrete_shapes"] = {n: list(o.shape) for n, o in zip(out_names, outs)}
        meta["input_concrete_shapes"] = {n: list(v.shape) for n, v in feeds.items()}

        # symbolic batch check: run the first batch element alone, compare to row 0
        batch_dims = [v for v in meta["inputs"] if v["shape"] and isinstance(v["shape"][0], str)]
        if batch_dims and feeds[graph_inputs[0]].shape[0] > 1:
            sub = {n: (v[:1] if any(b["name"] == n for b in batch_dims) else v) for n, v in feeds.items()}
            outs1 = sess.run(out_names, sub)
            meta["batch1_vs_batchB_row0_max_abs_diff"] = {
                n: float(np.abs(a - b[:1]).max()) for n, a, b in zip(out_names, outs1, outs)
            }
        np.savez(out_dir / "inputs.npz", **feeds)
        np.savez(out_dir / "outputs.npz", **dict(zip(out_names, outs)))
        meta["model_bytes"] = path.stat().st_size
        meta["external_data"] = (out_dir / "model.onnx.data").exists()
        meta["status"] = "ok"
    except Exception as e:  # recorded, not hidden: the README lists failures
        meta["status"] = "failed"
        meta["error"] = f"{type(e).__name__}: {str(e)[:4000]}"
        meta["traceback_tail"] = traceback.format_exc()[-4000:]
        # an exported-but-rejected model is kept as a negative fixture for frontends
        if (out_dir / "model.onnx").exists() and not (out_dir / "model.onnx.data").exists():
            (out_dir / "model.onnx").rename(out_dir / "model.rejected.onnx")
            meta["kept_as"] = "model.rejected.onnx"
        for f in ("model.onnx", "model.onnx.data", "inputs.npz", "outputs.npz"):
            (out_dir / f).unlink(missing_ok=True)
    meta["seconds"] = round(time.time() - t0, 1)
    meta["versions"] = versions()
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def versions() -> dict:
    import importlib.metadata as md

    pk = ["torch", "onnx", "onnxruntime", "onnxscript", "diffusers", "transformers", "numpy", "scikit-learn"]
    return {p: md.version(p) for p in pk}


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    names = argv or list(FIXTURE_SPECS)
    bad = [n for n in names if n not in FIXTURE_SPECS]
    if bad:
        print(f"unknown fixtures {bad}; known: {list(FIXTURE_SPECS)}")
        return 2
    for n in names:
        meta = run_fixture(n)
        line = f"{n:18s} {meta['status']:6s} {meta['seconds']:6.1f}s"
        if meta["status"] == "ok":
            line += f" opset {meta['opset']} {meta['model_bytes'] / 1e3:8.1f} kB diff {meta['ort_vs_torch_max_abs_diff']}"
        else:
            line += f" {meta['error'][:300]}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
