//! Reductions over axes, arg-max/min and cumulative sums.
//!
//! Float reductions accumulate in f64 over the f32-decoded inputs and round once into the
//! input's dtype; integer reductions are exact in i64 and wrap to the dtype's width.

use super::util::{for_each_index, from_f64, new_numel, norm_axis, strides, wrap_int};
use super::{InterpError, op_err};
use crate::DType;
use crate::op::ReduceOp;
use crate::tensor::Tensor;

/// The reduced axes as a mask (empty `axes` = all axes); duplicates are refused.
fn axis_mask(axes: &[i64], rank: usize, what: &str) -> Result<Vec<bool>, InterpError> {
    if axes.is_empty() {
        return Ok(vec![true; rank]);
    }
    let mut mask = vec![false; rank];
    for &ax in axes {
        let a = norm_axis(ax, rank, what)?;
        if mask[a] {
            return Err(op_err(format!(
                "{what}: axis {ax} is listed twice in {axes:?}"
            )));
        }
        mask[a] = true;
    }
    Ok(mask)
}

/// For every input element, the flat index of the output element it reduces into, the
/// output shape (`keepdims` or not) and the output element count.
fn reduce_map(
    shape: &[u64],
    mask: &[bool],
    keepdims: bool,
) -> Result<(Vec<usize>, Vec<u64>, usize), InterpError> {
    let kept: Vec<u64> = shape
        .iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let ost = strides(&kept);
    let mut map = Vec::with_capacity(new_numel(shape)?);
    for_each_index(shape, |idx| {
        map.push(
            idx.iter()
                .zip(&ost)
                .zip(mask)
                .map(|((&i, &s), &m)| if m { 0 } else { i * s })
                .sum(),
        );
    });
    let out_shape: Vec<u64> = if keepdims {
        kept.clone()
    } else {
        shape
            .iter()
            .zip(mask)
            .filter(|(_, m)| !**m)
            .map(|(&d, _)| d)
            .collect()
    };
    let n = new_numel(&kept)?;
    Ok((map, out_shape, n))
}

/// Reduce `x` over `axes` (empty = all; negative allowed; duplicates refused). Floats:
/// f64 accumulation; `Max`/`Min` propagate NaN and give ∓inf over an empty set; `Mean` of
/// an empty set is NaN. Integers: `Sum`/`Prod` wrap, `Mean` truncates toward zero, `Max`/
/// `Min`/`Mean` of an empty set and `L2` are refused. Bool is refused.
pub(super) fn reduce(
    x: &Tensor,
    op: ReduceOp,
    axes: &[i64],
    keepdims: bool,
) -> Result<Tensor, InterpError> {
    let dt = x.dtype();
    let what = op.name();
    let mask = axis_mask(axes, x.shape().len(), what)?;
    let (map, out_shape, n_out) = reduce_map(x.shape(), &mask, keepdims)?;
    let count = map.len().checked_div(n_out).unwrap_or(0);
    if dt.is_float() {
        let init = match op {
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => 0.0,
            ReduceOp::Prod => 1.0,
            ReduceOp::Max => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
        };
        let mut acc = vec![init; n_out];
        for (&o, v) in map.iter().zip(x.to_f32_vec()) {
            let v = f64::from(v);
            let a = &mut acc[o];
            *a = match op {
                ReduceOp::Sum | ReduceOp::Mean => *a + v,
                ReduceOp::L2 => *a + v * v,
                ReduceOp::Prod => *a * v,
                ReduceOp::Max | ReduceOp::Min if a.is_nan() || v.is_nan() => f64::NAN,
                ReduceOp::Max => a.max(v),
                ReduceOp::Min => a.min(v),
            };
        }
        for a in &mut acc {
            match op {
                ReduceOp::Mean => *a /= count as f64,
                ReduceOp::L2 => *a = a.sqrt(),
                ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => {}
            }
        }
        return from_f64(dt, out_shape, &acc);
    }
    if !dt.is_int() {
        return Err(op_err(format!("{what} is not defined on dtype {dt}")));
    }
    if op == ReduceOp::L2 {
        return Err(op_err(format!(
            "{what} needs a float dtype, got {dt} (cast first)"
        )));
    }
    if count == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::Mean) && n_out > 0 {
        return Err(op_err(format!(
            "{what} of an empty set of {dt} values (x {:?}, axes {axes:?}) has no value",
            x.shape()
        )));
    }
    let init = match op {
        ReduceOp::Prod => 1,
        ReduceOp::Max => i64::MIN,
        ReduceOp::Min => i64::MAX,
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => 0,
    };
    let mut acc = vec![init; n_out];
    for (&o, v) in map.iter().zip(x.to_i64_vec()) {
        let a = &mut acc[o];
        *a = match op {
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => a.wrapping_add(v),
            ReduceOp::Prod => a.wrapping_mul(v),
            ReduceOp::Max => (*a).max(v),
            ReduceOp::Min => (*a).min(v),
        };
    }
    let out: Vec<i64> = acc
        .into_iter()
        .map(|a| {
            let a = if op == ReduceOp::Mean {
                a / count as i64
            } else {
                a
            };
            wrap_int(a, dt)
        })
        .collect();
    Ok(Tensor::from_i64(dt, out_shape, &out)?)
}

/// The (outer, axis length, inner) decomposition of `shape` around `axis`.
fn split_at_axis(shape: &[u64], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().map(|&d| d as usize).product();
    let inner = shape[axis + 1..].iter().map(|&d| d as usize).product();
    (outer, shape[axis] as usize, inner)
}

/// Index (i64) of the largest (`max`) or smallest element along `axis`; the first one on
/// ties. A NaN counts as beyond every number (the first NaN wins, as numpy). An empty
/// axis is refused.
pub(super) fn arg_reduce(
    x: &Tensor,
    max: bool,
    axis: i64,
    keepdims: bool,
) -> Result<Tensor, InterpError> {
    let name = if max { "argmax" } else { "argmin" };
    let dt = x.dtype();
    if !(dt.is_float() || dt.is_int() || dt == DType::Bool) {
        return Err(op_err(format!("{name} is not defined on dtype {dt}")));
    }
    let s = x.shape();
    let a = norm_axis(axis, s.len(), &format!("{name} axis"))?;
    let (outer, len, inner) = split_at_axis(s, a);
    let mut out_shape = s.to_vec();
    if keepdims {
        out_shape[a] = 1;
    } else {
        out_shape.remove(a);
    }
    if len == 0 && outer * inner > 0 {
        return Err(op_err(format!(
            "{name} along axis {axis} of shape {s:?}: the axis is empty"
        )));
    }
    // Compare as f64 for floats (exact), as i64 for integers (exact beyond 2^53).
    let better: Box<dyn Fn(usize, usize) -> bool> = if dt.is_float() {
        let v = x.to_f32_vec();
        Box::new(move |cand, best| {
            let (c, b) = (v[cand], v[best]);
            if b.is_nan() {
                false
            } else if c.is_nan() {
                true
            } else if max {
                c > b
            } else {
                c < b
            }
        })
    } else {
        let v = x.to_i64_vec();
        Box::new(move |cand, best| {
            if max {
                v[cand] > v[best]
            } else {
                v[cand] < v[best]
            }
        })
    };
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let mut best = 0usize;
            for k in 1..len {
                if better(at(k), at(best)) {
                    best = k;
                }
            }
            out.push(best as i64);
        }
    }
    Ok(Tensor::from_i64(DType::I64, out_shape, &out)?)
}

/// Running sum along `axis`: inclusive or `exclusive` (the first output is 0), from the
/// start or in `reverse`. Floats accumulate in f64; integers wrap to their width.
pub(super) fn cumsum(
    x: &Tensor,
    axis: i64,
    exclusive: bool,
    reverse: bool,
) -> Result<Tensor, InterpError> {
    let dt = x.dtype();
    if !(dt.is_float() || dt.is_int()) {
        return Err(op_err(format!("cumsum is not defined on dtype {dt}")));
    }
    let s = x.shape();
    let a = norm_axis(axis, s.len(), "cumsum axis")?;
    let (outer, len, inner) = split_at_axis(s, a);
    let order = |k: usize| if reverse { len - 1 - k } else { k };
    if dt.is_float() {
        let v = x.to_f32_vec();
        let mut out = vec![0f64; v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0f64;
                for k in 0..len {
                    let p = (o * len + order(k)) * inner + i;
                    let e = f64::from(v[p]);
                    if exclusive {
                        out[p] = acc;
                        acc += e;
                    } else {
                        acc += e;
                        out[p] = acc;
                    }
                }
            }
        }
        return from_f64(dt, s.to_vec(), &out);
    }
    let v = x.to_i64_vec();
    let mut out = vec![0i64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = 0i64;
            for k in 0..len {
                let p = (o * len + order(k)) * inner + i;
                if exclusive {
                    out[p] = wrap_int(acc, dt);
                    acc = acc.wrapping_add(v[p]);
                } else {
                    acc = acc.wrapping_add(v[p]);
                    out[p] = wrap_int(acc, dt);
                }
            }
        }
    }
    Ok(Tensor::from_i64(dt, s.to_vec(), &out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use proptest::prelude::*;

    fn f32t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run1(op: Op, x: &Tensor) -> Result<Tensor, InterpError> {
        eval_op(&op, std::slice::from_ref(x), &Bindings::new()).map(|mut v| v.remove(0))
    }

    fn red(op: ReduceOp, axes: &[i64], keepdims: bool) -> Op {
        Op::Reduce {
            op,
            axes: axes.to_vec(),
            keepdims,
        }
    }

    #[test]
    fn reduce_hand_values() {
        let x = f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = run1(red(ReduceOp::Sum, &[1], false), &x).unwrap();
        assert_eq!((y.shape(), y.to_f32_vec()), (&[2u64][..], vec![6.0, 15.0]));
        let y = run1(red(ReduceOp::Sum, &[-1], true), &x).unwrap();
        assert_eq!(y.shape(), &[2, 1]);
        let y = run1(red(ReduceOp::Mean, &[], false), &x).unwrap();
        assert_eq!((y.shape(), y.to_f32_vec()), (&[][..], vec![3.5]));
        let y = run1(red(ReduceOp::Max, &[0], false), &x).unwrap();
        assert_eq!(y.to_f32_vec(), vec![4.0, 5.0, 6.0]);
        let y = run1(red(ReduceOp::Min, &[0, 1], true), &x).unwrap();
        assert_eq!((y.shape(), y.to_f32_vec()), (&[1u64, 1][..], vec![1.0]));
        let y = run1(red(ReduceOp::Prod, &[], false), &x).unwrap();
        assert_eq!(y.to_f32_vec(), vec![720.0]);
        let y = run1(red(ReduceOp::L2, &[], false), &f32t(&[2], &[3.0, 4.0])).unwrap();
        assert_eq!(y.to_f32_vec(), vec![5.0]);
        assert!(run1(red(ReduceOp::Sum, &[1, -1], false), &x).is_err());
        assert!(run1(red(ReduceOp::Sum, &[2], false), &x).is_err());
    }

    #[test]
    fn reduce_nan_and_empty() {
        let x = f32t(&[3], &[1.0, f32::NAN, 3.0]);
        for op in [ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum] {
            assert!(run1(red(op, &[], false), &x).unwrap().to_f32_vec()[0].is_nan());
        }
        let e = f32t(&[2, 0], &[]);
        let y = run1(red(ReduceOp::Sum, &[1], false), &e).unwrap();
        assert_eq!(y.to_f32_vec(), vec![0.0, 0.0]);
        let y = run1(red(ReduceOp::Max, &[1], false), &e).unwrap();
        assert_eq!(y.to_f32_vec(), vec![f32::NEG_INFINITY; 2]);
        let y = run1(red(ReduceOp::Prod, &[1], false), &e).unwrap();
        assert_eq!(y.to_f32_vec(), vec![1.0, 1.0]);
        let y = run1(red(ReduceOp::Sum, &[0], false), &e).unwrap();
        assert_eq!(y.shape(), &[0]);
    }

    #[test]
    fn reduce_integers() {
        let x = Tensor::from_i64(DType::I8, vec![2], &[100, 100]).unwrap();
        let y = run1(red(ReduceOp::Sum, &[], false), &x).unwrap();
        assert_eq!(y.to_i64_vec(), vec![-56]);
        let x = Tensor::from_i64(DType::I32, vec![2], &[-7, 0]).unwrap();
        let y = run1(red(ReduceOp::Mean, &[], false), &x).unwrap();
        assert_eq!(y.to_i64_vec(), vec![-3]);
        assert!(run1(red(ReduceOp::L2, &[], false), &x).is_err());
        let big = Tensor::from_i64(DType::I64, vec![2], &[(1 << 60) + 1, 1 << 60]).unwrap();
        let y = run1(red(ReduceOp::Max, &[], false), &big).unwrap();
        assert_eq!(y.to_i64_vec(), vec![(1 << 60) + 1]);
        let b = Tensor::from_i64(DType::Bool, vec![1], &[1]).unwrap();
        assert!(run1(red(ReduceOp::Sum, &[], false), &b).is_err());
    }

    #[test]
    fn argmax_first_on_ties() {
        let x = f32t(&[4], &[1.0, 3.0, 3.0, 2.0]);
        let op = |max, keepdims| Op::ArgReduce {
            max,
            axis: 0,
            keepdims,
        };
        let y = run1(op(true, false), &x).unwrap();
        assert_eq!((y.dtype(), y.to_i64_vec()), (DType::I64, vec![1]));
        let y = run1(op(false, true), &x).unwrap();
        assert_eq!((y.shape(), y.to_i64_vec()), (&[1u64][..], vec![0]));
        let x2 = f32t(&[2, 3], &[0.0, 9.0, 9.0, 7.0, 7.0, -1.0]);
        let y = run1(
            Op::ArgReduce {
                max: false,
                axis: -1,
                keepdims: false,
            },
            &x2,
        )
        .unwrap();
        assert_eq!(y.to_i64_vec(), vec![0, 2]);
        let y = run1(op(true, false), &f32t(&[3], &[1.0, f32::NAN, 5.0])).unwrap();
        assert_eq!(y.to_i64_vec(), vec![1]);
        assert!(run1(op(true, false), &f32t(&[0], &[])).is_err());
    }

    #[test]
    fn cumsum_variants() {
        let x = f32t(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let c = |exclusive, reverse| {
            run1(
                Op::CumSum {
                    axis: 0,
                    exclusive,
                    reverse,
                },
                &x,
            )
            .unwrap()
            .to_f32_vec()
        };
        assert_eq!(c(false, false), vec![1.0, 3.0, 6.0, 10.0]);
        assert_eq!(c(true, false), vec![0.0, 1.0, 3.0, 6.0]);
        assert_eq!(c(false, true), vec![10.0, 9.0, 7.0, 4.0]);
        assert_eq!(c(true, true), vec![9.0, 7.0, 4.0, 0.0]);
        // along axis 0 of a [2,2], integers wrap
        let i = Tensor::from_i64(DType::I8, vec![2, 2], &[100, 1, 100, 2]).unwrap();
        let y = run1(
            Op::CumSum {
                axis: 0,
                exclusive: false,
                reverse: false,
            },
            &i,
        )
        .unwrap();
        assert_eq!(y.to_i64_vec(), vec![100, 1, -56, 3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn reduce_sum_matches_naive(
            a in 1u64..4, b in 1u64..4, c in 1u64..4,
            axis in 0usize..3,
            v in proptest::collection::vec(-100i32..100, 27),
        ) {
            let shape = [a, b, c];
            let n = (a * b * c) as usize;
            let vals: Vec<f32> = v[..n].iter().map(|&e| e as f32 * 0.5).collect();
            let y = run1(red(ReduceOp::Sum, &[axis as i64], false), &f32t(&shape, &vals)).unwrap();
            let mut want_shape = shape.to_vec();
            want_shape.remove(axis);
            let mut want = vec![0f32; n / shape[axis] as usize];
            for i in 0..a as usize {
                for j in 0..b as usize {
                    for k in 0..c as usize {
                        let idx = [i, j, k];
                        let mut o = 0usize;
                        for (ax, &ix) in idx.iter().enumerate() {
                            if ax != axis {
                                o = o * shape[ax] as usize + ix;
                            }
                        }
                        want[o] += vals[(i * b as usize + j) * c as usize + k];
                    }
                }
            }
            prop_assert_eq!(y.shape(), &want_shape[..]);
            prop_assert_eq!(y.to_f32_vec(), want);
        }
    }
}
