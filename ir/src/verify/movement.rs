//! Movement rules: reshape, transpose, slice, concat, split, gather, expand, pad, resize.
//!
//! All keep the dtype of their (first) operand. Where a rule would need a sum of
//! different symbolic dimensions it refuses and says so: concatenating `B` with `N`,
//! padding a symbolic axis, splitting a symbolic axis into static pieces, slicing a
//! symbolic axis except for its full range or bounds provably inside it (symbols are
//! assumed to be at least 1, so `f·N` is at least `f`).

use super::{InferError, operand, resolve_axis, sum_dims, want_float, want_same_dtype};
use crate::DType;
use crate::op::{PadMode, ResizeMode};
use crate::shape::{Dim, Shape, TensorType};

/// Bounds at or beyond this magnitude mean "to the end" in a slice (exporters write
/// `i64::MAX` or `INT_MAX`).
const SLICE_FULL: i64 = i64::MAX / 2;

/// Reshape: the target must have the same element count as the operand, as monomials
/// (`[B,256,384] → [B*256,384]` is accepted; `[B,6] → [N,6]` cannot be proven and is
/// refused).
pub(super) fn reshape(
    target: &Shape,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let have = x.shape.numel().ok_or(InferError::Overflow { operand: 0 })?;
    let want = target.numel().ok_or(InferError::Attr {
        attr: "shape",
        reason: format!("{target} has an element count that overflows u64"),
    })?;
    if have != want {
        return Err(InferError::Attr {
            attr: "shape",
            reason: format!(
                "{target} has {want} elements but operand 0 {} has {have}; reshape needs the counts to be equal as monomials, which cannot be proven here",
                x.shape
            ),
        });
    }
    Ok(vec![TensorType::new(x.dtype, target.clone())])
}

/// Transpose: `perm` is a permutation of `0..rank`; output axis `i` is input axis
/// `perm[i]`.
pub(super) fn transpose(
    perm: &[usize],
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let rank = x.shape.rank();
    let mut seen = vec![false; rank];
    let bad = || InferError::Attr {
        attr: "perm",
        reason: format!("{perm:?} is not a permutation of the {rank} axes of operand 0"),
    };
    if perm.len() != rank {
        return Err(bad());
    }
    let mut dims = Vec::with_capacity(rank);
    for &p in perm {
        match (seen.get_mut(p), x.shape.dims().get(p)) {
            (Some(s), Some(d)) if !*s => {
                *s = true;
                dims.push(d.clone());
            }
            _ => return Err(bad()),
        }
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Extent of `start:end:step` (ONNX semantics) over a static extent `n`.
fn static_slice(n: u64, start: i64, end: i64, step: i64) -> u64 {
    let n = i128::from(n);
    let (mut s, mut e, st) = (i128::from(start), i128::from(end), i128::from(step));
    if s < 0 {
        s += n;
    }
    if e < 0 {
        e += n;
    }
    let count = if st > 0 {
        s = s.max(0).min(n);
        e = e.max(0).min(n);
        if e > s { (e - s + st - 1) / st } else { 0 }
    } else {
        s = s.max(0).min(n - 1);
        e = e.max(-1).min(n - 1);
        if s > e { (s - e - st - 1) / -st } else { 0 }
    };
    // count <= n, which came from a u64.
    u64::try_from(count).unwrap_or(0)
}

/// A slice bound on a symbolic axis of extent `n >= f` (`f` its static factor), as a
/// position that is known without knowing `n`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Position `p` from the start, `0 <= p <= f` (so no clamping can apply).
    Start(i128),
    /// Position `n + k` from the end, `-f <= k <= 0`.
    End(i128),
    /// Before the first element (an end of `-SLICE_FULL` or less with a negative step).
    Before,
}

/// Classify a bound; `None` if its position depends on `n` in a way the rules below
/// cannot express.
fn bound(b: i64, f: i128, is_end: bool, step: i64) -> Option<Bound> {
    let v = i128::from(b);
    if b >= SLICE_FULL {
        // "To the end": position n, clamped to n - 1 when walking backward.
        return Some(Bound::End(if step < 0 { -1 } else { 0 }));
    }
    if is_end && step < 0 && b <= -SLICE_FULL {
        return Some(Bound::Before);
    }
    if (0..=f).contains(&v) {
        return Some(Bound::Start(v));
    }
    if (-f..0).contains(&v) {
        return Some(Bound::End(v));
    }
    None
}

/// `ceil(span / step)` for a positive step, 0 for an empty span.
fn count(span: i128, step: i128) -> Option<Dim> {
    let c = if span > 0 {
        (span + step - 1) / step
    } else {
        0
    };
    u64::try_from(c).ok().map(Dim::fixed)
}

/// Extent of a slice of a symbolic dimension `d` (at least its factor `f`). The full
/// range (`0:END:1`, or `-1:BEFORE:-1` reversed, where `END >= i64::MAX/2` and `BEFORE
/// <= -i64::MAX/2`) keeps `d`. Bounds both counted from the start and within `f`
/// (`x[:, 0:128]` of a `256*N` axis), or both counted from the end and within `f`
/// (`x[:, -1:]`), give a static extent; so does a backward walk from a start within `f`
/// to before the first element. Anything else depends on the symbol and gives `None`.
fn symbolic_slice(d: &Dim, start: i64, end: i64, step: i64) -> Option<Dim> {
    let f = i128::from(d.factor());
    let s = bound(start, f, false, step)?;
    let e = bound(end, f, true, step)?;
    let st = i128::from(step);
    match (s, e) {
        (Bound::Start(0), Bound::End(0)) if step == 1 => Some(d.clone()),
        (Bound::End(-1), Bound::Before) if step == -1 => Some(d.clone()),
        (Bound::Start(a), Bound::Start(b)) | (Bound::End(a), Bound::End(b)) => {
            if step > 0 {
                count(b - a, st)
            } else if a == f {
                // A backward start at position f may be clamped to n - 1 < f.
                None
            } else {
                count(a - b, -st)
            }
        }
        (Bound::Start(a), Bound::Before) if a < f => count(a + 1, -st),
        _ => None,
    }
}

/// Slice: `axes`, `starts`, `ends`, `steps` of one length; axes distinct and in range;
/// steps non-zero. Static extents follow ONNX clamping; see `symbolic_slice` for
/// symbolic ones.
pub(super) fn slice(
    axes: &[i64],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let n = axes.len();
    for (attr, len) in [
        ("starts", starts.len()),
        ("ends", ends.len()),
        ("steps", steps.len()),
    ] {
        if len != n {
            return Err(InferError::Attr {
                attr,
                reason: format!("has {len} entries but `axes` has {n}"),
            });
        }
    }
    let mut dims = x.shape.dims().to_vec();
    let mut done = vec![false; dims.len()];
    for (((&axis, &start), &end), &step) in axes.iter().zip(starts).zip(ends).zip(steps) {
        let a = resolve_axis(0, x, axis)?;
        if step == 0 {
            return Err(InferError::Attr {
                attr: "steps",
                reason: format!("has a zero step for axis {axis}"),
            });
        }
        match done.get_mut(a) {
            Some(flag) if !*flag => *flag = true,
            _ => {
                return Err(InferError::Attr {
                    attr: "axes",
                    reason: format!("{axes:?} names axis {a} twice"),
                });
            }
        }
        let Some(d) = dims.get_mut(a) else {
            return Err(InferError::Axis {
                operand: 0,
                axis,
                rank: x.shape.rank(),
            });
        };
        let new = match d.as_fixed() {
            Some(extent) => Dim::fixed(static_slice(extent, start, end, step)),
            None => symbolic_slice(d, start, end, step).ok_or_else(|| InferError::Shape {
                operand: 0,
                shape: x.shape.clone(),
                expected: format!(
                    "a static extent along axis {a} for slice {start}:{end}:{step}; on the symbolic dimension {d} only the full range, or bounds within its factor {} counted both from the start or both from the end, have a known extent",
                    d.factor()
                ),
            })?,
        };
        *d = new;
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Concat: one or more operands of one dtype and rank, equal except along `axis`; the
/// extents along `axis` add up (static, or monomials sharing their symbols: `B + 2·B =
/// 3·B`).
pub(super) fn concat(axis: i64, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let first = operand(inputs, 0)?;
    let a = resolve_axis(0, first, axis)?;
    for (i, t) in inputs.iter().enumerate().skip(1) {
        want_same_dtype(i, t, 0, first)?;
        let same = t.shape.rank() == first.shape.rank()
            && t.shape
                .dims()
                .iter()
                .zip(first.shape.dims())
                .enumerate()
                .all(|(j, (x, y))| j == a || x == y);
        if !same {
            return Err(InferError::Shape {
                operand: i,
                shape: t.shape.clone(),
                expected: format!(
                    "the shape of operand 0 {} except along concat axis {a}",
                    first.shape
                ),
            });
        }
    }
    let along: Vec<&Dim> = inputs
        .iter()
        .filter_map(|t| t.shape.dims().get(a))
        .collect();
    let Some(total) = sum_dims(along.iter().copied()) else {
        let culprit = inputs
            .iter()
            .position(|t| t.shape.dims().get(a).is_some_and(|d| !d.is_fixed()))
            .unwrap_or(0);
        let shape = inputs
            .get(culprit)
            .map(|t| t.shape.clone())
            .unwrap_or_default();
        let parts: Vec<String> = along.iter().map(ToString::to_string).collect();
        return Err(InferError::Shape {
            operand: culprit,
            shape,
            expected: format!(
                "extents along concat axis {a} whose sum is a monomial, but {} is a sum of different symbolic dimensions (not representable)",
                parts.join(" + ")
            ),
        });
    };
    let mut dims = first.shape.dims().to_vec();
    if let Some(d) = dims.get_mut(a) {
        *d = total;
    }
    Ok(vec![TensorType::new(first.dtype, Shape(dims))])
}

/// Split: the static `sizes` (at least one) add up to the static extent along `axis`;
/// one output per piece.
pub(super) fn split(
    axis: i64,
    sizes: &[u64],
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let a = resolve_axis(0, x, axis)?;
    if sizes.is_empty() {
        return Err(InferError::Attr {
            attr: "sizes",
            reason: "is empty, expected at least one piece".to_string(),
        });
    }
    let Some(extent) = x.shape.dims().get(a).and_then(Dim::as_fixed) else {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: format!(
                "a static extent along split axis {a} (static pieces cannot add up to a symbolic dimension)"
            ),
        });
    };
    let total = sizes.iter().try_fold(0u64, |acc, &s| acc.checked_add(s));
    if total != Some(extent) {
        return Err(InferError::Attr {
            attr: "sizes",
            reason: format!(
                "{sizes:?} add up to {}, expected the extent {extent} of operand 0 along axis {a}",
                total.map_or_else(|| "more than u64 holds".to_string(), |t| t.to_string())
            ),
        });
    }
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut dims = x.shape.dims().to_vec();
            if let Some(d) = dims.get_mut(a) {
                *d = Dim::fixed(s);
            }
            TensorType::new(x.dtype, Shape(dims))
        })
        .collect())
}

/// Gather: indices are i64 or i32; output `data.shape[..axis] ++ indices.shape ++
/// data.shape[axis+1..]` of `data`'s dtype.
pub(super) fn gather(axis: i64, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let data = operand(inputs, 0)?;
    let idx = operand(inputs, 1)?;
    let a = resolve_axis(0, data, axis)?;
    if !matches!(idx.dtype, DType::I64 | DType::I32) {
        return Err(InferError::DType {
            operand: 1,
            actual: idx.dtype,
            expected: "i64 or i32 indices".to_string(),
        });
    }
    let d = data.shape.dims();
    let mut dims: Vec<Dim> = d.get(..a).unwrap_or_default().to_vec();
    dims.extend(idx.shape.dims().iter().cloned());
    dims.extend(d.get(a + 1..).unwrap_or_default().iter().cloned());
    Ok(vec![TensorType::new(data.dtype, Shape(dims))])
}

/// Expand: numpy broadcast of the operand with the target shape (either may be the
/// larger one along an axis, as in ONNX).
pub(super) fn expand(
    target: &Shape,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let shape = x.shape.broadcast(target).map_err(|e| InferError::Attr {
        attr: "shape",
        reason: format!("does not broadcast with operand 0: {e}"),
    })?;
    Ok(vec![TensorType::new(x.dtype, shape)])
}

/// Pad: `pads` has a begin and an end per axis; each axis grows by both. A symbolic
/// axis may only get zero padding. `reflect` needs each pad below the extent, `edge`
/// needs a non-empty axis wherever it pads.
pub(super) fn pad(
    pads: &[u64],
    mode: PadMode,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let rank = x.shape.rank();
    if pads.len() != 2 * rank {
        return Err(InferError::Attr {
            attr: "pads",
            reason: format!(
                "has {} entries, expected 2 × rank {rank} = {}",
                pads.len(),
                2 * rank
            ),
        });
    }
    let (begins, ends) = pads.split_at(rank);
    let mut dims = Vec::with_capacity(rank);
    for (a, ((d, &b), &e)) in x.shape.dims().iter().zip(begins).zip(ends).enumerate() {
        if b == 0 && e == 0 {
            dims.push(d.clone());
            continue;
        }
        let Some(n) = d.as_fixed() else {
            return Err(InferError::Shape {
                operand: 0,
                shape: x.shape.clone(),
                expected: format!(
                    "a static extent along padded axis {a} ({d} + {b} + {e} is not a monomial)"
                ),
            });
        };
        let fits = match mode {
            PadMode::Constant(_) => true,
            PadMode::Reflect => b < n && e < n,
            PadMode::Edge => n > 0,
        };
        if !fits {
            return Err(InferError::Shape {
                operand: 0,
                shape: x.shape.clone(),
                expected: format!(
                    "an extent along axis {a} large enough for {mode:?} padding of {b} and {e}"
                ),
            });
        }
        let grown = n
            .checked_add(b)
            .and_then(|v| v.checked_add(e))
            .ok_or(InferError::Overflow { operand: 0 })?;
        dims.push(Dim::fixed(grown));
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Resize: the output shape is `size`, of the operand's rank and dtype; linear
/// interpolation needs a float operand, nearest takes any non-bool; an empty input axis
/// cannot be resized to a non-empty one.
pub(super) fn resize(
    size: &Shape,
    mode: ResizeMode,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    match mode {
        ResizeMode::Linear => want_float(0, x)?,
        ResizeMode::Nearest(_) => {
            if x.dtype == DType::Bool {
                return Err(InferError::DType {
                    operand: 0,
                    actual: x.dtype,
                    expected: "a float or integer type".to_string(),
                });
            }
        }
    }
    if size.rank() != x.shape.rank() {
        return Err(InferError::Attr {
            attr: "size",
            reason: format!(
                "{size} has rank {}, expected the rank {} of operand 0",
                size.rank(),
                x.shape.rank()
            ),
        });
    }
    for (a, (i, o)) in x.shape.dims().iter().zip(size.dims()).enumerate() {
        if i.as_fixed() == Some(0) && o.as_fixed() != Some(0) {
            return Err(InferError::Shape {
                operand: 0,
                shape: x.shape.clone(),
                expected: format!("a non-empty axis {a} to resize to {o}"),
            });
        }
    }
    Ok(vec![TensorType::new(x.dtype, size.clone())])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
#[path = "movement_tests.rs"]
mod tests;
