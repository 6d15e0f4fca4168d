//! `Resize` (opsets 10–19) and the deprecated `Upsample` → IR `Resize` with the whole
//! output shape.
//!
//! The IR maps coordinates with the ratio `out / in` per axis, so a `scales` input goes
//! to the IR op only where `floor(in · scale) / in == scale` (integer up-sampling and
//! exact down-sampling). The IR op takes modes `nearest` (all four `nearest_mode`s) and
//! `linear` with coordinate modes `half_pixel`, `asymmetric`, `align_corners` and
//! `pytorch_half_pixel` (equal to `half_pixel` when every resized axis has more than one
//! output). What it refuses — `cubic`, `half_pixel_symmetric`, `tf_half_pixel_for_nn`,
//! inexact scales, `pytorch_half_pixel` to one output — is lowered by
//! [`super::resize_matrix`] to a matmul per axis when the input is a static float
//! tensor. Refused with a reason: `antialias = 1`, `tf_crop_and_resize`, aspect-ratio
//! policies other than `stretch` outside the IR op, and symbolic input dims on resized
//! axes.

use dqc_ir::op::{CoordTransform, NearestRounding, ResizeMode};
use dqc_ir::{Dim, Op, Shape};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{norm_axis, shape_of};
use crate::onnx::ops::resize_matrix::{Interp, resize_by_matrices};

/// Register the resize converters.
pub fn register(r: &mut Registry) {
    r.register("", "Resize", 10, resize);
    r.register("", "Upsample", 7, upsample);
}

/// How the output size is given.
enum Target {
    Scales(Vec<f32>),
    Sizes(Vec<i64>),
}

fn resize(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let opset = node.opset();
    // Opset 10: (X, scales); 11+: (X, roi, scales, sizes).
    let (scales_i, sizes_i) = if opset < 11 { (1, None) } else { (2, Some(3)) };
    let scales = match ctx.input(node, scales_i)? {
        Some(v) => {
            let t = v.as_const().ok_or_else(|| {
                node.input_error(scales_i, "scales must be known at compile time")
            })?;
            let s = t.to_f32_vec();
            if s.is_empty() { None } else { Some(s) }
        }
        None => None,
    };
    let sizes = match sizes_i {
        Some(i) => match ctx.input(node, i)? {
            Some(v) => Some(ctx.const_i64s(&v, i)?),
            None => None,
        },
        None => None,
    };
    let target = match (scales, sizes) {
        (Some(s), None) => Target::Scales(s),
        (None, Some(s)) if !s.is_empty() => Target::Sizes(s),
        (Some(_), Some(_)) => return Err(node.error("both scales and sizes are given")),
        _ => return Err(node.error("neither scales nor sizes is given")),
    };
    if node.attr_i("antialias", 0)? != 0 {
        return Err(node.attr_error("antialias", "1 (antialiased resize) is not supported"));
    }
    let mode = node.attr_s("mode", "nearest")?;
    let default_coord = if opset < 11 {
        "asymmetric"
    } else {
        "half_pixel"
    };
    let coord = node.attr_s("coordinate_transformation_mode", default_coord)?;
    let default_nearest = if opset < 11 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let nearest = node.attr_s("nearest_mode", default_nearest)?;
    let policy = node.attr_s("keep_aspect_ratio_policy", "stretch")?;
    let axes = node.attr_is("axes")?;
    let (scales, sizes) = match &target {
        Target::Scales(s) => (Some(s.clone()), None),
        Target::Sizes(s) => (None, Some(s.clone())),
    };
    let first = emit_resize(
        ctx,
        node,
        x.clone(),
        target,
        &mode,
        &coord,
        &nearest,
        &policy,
        axes.clone(),
    );
    match first {
        Ok(out) => Ok(vec![out]),
        // What the IR op cannot express, a matmul per axis can (static float inputs).
        Err(e) if policy == "stretch" && coord != "tf_crop_and_resize" => {
            let ip = Interp {
                mode: &mode,
                coord: &coord,
                nearest: &nearest,
                cubic_a: node.attr_f("cubic_coeff_a", -0.75)?,
                exclude_outside: node.attr_i("exclude_outside", 0)? != 0,
            };
            resize_by_matrices(
                ctx,
                node,
                x,
                scales.as_deref(),
                sizes.as_deref(),
                axes.as_deref(),
                &ip,
            )
            .map(|out| vec![out])
            .map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

fn upsample(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let scales = match ctx.input(node, 1)? {
        Some(v) => v
            .as_const()
            .ok_or_else(|| node.input_error(1, "scales must be known at compile time"))?
            .to_f32_vec(),
        None => node
            .attr_fs("scales")?
            .ok_or_else(|| node.attr_error("scales", "required but missing"))?,
    };
    let mode = match node.attr_s("mode", "nearest")?.as_str() {
        "bilinear" => "linear".to_string(),
        m => m.to_string(),
    };
    let out = emit_resize(
        ctx,
        node,
        x,
        Target::Scales(scales),
        &mode,
        "asymmetric",
        "floor",
        "stretch",
        None,
    )?;
    Ok(vec![out])
}

#[allow(clippy::too_many_arguments)]
fn emit_resize(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    target: Target,
    mode: &str,
    coord: &str,
    nearest: &str,
    policy: &str,
    axes: Option<Vec<i64>>,
) -> Result<OVal, FrontendError> {
    let mode = match mode {
        "nearest" => ResizeMode::Nearest(match nearest {
            "round_prefer_floor" => NearestRounding::RoundPreferFloor,
            "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
            "floor" => NearestRounding::Floor,
            "ceil" => NearestRounding::Ceil,
            other => {
                return Err(node.attr_error("nearest_mode", format!("unknown mode `{other}`")));
            }
        }),
        "linear" => ResizeMode::Linear,
        "cubic" => {
            return Err(node.attr_error("mode", "cubic interpolation is not supported"));
        }
        other => return Err(node.attr_error("mode", format!("unknown mode `{other}`"))),
    };
    if !matches!(
        coord,
        "half_pixel" | "asymmetric" | "align_corners" | "pytorch_half_pixel"
    ) {
        return Err(node.attr_error(
            "coordinate_transformation_mode",
            format!("`{coord}` is not supported (half_pixel, pytorch_half_pixel, asymmetric, align_corners are)"),
        ));
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
    let n = match &target {
        Target::Scales(s) => s.len(),
        Target::Sizes(s) => s.len(),
    };
    if n != axes.len() {
        return Err(node.error(format!(
            "{n} scales/sizes for {} resized axes (input rank {rank})",
            axes.len()
        )));
    }
    let mut out: Vec<Dim> = shape.dims().to_vec();
    let in_size = |a: usize| -> Result<u64, FrontendError> {
        shape.dims().get(a).and_then(Dim::as_fixed).ok_or_else(|| {
            node.error(format!(
                "resized axis {a} must be static, the input is {shape}"
            ))
        })
    };
    match target {
        Target::Scales(s) => {
            for (&a, &sc) in axes.iter().zip(&s) {
                if sc == 1.0 {
                    continue;
                }
                let i = in_size(a)?;
                if !(sc > 0.0 && sc.is_finite()) {
                    return Err(node.error(format!("scale {sc} for axis {a} is not positive")));
                }
                let o = (i as f64 * f64::from(sc)).floor() as u64;
                // ONNX maps coordinates with the scale itself (align_corners with
                // in·scale as the output length), so only an exact ratio agrees.
                let inexact = ((o as f64 / i as f64) - f64::from(sc)).abs() > 1e-6;
                if o == 0 || inexact {
                    return Err(node.error(format!(
                        "scale {sc} on axis {a} (size {i}) gives {o} outputs, a ratio other than the \
                         scale; dqc resizes with the ratio out/in, so only exact scales are supported"
                    )));
                }
                if let Some(d) = out.get_mut(a) {
                    *d = Dim::fixed(o);
                }
            }
        }
        Target::Sizes(s) => {
            let sizes: Vec<u64> = s
                .iter()
                .map(|&v| u64::try_from(v).ok().filter(|&v| v > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| node.error(format!("sizes {s:?} must be positive")))?;
            let ins: Vec<u64> = axes.iter().map(|&a| in_size(a)).collect::<Result<_, _>>()?;
            let sizes = match policy {
                "stretch" => sizes,
                "not_larger" | "not_smaller" => {
                    let ratios = sizes.iter().zip(&ins).map(|(&o, &i)| o as f64 / i as f64);
                    let r = if policy == "not_larger" {
                        ratios.fold(f64::INFINITY, f64::min)
                    } else {
                        ratios.fold(0.0, f64::max)
                    };
                    ins.iter()
                        .map(|&i| ((i as f64 * r).round() as u64).max(1))
                        .collect()
                }
                other => {
                    return Err(node.attr_error(
                        "keep_aspect_ratio_policy",
                        format!("expected stretch, not_larger or not_smaller, found `{other}`"),
                    ));
                }
            };
            for (&a, &o) in axes.iter().zip(&sizes) {
                if let Some(d) = out.get_mut(a) {
                    *d = Dim::fixed(o);
                }
            }
        }
    }
    let resized: Vec<usize> = axes
        .iter()
        .copied()
        .filter(|&a| out.get(a) != shape.dims().get(a))
        .collect();
    let coord = match coord {
        "half_pixel" => CoordTransform::HalfPixel,
        "asymmetric" => CoordTransform::Asymmetric,
        "align_corners" => CoordTransform::AlignCorners,
        "pytorch_half_pixel" => {
            if resized.iter().any(|&a| out.get(a) == Some(&Dim::fixed(1))) {
                return Err(node.attr_error(
                    "coordinate_transformation_mode",
                    "pytorch_half_pixel with an output size of 1 is not supported",
                ));
            }
            CoordTransform::HalfPixel
        }
        other => {
            return Err(node.attr_error(
                "coordinate_transformation_mode",
                format!("`{other}` is not supported (half_pixel, pytorch_half_pixel, asymmetric, align_corners are)"),
            ));
        }
    };
    if resized.is_empty() {
        return Ok(x);
    }
    ctx.emit1(
        Op::Resize {
            size: Shape(out),
            mode,
            coord,
        },
        &[x],
        &node.name(),
    )
}
