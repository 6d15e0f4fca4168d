//! Normalizations (LayerNorm, RmsNorm, GroupNorm) and softmax.
//!
//! Statistics are accumulated in f64 over the f32-decoded inputs; the variance is the
//! population variance and `eps` is added inside the square root. Each output element is
//! rounded once (to f32, then to the output dtype, which is `x`'s).

use super::util::{from_f64, norm_axis, numel, require_float, require_shape};
use super::{InterpError, op_err};
use crate::tensor::Tensor;

/// Check the affine parameters of a norm: each must have a float dtype (any: they are
/// decoded to f32; the output keeps `x`'s dtype) and shape `shape`.
fn affine_params(
    params: &[Tensor],
    names: &[&str],
    shape: &[u64],
    op: &str,
) -> Result<Vec<Vec<f32>>, InterpError> {
    let mut out = Vec::with_capacity(params.len());
    for (p, name) in params.iter().zip(names) {
        require_float(p, &format!("{op} {name}"))?;
        require_shape(p, shape, &format!("{op} {name}"))?;
        out.push(p.to_f32_vec());
    }
    Ok(out)
}

/// Split `inputs` into `x` and exactly `extra` parameters.
fn operands<'a>(
    inputs: &'a [Tensor],
    extra: usize,
    op: &str,
) -> Result<(&'a Tensor, &'a [Tensor]), InterpError> {
    match inputs.split_first() {
        Some((x, rest)) if rest.len() == extra => Ok((x, rest)),
        _ => Err(op_err(format!(
            "{op} takes {} operands, got {}",
            1 + extra,
            inputs.len()
        ))),
    }
}

/// LayerNorm over the axes `axis..rank` of `inputs[0]`; with `affine`, `inputs[1]` (gamma)
/// and `inputs[2]` (beta) have the normalized trailing shape.
pub(super) fn layer_norm(
    inputs: &[Tensor],
    axis: i64,
    eps: f32,
    affine: bool,
) -> Result<Tensor, InterpError> {
    let (x, params) = operands(inputs, if affine { 2 } else { 0 }, "layer_norm")?;
    require_float(x, "layer_norm x")?;
    let a = norm_axis(axis, x.shape().len(), "layer_norm axis")?;
    let trailing = &x.shape()[a..];
    let p = affine_params(params, &["gamma", "beta"], trailing, "layer_norm")?;
    let n = numel(trailing);
    let v = x.to_f32_vec();
    let mut out = vec![0f64; v.len()];
    for (row, orow) in v.chunks(n.max(1)).zip(out.chunks_mut(n.max(1))) {
        let mean = row.iter().map(|&e| f64::from(e)).sum::<f64>() / n as f64;
        let var = row
            .iter()
            .map(|&e| (f64::from(e) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for (k, (o, &e)) in orow.iter_mut().zip(row).enumerate() {
            let y = (f64::from(e) - mean) * inv;
            *o = match p.as_slice() {
                [g, b] => y * f64::from(g[k]) + f64::from(b[k]),
                _ => y,
            };
        }
    }
    from_f64(x.dtype(), x.shape().to_vec(), &out)
}

/// RmsNorm over the axes `axis..rank` of `inputs[0]`: `x / √(mean(x²) + eps)`, times
/// `inputs[1]` (gamma, of the trailing shape) if `affine`.
pub(super) fn rms_norm(
    inputs: &[Tensor],
    axis: i64,
    eps: f32,
    affine: bool,
) -> Result<Tensor, InterpError> {
    let (x, params) = operands(inputs, usize::from(affine), "rms_norm")?;
    require_float(x, "rms_norm x")?;
    let a = norm_axis(axis, x.shape().len(), "rms_norm axis")?;
    let trailing = &x.shape()[a..];
    let p = affine_params(params, &["gamma"], trailing, "rms_norm")?;
    let n = numel(trailing);
    let v = x.to_f32_vec();
    let mut out = vec![0f64; v.len()];
    for (row, orow) in v.chunks(n.max(1)).zip(out.chunks_mut(n.max(1))) {
        let ms = row.iter().map(|&e| f64::from(e).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (ms + f64::from(eps)).sqrt();
        for (k, (o, &e)) in orow.iter_mut().zip(row).enumerate() {
            let y = f64::from(e) * inv;
            *o = match p.as_slice() {
                [g] => y * f64::from(g[k]),
                _ => y,
            };
        }
    }
    from_f64(x.dtype(), x.shape().to_vec(), &out)
}

/// GroupNorm of `x: [N, C, *]` with `groups` dividing `C`: each group of `C/groups`
/// channels is normalized over its channels and all spatial positions; then
/// `· gamma[c] + beta[c]` (both `[C]`) if `affine`.
pub(super) fn group_norm(
    inputs: &[Tensor],
    groups: u64,
    eps: f32,
    affine: bool,
) -> Result<Tensor, InterpError> {
    let (x, params) = operands(inputs, if affine { 2 } else { 0 }, "group_norm")?;
    require_float(x, "group_norm x")?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(op_err(format!(
            "group_norm: x must have rank ≥ 2 ([N, C, …]), got shape {s:?}"
        )));
    }
    let c = s[1];
    if groups == 0 || c % groups != 0 {
        return Err(op_err(format!(
            "group_norm: {groups} groups do not divide the {c} channels of x {s:?}"
        )));
    }
    let p = affine_params(params, &["gamma", "beta"], &[c], "group_norm")?;
    let spatial: usize = s[2..].iter().map(|&d| d as usize).product();
    let per_group = (c / groups) as usize * spatial;
    let v = x.to_f32_vec();
    let mut out = vec![0f64; v.len()];
    let chunk = per_group.max(1);
    for (gi, (blk, oblk)) in v.chunks(chunk).zip(out.chunks_mut(chunk)).enumerate() {
        let n = blk.len() as f64;
        let mean = blk.iter().map(|&e| f64::from(e)).sum::<f64>() / n;
        let var = blk
            .iter()
            .map(|&e| (f64::from(e) - mean).powi(2))
            .sum::<f64>()
            / n;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        let first_channel = (gi % groups as usize) * (c / groups) as usize;
        for (k, (o, &e)) in oblk.iter_mut().zip(blk).enumerate() {
            let y = (f64::from(e) - mean) * inv;
            let ch = first_channel + k / spatial.max(1);
            *o = match p.as_slice() {
                [g, b] => y * f64::from(g[ch]) + f64::from(b[ch]),
                _ => y,
            };
        }
    }
    from_f64(x.dtype(), s.to_vec(), &out)
}

/// Softmax of a float tensor along `axis`: `exp(x - max) / Σ exp(x - max)` with the
/// exponentials and the sum in f64. A row of all `-inf` gives NaN (as ONNX).
pub(super) fn softmax(x: &Tensor, axis: i64) -> Result<Tensor, InterpError> {
    require_float(x, "softmax x")?;
    let s = x.shape();
    let a = norm_axis(axis, s.len(), "softmax axis")?;
    let len = s[a] as usize;
    let inner: usize = s[a + 1..].iter().map(|&d| d as usize).product();
    let v = x.to_f32_vec();
    let mut out = vec![0f64; v.len()];
    let block = len * inner;
    if block > 0 {
        for (b, blk) in v.chunks(block).enumerate() {
            for i in 0..inner {
                let lane = |k: usize| f64::from(blk[k * inner + i]);
                let max = (0..len).map(lane).fold(f64::NEG_INFINITY, |m, e| {
                    if m.is_nan() || e.is_nan() {
                        f64::NAN
                    } else {
                        m.max(e)
                    }
                });
                let sum: f64 = (0..len).map(|k| (lane(k) - max).exp()).sum();
                for k in 0..len {
                    out[b * block + k * inner + i] = (lane(k) - max).exp() / sum;
                }
            }
        }
    }
    from_f64(x.dtype(), s.to_vec(), &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use proptest::prelude::*;

    fn f32t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run1(op: Op, inputs: &[Tensor]) -> Result<Tensor, InterpError> {
        eval_op(&op, inputs, &Bindings::new()).map(|mut v| v.remove(0))
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn layer_norm_of_1234() {
        // mean 2.5, population variance 1.25, so y = (x - 2.5)/√1.25
        let x = f32t(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let op = Op::LayerNorm {
            axis: -1,
            eps: 0.0,
            affine: false,
        };
        let y = run1(op, std::slice::from_ref(&x)).unwrap();
        assert_close(
            &y.to_f32_vec(),
            &[-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8],
            1e-6,
        );
        let aff = Op::LayerNorm {
            axis: 1,
            eps: 0.0,
            affine: true,
        };
        let g = f32t(&[4], &[1.0, 2.0, 1.0, 1.0]);
        let b = f32t(&[4], &[0.0, 0.0, 0.0, 1.0]);
        let y = run1(aff.clone(), &[x.clone(), g.clone(), b]).unwrap();
        assert_close(
            &y.to_f32_vec(),
            &[-1.341_640_8, -0.894_427_2, 0.447_213_6, 2.341_640_8],
            1e-6,
        );
        let bad = f32t(&[3], &[0.0; 3]);
        let e = run1(aff, &[x, g, bad]).unwrap_err();
        assert!(
            e.to_string().contains("beta") && e.to_string().contains("[4]"),
            "{e}"
        );
    }

    #[test]
    fn layer_norm_eps_inside_sqrt() {
        // constant row: var 0 → (x - mean)/√eps = 0
        let x = f32t(&[2], &[5.0, 5.0]);
        let y = run1(
            Op::LayerNorm {
                axis: 0,
                eps: 1e-5,
                affine: false,
            },
            &[x],
        )
        .unwrap();
        assert_eq!(y.to_f32_vec(), vec![0.0, 0.0]);
        // [0, 2]: var 1, eps 3 → ±1/2
        let y = run1(
            Op::LayerNorm {
                axis: 0,
                eps: 3.0,
                affine: false,
            },
            &[f32t(&[2], &[0.0, 2.0])],
        )
        .unwrap();
        assert_eq!(y.to_f32_vec(), vec![-0.5, 0.5]);
    }

    #[test]
    fn rms_norm_of_3_4() {
        // mean(x²) = 12.5 → x/√12.5
        let x = f32t(&[2], &[3.0, 4.0]);
        let y = run1(
            Op::RmsNorm {
                axis: 0,
                eps: 0.0,
                affine: true,
            },
            &[x, f32t(&[2], &[1.0, 0.5])],
        )
        .unwrap();
        assert_close(&y.to_f32_vec(), &[0.848_528_1, 0.565_685_4], 1e-6);
    }

    #[test]
    fn group_norm_two_groups() {
        // x: [1, 4, 1] = 1,2 | 3,4; each group normalizes to -1, 1
        let x = f32t(&[1, 4, 1], &[1.0, 2.0, 3.0, 4.0]);
        let y = run1(
            Op::GroupNorm {
                groups: 2,
                eps: 0.0,
                affine: true,
            },
            &[
                x.clone(),
                f32t(&[4], &[1.0, 2.0, 3.0, 4.0]),
                f32t(&[4], &[0.0, 0.0, 0.0, 1.0]),
            ],
        )
        .unwrap();
        assert_eq!(y.to_f32_vec(), vec![-1.0, 2.0, -3.0, 5.0]);
        let e = run1(
            Op::GroupNorm {
                groups: 3,
                eps: 0.0,
                affine: false,
            },
            &[x],
        )
        .unwrap_err();
        assert!(e.to_string().contains("3 groups"), "{e}");
        // spatial extent 2, one group per channel: [1,3] → [-1,1]
        let y = run1(
            Op::GroupNorm {
                groups: 2,
                eps: 0.0,
                affine: false,
            },
            &[f32t(&[1, 2, 2], &[1.0, 3.0, 10.0, 20.0])],
        )
        .unwrap();
        assert_eq!(y.to_f32_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    }

    #[test]
    fn softmax_of_0_ln2() {
        let x = f32t(&[2], &[0.0, std::f32::consts::LN_2]);
        let y = run1(Op::Softmax { axis: 0 }, &[x]).unwrap();
        assert_close(&y.to_f32_vec(), &[1.0 / 3.0, 2.0 / 3.0], 1e-7);
        // along axis 0 of a [2,2]: columns
        let x = f32t(&[2, 2], &[0.0, 5.0, std::f32::consts::LN_2, 5.0]);
        let y = run1(Op::Softmax { axis: 0 }, &[x]).unwrap();
        assert_close(&y.to_f32_vec(), &[1.0 / 3.0, 0.5, 2.0 / 3.0, 0.5], 1e-7);
        // large logits do not overflow (max-subtracted)
        let y = run1(Op::Softmax { axis: -1 }, &[f32t(&[2], &[1000.0, 1000.0])]).unwrap();
        assert_eq!(y.to_f32_vec(), vec![0.5, 0.5]);
    }

    #[test]
    fn softmax_nan_and_empty() {
        let y = run1(Op::Softmax { axis: 0 }, &[f32t(&[2], &[f32::NAN, 1.0])]).unwrap();
        assert!(y.to_f32_vec().iter().all(|v| v.is_nan()));
        let y = run1(Op::Softmax { axis: 1 }, &[f32t(&[0, 3], &[])]).unwrap();
        assert_eq!(y.shape(), &[0, 3]);
        let y = run1(Op::Softmax { axis: 1 }, &[f32t(&[2, 0], &[])]).unwrap();
        assert_eq!(y.shape(), &[2, 0]);
        assert!(run1(Op::Softmax { axis: 2 }, &[f32t(&[2], &[0.0, 0.0])]).is_err());
        let i = Tensor::from_i64(DType::I32, vec![2], &[1, 2]).unwrap();
        assert!(run1(Op::Softmax { axis: 0 }, &[i]).is_err());
    }

    #[test]
    fn bf16_output_is_rounded_once() {
        let x = Tensor::from_f32(DType::BF16, vec![2], &[0.0, std::f32::consts::LN_2]).unwrap();
        let y = run1(Op::Softmax { axis: 0 }, std::slice::from_ref(&x)).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        // bf16(ln 2) = 0.69140625; softmax in f64, rounded to f32, then to bf16
        let d = f64::from(x.to_f32_vec()[1]);
        let (p0, p1) = (1.0 / (1.0 + d.exp()), d.exp() / (1.0 + d.exp()));
        let want = Tensor::from_f32(DType::BF16, vec![2], &[p0 as f32, p1 as f32]).unwrap();
        assert!(y.bit_eq(&want), "{y:?} vs {want:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn softmax_rows_sum_to_one(rows in 1u64..4, cols in 1u64..7, v in proptest::collection::vec(-20.0f32..20.0, 24)) {
            let n = (rows * cols) as usize;
            let x = f32t(&[rows, cols], &v[..n]);
            let y = run1(Op::Softmax { axis: 1 }, &[x]).unwrap().to_f32_vec();
            for r in 0..rows as usize {
                let row = &v[r * cols as usize..(r + 1) * cols as usize];
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let z: f64 = row.iter().map(|&e| (e as f64 - m).exp()).sum();
                let got = &y[r * cols as usize..(r + 1) * cols as usize];
                let s: f64 = got.iter().map(|&e| e as f64).sum();
                prop_assert!((s - 1.0).abs() < 1e-6);
                for (g, &e) in got.iter().zip(row) {
                    prop_assert!(((*g as f64) - (e as f64 - m).exp() / z).abs() < 1e-7);
                }
            }
        }

        #[test]
        fn layer_norm_standardizes(cols in 2u64..9, v in proptest::collection::vec(-50.0f32..50.0, 8)) {
            let row = &v[..cols as usize];
            let spread = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
                - row.iter().cloned().fold(f32::INFINITY, f32::min);
            prop_assume!(spread > 1e-2);
            let y = run1(Op::LayerNorm { axis: 0, eps: 0.0, affine: false }, &[f32t(&[cols], row)])
                .unwrap()
                .to_f32_vec();
            let n = y.len() as f64;
            let mean: f64 = y.iter().map(|&e| e as f64).sum::<f64>() / n;
            let var: f64 = y.iter().map(|&e| (e as f64 - mean).powi(2)).sum::<f64>() / n;
            prop_assert!(mean.abs() < 1e-5, "mean {}", mean);
            prop_assert!((var - 1.0).abs() < 1e-5, "var {}", var);
        }
    }
}
