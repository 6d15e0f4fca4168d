//! Small checks and dimension arithmetic shared by the rule files.

use super::InferError;
use crate::DType;
use crate::shape::{Dim, Shape, TensorType, normalize_axis};

/// Operand `i`, or an operand-count error if it is missing (callers have checked the
/// count already; this keeps the rules free of indexing).
pub(super) fn operand<'a>(
    inputs: &[&'a TensorType],
    i: usize,
) -> Result<&'a TensorType, InferError> {
    inputs
        .get(i)
        .copied()
        .ok_or_else(|| InferError::OperandCount {
            expected: format!("at least {}", i + 1),
            actual: inputs.len(),
        })
}

/// Resolve `axis` against operand `operand`'s rank.
pub(super) fn resolve_axis(
    operand: usize,
    ty: &TensorType,
    axis: i64,
) -> Result<usize, InferError> {
    normalize_axis(axis, ty.shape.rank()).ok_or(InferError::Axis {
        operand,
        axis,
        rank: ty.shape.rank(),
    })
}

/// Operand must be a float type.
pub(super) fn want_float(operand: usize, ty: &TensorType) -> Result<(), InferError> {
    if ty.dtype.is_float() {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: "a float type".to_string(),
        })
    }
}

/// Operand must have exactly `dtype`.
pub(super) fn want_dtype(operand: usize, ty: &TensorType, dtype: DType) -> Result<(), InferError> {
    if ty.dtype == dtype {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: dtype.to_string(),
        })
    }
}

/// Operand `operand` must have the dtype of operand `other`.
pub(super) fn want_same_dtype(
    operand: usize,
    ty: &TensorType,
    other: usize,
    other_ty: &TensorType,
) -> Result<(), InferError> {
    if ty.dtype == other_ty.dtype {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: format!("{} to match operand {other}", other_ty.dtype),
        })
    }
}

/// Operand must have rank `rank`; `what` names the expected layout (`[B, C]`).
pub(super) fn want_rank(
    operand: usize,
    ty: &TensorType,
    rank: usize,
    what: &str,
) -> Result<(), InferError> {
    if ty.shape.rank() == rank {
        Ok(())
    } else {
        Err(InferError::Shape {
            operand,
            shape: ty.shape.clone(),
            expected: format!("rank {rank} ({what})"),
        })
    }
}

/// Operand must have exactly `shape`; `why` says where that shape comes from.
pub(super) fn want_shape(
    operand: usize,
    ty: &TensorType,
    shape: &Shape,
    why: &str,
) -> Result<(), InferError> {
    if ty.shape == *shape {
        Ok(())
    } else {
        Err(InferError::Shape {
            operand,
            shape: ty.shape.clone(),
            expected: format!("{shape} ({why})"),
        })
    }
}

/// Broadcast the shapes of operands `left` and `right`.
pub(super) fn broadcast(
    left: usize,
    a: &Shape,
    right: usize,
    b: &Shape,
) -> Result<Shape, InferError> {
    a.broadcast(b).map_err(|source| InferError::Broadcast {
        left,
        right,
        source,
    })
}

/// The symbolic part of a monomial (`6*B*N → B*N`, `6 → 1`), `None` for a zero dim.
fn symbolic_part(d: &Dim) -> Option<Dim> {
    d.checked_div(&Dim::fixed(d.factor()))
}

/// Sum of monomials that share one symbolic part (`2*B + B = 3*B`; static dims add up);
/// zero extents add nothing. `None` if the parts differ (the sum is not a monomial) or the
/// factor overflows.
pub(super) fn sum_dims<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> Option<Dim> {
    let mut part: Option<Dim> = None;
    let mut factor: u64 = 0;
    for d in dims {
        if d.factor() == 0 {
            continue;
        }
        let p = symbolic_part(d)?;
        match &part {
            None => part = Some(p),
            Some(q) if *q == p => {}
            Some(_) => return None,
        }
        factor = factor.checked_add(d.factor())?;
    }
    match part {
        None => Some(Dim::fixed(0)),
        Some(p) => Dim::fixed(factor).checked_mul(&p),
    }
}

/// `ceil(d / block)`: exact for static dims; a symbolic dim must be divisible by `block`
/// as a monomial (its factor a multiple of `block`), else `None`.
pub(super) fn ceil_div(d: &Dim, block: u64) -> Option<Dim> {
    if block == 0 {
        return None;
    }
    match d.as_fixed() {
        Some(n) => Some(Dim::fixed(n.div_ceil(block))),
        None => d.checked_div(&Dim::fixed(block)),
    }
}
