//! Shorthands for the rule tests.

use super::infer_op;
use crate::DType;
use crate::op::Op;
use crate::shape::{Dim, Shape, TensorType};

/// Parse `"B,256,2*B"` (empty = scalar) into a shape.
pub fn shape(s: &str) -> Shape {
    if s.trim().is_empty() {
        return Shape::scalar();
    }
    Shape(
        s.split(',')
            .map(|d| {
                d.trim()
                    .split('*')
                    .map(|f| match f.trim().parse::<u64>() {
                        Ok(n) => Dim::fixed(n),
                        Err(_) => Dim::sym(f.trim()),
                    })
                    .try_fold(Dim::fixed(1), |a, b| a.checked_mul(&b))
                    .unwrap()
            })
            .collect(),
    )
}

/// A type from a dtype and a shape string.
pub fn ty(dtype: DType, s: &str) -> TensorType {
    TensorType::new(dtype, shape(s))
}

/// Infer, expecting success.
pub fn ok(op: &Op, inputs: &[TensorType]) -> Vec<TensorType> {
    let refs: Vec<&TensorType> = inputs.iter().collect();
    match infer_op(op, &refs) {
        Ok(t) => t,
        Err(e) => panic!("{} refused: {e}", op.name()),
    }
}

/// Infer one output, expecting success.
pub fn ok1(op: &Op, inputs: &[TensorType]) -> TensorType {
    let mut t = ok(op, inputs);
    assert_eq!(t.len(), 1, "{} should have one output", op.name());
    t.remove(0)
}

/// Infer, expecting an error; returns its message.
pub fn err(op: &Op, inputs: &[TensorType]) -> String {
    let refs: Vec<&TensorType> = inputs.iter().collect();
    match infer_op(op, &refs) {
        Ok(t) => panic!("{} accepted, inferred {t:?}", op.name()),
        Err(e) => e.to_string(),
    }
}

/// Assert that `msg` contains every one of `parts`.
pub fn says(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message `{msg}` lacks `{p}`");
    }
}
