//! Quantization: `QuantizeLinear` / `DequantizeLinear` → IR `Quantize` / `Dequantize`
//! with the scheme read off the scale's shape (scalar: per tensor; 1-D along `axis`: per
//! channel; `block_size > 0`: per group of `block_size` along `axis`), and
//! `DynamicQuantizeLinear` expanded into reductions and a per-tensor u8 quantize.
//!
//! Scales are cast to f32 (the IR's scale type); the dequantized output takes the ONNX
//! scale's dtype (or `output_dtype`). Element types dqc does not quantize to (int16,
//! int32, …) are dequantized as `(f32(q) - f32(zp)) · scale` for per-tensor and
//! per-channel scales and refused otherwise. `saturate = 0` (float 8 overflow to
//! inf/NaN) is refused: the IR always saturates.

use dqc_ir::op::{BinaryOp, ReduceOp, UnaryOp};
use dqc_ir::quant::QuantScheme;
use dqc_ir::{DType, Dim, Op, Tensor};

use crate::FrontendError;
use crate::onnx::dtype_for_onnx;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{bin, cast, dtype_of, fscalar, norm_axis, reshape, shape_of, un};

/// Register the quantization converters.
pub fn register(r: &mut Registry) {
    r.register("", "QuantizeLinear", 10, quantize);
    r.register("", "DequantizeLinear", 10, dequantize);
    r.register("", "DynamicQuantizeLinear", 11, dynamic_quantize);
}

/// Element types the IR's affine schemes quantize to.
const IR_ELEMENTS: [DType; 5] = [
    DType::I8,
    DType::U8,
    DType::I4,
    DType::F8E4M3,
    DType::F8E5M2,
];

/// The scheme of scale `scale` for `x`, and the scale reshaped to the IR's scale shape.
fn scheme_of(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    scale: OVal,
    scale_index: usize,
) -> Result<(QuantScheme, OVal), FrontendError> {
    let xs = shape_of(ctx, x)?;
    let ss = shape_of(ctx, &scale)?;
    let block = node.attr_i("block_size", 0)?;
    let axis = node.attr_i("axis", 1)?;
    let numel_one = ss.dims().iter().all(|d| *d == Dim::fixed(1));
    if block > 0 {
        let a = norm_axis(node, axis, xs.rank())?;
        let scheme = QuantScheme::PerGroup {
            axis: a as i64,
            size: block as u64,
        };
        return Ok((scheme, scale));
    }
    if block < 0 {
        return Err(node.attr_error("block_size", format!("must be ≥ 0, found {block}")));
    }
    if numel_one {
        let scale = if ss.rank() == 0 {
            scale
        } else {
            reshape(ctx, &scale, Vec::new(), &node.sub("scale_scalar"))?
        };
        return Ok((QuantScheme::PerTensor, scale));
    }
    if ss.rank() == 1 {
        let a = norm_axis(node, axis, xs.rank())?;
        return Ok((QuantScheme::PerChannel { axis: a as i64 }, scale));
    }
    Err(node.input_error(
        scale_index,
        format!("a scale of shape {ss} for an input of shape {xs} needs block_size"),
    ))
}

/// The zero point reshaped like the scale (a `[1]` zero point becomes a scalar).
fn shape_like(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    zp: OVal,
    scale: &OVal,
) -> Result<OVal, FrontendError> {
    let want = shape_of(ctx, scale)?;
    if shape_of(ctx, &zp)? == want {
        return Ok(zp);
    }
    reshape(ctx, &zp, want.dims().to_vec(), &node.sub("zero_point"))
}

/// True if `v` is a compile-time constant of zeros.
fn is_zero(v: &OVal) -> bool {
    v.as_const()
        .is_some_and(|t| t.to_f32_vec().iter().all(|&x| x == 0.0))
}

fn quantize(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let scale = ctx.req(node, 1)?;
    let zp = ctx.input(node, 2)?;
    let out_attr = node.attr_i("output_dtype", 0)?;
    let dtype = match &zp {
        Some(z) => dtype_of(ctx, z)?,
        None if out_attr != 0 => {
            dtype_for_onnx(out_attr as i32).map_err(|e| node.attr_error("output_dtype", e))?
        }
        None => DType::U8,
    };
    if !IR_ELEMENTS.contains(&dtype) {
        return Err(node.error(format!(
            "quantizing to {dtype} is not supported (dqc quantizes to i8, u8, i4, f8e4m3, f8e5m2)"
        )));
    }
    if dtype.is_float() && node.attr_i("saturate", 1)? == 0 {
        return Err(node.attr_error(
            "saturate",
            "0 (overflow to inf/NaN) is not supported; dqc's quantize always saturates",
        ));
    }
    let scale = cast(ctx, &scale, DType::F32, &node.sub("scale_f32"))?;
    let (scheme, scale) = scheme_of(ctx, node, &x, scale, 1)?;
    let zp = match zp {
        Some(z) if dtype.is_float() => {
            if !is_zero(&z) {
                return Err(node.input_error(2, "a float 8 zero point must be known at compile time to be 0 (dqc has no float zero points)"));
            }
            None
        }
        Some(z) => Some(shape_like(ctx, node, z, &scale)?),
        None => None,
    };
    let op = Op::Quantize {
        dtype,
        scheme,
        has_zero_point: zp.is_some(),
    };
    // INT2 / UINT2 load widened to i8 / u8: quantize to the wide type, then clamp to the
    // 2-bit range (saturating to [-128, 127] and then to [-2, 1] is saturating to [-2, 1]).
    let code = match node.input_name(2) {
        "" => out_attr,
        zp_name => ctx
            .model()
            .declared_elem_type(zp_name)
            .map_or(out_attr, i64::from),
    };
    let narrow = match code {
        INT2 => Some((-2, 1)),
        UINT2 => Some((0, 3)),
        _ => None,
    };
    let mut ins = vec![x, scale];
    ins.extend(zp);
    let Some((lo, hi)) = narrow else {
        return Ok(vec![ctx.emit1(op, &ins, &node.name())?]);
    };
    let q = ctx.emit1(op, &ins, &node.sub("wide"))?;
    let lit = |v: i64| {
        Tensor::from_i64(dtype, Vec::new(), &[v])
            .map(OVal::Const)
            .map_err(|e| node.error(e.to_string()))
    };
    let lo = lit(lo)?;
    let hi = lit(hi)?;
    let q = ctx.emit1(Op::Binary(BinaryOp::Max), &[q, lo], &node.sub("lo"))?;
    Ok(vec![ctx.emit1(
        Op::Binary(BinaryOp::Min),
        &[q, hi],
        &node.name(),
    )?])
}

/// ONNX's data type code of UINT2.
const UINT2: i64 = 25;
/// ONNX's data type code of INT2.
const INT2: i64 = 26;

fn dequantize(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let q = ctx.req(node, 0)?;
    let scale = ctx.req(node, 1)?;
    let zp = ctx.input(node, 2)?;
    let out_attr = node.attr_i("output_dtype", 0)?;
    let out = if out_attr != 0 {
        dtype_for_onnx(out_attr as i32).map_err(|e| node.attr_error("output_dtype", e))?
    } else {
        dtype_of(ctx, &scale)?
    };
    let qdt = dtype_of(ctx, &q)?;
    let scale = cast(ctx, &scale, DType::F32, &node.sub("scale_f32"))?;
    let (scheme, scale) = scheme_of(ctx, node, &q, scale, 1)?;
    if !IR_ELEMENTS.contains(&qdt) {
        return dequantize_by_arithmetic(ctx, node, q, scale, zp, scheme, out);
    }
    let zp = match zp {
        Some(z) if qdt.is_float() => {
            if !is_zero(&z) {
                return Err(node.input_error(2, "a float 8 zero point must be known at compile time to be 0 (dqc has no float zero points)"));
            }
            None
        }
        Some(z) => Some(shape_like(ctx, node, z, &scale)?),
        None => None,
    };
    let op = Op::Dequantize {
        scheme,
        has_zero_point: zp.is_some(),
        out,
    };
    let mut ins = vec![q, scale];
    ins.extend(zp);
    Ok(vec![ctx.emit1(op, &ins, &node.name())?])
}

/// `(f32(q) - f32(zp)) · scale` for element types the IR does not dequantize.
fn dequantize_by_arithmetic(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    q: OVal,
    scale: OVal,
    zp: Option<OVal>,
    scheme: QuantScheme,
    out: DType,
) -> Result<Vec<OVal>, FrontendError> {
    let rank = shape_of(ctx, &q)?.rank();
    // Per channel: view the scale as [d, 1, …] so that it lines up with `axis`.
    let view = |ctx: &mut Ctx<'_>, v: OVal, name: &str| -> Result<OVal, FrontendError> {
        match scheme {
            QuantScheme::PerTensor => Ok(v),
            QuantScheme::PerChannel { axis } => {
                let a = usize::try_from(axis).unwrap_or(0);
                let s = shape_of(ctx, &v)?;
                let mut dims = s.dims().to_vec();
                dims.extend(std::iter::repeat_n(
                    Dim::fixed(1),
                    rank.saturating_sub(a + 1),
                ));
                reshape(ctx, &v, dims, name)
            }
            QuantScheme::PerGroup { .. } | QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. } => {
                Err(node.error(format!(
                    "blocked dequantization of {} is not supported",
                    shape_of(ctx, &v).map(|s| s.to_string()).unwrap_or_default()
                )))
            }
        }
    };
    let qf = cast(ctx, &q, DType::F32, &node.sub("codes"))?;
    let centered = match zp {
        Some(z) => {
            let z = cast(ctx, &z, DType::F32, &node.sub("zp_f32"))?;
            let z = view(ctx, z, &node.sub("zp_view"))?;
            bin(ctx, BinaryOp::Sub, &qf, &z, &node.sub("centered"))?
        }
        None => qf,
    };
    let s = view(ctx, scale, &node.sub("scale_view"))?;
    let y = bin(ctx, BinaryOp::Mul, &centered, &s, &node.sub("scaled"))?;
    let y = if out == DType::F32 {
        y
    } else {
        cast(ctx, &y, out, &node.name())?
    };
    Ok(vec![y])
}

/// `scale = (max(0, max x) - min(0, min x)) / 255`, `zp = saturate(round(-min / scale))`,
/// `y = quantize_u8(x, scale, zp)`; outputs `y, scale, zp`.
fn dynamic_quantize(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let x = cast(ctx, &x, DType::F32, &node.sub("x_f32"))?;
    let all = |op| Op::Reduce {
        op,
        axes: Vec::new(),
        keepdims: false,
    };
    let zero = fscalar(node, DType::F32, 0.0)?;
    let hi = ctx.emit1(
        all(ReduceOp::Max),
        std::slice::from_ref(&x),
        &node.sub("max"),
    )?;
    let lo = ctx.emit1(
        all(ReduceOp::Min),
        std::slice::from_ref(&x),
        &node.sub("min"),
    )?;
    let hi = bin(ctx, BinaryOp::Max, &hi, &zero, &node.sub("max0"))?;
    let lo = bin(ctx, BinaryOp::Min, &lo, &zero, &node.sub("min0"))?;
    let range = bin(ctx, BinaryOp::Sub, &hi, &lo, &node.sub("range"))?;
    let scale = bin(
        ctx,
        BinaryOp::Div,
        &range,
        &fscalar(node, DType::F32, 255.0)?,
        &node.sub("scale"),
    )?;
    let neg = un(ctx, UnaryOp::Neg, &lo, &node.sub("neg_min"))?;
    let ratio = bin(ctx, BinaryOp::Div, &neg, &scale, &node.sub("zp_real"))?;
    let rounded = un(ctx, UnaryOp::Round, &ratio, &node.sub("zp_round"))?;
    let clipped = bin(
        ctx,
        BinaryOp::Min,
        &rounded,
        &fscalar(node, DType::F32, 255.0)?,
        &node.sub("zp_hi"),
    )?;
    let clipped = bin(ctx, BinaryOp::Max, &clipped, &zero, &node.sub("zp_lo"))?;
    let zp = ctx.emit1(
        Op::Cast { to: DType::U8 },
        &[clipped],
        &node.sub("zero_point"),
    )?;
    let y = ctx.emit1(
        Op::Quantize {
            dtype: DType::U8,
            scheme: QuantScheme::PerTensor,
            has_zero_point: true,
        },
        &[x, scale.clone(), zp.clone()],
        &node.name(),
    )?;
    Ok(vec![y, scale, zp])
}
