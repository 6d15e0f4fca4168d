//! Whole-graph tests of `verify`.

use super::testutil::ty;
use super::{VerifyError, verify};
use crate::DType::{F16, F32};
use crate::Graph;
use crate::graph::Value;
use crate::op::{BinaryOp, GeluApprox, Op, StepSchedule, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A small DiT-like block: layer norm, modulate, matmul, gelu, residual add.
fn block() -> (Graph, Vec<Value>) {
    let mut g = Graph::new("block");
    let x = g.add_input("x", ty(F32, "B,256,384"));
    let shift = g.add_input("shift", ty(F32, "B,384"));
    let scale = g.add_input("scale", ty(F32, "B,384"));
    let ln = Op::LayerNorm {
        axis: -1,
        eps: 1e-6,
        affine: false,
    };
    let h = g.add_node(ln, &[x], "h").unwrap();
    let m = g
        .add_node(Op::Modulate, &[Value::new(h, 0), shift, scale], "m")
        .unwrap();
    let w = Tensor::zeros(F32, vec![384, 384]).unwrap();
    let w = g.add_node(Op::Constant(w), &[], "w").unwrap();
    let mm = g
        .add_node(Op::MatMul, &[Value::new(m, 0), Value::new(w, 0)], "mm")
        .unwrap();
    let act = Op::Gelu {
        approx: GeluApprox::Erf,
    };
    let a = g.add_node(act, &[Value::new(mm, 0)], "a").unwrap();
    let y = g
        .add_node(Op::Binary(BinaryOp::Add), &[x, Value::new(a, 0)], "y")
        .unwrap();
    let flat = Op::Reshape {
        shape: super::testutil::shape("256*B,384"),
    };
    let f = g.add_node(flat, &[Value::new(y, 0)], "flat").unwrap();
    g.set_outputs(vec![Value::new(y, 0), Value::new(f, 0)]);
    let nodes = vec![
        Value::new(h, 0),
        Value::new(m, 0),
        Value::new(mm, 0),
        Value::new(y, 0),
        Value::new(f, 0),
    ];
    (g, nodes)
}

#[test]
fn verifies_a_block_end_to_end() {
    let (mut g, v) = block();
    verify(&mut g).unwrap();
    for &val in &v[..4] {
        assert_eq!(g.value_type(val), Some(&ty(F32, "B,256,384")));
    }
    assert_eq!(g.value_type(v[4]), Some(&ty(F32, "256*B,384")));
    // Verifying again (types present now) is accepted.
    verify(&mut g).unwrap();
}

#[test]
fn reports_the_node_and_op() {
    let mut g = Graph::new("bad");
    let a = g.add_input("a", ty(F32, "B,256,256"));
    let b = g.add_input("b", ty(F32, "B,384,64"));
    let mm = g.add_node(Op::MatMul, &[a, b], "blocks.0.attn").unwrap();
    g.set_outputs(vec![Value::new(mm, 0)]);
    let e = verify(&mut g).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node `blocks.0.attn` (matmul): operand 1 has shape [B,384,64], expected inner dimension 256 to match operand 0 [B,256,256]"
    );
    assert!(matches!(e, VerifyError::Op { ref node, op: "matmul", .. } if node == "blocks.0.attn"));
}

#[test]
fn annotation_mismatch() {
    let (mut g, v) = block();
    g.set_types(v[2].node, vec![ty(F16, "B,256,384")]);
    let e = verify(&mut g).unwrap_err();
    match &e {
        VerifyError::AnnotationMismatch {
            node,
            op,
            annotated,
            inferred,
        } => {
            assert_eq!(node, "mm");
            assert_eq!(*op, "matmul");
            assert_eq!(annotated, "(f16[B,256,384])");
            assert_eq!(inferred, "(f32[B,256,384])");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(e.to_string().contains("node `mm` (matmul) is annotated"));
}

#[test]
fn cycle_is_refused() {
    let mut g = Graph::new("loop");
    let x = g.add_input("x", ty(F32, "4"));
    let a = g.add_node(Op::Unary(UnaryOp::Neg), &[x], "a").unwrap();
    let b = g
        .add_node(Op::Unary(UnaryOp::Abs), &[Value::new(a, 0)], "b")
        .unwrap();
    g.set_input(a, 0, Value::new(b, 0)).unwrap();
    g.set_outputs(vec![Value::new(b, 0)]);
    let e = verify(&mut g).unwrap_err();
    assert!(matches!(e, VerifyError::Cycle { .. }), "{e}");
    assert!(e.to_string().contains("cycle"));
}

#[test]
fn outputs_must_exist() {
    let mut g = Graph::new("empty");
    g.add_input("x", ty(F32, "4"));
    let e = verify(&mut g).unwrap_err();
    assert_eq!(e.to_string(), "graph `empty` has no outputs");

    let (mut g, v) = block();
    g.set_outputs(vec![Value::new(v[0].node, 3)]);
    let e = verify(&mut g).unwrap_err();
    assert!(
        matches!(e, VerifyError::DanglingOutput { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn input_index_must_match_signature() {
    let (mut g, _) = block();
    let first = g.inputs()[0];
    if let Op::Input { index, .. } = g.op_mut(first) {
        *index = 2;
    }
    let e = verify(&mut g).unwrap_err();
    assert!(
        matches!(e, VerifyError::InputSignature { ref node, .. } if node == "x"),
        "{e}"
    );
    assert!(e.to_string().contains("position 0"));
}

#[test]
fn operand_count_is_checked() {
    let mut g = Graph::new("count");
    let x = g.add_input("x", ty(F32, "4"));
    let n = g.add_node(Op::Binary(BinaryOp::Add), &[x], "n").unwrap();
    g.set_outputs(vec![Value::new(n, 0)]);
    let e = verify(&mut g).unwrap_err();
    assert_eq!(e.to_string(), "node `n` (add) takes 2 operands but has 1");
}

#[test]
fn cache_slots_and_step_gate() {
    let mut g = Graph::new("cached");
    let x = g.add_input("x", ty(F16, "B,256,384"));
    let f = g.add_node(Op::Silu, &[x], "fresh").unwrap();
    let read = Op::CacheRead {
        slot: "blk".into(),
        ty: ty(F16, "B,256,384"),
    };
    let c = g.add_node(read, &[], "cached").unwrap();
    let gate = Op::StepGate {
        schedule: StepSchedule::Every {
            period: 2,
            warmup: 1,
        },
    };
    let s = g
        .add_node(gate, &[Value::new(f, 0), Value::new(c, 0)], "gate")
        .unwrap();
    let w = g
        .add_node(
            Op::CacheWrite { slot: "blk".into() },
            &[Value::new(s, 0)],
            "store",
        )
        .unwrap();
    g.set_outputs(vec![Value::new(w, 0)]);
    verify(&mut g).unwrap();
    assert_eq!(g.value_type(Value::new(w, 0)), Some(&ty(F16, "B,256,384")));

    // A read declaring another type than the write stores is refused.
    if let Op::CacheRead { ty: t, .. } = g.op_mut(c) {
        *t = ty(F16, "B,256,383");
    }
    g.set_types(c, Vec::new());
    let e = verify(&mut g).unwrap_err();
    assert!(e.to_string().contains("gate"), "{e}");

    // With matching gate operands but a second write of another type, the slot check fires.
    let mut g2 = Graph::new("slots");
    let x = g2.add_input("x", ty(F32, "4"));
    let y = g2.add_input("y", ty(F32, "5"));
    let w1 = g2
        .add_node(Op::CacheWrite { slot: "s".into() }, &[x], "w1")
        .unwrap();
    let w2 = g2
        .add_node(Op::CacheWrite { slot: "s".into() }, &[y], "w2")
        .unwrap();
    g2.set_outputs(vec![Value::new(w1, 0), Value::new(w2, 0)]);
    let e = verify(&mut g2).unwrap_err();
    assert!(
        matches!(e, VerifyError::CacheSlot { ref slot, .. } if slot == "s"),
        "{e}"
    );
}

#[test]
fn constants_and_split_outputs() {
    let mut g = Graph::new("split");
    let t = Tensor::zeros(F32, vec![2, 6]).unwrap();
    let c = g.add_node(Op::Constant(t), &[], "c").unwrap();
    let sp = Op::Split {
        axis: 1,
        sizes: vec![2, 4],
    };
    let s = g.add_node(sp, &[Value::new(c, 0)], "s").unwrap();
    g.set_outputs(vec![Value::new(s, 1)]);
    verify(&mut g).unwrap();
    assert_eq!(
        g.value_type(Value::new(s, 1)).map(|t| t.shape.clone()),
        Some(Shape::fixed(&[2, 4]))
    );
    // A wrong annotation on the constant is refused.
    g.set_types(c, vec![ty(F32, "2,5")]);
    let e = verify(&mut g).unwrap_err();
    assert!(
        matches!(e, VerifyError::AnnotationMismatch { ref node, .. } if node == "c"),
        "{e}"
    );
}
