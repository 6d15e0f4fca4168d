#!/usr/bin/env python3
"""Train a tiny class-conditional DiT on scikit-learn's digits and export it to ONNX.

Run by hand (CI never runs Python):

    nice -n 15 /work/venv/bin/python models/train/train_digits_dit.py

Everything is seeded; training is single-threaded so the result is reproducible on
one machine (bit-exactness across CPUs / torch versions is not promised).

Outputs (all under models/fixtures/digits_dit/):
  model.onnx          denoiser eps(x, t, y): x [B,1,16,16] f32, t [B] f32, y [B] i64
  inputs.npz          one batch of inputs (keys = ONNX input names)
  outputs.npz         onnxruntime CPU outputs for inputs.npz (key = ONNX output name)
  ddim_samples.npz    50-step DDIM (eta 0) reference: noise, labels, timesteps,
                      alpha_bar / alpha_bar_prev per step, final samples
  trajectory.npz      the denoiser inputs/outputs at each of the 50 steps
  meta.json           config, training log, checks
  samples.png         8 samples (upscaled) for a visual check
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "fixtures" / "digits_dit"

CFG = dict(
    image_size=16,
    in_channels=1,
    patch_size=2,
    hidden=64,
    depth=4,
    heads=4,
    mlp_ratio=4,
    num_classes=10,
    freq_dim=64,
    train_steps=int(os.environ.get("DIGITS_STEPS", "2500")),
    batch_size=64,
    lr=1e-3,
    warmup=50,
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    ddim_steps=50,
    sample_batch=8,
    opset=17,
)


# ----------------------------------------------------------------------------- model


def sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """Sin-cos embedding of positions `pos` (flat), half sin half cos."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """2D sin-cos position embedding [grid*grid, dim] (first half rows, second half cols)."""
    gy, gx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    return np.concatenate([sincos_1d(dim // 2, gy), sincos_1d(dim // 2, gx)], axis=1)


class TimestepEmbed(nn.Module):
    def __init__(self, hidden: int, freq_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        half = freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (self.head_dim**-0.5)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DiTBlock(nn.Module):
    """adaLN-Zero block: attention + tanh-GELU MLP, gated residuals."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, hidden * mlp_ratio),
            nn.GELU(approximate="tanh"),
            nn.Linear(hidden * mlp_ratio, hidden),
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1[:, None, :] * self.attn(modulate(self.norm1(x), sh1, sc1))
        x = x + g2[:, None, :] * self.mlp(modulate(self.norm2(x), sh2, sc2))
        return x


class DiT(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.p = cfg["patch_size"]
        self.c = cfg["in_channels"]
        self.grid = cfg["image_size"] // self.p
        h = cfg["hidden"]
        self.patch = nn.Conv2d(self.c, h, kernel_size=self.p, stride=self.p)
        pos = torch.from_numpy(sincos_2d(h, self.grid)).float()[None]
        self.register_buffer("pos", pos, persistent=True)
        self.t_embed = TimestepEmbed(h, cfg["freq_dim"])
        self.y_embed = nn.Embedding(cfg["num_classes"], h)
        self.blocks = nn.ModuleList(
            [DiTBlock(h, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])]
        )
        self.final_norm = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(h, 2 * h))
        self.final_lin = nn.Linear(h, self.p * self.p * self.c)
        for m in (self.final_ada[1], self.final_lin):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        tok = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # [B, N, H]
        c = self.t_embed(t) + self.y_embed(y)
        for blk in self.blocks:
            tok = blk(tok, c)
        sh, sc = self.final_ada(c).chunk(2, dim=1)
        tok = self.final_lin(modulate(self.final_norm(tok), sh, sc))  # [B, N, p*p*C]
        g, p = self.grid, self.p
        tok = tok.reshape(b, g, g, p, p, self.c).permute(0, 5, 1, 3, 2, 4)
        return tok.reshape(b, self.c, g * p, g * p)


# ----------------------------------------------------------------------------- data / schedule


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = torch.from_numpy(d.images.astype(np.float32) / 16.0 * 2.0 - 1.0)[:, None]  # [N,1,8,8]
    imgs = F.interpolate(imgs, size=(16, 16), mode="bilinear", align_corners=False)
    return imgs.clamp(-1, 1), torch.from_numpy(d.target.astype(np.int64))


def alphas_cumprod(cfg: dict) -> torch.Tensor:
    betas = torch.linspace(cfg["beta_start"], cfg["beta_end"], cfg["num_train_timesteps"], dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_schedule(cfg: dict, abar: torch.Tensor):
    """Leading spacing: t = 980, 960, ..., 0; alpha_bar_prev of the last step is 1."""
    ratio = cfg["num_train_timesteps"] // cfg["ddim_steps"]
    ts = (np.arange(cfg["ddim_steps"]) * ratio)[::-1].copy()
    a = abar[ts].numpy()
    a_prev = np.concatenate([abar[ts[1:]].numpy(), [1.0]])
    return ts.astype(np.int64), a.astype(np.float32), a_prev.astype(np.float32)


def ddim_step(x, eps, a, a_prev):
    """Deterministic DDIM (eta 0) update, in float32, no clipping."""
    x0 = (x - np.sqrt(1.0 - a) * eps) / np.sqrt(a)
    return (np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps).astype(np.float32)


# ----------------------------------------------------------------------------- main


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    cfg = CFG

    data, labels = load_data()
    abar = alphas_cumprod(cfg).float()
    model = DiT(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / cfg["warmup"])
        * 0.5
        * (1 + math.cos(math.pi * min(1.0, s / cfg["train_steps"]))),
    )
    gen = torch.Generator().manual_seed(0)
    log = []
    t0 = time.time()
    run_loss = None
    for step in range(cfg["train_steps"]):
        idx = torch.randint(0, data.shape[0], (cfg["batch_size"],), generator=gen)
        x0, y = data[idx], labels[idx]
        t = torch.randint(0, cfg["num_train_timesteps"], (cfg["batch_size"],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(model(xt, t.float(), y), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 50 == 0 or step == cfg["train_steps"] - 1:
            el = time.time() - t0
            print(f"step {step:5d} loss {loss.item():.4f} ema_loss {run_loss:.4f} {el:.0f}s", flush=True)
            log.append(dict(step=step, loss=round(loss.item(), 5), ema_loss=round(run_loss, 5), seconds=round(el, 1)))
    train_seconds = time.time() - t0
    model.eval()

    # ---------------------------------------------------------------- export
    import onnx
    import onnxruntime as ort

    B = cfg["sample_batch"]
    g = torch.Generator().manual_seed(1234)
    ex_x = torch.randn(B, 1, 16, 16, generator=g)
    ex_t = torch.tensor([999, 980, 700, 500, 250, 100, 20, 0], dtype=torch.float32)
    ex_y = torch.arange(B, dtype=torch.int64) % 10
    onnx_path = OUT / "model.onnx"
    torch.onnx.export(
        model,
        (ex_x, ex_t, ex_y),
        str(onnx_path),
        dynamo=False,
        opset_version=cfg["opset"],
        input_names=["x", "t", "y"],
        output_names=["eps"],
        dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "y": {0: "batch"}, "eps": {0: "batch"}},
        do_constant_folding=True,
    )
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def run_onnx(x, t, y):
        return sess.run(["eps"], {"x": x, "t": t, "y": y})[0]

    def run_torch(x, t, y):
        with torch.no_grad():
            return model(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()

    inputs = {"x": ex_x.numpy(), "t": ex_t.numpy(), "y": ex_y.numpy()}
    out_ort = run_onnx(**inputs)
    batch_diff = float(np.abs(out_ort - run_torch(**inputs)).max())
    np.savez(OUT / "inputs.npz", **inputs)
    np.savez(OUT / "outputs.npz", eps=out_ort)

    # ---------------------------------------------------------------- DDIM reference
    ts, a, a_prev = ddim_schedule(cfg, alphas_cumprod(cfg))
    gs = torch.Generator().manual_seed(42)
    noise = torch.randn(B, 1, 16, 16, generator=gs).numpy()
    ys = np.array([0, 1, 2, 3, 4, 5, 6, 7], dtype=np.int64)
    x = noise.copy()
    xt_torch = noise.copy()
    traj_x, traj_t, traj_eps = [], [], []
    step_diffs = []
    for i, tv in enumerate(ts):
        tt = np.full((B,), float(tv), dtype=np.float32)
        eps = run_onnx(x, tt, ys)
        step_diffs.append(float(np.abs(eps - run_torch(x, tt, ys)).max()))
        traj_x.append(x.copy())
        traj_t.append(tt)
        traj_eps.append(eps)
        x = ddim_step(x, eps, a[i], a_prev[i])
        # independent PyTorch-only trajectory for the drift check
        xt_torch = ddim_step(xt_torch, run_torch(xt_torch, tt, ys), a[i], a_prev[i])
    samples = x
    np.savez(
        OUT / "ddim_samples.npz",
        noise=noise,
        labels=ys,
        timesteps=ts,
        alpha_bar=a,
        alpha_bar_prev=a_prev,
        samples=samples,
    )
    np.savez(
        OUT / "trajectory.npz",
        x=np.stack(traj_x),
        t=np.stack(traj_t),
        y=ys,
        eps=np.stack(traj_eps),
    )
    traj_torch_diff = float(np.abs(samples - xt_torch).max())

    # ---------------------------------------------------------------- quality check
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    clf = LogisticRegression(max_iter=2000).fit(d.data, d.target)
    small = F.interpolate(torch.from_numpy(samples), size=(8, 8), mode="area").numpy()
    feats = ((np.clip(small, -1, 1) + 1) / 2 * 16).reshape(B, 64)
    pred = clf.predict(feats)
    acc = float((pred == ys).mean())
    print(f"samples classified as {pred.tolist()} (labels {ys.tolist()}), acc {acc:.2f}")

    from PIL import Image

    img = ((np.clip(samples[:, 0], -1, 1) + 1) * 127.5).astype(np.uint8)
    grid = np.concatenate(list(img), axis=1)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(OUT / "samples.png")

    sys.path.insert(0, str(ROOT / "models" / "export"))
    from export_onnx import op_histogram

    meta = dict(
        name="digits_dit",
        status="ok",
        exporter="torch.onnx.export(dynamo=False) (TorchScript)",
        opset=cfg["opset"],
        torch_version=torch.__version__,
        config=cfg,
        params=n_params,
        inputs=[
            dict(name="x", shape=["batch", 1, 16, 16], dtype="float32"),
            dict(name="t", shape=["batch"], dtype="float32", note="DDPM timestep 0..999 as float"),
            dict(name="y", shape=["batch"], dtype="int64", note="class label 0..9"),
        ],
        outputs=[dict(name="eps", shape=["batch", 1, 16, 16], dtype="float32")],
        op_histogram=op_histogram(m),
        train_seconds=round(train_seconds, 1),
        train_log=log,
        ort_vs_torch_max_abs_diff=batch_diff,
        trajectory_step_max_abs_diff=max(step_diffs),
        ddim_final_ort_vs_torch_max_abs_diff=traj_torch_diff,
        sample_classifier_accuracy=acc,
        sample_classifier_pred=pred.tolist(),
        ddim=dict(
            eta=0.0,
            spacing="leading: t_i = 980 - 20*i, i = 0..49",
            update="x0 = (x - sqrt(1-a)*eps)/sqrt(a); x_prev = sqrt(a_prev)*x0 + sqrt(1-a_prev)*eps (no clipping), fp32",
            final_alpha_bar_prev=1.0,
        ),
        files=dict(
            ddim_samples="noise [8,1,16,16], labels [8], timesteps [50] i64, alpha_bar [50], alpha_bar_prev [50], samples [8,1,16,16]",
            trajectory="x [50,8,1,16,16], t [50,8] f32, y [8], eps [50,8,1,16,16]: denoiser input/ORT output at each step",
        ),
    )
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("ort_vs_torch_max_abs_diff", "trajectory_step_max_abs_diff",
                                           "ddim_final_ort_vs_torch_max_abs_diff", "train_seconds")}))


if __name__ == "__main__":
    sys.exit(main())
