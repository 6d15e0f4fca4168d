//! Resize (ONNX `Resize` with output sizes given).
//!
//! The output shape is `size` with its symbols bound; its rank must be `x`'s. Per axis the
//! scale is `out / in` and an output coordinate maps to an input coordinate by the
//! [`CoordTransform`] (`align_corners` maps everything to 0 when `out = 1`).
//!
//! - Nearest: the source coordinate is rounded as [`NearestRounding`] says and clamped to
//!   `[0, in − 1]`; any dtype is copied exactly.
//! - Linear: n-linear interpolation over every axis whose size changes (axes of unchanged
//!   size are copied, so a non-finite neighbour never leaks in with weight 0); the source
//!   coordinate is clamped to `[0, in − 1]` first; float dtypes only; computed in f64 and
//!   rounded once.
//!
//! An input axis of extent 0 can only be resized to 0.

use super::Bindings;
use super::util::{from_f64, new_numel, next_index, shape_str, strides, values_f64};
use super::{InterpError, op_err};
use crate::op::{CoordTransform, ResizeMode};
use crate::shape::Shape;
use crate::tensor::Tensor;

fn clamp_index(x: f64, inp: u64) -> usize {
    x.clamp(0.0, (inp - 1) as f64) as usize
}

/// Evaluate `Resize` (see the module docs).
pub(super) fn resize(
    x: &Tensor,
    size: &Shape,
    mode: ResizeMode,
    coord: CoordTransform,
    bindings: &Bindings,
) -> Result<Tensor, InterpError> {
    let out_shape = size.eval(bindings).ok_or_else(|| {
        op_err(format!(
            "resize: output size {size} has unbound symbols or overflows"
        ))
    })?;
    let in_shape = x.shape();
    if out_shape.len() != in_shape.len() {
        return Err(op_err(format!(
            "resize: output size {} has rank {}, input {} has rank {}",
            shape_str(&out_shape),
            out_shape.len(),
            shape_str(in_shape),
            in_shape.len()
        )));
    }
    for (axis, (&i, &o)) in in_shape.iter().zip(&out_shape).enumerate() {
        if i == 0 && o != 0 {
            return Err(op_err(format!(
                "resize: axis {axis} of input {} is empty and cannot be resized to {o}",
                shape_str(in_shape)
            )));
        }
    }
    let total = new_numel(&out_shape)?;
    let ist = strides(in_shape);
    let rank = in_shape.len();
    if total == 0 {
        return Ok(Tensor::zeros(x.dtype(), out_shape)?);
    }
    match mode {
        ResizeMode::Nearest(r) => {
            // Source index per axis per output coordinate.
            let maps: Vec<Vec<usize>> = (0..rank)
                .map(|a| {
                    (0..out_shape[a])
                        .map(|o| {
                            let s = coord.source_coord(o, in_shape[a], out_shape[a]);
                            clamp_index(r.round(s), in_shape[a])
                        })
                        .collect()
                })
                .collect();
            let mut src = Vec::with_capacity(total);
            let mut idx = vec![0usize; rank];
            loop {
                src.push((0..rank).map(|a| maps[a][idx[a]] * ist[a]).sum::<usize>());
                if !next_index(&mut idx, &out_shape) {
                    break;
                }
            }
            if x.dtype().is_float() {
                let v = x.to_f32_vec();
                let picked: Vec<f32> = src.iter().map(|&s| v[s]).collect();
                Ok(Tensor::from_f32(x.dtype(), out_shape, &picked)?)
            } else {
                let v = x.to_i64_vec();
                let picked: Vec<i64> = src.iter().map(|&s| v[s]).collect();
                Ok(Tensor::from_i64(x.dtype(), out_shape, &picked)?)
            }
        }
        ResizeMode::Linear => {
            if !x.dtype().is_float() {
                return Err(op_err(format!(
                    "resize: linear mode needs a float input, got {}",
                    x.dtype()
                )));
            }
            // Per axis per output coordinate: (lower index, upper index, upper weight).
            let maps: Vec<Vec<(usize, usize, f64)>> = (0..rank)
                .map(|a| {
                    (0..out_shape[a])
                        .map(|o| {
                            if in_shape[a] == out_shape[a] {
                                return (o as usize, o as usize, 0.0);
                            }
                            let last = (in_shape[a] - 1) as f64;
                            let s = coord
                                .source_coord(o, in_shape[a], out_shape[a])
                                .clamp(0.0, last);
                            let lo = s.floor();
                            let hi = (lo + 1.0).min(last);
                            (lo as usize, hi as usize, s - lo)
                        })
                        .collect()
                })
                .collect();
            let changed: Vec<usize> = (0..rank).filter(|&a| in_shape[a] != out_shape[a]).collect();
            let v = values_f64(x);
            let mut out = Vec::with_capacity(total);
            let mut idx = vec![0usize; rank];
            loop {
                let base: usize = (0..rank)
                    .filter(|a| !changed.contains(a))
                    .map(|a| idx[a] * ist[a])
                    .sum();
                let mut acc = 0.0;
                for corner in 0u64..(1u64 << changed.len()) {
                    let mut off = base;
                    let mut w = 1.0;
                    for (bit, &a) in changed.iter().enumerate() {
                        let (lo, hi, t) = maps[a][idx[a]];
                        if corner >> bit & 1 == 1 {
                            off += hi * ist[a];
                            w *= t;
                        } else {
                            off += lo * ist[a];
                            w *= 1.0 - t;
                        }
                    }
                    if w != 0.0 {
                        acc += w * v[off];
                    }
                }
                out.push(acc);
                if !next_index(&mut idx, &out_shape) {
                    break;
                }
            }
            from_f64(x.dtype(), out_shape, &out)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::interp::{Bindings, eval_op};
    use crate::op::{CoordTransform, NearestRounding, Op, ResizeMode};
    use crate::shape::{Dim, Shape};
    use crate::{DType, Tensor};

    fn t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run(x: &Tensor, size: &[u64], mode: ResizeMode, coord: CoordTransform) -> Vec<f32> {
        let op = Op::Resize {
            size: Shape::fixed(size),
            mode,
            coord,
        };
        let r = eval_op(&op, std::slice::from_ref(x), &Bindings::new()).unwrap();
        assert_eq!(r[0].shape(), size);
        r[0].to_f32_vec()
    }

    #[test]
    fn nearest_2x() {
        let x = t(&[1, 2], &[1., 2.]);
        let n = |r| ResizeMode::Nearest(r);
        // half_pixel sources for 4 outputs: -0.25, 0.25, 0.75, 1.25.
        let hp = CoordTransform::HalfPixel;
        assert_eq!(
            run(&x, &[1, 4], n(NearestRounding::RoundPreferFloor), hp),
            vec![1., 1., 2., 2.]
        );
        assert_eq!(
            run(&x, &[1, 4], n(NearestRounding::Floor), hp),
            vec![1., 1., 1., 2.]
        );
        assert_eq!(
            run(&x, &[1, 4], n(NearestRounding::Ceil), hp),
            vec![1., 2., 2., 2.]
        );
        // asymmetric sources 0, 0.5, 1, 1.5: prefer-floor rounds 0.5 → 0, prefer-ceil → 1.
        let asy = CoordTransform::Asymmetric;
        assert_eq!(
            run(&x, &[1, 4], n(NearestRounding::RoundPreferFloor), asy),
            vec![1., 1., 2., 2.]
        );
        assert_eq!(
            run(&x, &[1, 4], n(NearestRounding::RoundPreferCeil), asy),
            vec![1., 2., 2., 2.]
        );
        // Integers are copied exactly.
        let xi = Tensor::from_i64(DType::I64, vec![2], &[i64::MAX, -5]).unwrap();
        let op = Op::Resize {
            size: Shape::fixed(&[4]),
            mode: n(NearestRounding::Floor),
            coord: asy,
        };
        let r = eval_op(&op, &[xi], &Bindings::new()).unwrap();
        assert_eq!(r[0].to_i64_vec(), vec![i64::MAX, i64::MAX, -5, -5]);
    }

    #[test]
    fn linear_2x() {
        let x = t(&[2], &[0., 4.]);
        // half_pixel: -0.25 → 0 (clamped), 0.25 → 1, 0.75 → 3, 1.25 → 4 (clamped).
        assert_eq!(
            run(&x, &[4], ResizeMode::Linear, CoordTransform::HalfPixel),
            vec![0., 1., 3., 4.]
        );
        // align_corners: 0, 1/3, 2/3, 1.
        let r = run(&x, &[4], ResizeMode::Linear, CoordTransform::AlignCorners);
        for (a, b) in r.iter().zip([0., 4. / 3., 8. / 3., 4.]) {
            assert!((a - b).abs() < 1e-6);
        }
        // Bilinear 2×2 → 3×3 with align_corners: the centre is the mean.
        let x = t(&[2, 2], &[0., 2., 4., 6.]);
        let r = run(
            &x,
            &[3, 3],
            ResizeMode::Linear,
            CoordTransform::AlignCorners,
        );
        assert_eq!(r, vec![0., 1., 2., 2., 3., 4., 4., 5., 6.]);
        // Unchanged axes are copied even with NaN neighbours.
        let x = t(&[2, 2], &[f32::NAN, f32::NAN, 1., 3.]);
        let r = run(
            &x,
            &[2, 3],
            ResizeMode::Linear,
            CoordTransform::AlignCorners,
        );
        assert_eq!(&r[3..], &[1., 2., 3.]);
    }

    #[test]
    fn symbolic_size_and_errors() {
        let x = t(&[2], &[1., 2.]);
        let op = Op::Resize {
            size: Shape(vec![Dim::sym("S")]),
            mode: ResizeMode::Linear,
            coord: CoordTransform::Asymmetric,
        };
        let mut b = Bindings::new();
        assert!(eval_op(&op, std::slice::from_ref(&x), &b).is_err());
        b.insert("S".into(), 4);
        let r = eval_op(&op, std::slice::from_ref(&x), &b).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![1., 1.5, 2., 2.]);
        let bad = Op::Resize {
            size: Shape::fixed(&[2, 2]),
            mode: ResizeMode::Linear,
            coord: CoordTransform::Asymmetric,
        };
        assert!(eval_op(&bad, &[x], &Bindings::new()).is_err());
        let xi = Tensor::from_i64(DType::I32, vec![2], &[1, 2]).unwrap();
        let lin = Op::Resize {
            size: Shape::fixed(&[3]),
            mode: ResizeMode::Linear,
            coord: CoordTransform::Asymmetric,
        };
        assert!(eval_op(&lin, &[xi], &Bindings::new()).is_err());
    }
}
