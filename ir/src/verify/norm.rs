//! Normalization rules: layer_norm, rms_norm, group_norm, softmax.
//!
//! All take a float `x` and return `x`'s type. Affine parameters have `x`'s dtype:
//! `gamma`/`beta` of the normalized trailing shape `x.shape[axis..]` for layer_norm and
//! rms_norm, `[C]` for group_norm (whose `C` must be divisible by `groups`).

use super::{InferError, operand, resolve_axis, want_float, want_same_dtype, want_shape};
use crate::shape::{Dim, Shape, TensorType};

/// Check the affine parameters (operands `1..1+count`) against `shape`.
fn check_params(
    inputs: &[&TensorType],
    x: &TensorType,
    count: usize,
    shape: &Shape,
    why: &str,
) -> Result<(), InferError> {
    for i in 1..=count {
        let p = operand(inputs, i)?;
        want_same_dtype(i, p, 0, x)?;
        want_shape(i, p, shape, why)?;
    }
    Ok(())
}

fn trailing_norm(
    axis: i64,
    params: usize,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    let a = resolve_axis(0, x, axis)?;
    let trailing = Shape(x.shape.dims().get(a..).unwrap_or_default().to_vec());
    check_params(
        inputs,
        x,
        params,
        &trailing,
        "the normalized trailing shape of operand 0",
    )?;
    Ok(vec![x.clone()])
}

pub(super) fn layer_norm(
    axis: i64,
    affine: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    trailing_norm(axis, 2 * usize::from(affine), inputs)
}

pub(super) fn rms_norm(
    axis: i64,
    affine: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    trailing_norm(axis, usize::from(affine), inputs)
}

pub(super) fn group_norm(
    groups: u64,
    affine: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    if groups == 0 {
        return Err(InferError::Attr {
            attr: "groups",
            reason: "is 0, expected at least 1".to_string(),
        });
    }
    let Some(c) = x.shape.dims().get(1).filter(|_| x.shape.rank() >= 2) else {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: "rank at least 2 ([N, C, *])".to_string(),
        });
    };
    if c.checked_div(&Dim::fixed(groups)).is_none() {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: format!("channels {c} divisible by groups {groups}"),
        });
    }
    let params = 2 * usize::from(affine);
    check_params(
        inputs,
        x,
        params,
        &Shape(vec![c.clone()]),
        "[C], one per channel",
    )?;
    Ok(vec![x.clone()])
}

pub(super) fn softmax(axis: i64, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    resolve_axis(0, x, axis)?;
    Ok(vec![x.clone()])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, ty};
    use crate::DType::{F16, F32, I32};
    use crate::op::Op;

    fn ln(axis: i64, affine: bool) -> Op {
        Op::LayerNorm {
            axis,
            eps: 1e-6,
            affine,
        }
    }

    #[test]
    fn layer_norm_rule() {
        let x = ty(F32, "B,256,384");
        assert_eq!(ok1(&ln(-1, false), &[x.clone()]), x);
        let out = ok1(
            &ln(1, true),
            &[x.clone(), ty(F32, "256,384"), ty(F32, "256,384")],
        );
        assert_eq!(out, x);
        let m = err(&ln(-1, true), &[x.clone(), ty(F32, "384"), ty(F32, "256")]);
        says(&m, &["operand 2", "[256]", "[384]"]);
        let m = err(&ln(3, false), &[x.clone()]);
        says(&m, &["axis 3 is out of range", "rank 3"]);
        let m = err(&ln(-1, false), &[ty(I32, "4")]);
        says(&m, &["operand 0", "float"]);
        let m = err(&ln(-1, true), &[x.clone(), ty(F16, "384"), ty(F32, "384")]);
        says(&m, &["operand 1", "f16"]);
    }

    #[test]
    fn rms_norm_rule() {
        let x = ty(F16, "B,S,64");
        let op = Op::RmsNorm {
            axis: -1,
            eps: 1e-6,
            affine: true,
        };
        assert_eq!(ok1(&op, &[x.clone(), ty(F16, "64")]), x);
        let m = err(&op, &[x.clone(), ty(F16, "S,64")]);
        says(&m, &["operand 1", "[S,64]", "expected [64]"]);
        let m = err(&op, &[x]);
        says(&m, &["expected 2 operands, got 1"]);
    }

    #[test]
    fn group_norm_rule() {
        let op = Op::GroupNorm {
            groups: 32,
            eps: 1e-5,
            affine: true,
        };
        let x = ty(F32, "B,128,H,W");
        assert_eq!(ok1(&op, &[x.clone(), ty(F32, "128"), ty(F32, "128")]), x);
        let m = err(&op, &[ty(F32, "B,100,8"), ty(F32, "100"), ty(F32, "100")]);
        says(&m, &["operand 0", "channels 100 divisible by groups 32"]);
        let m = err(&op, &[x.clone(), ty(F32, "128"), ty(F32, "64")]);
        says(&m, &["operand 2", "[64]"]);
        let m = err(&op, &[ty(F32, "8"), ty(F32, "8"), ty(F32, "8")]);
        says(&m, &["operand 0", "rank at least 2"]);
        let zero = Op::GroupNorm {
            groups: 0,
            eps: 1e-5,
            affine: false,
        };
        says(&err(&zero, &[x]), &["attribute `groups`"]);
    }

    #[test]
    fn softmax_rule() {
        let x = ty(F32, "B,H,S,S");
        assert_eq!(ok1(&Op::Softmax { axis: -1 }, &[x.clone()]), x);
        let m = err(&Op::Softmax { axis: -5 }, &[x]);
        says(&m, &["axis -5 is out of range for operand 0 of rank 4"]);
        let m = err(&Op::Softmax { axis: 0 }, &[ty(I32, "3")]);
        says(&m, &["operand 0", "i32"]);
    }
}
