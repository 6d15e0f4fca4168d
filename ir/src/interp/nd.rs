//! Small N-d index helpers for the contraction, convolution, attention, scan, quantization
//! and resize evaluators: row-major strides, odometer iteration, numpy broadcasting of an
//! output index onto an operand, operand checks and f64 → dtype encoding.

use super::{InterpError, op_err};
use crate::DType;
use crate::tensor::{Tensor, checked_numel};

/// `[2,3,4]`-style rendering of a static shape for error messages.
pub(super) fn shape_str(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// Element count of `shape`, refusing shapes too large to materialize.
pub(super) fn numel(shape: &[u64]) -> Result<usize, InterpError> {
    Ok(checked_numel(shape)?)
}

/// Row-major strides (in elements) of `shape`.
pub(super) fn strides(shape: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Advance the multi-index `idx` over `shape` in row-major order; false once it wraps
/// around (all indices visited). An empty shape has a single index, so this returns false.
pub(super) fn next_index(idx: &mut [usize], shape: &[u64]) -> bool {
    for i in (0..idx.len()).rev() {
        idx[i] += 1;
        if (idx[i] as u64) < shape[i] {
            return true;
        }
        idx[i] = 0;
    }
    false
}

/// Numpy broadcast of two static shapes (aligned from the right, 1 stretches).
pub(super) fn broadcast_shapes(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        });
    }
    Some(out)
}

/// True if `from` broadcasts to exactly `to` (one-directional numpy rule).
pub(super) fn broadcasts_to(from: &[u64], to: &[u64]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// Flat offset into an operand of shape `shape` (row-major, strides `st`) of the element
/// that a broadcast output multi-index `idx` reads. `shape` is right-aligned with `idx`
/// and must broadcast to the output's shape.
pub(super) fn broadcast_offset(idx: &[usize], shape: &[u64], st: &[usize]) -> usize {
    let lead = idx.len() - shape.len();
    shape
        .iter()
        .zip(st)
        .zip(&idx[lead..])
        .map(|((&d, &s), &i)| if d == 1 { 0 } else { i * s })
        .sum()
}

/// Resolve a possibly negative `axis` against `rank`, naming `what` on failure.
pub(super) fn resolve_axis(axis: i64, rank: usize, what: &str) -> Result<usize, InterpError> {
    crate::shape::normalize_axis(axis, rank).ok_or_else(|| {
        op_err(format!(
            "{what}: axis {axis} is out of range for rank {rank}"
        ))
    })
}

/// Refuse a non-float operand.
pub(super) fn require_float(t: &Tensor, what: &str) -> Result<(), InterpError> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected a float dtype, got {}",
            t.dtype()
        )))
    }
}

/// Refuse an operand whose dtype differs from `expected`.
pub(super) fn require_dtype(t: &Tensor, expected: DType, what: &str) -> Result<(), InterpError> {
    if t.dtype() == expected {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected dtype {expected}, got {}",
            t.dtype()
        )))
    }
}

/// Refuse an operand whose shape differs from `expected`.
pub(super) fn require_shape(t: &Tensor, expected: &[u64], what: &str) -> Result<(), InterpError> {
    if t.shape() == expected {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected shape {}, got {}",
            shape_str(expected),
            shape_str(t.shape())
        )))
    }
}

/// Refuse an operand whose rank differs from `rank`.
pub(super) fn require_rank(t: &Tensor, rank: usize, what: &str) -> Result<(), InterpError> {
    if t.shape().len() == rank {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected rank {rank}, got shape {}",
            shape_str(t.shape())
        )))
    }
}

/// Every element of a tensor as f64 (through its exact f32 decoding).
pub(super) fn values_f64(t: &Tensor) -> Vec<f64> {
    t.to_f32_vec().into_iter().map(f64::from).collect()
}

/// Round f64 results to f32, then encode them into `dtype` with the bit-exact rounding of
/// [`Tensor::from_f32`].
pub(super) fn encode_f64(
    dtype: DType,
    shape: Vec<u64>,
    values: &[f64],
) -> Result<Tensor, InterpError> {
    let f: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Ok(Tensor::from_f32(dtype, shape, &f)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_odometer() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        let shape = [2u64, 3];
        let mut idx = vec![0usize; 2];
        let mut seen = vec![idx.clone()];
        while next_index(&mut idx, &shape) {
            seen.push(idx.clone());
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[4], vec![1, 1]);
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[2], &[3]), None);
        assert!(broadcasts_to(&[1, 4], &[3, 4]));
        assert!(!broadcasts_to(&[2, 4], &[3, 4]));
        assert!(!broadcasts_to(&[1, 3, 4], &[3, 4]));
        // shape [3,1] read at output index [1,2,0] → element 2 of the first axis.
        assert_eq!(broadcast_offset(&[1, 2, 0], &[3, 1], &strides(&[3, 1])), 2);
    }
}
