//! Unit tests of the DiT builder.

use std::collections::BTreeMap;

use dqc_ir::op::{BinaryOp, UnaryOp};
use dqc_ir::{Op, TensorType};

use super::*;

/// Node count per op name.
fn op_histogram(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for id in g.node_ids() {
        *m.entry(g.node(id).op.name()).or_insert(0) += 1;
    }
    m
}

fn ty(dtype: DType, rest: &[u64]) -> TensorType {
    TensorType::new(dtype, batch_shape(rest))
}

#[test]
fn tiny_structure() {
    let cfg = DitConfig::tiny();
    let g = build(&cfg).unwrap();
    let d = cfg.depth as usize;
    let expected: BTreeMap<&str, usize> = [
        ("input", 3),
        // x_embedder 2 + pos 1 + freqs 1 + t mlp 4 + table 1 + 10 per block + final 4
        ("constant", 13 + 10 * d),
        ("conv", 1),
        // flatten, t_column, 2 gates per block, 2 in unpatchify
        ("reshape", 4 + 2 * d),
        ("transpose", 2),
        // x_embed, 2 t-mlp biases, c, 5 biases + 2 residuals per block, 2 final biases
        ("add", 6 + 7 * d),
        ("matmul", 4 + 5 * d),
        ("mul", 1 + 2 * d),
        ("cos", 1),
        ("sin", 1),
        ("concat", 1),
        ("gather", 1),
        ("silu", 2 + d),
        ("split", 1 + 2 * d),
        ("layer_norm", 1 + 2 * d),
        ("modulate", 1 + 2 * d),
        ("attention", d),
        ("gelu", d),
    ]
    .into_iter()
    .collect();
    assert_eq!(op_histogram(&g), expected);
    assert_eq!(g.node_count(), 113);

    // Signature.
    let inputs: Vec<(&str, &Op)> = g
        .inputs()
        .iter()
        .map(|&id| (g.node(id).name(), &g.node(id).op))
        .collect();
    assert_eq!(
        inputs,
        vec![
            (
                "x",
                &Op::Input {
                    index: 0,
                    ty: ty(DType::F32, &[4, 8, 8])
                }
            ),
            (
                "t",
                &Op::Input {
                    index: 1,
                    ty: ty(DType::F32, &[])
                }
            ),
            (
                "y",
                &Op::Input {
                    index: 2,
                    ty: ty(DType::I64, &[])
                }
            ),
        ]
    );
    let [out] = g.outputs() else {
        panic!("one output")
    };
    assert_eq!(g.value_name(*out), "out");
    assert_eq!(
        g.node(out.node).op,
        Op::Reshape {
            shape: batch_shape(&[8, 8, 8])
        }
    );
    // Every node contributes to the output.
    let mut copy = g.clone();
    assert_eq!(copy.remove_dead(), 0);
    assert!(g.topo_order().is_ok());
}

#[test]
fn block_wiring_and_names() {
    let g = build(&DitConfig::tiny()).unwrap();
    let v = |name: &str| {
        g.find_value(name)
            .unwrap_or_else(|| panic!("no value `{name}`"))
    };
    let op = |name: &str| &g.node(v(name).node).op;
    let ins = |name: &str| g.node(v(name).node).inputs().to_vec();

    assert_eq!(
        op("blocks.1.attn.sdpa"),
        &Op::Attention {
            heads: 4,
            kv_heads: 4,
            scale: None,
            causal: false,
            has_mask: false
        }
    );
    // q, k, v are the three outputs of the qkv split, in order.
    let split = v("blocks.1.attn.qkv.chunk");
    assert_eq!(
        ins("blocks.1.attn.sdpa"),
        vec![split, Value::new(split.node, 1), Value::new(split.node, 2)]
    );
    assert_eq!(ins("blocks.1.attn.qkv.chunk"), vec![v("blocks.1.attn.qkv")]);
    assert_eq!(
        op("blocks.1.norm1"),
        &Op::LayerNorm {
            axis: -1,
            eps: 1e-6,
            affine: false
        }
    );
    // adaLN chunks: shift, scale, gate for msa, then for mlp.
    let ada = v("blocks.0.adaLN_modulation.chunk");
    assert_eq!(
        op("blocks.0.adaLN_modulation.chunk"),
        &Op::Split {
            axis: -1,
            sizes: vec![64; 6]
        }
    );
    assert_eq!(
        ins("blocks.0.modulate1"),
        vec![v("blocks.0.norm1"), ada, Value::new(ada.node, 1)]
    );
    assert_eq!(
        ins("blocks.0.gate_msa.unsqueeze"),
        vec![Value::new(ada.node, 2)]
    );
    assert_eq!(
        ins("blocks.0.modulate2"),
        vec![
            v("blocks.0.norm2"),
            Value::new(ada.node, 3),
            Value::new(ada.node, 4)
        ]
    );
    assert_eq!(
        ins("blocks.0.gate_mlp.unsqueeze"),
        vec![Value::new(ada.node, 5)]
    );
    assert_eq!(
        op("blocks.0.gate_msa.unsqueeze"),
        &Op::Reshape {
            shape: batch_shape(&[1, 64])
        }
    );
    // Residuals chain the blocks: block 1 reads block 0's output.
    assert_eq!(ins("blocks.0.residual1")[0], v("x_embed"));
    assert_eq!(ins("blocks.1.residual1")[0], v("blocks.0.residual2"));
    assert_eq!(ins("final_layer.norm_final"), vec![v("blocks.1.residual2")]);
    // Conditioning: both blocks and the final layer read c through SiLU.
    assert_eq!(ins("c"), vec![v("t_embedder.mlp.2"), v("y_embedder.embed")]);
    for s in ["blocks.0", "blocks.1", "final_layer"] {
        assert_eq!(ins(&format!("{s}.adaLN_modulation.0")), vec![v("c")]);
    }
    assert_eq!(
        op("blocks.0.mlp.act"),
        &Op::Gelu {
            approx: GeluApprox::Tanh
        }
    );
    assert_eq!(op("t_embedder.args"), &Op::Binary(BinaryOp::Mul));
    assert_eq!(op("t_embedder.sin"), &Op::Unary(UnaryOp::Sin));
    assert_eq!(op("t_embedder.t_freq"), &Op::Concat { axis: -1 });
    assert_eq!(
        ins("t_embedder.t_freq"),
        vec![v("t_embedder.cos"), v("t_embedder.sin")]
    );
    assert_eq!(
        op("x_embedder.proj"),
        &Op::Conv {
            strides: vec![2, 2],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            groups: 1,
            has_bias: true
        }
    );
    assert_eq!(
        op("unpatchify.permute"),
        &Op::Transpose {
            perm: vec![0, 5, 1, 3, 2, 4]
        }
    );
    assert_eq!(op("y_embedder.embed"), &Op::Gather { axis: 0 });
    // Parameter shapes.
    let shape = |name: &str| match op(name) {
        Op::Constant(t) => t.shape().to_vec(),
        other => panic!("{name} is {other:?}"),
    };
    assert_eq!(shape("y_embedder.embedding_table"), vec![11, 64]);
    assert_eq!(shape("blocks.0.attn.qkv.weight"), vec![64, 192]);
    assert_eq!(shape("blocks.0.mlp.fc1.weight"), vec![64, 256]);
    assert_eq!(shape("final_layer.linear.weight"), vec![64, 32]);
    assert_eq!(shape("x_embedder.proj.weight"), vec![64, 4, 2, 2]);
    assert_eq!(shape("pos_embed"), vec![1, 16, 64]);
}

#[test]
fn parameter_count_by_hand() {
    // tiny: h = 64, C = 4, p = 2, out = 8, 10 classes, MLP 256, depth 2.
    let x_embed = 64 * 4 * 2 * 2 + 64; // 1088
    let t_embed = 256 * 64 + 64 + 64 * 64 + 64; // 20608
    let y_embed = 11 * 64; // 704
    let block =
        (64 * 384 + 384) + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64); // 74688
    let final_layer = (64 * 128 + 128) + (64 * 32 + 32); // 10400
    let expected: u64 = x_embed + t_embed + y_embed + 2 * block + final_layer;
    assert_eq!(expected, 182_176);
    let cfg = DitConfig::tiny();
    assert_eq!(cfg.parameter_count(), Some(expected));

    // The graph's constants are exactly the parameters plus the two fixed buffers.
    let g = build(&cfg).unwrap();
    let mut params = 0u64;
    let mut buffers = 0u64;
    for id in g.node_ids() {
        let node = g.node(id);
        if let Op::Constant(t) = &node.op {
            match node.name() {
                "pos_embed" | "t_embedder.freqs" => buffers += t.numel() as u64,
                _ => params += t.numel() as u64,
            }
        }
    }
    assert_eq!(params, expected);
    assert_eq!(buffers, 16 * 64 + 128);

    // DiT-S/2 has 33.0 M parameters (paper, Table 1).
    assert_eq!(DitConfig::dit_s_2().parameter_count(), Some(32_865_056));
}

#[test]
fn deterministic_given_a_seed() {
    let cfg = DitConfig::tiny();
    let a = build(&cfg).unwrap();
    let b = build(&cfg).unwrap();
    let c = build(&DitConfig { seed: 1, ..cfg }).unwrap();
    let nodes = |g: &Graph| -> Vec<(String, Op, Vec<Value>)> {
        g.node_ids()
            .map(|id| {
                let n = g.node(id);
                (n.name().to_string(), n.op.clone(), n.inputs().to_vec())
            })
            .collect()
    };
    assert_eq!(nodes(&a), nodes(&b));
    let (na, nc) = (nodes(&a), nodes(&c));
    assert_eq!(na.len(), nc.len());
    let differing = na.iter().zip(&nc).filter(|(x, y)| x != y).count();
    // Every random parameter differs (patch conv 2, timestep MLP 4, class table 1, 10 per
    // block, final layer 4); the structure and the fixed buffers do not.
    assert_eq!(differing as u64, 11 + 10 * DitConfig::tiny().depth);
}

#[test]
fn single_block_graph() {
    let cfg = DitConfig::tiny();
    let g = block(&cfg).unwrap();
    let tys: Vec<&Op> = g.inputs().iter().map(|&id| &g.node(id).op).collect();
    assert_eq!(
        tys,
        vec![
            &Op::Input {
                index: 0,
                ty: ty(DType::F32, &[16, 64])
            },
            &Op::Input {
                index: 1,
                ty: ty(DType::F32, &[64])
            },
        ]
    );
    let hist = op_histogram(&g);
    assert_eq!(hist.get("attention"), Some(&1));
    assert_eq!(hist.get("constant"), Some(&10));
    assert_eq!(hist.get("matmul"), Some(&5));
    assert_eq!(
        g.node_count(),
        2 + 10 + 5 + 7 + 2 + 1 + 2 + 2 + 2 + 2 + 1 + 1
    );
    let [out] = g.outputs() else {
        panic!("one output")
    };
    assert_eq!(g.value_name(*out), "block.residual2");
}

#[test]
fn invalid_configs_are_refused() {
    let bad = |f: fn(&mut DitConfig), field: &str| {
        let mut cfg = DitConfig::tiny();
        f(&mut cfg);
        match build(&cfg) {
            Err(ModelError::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected an error on {field}, got {other:?}"),
        }
    };
    bad(|c| c.heads = 3, "heads");
    bad(|c| c.hidden = 0, "hidden");
    bad(|c| c.hidden = 66, "heads"); // heads 4 does not divide 66
    bad(
        |c| {
            c.hidden = 6;
            c.heads = 3
        },
        "hidden",
    ); // not a multiple of 4
    bad(|c| c.patch = 3, "patch");
    bad(|c| c.mlp_ratio = f32::NAN, "mlp_ratio");
    bad(|c| c.mlp_ratio = 0.001, "mlp_ratio");
    bad(|c| c.depth = u64::MAX, "hidden");
    bad(|c| c.num_classes = 0, "num_classes");
    assert!(DitConfig::preset("nope").is_none());
    for name in PRESETS {
        let cfg = DitConfig::preset(name).unwrap();
        assert!(cfg.validate().is_ok(), "{name}");
    }
}

#[test]
fn fixed_embeddings_by_hand() {
    let pe = sincos_pos_embed(8, 2); // quarter = 2, ω = [1, 1/100]
    assert_eq!(pe.len(), 4 * 8);
    // Token 0 (row 0, column 0): sin 0, cos 1 everywhere.
    assert_eq!(&pe[..8], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    // Token 1 (row 0, column 1): first half embeds the column.
    let t1 = &pe[8..16];
    assert_eq!(t1[0], 1f64.sin() as f32);
    assert_eq!(t1[1], 0.01f64.sin() as f32);
    assert_eq!(t1[2], 1f64.cos() as f32);
    assert_eq!(&t1[4..], &[0.0, 0.0, 1.0, 1.0]);
    // Token 2 (row 1, column 0): second half embeds the row.
    let t2 = &pe[16..24];
    assert_eq!(&t2[..4], &[0.0, 0.0, 1.0, 1.0]);
    assert_eq!(t2[4], 1f64.sin() as f32);

    let f = timestep_freqs();
    assert_eq!(f.len(), 128);
    assert_eq!(f[0], 1.0);
    assert_eq!(f[64], 0.01);
    assert!((f[127] - (-(10_000f64.ln()) * 127.0 / 128.0).exp() as f32).abs() < 1e-9);
}
