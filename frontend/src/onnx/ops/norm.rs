//! Normalizations and softmax: `LayerNormalization`, `RMSNormalization`,
//! `GroupNormalization` (opset 18 per-group and opset 21 per-channel affine),
//! `InstanceNormalization` (group norm with one group per channel), `Softmax`,
//! `LogSoftmax` and `Hardmax`-free softmax forms (opset < 13: the input is coerced to 2-D
//! at `axis`; ≥ 13: one axis).
//!
//! Affine parameters are cast to `x`'s dtype; parameters that only broadcast to the
//! normalized shape are applied with `Mul`/`Add` after an unscaled norm.

use dqc_ir::op::{BinaryOp, ReduceOp, UnaryOp};
use dqc_ir::{DType, Dim, Op, Shape};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{
    bin, cast, dim_product, dtype_of, fscalar, iconst, norm_axis, rank_of, reshape, shape_of, un,
};

/// Register the normalization converters.
pub fn register(r: &mut Registry) {
    r.register("", "LayerNormalization", 17, layer_norm);
    r.register("", "RMSNormalization", 23, rms_norm);
    r.register("", "GroupNormalization", 18, group_norm);
    r.register("", "GroupNormalization", 21, group_norm);
    r.register("", "InstanceNormalization", 6, instance_norm);
    r.register_many(&["Softmax", "LogSoftmax"], 1, softmax);
}

/// An affine parameter cast to `dt`, and whether its shape is exactly `want`.
fn param(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    i: usize,
    dt: DType,
    want: &Shape,
) -> Result<Option<(OVal, bool)>, FrontendError> {
    let Some(v) = ctx.input(node, i)? else {
        return Ok(None);
    };
    let v = cast(ctx, &v, dt, &node.sub(&format!("param{i}")))?;
    let exact = shape_of(ctx, &v)? == *want;
    Ok(Some((v, exact)))
}

fn layer_norm(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let axis = node.attr_i("axis", -1)?;
    let eps = node.attr_f("epsilon", 1e-5)?;
    let shape = shape_of(ctx, &x)?;
    let a = norm_axis(node, axis, shape.rank())?;
    let dt = dtype_of(ctx, &x)?;
    let trailing = Shape(shape.dims().get(a..).unwrap_or_default().to_vec());
    let scale = param(ctx, node, 1, dt, &trailing)?;
    let bias = param(ctx, node, 2, dt, &trailing)?;
    let axis = a as i64;
    let y = match (scale, bias) {
        (Some((s, true)), Some((b, true))) => ctx.emit1(
            Op::LayerNorm {
                axis,
                eps,
                affine: true,
            },
            &[x.clone(), s, b],
            &node.name(),
        )?,
        (Some((s, true)), None) if trailing.as_fixed().is_some() => {
            let zeros = zeros_like_shape(node, dt, &trailing)?;
            ctx.emit1(
                Op::LayerNorm {
                    axis,
                    eps,
                    affine: true,
                },
                &[x.clone(), s, zeros],
                &node.name(),
            )?
        }
        (s, b) => {
            let n = ctx.emit1(
                Op::LayerNorm {
                    axis,
                    eps,
                    affine: false,
                },
                std::slice::from_ref(&x),
                &node.sub("normalized"),
            )?;
            affine_after(ctx, node, n, s.map(|p| p.0), b.map(|p| p.0))?
        }
    };
    let mut outs = vec![y];
    if node.num_outputs() > 1
        && (!node.output_name(1).is_empty() || !node.output_name(2).is_empty())
    {
        let axes: Vec<i64> = (axis..shape.rank() as i64).collect();
        let mean_op = Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            keepdims: true,
        };
        let mean = ctx.emit1(mean_op.clone(), std::slice::from_ref(&x), &node.sub("mean"))?;
        let d = bin(ctx, BinaryOp::Sub, &x, &mean, &node.sub("centered"))?;
        let sq = bin(ctx, BinaryOp::Mul, &d, &d, &node.sub("sq"))?;
        let var = ctx.emit1(mean_op, &[sq], &node.sub("var"))?;
        let ve = bin(
            ctx,
            BinaryOp::Add,
            &var,
            &fscalar(node, dt, eps)?,
            &node.sub("var_eps"),
        )?;
        let inv = un(ctx, UnaryOp::Rsqrt, &ve, &node.sub("inv_std"))?;
        outs.push(mean);
        outs.push(inv);
    }
    Ok(outs)
}

/// `n · scale + bias` with broadcasting, either part optional.
fn affine_after(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    n: OVal,
    scale: Option<OVal>,
    bias: Option<OVal>,
) -> Result<OVal, FrontendError> {
    let mut y = n;
    let has_bias = bias.is_some();
    if let Some(s) = scale {
        let name = if has_bias {
            node.sub("scaled")
        } else {
            node.name()
        };
        y = bin(ctx, BinaryOp::Mul, &y, &s, &name)?;
    }
    if let Some(b) = bias {
        y = bin(ctx, BinaryOp::Add, &y, &b, &node.name())?;
    }
    Ok(y)
}

/// A zero constant of a static `shape`.
fn zeros_like_shape(node: &NodeView<'_>, dt: DType, shape: &Shape) -> Result<OVal, FrontendError> {
    let dims = shape
        .as_fixed()
        .ok_or_else(|| node.error(format!("a bias of the symbolic shape {shape} is needed")))?;
    dqc_ir::Tensor::zeros(dt, dims)
        .map(OVal::Const)
        .map_err(|e| node.error(e.to_string()))
}

fn rms_norm(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let axis = node.attr_i("axis", -1)?;
    let eps = node.attr_f("epsilon", 1e-5)?;
    let shape = shape_of(ctx, &x)?;
    let a = norm_axis(node, axis, shape.rank())?;
    let dt = dtype_of(ctx, &x)?;
    let trailing = Shape(shape.dims().get(a..).unwrap_or_default().to_vec());
    let axis = a as i64;
    let y = match param(ctx, node, 1, dt, &trailing)? {
        Some((s, true)) => ctx.emit1(
            Op::RmsNorm {
                axis,
                eps,
                affine: true,
            },
            &[x, s],
            &node.name(),
        )?,
        other => {
            let n = ctx.emit1(
                Op::RmsNorm {
                    axis,
                    eps,
                    affine: false,
                },
                &[x],
                &node.sub("normalized"),
            )?;
            affine_after(ctx, node, n, other.map(|p| p.0), None)?
        }
    };
    Ok(vec![y])
}

/// Per-channel parameters from per-group ones: channel `c` takes group `c / (C/G)`.
fn per_channel(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    p: OVal,
    channels: u64,
    groups: u64,
    what: &str,
) -> Result<OVal, FrontendError> {
    let per = channels / groups.max(1);
    let idx: Vec<i64> = (0..channels).map(|c| (c / per.max(1)) as i64).collect();
    let idx = iconst(node, DType::I64, vec![channels], &idx)?;
    ctx.emit1(Op::Gather { axis: 0 }, &[p, idx], &node.sub(what))
}

fn group_norm(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let groups = node.attr_i_req("num_groups")?;
    let groups = u64::try_from(groups)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| {
            node.attr_error("num_groups", format!("must be positive, found {groups}"))
        })?;
    let eps = node.attr_f("epsilon", 1e-5)?;
    let dt = dtype_of(ctx, &x)?;
    let shape = shape_of(ctx, &x)?;
    let c = shape.dims().get(1).cloned().ok_or_else(|| {
        node.error(format!(
            "GroupNormalization needs [N, C, …], found shape {shape}"
        ))
    })?;
    let scale = ctx.req(node, 1)?;
    let bias = ctx.req(node, 2)?;
    let mut scale = cast(ctx, &scale, dt, &node.sub("scale"))?;
    let mut bias = cast(ctx, &bias, dt, &node.sub("bias"))?;
    let scale_len = shape_of(ctx, &scale)?.dims().first().cloned();
    // Opset 18 gives one scale per group; opset 21 one per channel.
    let per_group =
        node.opset() < 21 || (scale_len == Some(Dim::fixed(groups)) && c != Dim::fixed(groups));
    if per_group && c != Dim::fixed(groups) {
        let channels = c.as_fixed().ok_or_else(|| {
            node.error(format!(
                "per-group scale and bias (opset {}) need a static channel count, found {c}",
                node.opset()
            ))
        })?;
        scale = per_channel(ctx, node, scale, channels, groups, "scale_per_channel")?;
        bias = per_channel(ctx, node, bias, channels, groups, "bias_per_channel")?;
    }
    let op = Op::GroupNorm {
        groups,
        eps,
        affine: true,
    };
    Ok(vec![ctx.emit1(op, &[x, scale, bias], &node.name())?])
}

fn instance_norm(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let eps = node.attr_f("epsilon", 1e-5)?;
    let dt = dtype_of(ctx, &x)?;
    let shape = shape_of(ctx, &x)?;
    let c = shape.dims().get(1).and_then(Dim::as_fixed).ok_or_else(|| {
        node.error(format!(
            "InstanceNormalization needs a static channel axis 1, found shape {shape}"
        ))
    })?;
    let scale = ctx.req(node, 1)?;
    let bias = ctx.req(node, 2)?;
    let scale = cast(ctx, &scale, dt, &node.sub("scale"))?;
    let bias = cast(ctx, &bias, dt, &node.sub("bias"))?;
    let op = Op::GroupNorm {
        groups: c,
        eps,
        affine: true,
    };
    Ok(vec![ctx.emit1(op, &[x, scale, bias], &node.name())?])
}

/// `Softmax` / `LogSoftmax`. Before opset 13 the input is viewed as 2-D
/// `[∏ dims before axis, ∏ dims from axis]` (default axis 1) and normalized along the
/// second; from 13 on along `axis` alone (default -1).
fn softmax(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let log = node.op_type() == "LogSoftmax";
    let rank = rank_of(ctx, &x)?;
    if node.opset() >= 13 {
        let axis = norm_axis(node, node.attr_i("axis", -1)?, rank)? as i64;
        return Ok(vec![normalize(ctx, node, &x, axis, log, &node.name())?]);
    }
    let axis = node.attr_i("axis", 1)?;
    // Coercion: axis may equal rank (everything in the first factor is illegal, so the
    // spec's range is [-r, r-1]).
    let a = norm_axis(node, axis, rank)?;
    let shape = shape_of(ctx, &x)?;
    if a + 1 == rank {
        return Ok(vec![normalize(ctx, node, &x, a as i64, log, &node.name())?]);
    }
    let dims = shape.dims();
    let outer = dim_product(dims.get(..a).unwrap_or_default());
    let inner = dim_product(dims.get(a..).unwrap_or_default());
    let (Some(outer), Some(inner)) = (outer, inner) else {
        return Err(node.error(format!("cannot flatten shape {shape} at axis {axis}")));
    };
    let flat = reshape(ctx, &x, vec![outer, inner], &node.sub("flat"))?;
    let y = normalize(ctx, node, &flat, 1, log, &node.sub("flat_out"))?;
    Ok(vec![reshape(ctx, &y, dims.to_vec(), &node.name())?])
}

/// softmax along `axis`, or its logarithm computed stably as
/// `(x - max) - log Σ exp(x - max)`.
fn normalize(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    axis: i64,
    log: bool,
    name: &str,
) -> Result<OVal, FrontendError> {
    if !log {
        return ctx.emit1(Op::Softmax { axis }, std::slice::from_ref(x), name);
    }
    let red = |op| Op::Reduce {
        op,
        axes: vec![axis],
        keepdims: true,
    };
    let m = ctx.emit1(
        red(ReduceOp::Max),
        std::slice::from_ref(x),
        &node.sub("max"),
    )?;
    let d = bin(ctx, BinaryOp::Sub, x, &m, &node.sub("shifted"))?;
    let e = un(ctx, UnaryOp::Exp, &d, &node.sub("exp"))?;
    let s = ctx.emit1(red(ReduceOp::Sum), &[e], &node.sub("sum"))?;
    let l = un(ctx, UnaryOp::Log, &s, &node.sub("log_sum"))?;
    bin(ctx, BinaryOp::Sub, &d, &l, name)
}
