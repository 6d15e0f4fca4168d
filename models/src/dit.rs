//! DiT: class-conditional diffusion transformer with adaLN-Zero blocks.
//!
//! The graph follows the reference implementation (facebookresearch/DiT `models.py`):
//!
//! ```text
//! x: f32[B,C,L,L] ─ patch conv (kernel = stride = p) ─ reshape/transpose ─▶ [B,N,hidden]
//!                 + fixed 2-D sin-cos positional embedding
//! t: f32[B] ─ sinusoidal(256) ─ Linear ─ SiLU ─ Linear ─┐
//! y: i64[B] ─ Gather(table[num_classes+1, hidden]) ─────┴▶ c = t_emb + y_emb  [B,hidden]
//! depth × block(x, c):
//!   shift/scale/gate ×2 = split(Linear(SiLU(c)), 6)
//!   x += gate_msa · attn(modulate(layer_norm(x), shift_msa, scale_msa))
//!   x += gate_mlp · mlp(modulate(layer_norm(x), shift_mlp, scale_mlp))
//! final: modulate(layer_norm(x), split(Linear(SiLU(c)), 2)) ─ Linear ─ unpatchify
//!   ─▶ f32[B, out_channels, L, L]
//! ```
//!
//! The batch dimension is the symbol `B` everywhere. Node names mirror the PyTorch
//! module names (`blocks.3.attn.qkv`, `t_embedder.mlp.0`, `final_layer.linear`), with
//! parameters at `NAME.weight` / `NAME.bias`. Linear weights are stored `[in, out]` (the
//! transpose of PyTorch's `nn.Linear.weight`), so a layer is `x @ weight + bias`.
//!
//! Departure from DiT: DiT zero-initializes the adaLN modulation layers and the final
//! linear layer ("adaLN-Zero"), which makes a freshly initialized model the identity per
//! block and outputs zeros. Here every weight is random (see [`crate::init`]) so that
//! every block does real work and numeric comparisons between the interpreter, passes and
//! kernels are meaningful.

use dqc_ir::builder::{AttentionAttrs, Builder, ConvAttrs};
use dqc_ir::op::GeluApprox;
use dqc_ir::{DType, Dim, Graph, Shape, Tensor, Value};

use crate::ModelError;
use crate::init::WeightInit;

/// Size of the sinusoidal timestep embedding (DiT's `frequency_embedding_size`).
pub const FREQ_EMBED: u64 = 256;
/// Period of the slowest timestep and position frequencies.
pub const MAX_PERIOD: f64 = 10_000.0;
/// Epsilon of every layer norm (DiT uses 1e-6).
pub const NORM_EPS: f32 = 1e-6;
/// Largest parameter count a configuration may have (4 Gi parameters, 16 GiB of f32):
/// the weights are materialized in memory when the graph is built.
pub const MAX_PARAMETERS: u64 = 1 << 32;

/// A DiT configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DitConfig {
    /// Width of the token embeddings.
    pub hidden: u64,
    /// Number of DiT blocks.
    pub depth: u64,
    /// Attention heads (must divide `hidden`).
    pub heads: u64,
    /// Patch size (must divide `latent`).
    pub patch: u64,
    /// Spatial size of the latent (height = width).
    pub latent: u64,
    /// Latent channels (4 for the Stable Diffusion VAE).
    pub in_channels: u64,
    /// Number of classes; the embedding table has one more row (the null class of
    /// classifier-free guidance, index `num_classes`).
    pub num_classes: u64,
    /// Predict the variance as well: `out_channels = 2 · in_channels`.
    pub learn_sigma: bool,
    /// Width of the MLP relative to `hidden` (`int(hidden · mlp_ratio)`).
    pub mlp_ratio: f32,
    /// Seed of the synthetic weights.
    pub seed: u64,
}

/// Names accepted by [`DitConfig::preset`].
pub const PRESETS: [&str; 5] = ["tiny", "dit-s-2", "dit-b-2", "dit-l-2", "dit-xl-2"];

impl DitConfig {
    /// DiT-S/2 at 256×256 images (latent 32): hidden 384, depth 12, heads 6, patch 2,
    /// 1000 classes, learned sigma.
    pub fn dit_s_2() -> DitConfig {
        DitConfig {
            hidden: 384,
            depth: 12,
            heads: 6,
            patch: 2,
            latent: 32,
            in_channels: 4,
            num_classes: 1000,
            learn_sigma: true,
            mlp_ratio: 4.0,
            seed: 0,
        }
    }

    /// A model small enough for unit tests: hidden 64, depth 2, heads 4, patch 2,
    /// latent 8, 10 classes.
    pub fn tiny() -> DitConfig {
        DitConfig {
            hidden: 64,
            depth: 2,
            heads: 4,
            latent: 8,
            num_classes: 10,
            ..DitConfig::dit_s_2()
        }
    }

    /// A preset by name (one of [`PRESETS`]); the B, L and XL sizes are the paper's, at
    /// patch 2 and latent 32.
    pub fn preset(name: &str) -> Option<DitConfig> {
        let with = |hidden, depth, heads| DitConfig {
            hidden,
            depth,
            heads,
            ..DitConfig::dit_s_2()
        };
        match name {
            "tiny" => Some(DitConfig::tiny()),
            "dit-s-2" => Some(DitConfig::dit_s_2()),
            "dit-b-2" => Some(with(768, 12, 12)),
            "dit-l-2" => Some(with(1024, 24, 16)),
            "dit-xl-2" => Some(with(1152, 28, 16)),
            _ => None,
        }
    }

    /// Output channels: `2 · in_channels` with learned sigma, else `in_channels`.
    pub fn out_channels(&self) -> u64 {
        if self.learn_sigma {
            2 * self.in_channels
        } else {
            self.in_channels
        }
    }

    /// Patches per side, `latent / patch`.
    pub fn grid(&self) -> u64 {
        self.latent / self.patch.max(1)
    }

    /// Number of tokens `N = grid²`.
    pub fn tokens(&self) -> u64 {
        self.grid() * self.grid()
    }

    /// Width of the MLP hidden layer, `int(hidden · mlp_ratio)`.
    pub fn mlp_hidden(&self) -> u64 {
        (self.hidden as f64 * f64::from(self.mlp_ratio)) as u64
    }

    /// Number of learnable parameters, counted as DiT counts them (the positional
    /// embedding and the timestep frequencies are fixed buffers, not parameters). `None`
    /// on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        let h = self.hidden;
        let linear = |i: u64, o: u64| i.checked_mul(o)?.checked_add(o);
        let patch_area = self.patch.checked_mul(self.patch)?;
        let x_embed = linear(self.in_channels.checked_mul(patch_area)?, h)?;
        let t_embed = linear(FREQ_EMBED, h)?.checked_add(linear(h, h)?)?;
        let y_embed = self.num_classes.checked_add(1)?.checked_mul(h)?;
        let mh = self.mlp_hidden();
        let block = [
            linear(h, 6 * h)?,
            linear(h, 3 * h)?,
            linear(h, h)?,
            linear(h, mh)?,
            linear(mh, h)?,
        ]
        .iter()
        .try_fold(0u64, |a, &x| a.checked_add(x))?;
        let final_layer = linear(h, 2 * h)?
            .checked_add(linear(h, patch_area.checked_mul(self.out_channels())?)?)?;
        [
            x_embed,
            t_embed,
            y_embed,
            block.checked_mul(self.depth)?,
            final_layer,
        ]
        .iter()
        .try_fold(0u64, |a, &x| a.checked_add(x))
    }

    /// Check every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field, message: String| {
            Err(ModelError::InvalidConfig {
                model: "dit",
                field,
                message,
            })
        };
        let positive = [
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("patch", self.patch),
            ("latent", self.latent),
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
        ];
        for (field, v) in positive {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(
                "heads",
                format!("({}) must divide hidden ({})", self.heads, self.hidden),
            );
        }
        if !self.hidden.is_multiple_of(4) {
            return bad(
                "hidden",
                format!(
                    "({}) must be a multiple of 4 (the 2-D sin-cos position embedding)",
                    self.hidden
                ),
            );
        }
        if !self.latent.is_multiple_of(self.patch) {
            return bad(
                "patch",
                format!("({}) must divide latent ({})", self.patch, self.latent),
            );
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) || self.mlp_hidden() == 0 {
            return bad(
                "mlp_ratio",
                format!("({}) must give an MLP width of at least 1", self.mlp_ratio),
            );
        }
        match self.parameter_count() {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => bad(
                "hidden",
                format!("and depth give more than {MAX_PARAMETERS} parameters"),
            ),
        }
    }
}

/// `[B, d1, d2, …]` with the symbolic batch first.
fn batch_shape(rest: &[u64]) -> Shape {
    let mut dims = vec![Dim::sym("B")];
    dims.extend(rest.iter().map(|&d| Dim::fixed(d)));
    Shape(dims)
}

/// The fixed 2-D sin-cos positional embedding of DiT, `[grid², dim]` row-major: for
/// token `n = i·grid + j` (row `i`, column `j`), the first half of the channels embeds
/// `j` and the second half `i`, each as `[sin(pos·ω_k), cos(pos·ω_k)]` with
/// `ω_k = 10000^(-k/(dim/4))`, `k < dim/4`. `dim` must be a multiple of 4.
pub fn sincos_pos_embed(dim: u64, grid: u64) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / MAX_PERIOD.powf(k as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity((grid * grid * dim) as usize);
    for i in 0..grid {
        for j in 0..grid {
            for pos in [j as f64, i as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

/// Frequencies of the sinusoidal timestep embedding: `exp(-ln(10000)·i/half)`,
/// `i < half = FREQ_EMBED/2`.
pub fn timestep_freqs() -> Vec<f32> {
    let half = FREQ_EMBED / 2;
    (0..half)
        .map(|i| (-MAX_PERIOD.ln() * i as f64 / half as f64).exp() as f32)
        .collect()
}

/// Builder state shared by the layer functions.
struct Ctx<'a> {
    b: &'a mut Builder,
    init: &'a mut WeightInit,
    cfg: &'a DitConfig,
}

impl Ctx<'_> {
    /// `x @ NAME.weight[d_in, d_out] + NAME.bias[d_out]`, the result named `NAME`.
    fn linear(&mut self, name: &str, x: Value, d_in: u64, d_out: u64) -> Result<Value, ModelError> {
        let w = self.init.weight(&[d_in, d_out])?;
        let w = self.b.param(&format!("{name}.weight"), w);
        let bias = self.init.bias(&[d_out])?;
        let bias = self.b.param(&format!("{name}.bias"), bias);
        Ok(self.b.named(name).linear(x, w, Some(bias)))
    }

    /// `Linear(SiLU(c))` split into `parts` chunks of `hidden` (scope `adaLN_modulation`
    /// numbering as in DiT: `.0` is the SiLU, `.1` the linear layer).
    fn ada_ln(&mut self, c: Value, parts: u64) -> Result<Vec<Value>, ModelError> {
        let h = self.cfg.hidden;
        let act = self.b.named("adaLN_modulation.0").silu(c);
        let m = self.linear("adaLN_modulation.1", act, h, parts * h)?;
        Ok(self
            .b
            .named("adaLN_modulation.chunk")
            .split(m, -1, &vec![h; parts as usize]))
    }

    /// Patch embedding plus the positional embedding: `[B,C,L,L] → [B,N,hidden]`.
    fn embed_patches(&mut self, x: Value) -> Result<Value, ModelError> {
        let (h, p, n) = (self.cfg.hidden, self.cfg.patch, self.cfg.tokens());
        self.b.push_scope("x_embedder");
        let w = self.init.weight(&[h, self.cfg.in_channels, p, p])?;
        let w = self.b.param("proj.weight", w);
        let bias = self.init.bias(&[h])?;
        let bias = self.b.param("proj.bias", bias);
        let conv = self
            .b
            .named("proj")
            .conv(x, w, Some(bias), ConvAttrs::uniform(2, p, 0));
        let flat = self.b.named("flatten").reshape(conv, batch_shape(&[h, n]));
        let tokens = self.b.named("tokens").transpose(flat, &[0, 2, 1]);
        self.b.pop_scope();
        let pos = Tensor::from_f32(
            DType::F32,
            vec![1, n, h],
            &sincos_pos_embed(h, self.cfg.grid()),
        )?;
        let pos = self.b.param("pos_embed", pos);
        Ok(self.b.named("x_embed").add(tokens, pos))
    }

    /// Timestep embedding `[B] → [B,hidden]`.
    fn embed_timesteps(&mut self, t: Value) -> Result<Value, ModelError> {
        let h = self.cfg.hidden;
        let half = FREQ_EMBED / 2;
        self.b.push_scope("t_embedder");
        let freqs = Tensor::from_f32(DType::F32, vec![half], &timestep_freqs())?;
        let freqs = self.b.param("freqs", freqs);
        let t_col = self.b.named("t_column").reshape(t, batch_shape(&[1]));
        let args = self.b.named("args").mul(t_col, freqs);
        let cos = self.b.cos(args);
        let sin = self.b.sin(args);
        let emb = self.b.named("t_freq").concat(&[cos, sin], -1);
        let h1 = self.linear("mlp.0", emb, FREQ_EMBED, h)?;
        let act = self.b.named("mlp.1").silu(h1);
        let out = self.linear("mlp.2", act, h, h)?;
        self.b.pop_scope();
        Ok(out)
    }

    /// Class embedding `[B] → [B,hidden]`.
    fn embed_labels(&mut self, y: Value) -> Result<Value, ModelError> {
        let rows = self.cfg.num_classes + 1;
        self.b.push_scope("y_embedder");
        let table = self.init.weight(&[rows, self.cfg.hidden])?;
        let table = self.b.param("embedding_table", table);
        let out = self.b.named("embed").gather(table, y, 0);
        self.b.pop_scope();
        Ok(out)
    }

    /// `gate[:, None] * h`, with `gate: [B,hidden]`, `h: [B,N,hidden]`.
    fn gated(&mut self, name: &str, gate: Value, h: Value) -> Value {
        let g = self
            .b
            .named(&format!("{name}.unsqueeze"))
            .reshape(gate, batch_shape(&[1, self.cfg.hidden]));
        self.b.named(name).mul(g, h)
    }

    /// One adaLN-Zero block in the current scope: `[B,N,hidden], [B,hidden] → [B,N,hidden]`.
    fn block(&mut self, x: Value, c: Value) -> Result<Value, ModelError> {
        let (h, mh) = (self.cfg.hidden, self.cfg.mlp_hidden());
        let m = self.ada_ln(c, 6)?;
        let [
            shift_msa,
            scale_msa,
            gate_msa,
            shift_mlp,
            scale_mlp,
            gate_mlp,
        ] = m[..]
        else {
            return Err(ModelError::InvalidConfig {
                model: "dit",
                field: "hidden",
                message: "adaLN split did not give six chunks".into(),
            });
        };
        // Attention branch.
        let n1 = self.b.named("norm1").layer_norm(x, None, -1, NORM_EPS);
        let m1 = self.b.named("modulate1").modulate(n1, shift_msa, scale_msa);
        self.b.push_scope("attn");
        let qkv = self.linear("qkv", m1, h, 3 * h)?;
        let parts = self.b.named("qkv.chunk").split(qkv, -1, &[h, h, h]);
        let [q, k, v] = parts[..] else {
            return Err(ModelError::InvalidConfig {
                model: "dit",
                field: "hidden",
                message: "qkv split did not give three chunks".into(),
            });
        };
        let heads = self.cfg.heads;
        let o = self
            .b
            .named("sdpa")
            .attention(q, k, v, None, AttentionAttrs::mha(heads));
        let attn = self.linear("proj", o, h, h)?;
        self.b.pop_scope();
        let ga = self.gated("gate_msa", gate_msa, attn);
        let x = self.b.named("residual1").add(x, ga);
        // MLP branch.
        let n2 = self.b.named("norm2").layer_norm(x, None, -1, NORM_EPS);
        let m2 = self.b.named("modulate2").modulate(n2, shift_mlp, scale_mlp);
        self.b.push_scope("mlp");
        let f1 = self.linear("fc1", m2, h, mh)?;
        let act = self.b.named("act").gelu(f1, GeluApprox::Tanh);
        let f2 = self.linear("fc2", act, mh, h)?;
        self.b.pop_scope();
        let gm = self.gated("gate_mlp", gate_mlp, f2);
        Ok(self.b.named("residual2").add(x, gm))
    }

    /// Final adaLN layer and unpatchify: `[B,N,hidden] → [B,out_channels,L,L]`.
    fn final_layer(&mut self, x: Value, c: Value) -> Result<Value, ModelError> {
        let cfg = self.cfg;
        let (h, p, g, oc) = (cfg.hidden, cfg.patch, cfg.grid(), cfg.out_channels());
        self.b.push_scope("final_layer");
        let m = self.ada_ln(c, 2)?;
        let [shift, scale] = m[..] else {
            return Err(ModelError::InvalidConfig {
                model: "dit",
                field: "hidden",
                message: "final adaLN split did not give two chunks".into(),
            });
        };
        let n = self.b.named("norm_final").layer_norm(x, None, -1, NORM_EPS);
        let md = self.b.named("modulate").modulate(n, shift, scale);
        let out = self.linear("linear", md, h, p * p * oc)?;
        self.b.pop_scope();
        self.b.push_scope("unpatchify");
        let grid = self
            .b
            .named("patches")
            .reshape(out, batch_shape(&[g, g, p, p, oc]));
        // [B, h, w, p, q, C] → [B, C, h, p, w, q]
        let perm = self.b.named("permute").transpose(grid, &[0, 5, 1, 3, 2, 4]);
        self.b.pop_scope();
        Ok(self
            .b
            .named("out")
            .reshape(perm, batch_shape(&[oc, cfg.latent, cfg.latent])))
    }
}

/// Build the whole DiT: inputs `x: f32[B, in_channels, latent, latent]`, `t: f32[B]`
/// (timesteps), `y: i64[B]` (class labels in `[0, num_classes]`, `num_classes` being the
/// null class); output `f32[B, out_channels, latent, latent]`.
///
/// Refuses invalid configurations (see [`DitConfig::validate`]).
pub fn build(cfg: &DitConfig) -> Result<Graph, ModelError> {
    cfg.validate()?;
    let mut b = Builder::new("dit");
    let (c_in, l) = (cfg.in_channels, cfg.latent);
    let x = b.input("x", DType::F32, batch_shape(&[c_in, l, l]));
    let t = b.input("t", DType::F32, batch_shape(&[]));
    let y = b.input("y", DType::I64, batch_shape(&[]));
    let mut init = WeightInit::new(cfg.seed);
    let mut ctx = Ctx {
        b: &mut b,
        init: &mut init,
        cfg,
    };
    let mut h = ctx.embed_patches(x)?;
    let t_emb = ctx.embed_timesteps(t)?;
    let y_emb = ctx.embed_labels(y)?;
    let c = ctx.b.named("c").add(t_emb, y_emb);
    for i in 0..cfg.depth {
        ctx.b.push_scope(&format!("blocks.{i}"));
        h = ctx.block(h, c)?;
        ctx.b.pop_scope();
    }
    let out = ctx.final_layer(h, c)?;
    Ok(b.finish(&[out])?)
}

/// Build one DiT block as its own graph (for benchmarks): inputs
/// `x: f32[B, tokens, hidden]`, `c: f32[B, hidden]`; output `f32[B, tokens, hidden]`.
/// Node names are scoped `block.…`; weights come from `cfg.seed`.
pub fn block(cfg: &DitConfig) -> Result<Graph, ModelError> {
    cfg.validate()?;
    let mut b = Builder::new("dit_block");
    let x = b.input("x", DType::F32, batch_shape(&[cfg.tokens(), cfg.hidden]));
    let c = b.input("c", DType::F32, batch_shape(&[cfg.hidden]));
    let mut init = WeightInit::new(cfg.seed);
    b.push_scope("block");
    let out = add_block(&mut b, &mut init, cfg, x, c)?;
    b.pop_scope();
    Ok(b.finish(&[out])?)
}

/// Add one adaLN-Zero block to a graph under construction, in `b`'s current scope:
/// `x: [B, tokens, hidden]`, `c: [B, hidden]` → `[B, tokens, hidden]`, with weights drawn
/// from `init`. Does not validate `cfg` (call [`DitConfig::validate`] first).
pub fn add_block(
    b: &mut Builder,
    init: &mut WeightInit,
    cfg: &DitConfig,
    x: Value,
    c: Value,
) -> Result<Value, ModelError> {
    Ctx { b, init, cfg }.block(x, c)
}

#[cfg(test)]
mod tests;
