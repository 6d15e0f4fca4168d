//! The interpreter on a DiT block against an independent, naive f64 implementation of the
//! same block written out loop by loop from the DiT paper (adaLN-Zero, multi-head
//! self-attention, tanh-GELU MLP). The two share only the weights.

use dqc_ir::{DType, Graph, Op, Tensor};
use dqc_models::dit::{self, DitConfig};

fn weight(g: &Graph, name: &str) -> Vec<f64> {
    let v = g
        .find_value(name)
        .unwrap_or_else(|| panic!("no value {name}"));
    match &g.node(v.node).op {
        Op::Constant(t) => t.to_f32_vec().into_iter().map(f64::from).collect(),
        other => panic!("{name} is a {}, not a constant", other.name()),
    }
}

/// `x[rows, k] · w[k, n] + b[n]`.
fn linear(x: &[f64], rows: usize, k: usize, w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let mut acc = b[j];
            for i in 0..k {
                acc += x[r * k + i] * w[i * n + j];
            }
            y[r * n + j] = acc;
        }
    }
    y
}

fn layer_norm(x: &[f64], rows: usize, c: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * c];
    for r in 0..rows {
        let row = &x[r * c..(r + 1) * c];
        let mean = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
        for i in 0..c {
            y[r * c + i] = (row[i] - mean) / (var + 1e-6).sqrt();
        }
    }
    y
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

fn gelu_tanh(v: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
}

#[test]
fn dit_block_matches_a_naive_implementation() {
    let cfg = DitConfig::tiny();
    let mut g = dit::block(&cfg).expect("block builds");
    dqc_ir::verify::verify(&mut g).expect("block verifies");
    let (b, n, c, heads) = (
        2usize,
        cfg.tokens() as usize,
        cfg.hidden as usize,
        cfg.heads as usize,
    );
    let dh = c / heads;

    // Deterministic inputs.
    let xs: Vec<f32> = (0..b * n * c)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let cs: Vec<f32> = (0..b * c)
        .map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0)
        .collect();
    let x_t = Tensor::from_f32(DType::F32, vec![b as u64, n as u64, c as u64], &xs).unwrap();
    let c_t = Tensor::from_f32(DType::F32, vec![b as u64, c as u64], &cs).unwrap();
    let got = dqc_ir::interp::run(&g, &[x_t, c_t]).expect("interpreter runs");
    let got = got[0].to_f32_vec();

    // Naive reference in f64.
    let x: Vec<f64> = xs.iter().map(|&v| v.into()).collect();
    let cond: Vec<f64> = cs.iter().map(|&v| f64::from(v)).map(silu).collect();
    let ada = linear(
        &cond,
        b,
        c,
        &weight(&g, "block.adaLN_modulation.1.weight"),
        &weight(&g, "block.adaLN_modulation.1.bias"),
    );
    // chunk k of batch row bi, channel i
    let chunk = |k: usize, bi: usize, i: usize| ada[bi * 6 * c + k * c + i];
    let modulate = |h: &[f64], shift: usize, scale: usize| -> Vec<f64> {
        let mut out = vec![0.0; b * n * c];
        for bi in 0..b {
            for t in 0..n {
                for i in 0..c {
                    let idx = (bi * n + t) * c + i;
                    out[idx] = h[idx] * (1.0 + chunk(scale, bi, i)) + chunk(shift, bi, i);
                }
            }
        }
        out
    };

    let h = modulate(&layer_norm(&x, b * n, c), 0, 1);
    let qkv = linear(
        &h,
        b * n,
        c,
        &weight(&g, "block.attn.qkv.weight"),
        &weight(&g, "block.attn.qkv.bias"),
    );
    let mut attn = vec![0.0; b * n * c];
    let scale = 1.0 / (dh as f64).sqrt();
    for bi in 0..b {
        for hd in 0..heads {
            for i in 0..n {
                let q = |d: usize| qkv[(bi * n + i) * 3 * c + hd * dh + d];
                let logits: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..dh)
                            .map(|d| q(d) * qkv[(bi * n + j) * 3 * c + c + hd * dh + d])
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
                let s: f64 = e.iter().sum();
                for d in 0..dh {
                    attn[(bi * n + i) * c + hd * dh + d] = (0..n)
                        .map(|j| e[j] / s * qkv[(bi * n + j) * 3 * c + 2 * c + hd * dh + d])
                        .sum();
                }
            }
        }
    }
    let proj = linear(
        &attn,
        b * n,
        c,
        &weight(&g, "block.attn.proj.weight"),
        &weight(&g, "block.attn.proj.bias"),
    );
    let mut x1 = x.clone();
    for bi in 0..b {
        for t in 0..n {
            for i in 0..c {
                let idx = (bi * n + t) * c + i;
                x1[idx] += chunk(2, bi, i) * proj[idx];
            }
        }
    }
    let h2 = modulate(&layer_norm(&x1, b * n, c), 3, 4);
    let hidden = cfg.mlp_hidden() as usize;
    let f1: Vec<f64> = linear(
        &h2,
        b * n,
        c,
        &weight(&g, "block.mlp.fc1.weight"),
        &weight(&g, "block.mlp.fc1.bias"),
    )
    .into_iter()
    .map(gelu_tanh)
    .collect();
    let f2 = linear(
        &f1,
        b * n,
        hidden,
        &weight(&g, "block.mlp.fc2.weight"),
        &weight(&g, "block.mlp.fc2.bias"),
    );
    let mut want = x1.clone();
    for bi in 0..b {
        for t in 0..n {
            for i in 0..c {
                let idx = (bi * n + t) * c + i;
                want[idx] += chunk(5, bi, i) * f2[idx];
            }
        }
    }

    let max_ref = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_err = got
        .iter()
        .zip(&want)
        .fold(0.0f64, |m, (&a, &w)| m.max((f64::from(a) - w).abs()));
    assert!(
        max_err / max_ref < 1e-5,
        "max abs error {max_err} vs max abs reference {max_ref}"
    );
    // The block must do real work: the output differs from its input.
    let moved = got
        .iter()
        .zip(&xs)
        .fold(0.0f32, |m, (a, x)| m.max((a - x).abs()));
    assert!(moved > 1e-3, "the block left its input unchanged");
}
