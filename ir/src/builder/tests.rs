//! Unit tests of the parent module.

use super::*;
use crate::shape::Dim;

fn f32_ty(dims: &[u64]) -> TensorType {
    TensorType::new(DType::F32, Shape::fixed(dims))
}

fn op_of(g: &Graph, v: Value) -> &Op {
    &g.node(v.node).op
}

#[test]
fn scoped_names_and_linear() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape(vec![Dim::sym("B"), Dim::fixed(4)]));
    let (w, bias, y) = b.scoped("blocks.0", |b| {
        b.scoped("attn", |b| {
            let w = b.param(
                "qkv.weight",
                Tensor::zeros(DType::F32, vec![4, 12]).unwrap(),
            );
            let bias = b.param("qkv.bias", Tensor::zeros(DType::F32, vec![12]).unwrap());
            let y = b.named("qkv").linear(x, w, Some(bias));
            (w, bias, y)
        })
    });
    let z = b.silu(y);
    let g = b.finish(&[z]).unwrap();
    assert_eq!(g.value_name(w), "blocks.0.attn.qkv.weight");
    assert_eq!(g.value_name(bias), "blocks.0.attn.qkv.bias");
    assert_eq!(g.value_name(y), "blocks.0.attn.qkv");
    assert_eq!(op_of(&g, y), &Op::Binary(BinaryOp::Add));
    let mm = g.node(y.node).inputs()[0];
    assert_eq!(g.value_name(mm), "blocks.0.attn.qkv.matmul");
    assert_eq!(op_of(&g, mm), &Op::MatMul);
    assert_eq!(g.node(mm.node).inputs(), &[x, w]);
    assert_eq!(g.node(y.node).inputs(), &[mm, bias]);
    assert_eq!(g.value_name(z), "silu");
    assert_eq!(g.outputs(), &[z]);
    assert_eq!(g.node_count(), 6);
}

#[test]
fn default_names_are_made_unique() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[2]));
    let a = b.add(x, x);
    let c = b.add(a, x);
    let g = b.finish(&[c]).unwrap();
    assert_eq!(g.value_name(a), "add");
    assert_eq!(g.value_name(c), "add_1");
}

#[test]
fn split_returns_every_piece() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[2, 6]));
    let parts = b.named("ada").split(x, -1, &[2, 2, 2]);
    assert_eq!(parts.len(), 3);
    let g = b.finish(&parts).unwrap();
    let names: Vec<&str> = parts.iter().map(|v| g.value_name(*v)).collect();
    assert_eq!(names, vec!["ada", "ada_1", "ada_2"]);
    assert!(parts.iter().all(|v| v.node == parts[0].node));
    assert_eq!(parts[2].output, 2);
}

#[test]
fn op_helpers_set_flags_and_operands() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[1, 3, 4, 4]));
    let w = b.constant(Tensor::zeros(DType::F32, vec![8, 3, 2, 2]).unwrap());
    let c = b.conv(x, w, None, ConvAttrs::uniform(2, 2, 0));
    let ln = b.layer_norm(c, None, -1, 1e-6);
    let q = b.named("q").reshape(ln, Shape::fixed(&[1, 8, 4]));
    let att = b.attention(q, q, q, None, AttentionAttrs::mha(4));
    let scale = b.scalar(0.5);
    let (qv, extra) = b.quantize(att, Some(scale), None, DType::I8, QuantScheme::PerTensor);
    assert!(extra.is_none());
    let dq = b.dequantize(qv, &[scale], None, QuantScheme::PerTensor, DType::F32);
    let w2 = b.constant(Tensor::zeros(DType::F32, vec![4, 4]).unwrap());
    let (fp4, bs) = b.quantize(w2, None, None, DType::Fp4E2M1, QuantScheme::Mx { axis: 0 });
    let bs = bs.unwrap();
    let mm = b.qmatmul(
        dq,
        None,
        fp4,
        QuantScheme::Mx { axis: 0 },
        &[bs],
        DType::F32,
    );
    let cached = b.cache_read("blk", f32_ty(&[1, 8, 4]));
    let gated = b.step_gate(mm, cached, StepSchedule::Always);
    let out = b.cache_write(gated, "blk");
    let g = b.finish(&[out]).unwrap();
    assert!(matches!(
        op_of(&g, c),
        Op::Conv { has_bias: false, groups: 1, strides, .. } if strides == &[2, 2]
    ));
    assert_eq!(
        op_of(&g, ln),
        &Op::LayerNorm {
            axis: -1,
            eps: 1e-6,
            affine: false
        }
    );
    assert_eq!(g.node(att.node).inputs(), &[q, q, q]);
    assert_eq!(g.node(dq.node).inputs(), &[qv, scale]);
    assert_eq!(g.node(mm.node).inputs(), &[dq, fp4, bs]);
    assert_eq!(bs.output, 1);
    assert_eq!(g.node(gated.node).inputs(), &[mm, cached]);
    assert_eq!(g.value_name(out), "cache_write");
}

#[test]
fn remaining_helpers_build_the_right_ops() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[2, 4, 6]));
    let idx = b.input("i", DType::I64, Shape::fixed(&[3]));
    let g1 = b.constant(Tensor::zeros(DType::F32, vec![6]).unwrap());
    let g4 = b.constant(Tensor::zeros(DType::F32, vec![4]).unwrap());
    let sq = b.input("sq", DType::F32, Shape::fixed(&[4, 4]));
    let rms = b.rms_norm(x, Some(g1), -1, 1e-5);
    let gn = b.group_norm(x, Some((g4, g4)), 2, 1e-5);
    let sm = b.softmax(gn, 1);
    let ge = b.gelu(sm, GeluApprox::Erf);
    let red = b.reduce(ge, ReduceOp::Mean, &[-1], true);
    let sl = b.slice(rms, &[1], &[0], &[2], &[]);
    let cat = b.concat(&[sl, sl], 1);
    let ga = b.gather(cat, idx, 0);
    let ex = b.expand(red, Shape::fixed(&[2, 4, 6]));
    let pd = b.pad(ex, &[0, 0, 1, 0, 0, 1], PadMode::Edge);
    let rs = b.resize(
        pd,
        Shape::fixed(&[2, 4, 14]),
        ResizeMode::Linear,
        CoordTransform::HalfPixel,
    );
    let cond = b.binary(BinaryOp::Greater, rs, rs);
    let wh = b.where_(cond, rs, rs);
    let ca = b.cast(wh, DType::F16);
    let xt = b.transpose(x, &[0, 2, 1]);
    let m = b.matmul(x, xt);
    let gm = b.gemm(
        sq,
        sq,
        Some(sq),
        GemmAttrs {
            trans_b: true,
            ..GemmAttrs::default()
        },
    );
    let scan = b.selective_scan(
        ScanInputs {
            u: x,
            delta: x,
            a: sq,
            b: x,
            c: x,
            d: None,
            z: Some(x),
        },
        true,
    );
    let g = b.finish(&[rms, ga, ca, m, gm, scan]).unwrap();
    assert_eq!(g.node(rms.node).inputs(), &[x, g1]);
    assert_eq!(
        op_of(&g, gn),
        &Op::GroupNorm {
            groups: 2,
            eps: 1e-5,
            affine: true
        }
    );
    assert_eq!(g.node(gn.node).inputs(), &[x, g4, g4]);
    assert_eq!(op_of(&g, sm), &Op::Softmax { axis: 1 });
    assert_eq!(
        op_of(&g, red),
        &Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![-1],
            keepdims: true
        }
    );
    assert_eq!(
        op_of(&g, sl),
        &Op::Slice {
            axes: vec![1],
            starts: vec![0],
            ends: vec![2],
            steps: vec![1]
        }
    );
    assert_eq!(g.node(cat.node).inputs(), &[sl, sl]);
    assert_eq!(g.node(ga.node).inputs(), &[cat, idx]);
    assert_eq!(g.node(wh.node).inputs(), &[cond, rs, rs]);
    assert_eq!(op_of(&g, ca), &Op::Cast { to: DType::F16 });
    assert!(matches!(
        op_of(&g, gm),
        Op::Gemm {
            has_c: true,
            trans_a: false,
            trans_b: true,
            ..
        }
    ));
    assert_eq!(g.node(gm.node).inputs(), &[sq, sq, sq]);
    assert_eq!(
        op_of(&g, scan),
        &Op::SelectiveScan {
            delta_softplus: true,
            has_d: false,
            has_z: true
        }
    );
    assert_eq!(g.node(scan.node).inputs(), &[x, x, sq, x, x, x]);
    assert_eq!(g.value_name(pd), "pad");
    assert_eq!(g.value_name(rs), "resize");
}

#[test]
fn first_error_is_kept() {
    let mut other = Builder::new("other");
    let mut foreign = other.input("a", DType::F32, Shape::fixed(&[1]));
    foreign.output = 3;
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[1]));
    b.push_scope("s");
    let bad = b.add(x, foreign);
    assert_eq!(bad.node, NodeId::end());
    let later = b.mul(x, x);
    assert_eq!(later.node, NodeId::end());
    b.pop_scope();
    let err = b.finish(&[x]).unwrap_err();
    assert!(
        matches!(&err, BuildError::Graph { node, op: "add", source: GraphError::NoSuchOutput { .. } } if node == "s.add"),
        "{err:?}"
    );
}

#[test]
fn argument_errors() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[4]));
    b.quantize(x, None, None, DType::I8, QuantScheme::PerTensor);
    assert!(matches!(
        b.error(),
        Some(BuildError::Invalid { op: "quantize", .. })
    ));

    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[4]));
    b.node(Op::MatMul, &[x]);
    assert!(matches!(
        b.error(),
        Some(BuildError::Arity {
            expected: 2,
            actual: 1,
            ..
        })
    ));

    let mut b = Builder::new("g");
    b.pop_scope();
    assert_eq!(b.error(), Some(&BuildError::ScopeUnderflow));

    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[4]));
    b.push_scope("open");
    assert!(matches!(
        b.finish(&[x]),
        Err(BuildError::UnclosedScopes { .. })
    ));

    let b = Builder::new("g");
    assert_eq!(
        b.finish(&[poison()]).unwrap_err(),
        BuildError::BadOutput { index: 0 }
    );
}

#[test]
fn nodes_are_typed_as_added_and_type_errors_name_the_node() {
    let mut b = Builder::new("g");
    let x = b.input("x", DType::F32, Shape::fixed(&[3]));
    let y = b.exp(x);
    assert_eq!(b.value_type(y), Some(&f32_ty(&[3])));
    let w = b.input("w", DType::F32, Shape::fixed(&[4, 5]));
    let z = b.named("bad").matmul(y, w);
    match b.finish(&[z]).unwrap_err() {
        BuildError::Type { node, op, message } => {
            assert_eq!(node, "bad");
            assert_eq!(op, "matmul");
            assert!(message.contains("[4,5]"), "{message}");
        }
        other => panic!("expected a type error, got {other:?}"),
    }
}
