//! `Resize` cases the IR `resize` op cannot express (cubic interpolation,
//! `half_pixel_symmetric`, scales that are not the ratio `out / in`, `pytorch_half_pixel`
//! to a single output), lowered to one matmul per resized axis with a compile-time
//! interpolation matrix `W[out, in]`.
//!
//! ONNX's reference resizes axis by axis: each output coordinate `x` maps to `x_ori` in
//! the input, then the `n` input positions nearest to `x_ori` (2 for linear and nearest,
//! 4 for cubic; ties to the lower index) are weighted by the mode's coefficients of the
//! fraction `x_ori − ⌊x_ori⌋` (taken as 1 when it is 0); positions outside the input take
//! the edge value, or with `exclude_outside` get weight 0 and the rest are renormalised.
//! That is linear in the input along the axis, so it is exactly a matrix. Needs static
//! input dims and a float input; antialiasing and `tf_crop_and_resize` are not handled.

use dqc_ir::Op;

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal};
use crate::onnx::ops::emit_util::{dtype_of, fconst, norm_axis, shape_of, transpose};

/// Interpolation settings read from the node.
pub struct Interp<'a> {
    /// `nearest`, `linear` or `cubic`.
    pub mode: &'a str,
    /// The coordinate transformation mode.
    pub coord: &'a str,
    /// The nearest rounding mode.
    pub nearest: &'a str,
    /// `cubic_coeff_a`.
    pub cubic_a: f32,
    /// `exclude_outside`.
    pub exclude_outside: bool,
}

/// Resize `x` along `axes` (all axes when None) to the given scales or sizes (one per
/// resized axis; sizes with the `stretch` policy) with per-axis matmuls.
pub fn resize_by_matrices(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
    axes: Option<&[i64]>,
    ip: &Interp<'_>,
) -> Result<OVal, FrontendError> {
    let dt = dtype_of(ctx, &x)?;
    if !dt.is_float() {
        return Err(node.error(format!("matrix resize needs a float input, found {dt}")));
    }
    let shape = shape_of(ctx, &x)?;
    let rank = shape.rank();
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(node, v, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let mut y = x;
    for (k, &a) in axes.iter().enumerate() {
        let len_in = shape
            .dims()
            .get(a)
            .and_then(|d| d.as_fixed())
            .ok_or_else(|| node.error(format!("resized axis {a} must be static in {shape}")))?;
        let (len_out, scale) = match (scales, sizes) {
            (Some(s), _) => {
                let sc = *s.get(k).ok_or_else(|| node.error("too few scales"))?;
                if !(sc > 0.0 && sc.is_finite()) {
                    return Err(node.error(format!("scale {sc} is not positive")));
                }
                (
                    (len_in as f64 * f64::from(sc)).floor() as u64,
                    f64::from(sc),
                )
            }
            (None, Some(s)) => {
                let o = s
                    .get(k)
                    .and_then(|&v| u64::try_from(v).ok())
                    .ok_or_else(|| node.error(format!("bad sizes {s:?}")))?;
                (o, o as f64 / len_in as f64)
            }
            (None, None) => return Err(node.error("neither scales nor sizes is given")),
        };
        if len_out == 0 {
            return Err(node.error(format!("axis {a} would have no outputs")));
        }
        if len_out == len_in && scale == 1.0 {
            continue;
        }
        let w = matrix(node, ip, len_in, len_out, scale)?;
        // Move axis a last, multiply by Wᵀ [in, out], move it back.
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, rank - 1);
        let t = if a + 1 == rank {
            y
        } else {
            transpose(ctx, &y, perm.clone(), &node.sub(&format!("axis{a}_last")))?
        };
        let wt = fconst(node, dt, vec![len_in, len_out], &w)?;
        let m = ctx.emit1(Op::MatMul, &[t, wt], &node.sub(&format!("axis{a}_interp")))?;
        y = if a + 1 == rank {
            m
        } else {
            transpose(ctx, &m, perm, &node.sub(&format!("axis{a}_back")))?
        };
    }
    Ok(y)
}

/// `Wᵀ` as `[in, out]` row-major values.
fn matrix(
    node: &NodeView<'_>,
    ip: &Interp<'_>,
    len_in: u64,
    len_out: u64,
    scale: f64,
) -> Result<Vec<f32>, FrontendError> {
    let (li, lo) = (len_in as f64, len_out as f64);
    let mut wt = vec![0.0f32; (len_in * len_out) as usize];
    for o in 0..len_out {
        let x = o as f64;
        let x_ori = match ip.coord {
            "half_pixel" => (x + 0.5) / scale - 0.5,
            "half_pixel_symmetric" => {
                let adjustment = lo / (scale * li);
                let center = li / 2.0;
                center * (1.0 - adjustment) + (x + 0.5) / scale - 0.5
            }
            "pytorch_half_pixel" if len_out > 1 => (x + 0.5) / scale - 0.5,
            "pytorch_half_pixel" => 0.0,
            // ONNX divides by the unrounded output length `scale · in` here.
            "align_corners" if len_out > 1 => x * (li - 1.0) / (scale * li - 1.0),
            "align_corners" => 0.0,
            "asymmetric" => x / scale,
            "tf_half_pixel_for_nn" => (x + 0.5) / scale,
            other => {
                return Err(node.attr_error(
                    "coordinate_transformation_mode",
                    format!("`{other}` is not supported by the matrix resize"),
                ));
            }
        };
        let (idx, coeffs) = neighbours(node, ip, x_ori)?;
        let mut taps: Vec<(i64, f64)> = idx.into_iter().zip(coeffs).collect();
        if ip.exclude_outside {
            for (i, c) in &mut taps {
                if *i < 0 || *i >= len_in as i64 {
                    *c = 0.0;
                }
            }
            let sum: f64 = taps.iter().map(|(_, c)| c).sum();
            if sum != 0.0 {
                for (_, c) in &mut taps {
                    *c /= sum;
                }
            }
        }
        for (i, c) in taps {
            let i = i.clamp(0, len_in as i64 - 1) as u64;
            if let Some(v) = wt.get_mut((i * len_out + o) as usize) {
                *v += c as f32;
            }
        }
    }
    Ok(wt)
}

/// The input positions around `x` and their weights.
fn neighbours(
    node: &NodeView<'_>,
    ip: &Interp<'_>,
    x: f64,
) -> Result<(Vec<i64>, Vec<f64>), FrontendError> {
    let fl = x.floor();
    let mut r = x - fl;
    if r == 0.0 {
        r = 1.0;
    }
    // The n nearest integers, ties to the lower: ⌈x⌉−n/2 … ⌈x⌉+n/2−1 (x integer: x−n/2+1…).
    let base = if x == fl { fl as i64 } else { fl as i64 + 1 };
    match ip.mode {
        "nearest" => {
            let lower = base - 1;
            let take_upper = match ip.nearest {
                "round_prefer_floor" => r > 0.5,
                "round_prefer_ceil" => r >= 0.5,
                "floor" => r == 1.0,
                "ceil" => true,
                other => {
                    return Err(node.attr_error("nearest_mode", format!("unknown `{other}`")));
                }
            };
            let c = if take_upper { [0.0, 1.0] } else { [1.0, 0.0] };
            Ok((vec![lower, lower + 1], c.to_vec()))
        }
        "linear" => Ok((vec![base - 1, base], vec![1.0 - r, r])),
        "cubic" => {
            let a = f64::from(ip.cubic_a);
            let s = 1.0 - r;
            let c = vec![
                ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
            ];
            Ok((vec![base - 2, base - 1, base, base + 1], c))
        }
        other => Err(node.attr_error("mode", format!("unknown mode `{other}`"))),
    }
}
