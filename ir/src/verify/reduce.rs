//! Reduction rules: reduce_*, argmax/argmin, cumsum.
//!
//! All take numbers (not bool). `reduce_*` keeps the dtype; its axes are resolved against
//! the rank (negative from the end), duplicates after resolution are refused, and an
//! empty list means every axis. Reduced axes become 1 with `keepdims`, else disappear.
//! `argmax`/`argmin` reduce one axis to an i64 index. `cumsum` keeps the type.

use super::{InferError, operand, resolve_axis};
use crate::DType;
use crate::shape::{Dim, Shape, TensorType};

fn want_number(ty: &TensorType) -> Result<(), InferError> {
    if ty.dtype == DType::Bool {
        Err(InferError::DType {
            operand: 0,
            actual: ty.dtype,
            expected: "a float or integer type".to_string(),
        })
    } else {
        Ok(())
    }
}

/// The shape left after reducing `reduced` (a mask over the axes).
fn reduced_shape(shape: &Shape, reduced: &[bool], keepdims: bool) -> Shape {
    let mut out = Vec::with_capacity(shape.rank());
    for (d, &r) in shape.dims().iter().zip(reduced) {
        if !r {
            out.push(d.clone());
        } else if keepdims {
            out.push(Dim::fixed(1));
        }
    }
    Shape(out)
}

pub(super) fn reduce(
    axes: &[i64],
    keepdims: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_number(x)?;
    let rank = x.shape.rank();
    let mut reduced = vec![axes.is_empty(); rank];
    for &axis in axes {
        let a = resolve_axis(0, x, axis)?;
        match reduced.get_mut(a) {
            Some(slot) if !*slot => *slot = true,
            _ => {
                return Err(InferError::Attr {
                    attr: "axes",
                    reason: format!("{axes:?} names axis {a} twice (rank {rank})"),
                });
            }
        }
    }
    let shape = reduced_shape(&x.shape, &reduced, keepdims);
    Ok(vec![TensorType::new(x.dtype, shape)])
}

pub(super) fn arg_reduce(
    axis: i64,
    keepdims: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_number(x)?;
    let a = resolve_axis(0, x, axis)?;
    let reduced: Vec<bool> = (0..x.shape.rank()).map(|i| i == a).collect();
    let shape = reduced_shape(&x.shape, &reduced, keepdims);
    Ok(vec![TensorType::new(DType::I64, shape)])
}

pub(super) fn cumsum(axis: i64, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_number(x)?;
    resolve_axis(0, x, axis)?;
    Ok(vec![x.clone()])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, ty};
    use crate::DType::{Bool, F32, I32, I64};
    use crate::op::{Op, ReduceOp};

    fn red(axes: &[i64], keepdims: bool) -> Op {
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: axes.to_vec(),
            keepdims,
        }
    }

    #[test]
    fn reduce_rule() {
        let x = ty(F32, "B,256,384");
        assert_eq!(ok1(&red(&[-1], true), &[x.clone()]), ty(F32, "B,256,1"));
        assert_eq!(ok1(&red(&[0, 2], false), &[x.clone()]), ty(F32, "256"));
        assert_eq!(ok1(&red(&[], false), &[x.clone()]), ty(F32, ""));
        assert_eq!(ok1(&red(&[], true), &[x.clone()]), ty(F32, "1,1,1"));
        for op in ReduceOp::ALL {
            let r = Op::Reduce {
                op,
                axes: vec![1],
                keepdims: false,
            };
            assert_eq!(ok1(&r, &[ty(I32, "B,3")]), ty(I32, "B"));
        }
    }

    #[test]
    fn reduce_refusals() {
        let x = ty(F32, "B,256,384");
        let m = err(&red(&[2, -1], false), &[x.clone()]);
        says(&m, &["attribute `axes`", "axis 2 twice"]);
        let m = err(&red(&[3], false), &[x]);
        says(&m, &["axis 3 is out of range for operand 0 of rank 3"]);
        let m = err(&red(&[0], false), &[ty(Bool, "4")]);
        says(&m, &["operand 0", "bool"]);
    }

    #[test]
    fn arg_reduce_rule() {
        let op = Op::ArgReduce {
            max: true,
            axis: -1,
            keepdims: false,
        };
        assert_eq!(ok1(&op, &[ty(F32, "B,10")]), ty(I64, "B"));
        let keep = Op::ArgReduce {
            max: false,
            axis: 0,
            keepdims: true,
        };
        assert_eq!(ok1(&keep, &[ty(F32, "B,10")]), ty(I64, "1,10"));
        says(
            &err(&op, &[ty(F32, "")]),
            &["axis -1 is out of range", "rank 0"],
        );
    }

    #[test]
    fn cumsum_rule() {
        let op = Op::CumSum {
            axis: 1,
            exclusive: false,
            reverse: true,
        };
        assert_eq!(ok1(&op, &[ty(I64, "B,L")]), ty(I64, "B,L"));
        says(&err(&op, &[ty(F32, "L")]), &["axis 1 is out of range"]);
        says(&err(&op, &[ty(Bool, "B,L")]), &["bool"]);
    }
}
