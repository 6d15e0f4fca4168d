//! Movement ops: reshape, transpose, slice, concat, split, gather, expand, pad.
//!
//! They never convert values: every op computes, for each output element, which input
//! element (or which constant) it is, and copies element encodings bit for bit — so packed
//! 4-bit types, NaN payloads and i64 beyond 2^53 pass through unchanged.

use super::Bindings;
use super::util::{
    broadcast_map, broadcast_shapes, code_of_f32, codes, for_each_index, from_codes, new_numel,
    norm_axis, strides, take_elements,
};
use super::{InterpError, op_err};
use crate::op::PadMode;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Evaluate a (possibly symbolic) shape attribute; the error names the unbound symbols.
fn eval_shape(shape: &Shape, b: &Bindings, what: &str) -> Result<Vec<u64>, InterpError> {
    shape.eval(b).ok_or_else(|| {
        let mut unbound: Vec<&str> = shape
            .dims()
            .iter()
            .flat_map(|d| d.symbols())
            .map(|(s, _)| s.as_str())
            .filter(|s| !b.contains_key(*s))
            .collect();
        unbound.sort_unstable();
        unbound.dedup();
        if unbound.is_empty() {
            op_err(format!("{what}: shape {shape} overflows"))
        } else {
            op_err(format!(
                "{what}: shape {shape} has unbound symbols {unbound:?}"
            ))
        }
    })
}

/// Same elements with the shape `shape` (evaluated with `b`); the element counts must
/// agree. Shares the input's storage.
pub(super) fn reshape(x: &Tensor, shape: &Shape, b: &Bindings) -> Result<Tensor, InterpError> {
    let target = eval_shape(shape, b, "reshape")?;
    let n = new_numel(&target)?;
    if n != x.numel() {
        return Err(op_err(format!(
            "reshape: cannot reshape {:?} ({} elements) to {target:?} ({n} elements)",
            x.shape(),
            x.numel()
        )));
    }
    Ok(x.reshaped(target)?)
}

/// Permute axes: output axis `i` is input axis `perm[i]`; `perm` must be a permutation
/// of `0..rank`.
pub(super) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor, InterpError> {
    let s = x.shape();
    let mut seen = vec![false; s.len()];
    let valid = perm.len() == s.len()
        && perm
            .iter()
            .all(|&p| p < s.len() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(op_err(format!(
            "transpose: perm {perm:?} is not a permutation of the {} axes of {s:?}",
            s.len()
        )));
    }
    let in_strides = strides(s);
    let out_shape: Vec<u64> = perm.iter().map(|&p| s[p]).collect();
    let eff: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut src = Vec::with_capacity(x.numel());
    for_each_index(&out_shape, |idx| {
        src.push(idx.iter().zip(&eff).map(|(i, s)| i * s).sum());
    });
    take_elements(x, &src, out_shape)
}

/// ONNX `Slice` with static bounds. `axes` may be empty (meaning `0..starts.len()`) and
/// `steps` may be empty (all 1); otherwise the four lists have one entry per sliced axis.
/// Negative starts/ends count from the end; bounds are clamped to the extent (to
/// `[0, d]` for positive steps, `[-1, d-1]` for negative ones). Zero steps and repeated
/// axes are refused.
pub(super) fn slice(
    x: &Tensor,
    axes: &[i64],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
) -> Result<Tensor, InterpError> {
    let s = x.shape();
    let rank = s.len();
    let k = starts.len();
    let default_axes: Vec<i64> = (0..k as i64).collect();
    let axes = if axes.is_empty() {
        &default_axes[..]
    } else {
        axes
    };
    let ones = vec![1i64; k];
    let steps = if steps.is_empty() { &ones[..] } else { steps };
    if axes.len() != k || ends.len() != k || steps.len() != k {
        return Err(op_err(format!(
            "slice: axes {axes:?}, starts {starts:?}, ends {ends:?} and steps {steps:?} must have the same length"
        )));
    }
    // per output axis: first input index, step and count
    let mut first = vec![0i64; rank];
    let mut step = vec![1i64; rank];
    let mut out_shape = s.to_vec();
    let mut done = vec![false; rank];
    for j in 0..k {
        let a = norm_axis(axes[j], rank, "slice axis")?;
        if std::mem::replace(&mut done[a], true) {
            return Err(op_err(format!("slice: axis {} is sliced twice", axes[j])));
        }
        let st = steps[j];
        if st == 0 {
            return Err(op_err(format!("slice: step 0 on axis {}", axes[j])));
        }
        let d = i128::from(s[a]);
        let fix = |v: i64| {
            let v = i128::from(v);
            if v < 0 { v + d } else { v }
        };
        let (b, e) = if d == 0 {
            (0, 0)
        } else if st > 0 {
            (fix(starts[j]).clamp(0, d), fix(ends[j]).clamp(0, d))
        } else {
            (
                fix(starts[j]).clamp(0, d - 1),
                fix(ends[j]).clamp(-1, d - 1),
            )
        };
        let st128 = i128::from(st);
        let count = if st > 0 {
            if e > b {
                (e - b + st128 - 1) / st128
            } else {
                0
            }
        } else if b > e {
            (b - e + (-st128) - 1) / (-st128)
        } else {
            0
        };
        first[a] = b.max(0) as i64;
        step[a] = st;
        out_shape[a] = count as u64;
    }
    let in_strides = strides(s);
    let mut src = Vec::with_capacity(new_numel(&out_shape)?);
    for_each_index(&out_shape, |idx| {
        let mut flat = 0i64;
        for (ax, &i) in idx.iter().enumerate() {
            flat += (first[ax] + i as i64 * step[ax]) * in_strides[ax] as i64;
        }
        src.push(flat as usize);
    });
    take_elements(x, &src, out_shape)
}

/// Join `xs` (one or more, same dtype and rank, equal extents except along `axis`) along
/// `axis`.
pub(super) fn concat(xs: &[Tensor], axis: i64) -> Result<Tensor, InterpError> {
    let Some(x0) = xs.first() else {
        return Err(op_err("concat needs at least one operand"));
    };
    let rank = x0.shape().len();
    let a = norm_axis(axis, rank, "concat axis")?;
    let mut total = 0u64;
    for (i, x) in xs.iter().enumerate() {
        if x.dtype() != x0.dtype() {
            return Err(op_err(format!(
                "concat: operand {i} has dtype {}, operand 0 has {}",
                x.dtype(),
                x0.dtype()
            )));
        }
        let same = x.shape().len() == rank
            && x.shape()
                .iter()
                .zip(x0.shape())
                .enumerate()
                .all(|(k, (p, q))| k == a || p == q);
        if !same {
            return Err(op_err(format!(
                "concat along axis {axis}: operand {i} has shape {:?}, incompatible with operand 0 {:?}",
                x.shape(),
                x0.shape()
            )));
        }
        total = total.saturating_add(x.shape()[a]);
    }
    let mut out_shape = x0.shape().to_vec();
    out_shape[a] = total;
    let n = new_numel(&out_shape)?;
    let outer: usize = x0.shape()[..a].iter().map(|&d| d as usize).product();
    let inner: usize = x0.shape()[a + 1..].iter().map(|&d| d as usize).product();
    let all: Vec<Vec<u64>> = xs.iter().map(codes).collect();
    let mut out = Vec::with_capacity(n);
    for o in 0..outer {
        for (x, c) in xs.iter().zip(&all) {
            let chunk = x.shape()[a] as usize * inner;
            out.extend_from_slice(&c[o * chunk..(o + 1) * chunk]);
        }
    }
    from_codes(x0.dtype(), out_shape, &out)
}

/// Split along `axis` into pieces of `sizes` (which must sum to the extent).
pub(super) fn split(x: &Tensor, axis: i64, sizes: &[u64]) -> Result<Vec<Tensor>, InterpError> {
    let s = x.shape();
    let a = norm_axis(axis, s.len(), "split axis")?;
    let sum = sizes.iter().try_fold(0u64, |acc, &p| acc.checked_add(p));
    if sum != Some(s[a]) {
        return Err(op_err(format!(
            "split: sizes {sizes:?} do not sum to the extent {} of axis {axis} of {s:?}",
            s[a]
        )));
    }
    let mut start = 0i64;
    let mut out = Vec::with_capacity(sizes.len());
    for &p in sizes {
        let end = start + p as i64;
        out.push(slice(x, &[a as i64], &[start], &[end], &[1])?);
        start = end;
    }
    Ok(out)
}

/// `take(x, idx, axis)`: output shape `x[..axis] ++ idx ++ x[axis+1..]`. `idx` has an
/// integer dtype; a negative index counts from the end; an index outside `[-d, d)` is
/// refused.
pub(super) fn gather(x: &Tensor, idx: &Tensor, axis: i64) -> Result<Tensor, InterpError> {
    if !idx.dtype().is_int() {
        return Err(op_err(format!(
            "gather: indices must be integers (i64 or i32), got {}",
            idx.dtype()
        )));
    }
    let s = x.shape();
    let a = norm_axis(axis, s.len(), "gather axis")?;
    let d = s[a];
    let indices = idx
        .to_i64_vec()
        .into_iter()
        .map(|i| {
            let j = if i < 0 {
                i128::from(i) + i128::from(d)
            } else {
                i128::from(i)
            };
            if j < 0 || j >= i128::from(d) {
                Err(op_err(format!(
                    "gather: index {i} is out of range for axis {axis} of extent {d} (data {s:?})"
                )))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let outer: usize = s[..a].iter().map(|&v| v as usize).product();
    let inner: usize = s[a + 1..].iter().map(|&v| v as usize).product();
    let mut out_shape = s[..a].to_vec();
    out_shape.extend_from_slice(idx.shape());
    out_shape.extend_from_slice(&s[a + 1..]);
    let mut src = Vec::with_capacity(new_numel(&out_shape)?);
    for o in 0..outer {
        for &j in &indices {
            for i in 0..inner {
                src.push((o * d as usize + j) * inner + i);
            }
        }
    }
    take_elements(x, &src, out_shape)
}

/// Broadcast `x` with the shape `shape` (evaluated with `b`) by numpy rules, both ways:
/// the result has the broadcast of the two shapes (ONNX `Expand`).
pub(super) fn expand(x: &Tensor, shape: &Shape, b: &Bindings) -> Result<Tensor, InterpError> {
    let target = eval_shape(shape, b, "expand")?;
    let out_shape = broadcast_shapes(x.shape(), &target)?;
    let src = broadcast_map(x.shape(), &out_shape)?;
    take_elements(x, &src, out_shape)
}

/// Pad every axis by `pads` (begins of all axes, then ends). `Constant(v)` fills with `v`
/// encoded in `x`'s dtype; `Reflect` mirrors without repeating the edge (each pad must be
/// below the extent); `Edge` repeats the edge (the extent must be non-zero where padded).
pub(super) fn pad(x: &Tensor, pads: &[u64], mode: PadMode) -> Result<Tensor, InterpError> {
    let s = x.shape();
    let rank = s.len();
    if pads.len() != 2 * rank {
        return Err(op_err(format!(
            "pad: {} pads given for rank {rank} (expected {}: begins then ends)",
            pads.len(),
            2 * rank
        )));
    }
    let (begin, end) = pads.split_at(rank);
    let mut out_shape = Vec::with_capacity(rank);
    for ax in 0..rank {
        let d = s[ax]
            .checked_add(begin[ax])
            .and_then(|v| v.checked_add(end[ax]))
            .ok_or_else(|| op_err(format!("pad: axis {ax} overflows")))?;
        out_shape.push(d);
        let (lo, hi, ext) = (begin[ax], end[ax], s[ax]);
        match mode {
            PadMode::Constant(_) => {}
            PadMode::Reflect if lo.max(hi) > 0 && lo.max(hi) >= ext => {
                return Err(op_err(format!(
                    "pad: reflect padding ({lo}, {hi}) on axis {ax} needs an extent above both, got {ext}"
                )));
            }
            PadMode::Edge if lo.max(hi) > 0 && ext == 0 => {
                return Err(op_err(format!(
                    "pad: edge padding on axis {ax} of extent 0"
                )));
            }
            PadMode::Reflect | PadMode::Edge => {}
        }
    }
    let fill = match mode {
        PadMode::Constant(v) => Some(code_of_f32(x.dtype(), v)?),
        PadMode::Reflect | PadMode::Edge => None,
    };
    let src_codes = codes(x);
    let in_strides = strides(s);
    let mut out = Vec::with_capacity(new_numel(&out_shape)?);
    for_each_index(&out_shape, |idx| {
        let mut flat = Some(0usize);
        for (ax, &o) in idx.iter().enumerate() {
            let (p, d) = (o as i64 - begin[ax] as i64, s[ax] as i64);
            let i = if (0..d).contains(&p) {
                Some(p)
            } else {
                match mode {
                    PadMode::Constant(_) => None,
                    PadMode::Edge => Some(p.clamp(0, d - 1)),
                    PadMode::Reflect => Some(if p < 0 { -p } else { 2 * (d - 1) - p }),
                }
            };
            flat = match (flat, i) {
                (Some(f), Some(i)) => Some(f + i as usize * in_strides[ax]),
                _ => None,
            };
        }
        out.push(match flat {
            Some(f) => src_codes[f],
            None => fill.unwrap_or(0),
        });
    });
    from_codes(x.dtype(), out_shape, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{InterpError, StepState, eval_op, run, run_step};
    use crate::op::{BinaryOp, Op, ReduceOp, StepSchedule};
    use crate::shape::{Dim, TensorType};
    use crate::{DType, Graph};
    use proptest::prelude::*;

    fn f32t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run1(op: Op, inputs: &[Tensor]) -> Result<Tensor, InterpError> {
        eval_op(&op, inputs, &Bindings::new()).map(|mut v| v.remove(0))
    }

    fn iota(shape: &[u64]) -> Tensor {
        let n: u64 = shape.iter().product();
        f32t(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
    }

    #[test]
    fn reshape_binds_symbols_and_names_unbound_ones() {
        let x = iota(&[6]);
        let shape = Shape(vec![Dim::sym("B"), Dim::fixed(2)]);
        let mut b = Bindings::new();
        b.insert("B".into(), 3);
        let y = eval_op(
            &Op::Reshape {
                shape: shape.clone(),
            },
            std::slice::from_ref(&x),
            &b,
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[3, 2]);
        assert_eq!(y[0].to_f32_vec(), x.to_f32_vec());
        let e = run1(Op::Reshape { shape }, std::slice::from_ref(&x)).unwrap_err();
        assert!(e.to_string().contains("\"B\""), "{e}");
        let e = run1(
            Op::Reshape {
                shape: Shape::fixed(&[4]),
            },
            &[x],
        )
        .unwrap_err();
        assert!(e.to_string().contains("6 elements"), "{e}");
    }

    #[test]
    fn transpose_by_hand() {
        let y = run1(Op::Transpose { perm: vec![1, 0] }, &[iota(&[2, 3])]).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.to_f32_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(run1(Op::Transpose { perm: vec![0, 0] }, &[iota(&[2, 3])]).is_err());
        let s = run1(Op::Transpose { perm: vec![] }, &[f32t(&[], &[7.0])]).unwrap();
        assert_eq!(s.to_f32_vec(), vec![7.0]);
    }

    fn sl(x: &Tensor, start: i64, end: i64, step: i64) -> Vec<f32> {
        run1(
            Op::Slice {
                axes: vec![0],
                starts: vec![start],
                ends: vec![end],
                steps: vec![step],
            },
            std::slice::from_ref(x),
        )
        .unwrap()
        .to_f32_vec()
    }

    #[test]
    fn slice_onnx_clamping() {
        let x = iota(&[5]);
        assert_eq!(sl(&x, 1, 3, 1), vec![1.0, 2.0]);
        assert_eq!(sl(&x, -1, -4, -1), vec![4.0, 3.0, 2.0]);
        assert_eq!(sl(&x, 10, i64::MIN, -2), vec![4.0, 2.0, 0.0]);
        assert_eq!(sl(&x, -100, 100, 2), vec![0.0, 2.0, 4.0]);
        assert_eq!(sl(&x, 3, 1, 1), Vec::<f32>::new());
        assert_eq!(sl(&iota(&[0]), -1, i64::MIN, -1), Vec::<f32>::new());
        // second axis of a [2,3] with a negative axis number
        let y = run1(
            Op::Slice {
                axes: vec![-1],
                starts: vec![2],
                ends: vec![0],
                steps: vec![-1],
            },
            &[iota(&[2, 3])],
        )
        .unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.to_f32_vec(), vec![2.0, 1.0, 5.0, 4.0]);
        let zero_step = Op::Slice {
            axes: vec![0],
            starts: vec![0],
            ends: vec![1],
            steps: vec![0],
        };
        assert!(run1(zero_step, &[x]).is_err());
    }

    #[test]
    fn gather_wraps_negative_indices() {
        let x = f32t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let idx = Tensor::from_i64(DType::I64, vec![2], &[-1, 0]).unwrap();
        let y = run1(Op::Gather { axis: 0 }, &[x.clone(), idx]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.to_f32_vec(), vec![5.0, 6.0, 1.0, 2.0]);
        let scalar = Tensor::from_i64(DType::I32, vec![], &[1]).unwrap();
        let y = run1(Op::Gather { axis: 1 }, &[x.clone(), scalar]).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert_eq!(y.to_f32_vec(), vec![2.0, 4.0, 6.0]);
        let bad = Tensor::from_i64(DType::I64, vec![1], &[3]).unwrap();
        let e = run1(Op::Gather { axis: 0 }, &[x.clone(), bad]).unwrap_err();
        assert!(e.to_string().contains("index 3"), "{e}");
        let bad = Tensor::from_i64(DType::I64, vec![1], &[-4]).unwrap();
        assert!(run1(Op::Gather { axis: 0 }, &[x, bad]).is_err());
    }

    #[test]
    fn concat_split_by_hand() {
        let a = iota(&[2, 1]);
        let b = f32t(&[2, 2], &[10.0, 11.0, 12.0, 13.0]);
        let y = run1(Op::Concat { axis: 1 }, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(y.to_f32_vec(), vec![0.0, 10.0, 11.0, 1.0, 12.0, 13.0]);
        let parts = eval_op(
            &Op::Split {
                axis: -1,
                sizes: vec![1, 2],
            },
            &[y],
            &Bindings::new(),
        )
        .unwrap();
        assert!(parts[0].bit_eq(&a) && parts[1].bit_eq(&b));
        let e = run1(Op::Concat { axis: 0 }, &[a, b]).unwrap_err();
        assert!(e.to_string().contains("[2, 2]"), "{e}");
        let e = eval_op(
            &Op::Split {
                axis: 0,
                sizes: vec![1],
            },
            &[iota(&[2])],
            &Bindings::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("do not sum"), "{e}");
    }

    #[test]
    fn expand_both_ways() {
        let x = iota(&[3, 1]);
        let y = run1(
            Op::Expand {
                shape: Shape::fixed(&[1, 2]),
            },
            &[x],
        )
        .unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.to_f32_vec(), vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
        let e = run1(
            Op::Expand {
                shape: Shape::fixed(&[2]),
            },
            &[iota(&[3])],
        );
        assert!(e.is_err());
    }

    #[test]
    fn pad_modes() {
        let x = f32t(&[3], &[1.0, 2.0, 3.0]);
        let p = |pads: Vec<u64>, mode| run1(Op::Pad { pads, mode }, std::slice::from_ref(&x));
        assert_eq!(
            p(vec![2, 2], PadMode::Reflect).unwrap().to_f32_vec(),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]
        );
        assert_eq!(
            p(vec![1, 2], PadMode::Edge).unwrap().to_f32_vec(),
            vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0]
        );
        assert_eq!(
            p(vec![0, 1], PadMode::Constant(-1.5)).unwrap().to_f32_vec(),
            vec![1.0, 2.0, 3.0, -1.5]
        );
        assert!(p(vec![3, 0], PadMode::Reflect).is_err());
        assert!(p(vec![1], PadMode::Edge).is_err());
        // 2-D reflect
        let y = run1(
            Op::Pad {
                pads: vec![1, 0, 0, 1],
                mode: PadMode::Reflect,
            },
            &[iota(&[2, 2])],
        )
        .unwrap();
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(
            y.to_f32_vec(),
            vec![2.0, 3.0, 2.0, 0.0, 1.0, 0.0, 2.0, 3.0, 2.0]
        );
    }

    #[test]
    fn pad_packed_dtypes() {
        let x = Tensor::from_i64(DType::I4, vec![3], &[1, -2, 3]).unwrap();
        let y = run1(
            Op::Pad {
                pads: vec![1, 0],
                mode: PadMode::Constant(5.0),
            },
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_eq!(y.to_i64_vec(), vec![5, 1, -2, 3]);
        let y = run1(
            Op::Pad {
                pads: vec![0, 2],
                mode: PadMode::Reflect,
            },
            &[x],
        )
        .unwrap();
        assert_eq!(y.to_i64_vec(), vec![1, -2, 3, -2, 1]);
        let f = Tensor::from_f32(DType::Fp4E2M1, vec![2], &[-6.0, 0.5]).unwrap();
        let y = run1(
            Op::Pad {
                pads: vec![1, 1],
                mode: PadMode::Edge,
            },
            &[f],
        )
        .unwrap();
        assert_eq!(y.to_f32_vec(), vec![-6.0, -6.0, 0.5, 0.5]);
        assert_eq!(y.bytes(), &[0xff, 0x11]);
    }

    #[test]
    fn movement_keeps_i64_and_nan_bits() {
        let big =
            Tensor::from_i64(DType::I64, vec![2], &[(1 << 53) + 1, -((1 << 62) + 3)]).unwrap();
        let y = run1(Op::Transpose { perm: vec![0] }, std::slice::from_ref(&big)).unwrap();
        assert!(y.bit_eq(&big));
        let nan = Tensor::from_bytes(
            DType::F32,
            vec![1],
            0x7fc0_1234u32.to_le_bytes().to_vec().into(),
        )
        .unwrap();
        let idx = Tensor::from_i64(DType::I64, vec![2], &[0, -1]).unwrap();
        let y = run1(Op::Gather { axis: 0 }, &[nan, idx]).unwrap();
        assert_eq!(y.bytes(), &[0x34, 0x12, 0xc0, 0x7f, 0x34, 0x12, 0xc0, 0x7f]);
    }

    fn random_tensor() -> impl Strategy<Value = Tensor> {
        (
            proptest::sample::select(DType::ALL.to_vec()),
            proptest::collection::vec(0u64..4, 1..4),
        )
            .prop_flat_map(|(dt, shape)| {
                let n = shape.iter().product::<u64>() as usize;
                proptest::collection::vec(any::<u8>(), dt.storage_bytes(n)).prop_map(
                    move |mut b| {
                        if dt.is_packed()
                            && n % 2 == 1
                            && let Some(last) = b.last_mut()
                        {
                            *last &= 0x0f; // the unused nibble is not an element
                        }
                        Tensor::from_bytes(dt, shape.clone(), b.into()).unwrap()
                    },
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn transpose_then_inverse_is_identity(x in random_tensor(), seed in any::<u64>()) {
            let rank = x.shape().len();
            let mut perm: Vec<usize> = (0..rank).collect();
            // a seeded Fisher–Yates shuffle
            let mut s = seed;
            for i in (1..rank).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                perm.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut inv = vec![0usize; rank];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            let y = run1(Op::Transpose { perm: perm.clone() }, std::slice::from_ref(&x)).unwrap();
            let z = run1(Op::Transpose { perm: inv }, &[y]).unwrap();
            prop_assert!(z.bit_eq(&x), "{:?} perm {:?}", x, perm);
        }

        #[test]
        fn split_then_concat_is_identity(x in random_tensor(), axis_seed in any::<usize>(), cut_seed in any::<u64>()) {
            let rank = x.shape().len();
            let axis = axis_seed % rank;
            let d = x.shape()[axis];
            let cut = if d == 0 { 0 } else { cut_seed % (d + 1) };
            let parts = eval_op(
                &Op::Split { axis: axis as i64, sizes: vec![cut, d - cut] },
                std::slice::from_ref(&x),
                &Bindings::new(),
            ).unwrap();
            let y = run1(Op::Concat { axis: axis as i64 }, &parts).unwrap();
            prop_assert!(y.bit_eq(&x));
        }
    }

    fn ty(dt: DType, shape: &[u64]) -> TensorType {
        TensorType::new(dt, Shape::fixed(shape))
    }

    #[test]
    fn end_to_end_tiny_graph() {
        // out = reduce_sum(x * x) + y
        let mut g = Graph::new("tiny");
        let x = g.add_input("x", ty(DType::F32, &[3]));
        let y = g.add_input("y", ty(DType::F32, &[]));
        let sq = g
            .add_node(Op::Binary(BinaryOp::Mul), &[x, x], "sq")
            .unwrap();
        let sum = g
            .add_node(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![],
                    keepdims: false,
                },
                &[crate::Value::new(sq, 0)],
                "sum",
            )
            .unwrap();
        let out = g
            .add_node(
                Op::Binary(BinaryOp::Add),
                &[crate::Value::new(sum, 0), y],
                "out",
            )
            .unwrap();
        g.set_outputs(vec![crate::Value::new(out, 0)]);
        let r = run(&g, &[f32t(&[3], &[1.0, 2.0, 3.0]), f32t(&[], &[0.5])]).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![14.5]);
        // a wrong input type is refused by name
        let e = run(&g, &[f32t(&[2], &[1.0, 2.0]), f32t(&[], &[0.5])]).unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
    }

    #[test]
    fn step_gate_skips_the_fresh_branch_on_reuse_steps() {
        // fresh = gather(table, idx) → cache_write; out = step_gate(fresh, cache_read) + 0.
        // On reuse steps idx is out of range: evaluating the fresh branch would fail.
        let mut g = Graph::new("cached");
        let table = g.add_input("table", ty(DType::F32, &[3]));
        let idx = g.add_input("idx", ty(DType::I64, &[1]));
        let fresh = g
            .add_node(Op::Gather { axis: 0 }, &[table, idx], "fresh")
            .unwrap();
        let write = g
            .add_node(
                Op::CacheWrite { slot: "s".into() },
                &[crate::Value::new(fresh, 0)],
                "write",
            )
            .unwrap();
        let read = g
            .add_node(
                Op::CacheRead {
                    slot: "s".into(),
                    ty: ty(DType::F32, &[1]),
                },
                &[],
                "read",
            )
            .unwrap();
        let gate = g
            .add_node(
                Op::StepGate {
                    schedule: StepSchedule::Steps(vec![0, 2]),
                },
                &[crate::Value::new(write, 0), crate::Value::new(read, 0)],
                "gate",
            )
            .unwrap();
        g.set_outputs(vec![crate::Value::new(gate, 0)]);
        let table_v = f32t(&[3], &[10.0, 20.0, 30.0]);
        let at = |i: i64| Tensor::from_i64(DType::I64, vec![1], &[i]).unwrap();
        let mut st = StepState::default();
        // step 0 recomputes: table[1]
        let r = run_step(&g, &[table_v.clone(), at(1)], &mut st).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![20.0]);
        // step 1 reuses: the bad index is never looked at
        let r = run_step(&g, &[table_v.clone(), at(99)], &mut st).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![20.0]);
        assert_eq!(st.step, 2);
        // step 2 recomputes: the bad index now fails (so step 1 really skipped it) ...
        let e = run_step(&g, &[table_v.clone(), at(99)], &mut st).unwrap_err();
        assert!(
            matches!(&e, InterpError::Node { node, .. } if node == "fresh"),
            "{e}"
        );
        assert_eq!(st.step, 2, "a failed step does not advance");
        // ... and a good index gives the new value
        let r = run_step(&g, &[table_v, at(-1)], &mut st).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![30.0]);
        assert_eq!(st.cache["s"].to_f32_vec(), vec![30.0]);
    }

    #[test]
    fn reading_an_empty_cache_slot_errors() {
        let mut g = Graph::new("empty");
        let x = g.add_input("x", ty(DType::F32, &[1]));
        let read = g
            .add_node(
                Op::CacheRead {
                    slot: "never".into(),
                    ty: ty(DType::F32, &[1]),
                },
                &[],
                "read",
            )
            .unwrap();
        let gate = g
            .add_node(
                Op::StepGate {
                    schedule: StepSchedule::Steps(vec![0]),
                },
                &[x, crate::Value::new(read, 0)],
                "gate",
            )
            .unwrap();
        g.set_outputs(vec![crate::Value::new(gate, 0)]);
        let mut st = StepState {
            step: 1,
            ..StepState::default()
        };
        let e = run_step(&g, &[f32t(&[1], &[1.0])], &mut st).unwrap_err();
        assert_eq!(e, InterpError::EmptyCache("never".into()));
    }
}
