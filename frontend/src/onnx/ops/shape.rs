//! Shape computations and constants: `Shape`, `Size`, `Constant`, `ConstantOfShape`,
//! `Range`, `Identity`, `Cast`, `CastLike`.
//!
//! `Shape` of a tensor with symbolic dimensions is an [`OVal::Dims`], so the shape
//! subgraphs exporters write (`Shape → Gather → Unsqueeze → Concat → Reshape`) fold into
//! the attributes of the op that consumes them.

use std::sync::Arc;

use dqc_ir::op::{BinaryOp, UnaryOp};
use dqc_ir::shape::normalize_axis;
use dqc_ir::{DType, Dim, Op, Shape, Tensor};

use crate::FrontendError;
use crate::onnx::import::ctx::FOLD_LIMIT;
use crate::onnx::import::oval::{SymInt, SymInts};
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::cast_tensor;
use crate::onnx::ops::emit_util::{bin, fscalar, un};
use crate::onnx::tensor::dtype_for_onnx;

/// Register the shape and constant converters.
pub fn register(r: &mut Registry) {
    r.register("", "Shape", 1, shape);
    r.register("", "Size", 1, size);
    r.register("", "Constant", 1, constant);
    r.register("", "ConstantOfShape", 9, constant_of_shape);
    r.register("", "Range", 11, range);
    r.register("", "Identity", 1, identity);
    r.register("", "Cast", 6, cast);
    r.register("", "CastLike", 15, cast_like);
}

fn shape(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dims = ctx.ty(&x)?.shape.0;
    let rank = dims.len() as i64;
    // Opset 15: `start`/`end` select a range of axes; negative counts from the end;
    // out-of-range values are clamped.
    let clamp = |v: i64| -> usize {
        let v = if v < 0 { v + rank } else { v };
        v.clamp(0, rank) as usize
    };
    let start = clamp(node.attr_i("start", 0)?);
    let end = clamp(node.attr_i("end", rank)?);
    let vals: Vec<SymInt> = dims
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(SymInt::from_dim)
        .collect();
    Ok(vec![OVal::ints(SymInts::vector(vals))])
}

fn size(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let numel = ctx
        .ty(&x)?
        .shape
        .numel()
        .ok_or_else(|| node.error("the element count overflows"))?;
    Ok(vec![OVal::ints(SymInts {
        vals: vec![SymInt::from_dim(numel)],
        scalar: true,
        dtype: DType::I64,
    })])
}

fn constant(_ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let bad = |e: dqc_ir::tensor::TensorError| node.error(e.to_string());
    let t = if let Some(t) = node.attr_tensor("value")? {
        t
    } else if node.has_attr("value_float") {
        Tensor::scalar_f32(node.attr_f("value_float", 0.0)?)
    } else if let Some(fs) = node.attr_fs("value_floats")? {
        Tensor::from_f32(DType::F32, vec![fs.len() as u64], &fs).map_err(bad)?
    } else if node.has_attr("value_int") {
        Tensor::from_i64(DType::I64, Vec::new(), &[node.attr_i("value_int", 0)?]).map_err(bad)?
    } else if let Some(is) = node.attr_is("value_ints")? {
        Tensor::from_i64(DType::I64, vec![is.len() as u64], &is).map_err(bad)?
    } else if node.has_attr("sparse_value") {
        return Err(node.attr_error("sparse_value", "sparse constants are not supported"));
    } else if node.has_attr("value_string") || node.has_attr("value_strings") {
        return Err(node.error("string constants are not supported: dqc has no string tensors"));
    } else {
        return Err(node.error("no value attribute (value, value_float(s), value_int(s))"));
    };
    Ok(vec![OVal::Const(t)])
}

fn constant_of_shape(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let shape_in = ctx.req(node, 0)?;
    let dims = ctx.dims(&shape_in, 0)?;
    let value = match node.attr_tensor("value")? {
        Some(t) => {
            if t.numel() != 1 {
                return Err(node.attr_error(
                    "value",
                    format!("must hold one element, has shape {:?}", t.shape()),
                ));
            }
            t.reshaped(Vec::new())
                .map_err(|e| node.attr_error("value", e.to_string()))?
        }
        None => Tensor::scalar_f32(0.0),
    };
    let shape = Shape(dims);
    if let Some(fixed) = shape.as_fixed()
        && fixed
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_some_and(|n| n <= FOLD_LIMIT)
    {
        let n = fixed.iter().product::<u64>() as usize;
        let bytes: Vec<u8> = match value.dtype().is_packed() {
            true => {
                let v = value.to_f32_vec();
                let filled = vec![v.first().copied().unwrap_or(0.0); n];
                let t = Tensor::from_f32(value.dtype(), fixed, &filled)
                    .map_err(|e| node.error(e.to_string()))?;
                return Ok(vec![OVal::Const(t)]);
            }
            false => value.bytes().repeat(n),
        };
        let t = Tensor::from_bytes(value.dtype(), fixed, bytes.into())
            .map_err(|e| node.error(e.to_string()))?;
        return Ok(vec![OVal::Const(t)]);
    }
    Ok(vec![ctx.emit1(
        Op::Expand { shape },
        &[OVal::Const(value)],
        &node.name(),
    )?])
}

/// `Range(start, limit, delta)` with a symbolic `limit` (e.g. `arange(seq_len)`): when
/// `(limit − start) / delta` is an exact monomial `n`, the result is
/// `start + delta · exclusive_cumsum(ones[n])`.
fn symbolic_range(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    start: &OVal,
    limit: &OVal,
    delta: &OVal,
) -> Result<Option<OVal>, FrontendError> {
    let (Some(s), Some(l), Some(d)) = (start.sym_ints(), limit.sym_ints(), delta.sym_ints()) else {
        return Ok(None);
    };
    let (Some(s0), Some(l0), Some(d0)) = (s.vals.first(), l.vals.first(), d.vals.first()) else {
        return Ok(None);
    };
    let Some(n) = l0
        .sub(s0)
        .and_then(|span| span.div(d0))
        .and_then(|n| n.as_dim())
    else {
        return Ok(None);
    };
    let dtype = ctx.ty(start)?.dtype;
    let one = Tensor::from_i64(dtype, Vec::new(), &[1]).map_err(|e| node.error(e.to_string()))?;
    let ones = ctx.emit1(
        Op::Expand {
            shape: Shape(vec![n]),
        },
        &[OVal::Const(one)],
        &node.sub("ones"),
    )?;
    let mut r = ctx.emit1(
        Op::CumSum {
            axis: 0,
            exclusive: true,
            reverse: false,
        },
        &[ones],
        &node.sub("index"),
    )?;
    if d0.as_int() != Some(1) {
        let dv = delta
            .as_const()
            .ok_or_else(|| node.input_error(2, "must be static"))?;
        let dv = dv
            .reshaped(Vec::new())
            .map_err(|e| node.error(e.to_string()))?;
        r = ctx.emit1(
            Op::Binary(dqc_ir::op::BinaryOp::Mul),
            &[r, OVal::Const(dv)],
            &node.sub("scaled"),
        )?;
    }
    if s0.as_int() != Some(0) {
        let sv = start
            .as_const()
            .ok_or_else(|| node.input_error(0, "must be static"))?;
        let sv = sv
            .reshaped(Vec::new())
            .map_err(|e| node.error(e.to_string()))?;
        r = ctx.emit1(
            Op::Binary(dqc_ir::op::BinaryOp::Add),
            &[r, OVal::Const(sv)],
            &node.name(),
        )?;
    }
    Ok(Some(r))
}

fn range(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let (start, limit, delta) = (ctx.req(node, 0)?, ctx.req(node, 1)?, ctx.req(node, 2)?);
    if (start.is_dims() || limit.is_dims() || delta.is_dims())
        && let Some(r) = symbolic_range(ctx, node, &start, &limit, &delta)?
    {
        return Ok(vec![r]);
    }
    let mut parts = Vec::new();
    for i in 0..3 {
        let v = ctx.req(node, i)?;
        let t = v.as_const().ok_or_else(|| {
            node.input_error(
                i,
                "Range needs compile-time start, limit and delta (a range over a symbolic length has no static shape)",
            )
        })?;
        if t.numel() != 1 {
            return Err(node.input_error(i, format!("must be a scalar, has shape {:?}", t.shape())));
        }
        parts.push(t);
    }
    let dtype = parts.first().map_or(DType::F32, Tensor::dtype);
    let values: Vec<f64> = if dtype.is_float() {
        let f: Vec<f64> = parts
            .iter()
            .map(|t| t.to_f32_vec().first().copied().unwrap_or(0.0) as f64)
            .collect();
        range_values(f[0], f[1], f[2])
            .ok_or_else(|| node.error("delta is 0 or the range is too long"))?
    } else {
        let i: Vec<i64> = parts
            .iter()
            .map(|t| t.to_i64_vec().first().copied().unwrap_or(0))
            .collect();
        let (start, limit, delta) = (i[0], i[1], i[2]);
        if delta == 0 {
            return Err(node.error("delta is 0"));
        }
        let n = ((limit as i128 - start as i128) + delta as i128 - delta.signum() as i128)
            .checked_div(delta as i128)
            .unwrap_or(0)
            .max(0);
        if n as u64 > FOLD_LIMIT {
            return Err(node.error(format!("the range has {n} elements, too many to fold")));
        }
        let v: Vec<i64> = (0..n as i64).map(|k| start + k * delta).collect();
        let t = Tensor::from_i64(dtype, vec![v.len() as u64], &v)
            .map_err(|e| node.error(e.to_string()))?;
        return Ok(vec![OVal::Const(t)]);
    };
    let f: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let t =
        Tensor::from_f32(dtype, vec![f.len() as u64], &f).map_err(|e| node.error(e.to_string()))?;
    Ok(vec![OVal::Const(t)])
}

/// `start + k·delta` for `k < ceil((limit − start) / delta)`.
fn range_values(start: f64, limit: f64, delta: f64) -> Option<Vec<f64>> {
    if delta == 0.0 || !delta.is_finite() {
        return None;
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n.is_nan() || n > FOLD_LIMIT as f64 {
        return None;
    }
    Some((0..n as u64).map(|k| start + k as f64 * delta).collect())
}

fn identity(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    Ok(vec![ctx.req(node, 0)?])
}

/// Convert `x` to `to`: shape values stay symbolic under integer casts; constants fold;
/// run-time values get a `cast` node (none if the dtype already matches).
pub fn cast_to(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    to: DType,
) -> Result<OVal, FrontendError> {
    if let OVal::Dims(d) = &x
        && matches!(to, DType::I64 | DType::I32)
    {
        return Ok(OVal::Dims(SymInts {
            dtype: to,
            ..d.clone()
        }));
    }
    if let Some(t) = x.as_const()
        && t.numel() as u64 <= FOLD_LIMIT
    {
        return cast_tensor(&t, to)
            .map(OVal::Const)
            .map_err(|e| node.error(e));
    }
    if ctx.ty(&x)?.dtype == to {
        return Ok(x);
    }
    ctx.emit1(Op::Cast { to }, &[x], &node.name())
}

fn cast(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let code = node.attr_i_req("to")?;
    let to = i32::try_from(code)
        .map_err(|_| format!("{code} is not a data type"))
        .and_then(dtype_for_onnx)
        .map_err(|e| node.attr_error("to", e))?;
    let x = ctx.req(node, 0)?;
    cast_onnx(ctx, node, x, code, to)
}

/// Cast to the ONNX type `code`, which dqc holds as `to`: the widened types (UINT4,
/// INT2, UINT2) wrap like their narrow selves.
fn cast_onnx(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    code: i64,
    to: DType,
) -> Result<Vec<OVal>, FrontendError> {
    if (code == INT2 || code == UINT2) && ctx.ty(&x)?.dtype != DType::Bool {
        return cast_to_2bit(ctx, node, x, code == INT2, to).map(|v| vec![v]);
    }
    if code == UINT4 && ctx.ty(&x)?.dtype != DType::Bool {
        // UINT4 is widened to u8, but ONNX wraps modulo 16: cast to i32 (floats
        // truncate), take the remainder by 16, then narrow.
        let wide = if x.as_const().is_some() {
            cast_to(ctx, node, x, DType::I32)?
        } else {
            ctx.emit1(Op::Cast { to: DType::I32 }, &[x], &node.sub("i32"))?
        };
        let sixteen = OVal::Const(
            Tensor::from_i64(DType::I32, Vec::new(), &[16])
                .map_err(|e| node.error(e.to_string()))?,
        );
        let low = bin(ctx, BinaryOp::Mod, &wide, &sixteen, &node.sub("mod16"))?;
        return Ok(vec![cast_to(ctx, node, low, to)?]);
    }
    cast_checked(ctx, node, x, to)
}

/// ONNX's data type code of UINT4.
const UINT4: i64 = 21;
/// ONNX's data type code of UINT2.
const UINT2: i64 = 25;
/// ONNX's data type code of INT2.
const INT2: i64 = 26;

/// Cast to INT2 / UINT2, which load widened to i8 / u8: ONNX wraps out-of-range values
/// (UINT2 modulo 4; INT2 into [-2, 1]), so go through i32 (floats truncate), wrap, then
/// narrow.
fn cast_to_2bit(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    signed: bool,
    to: DType,
) -> Result<OVal, FrontendError> {
    let wide = if x.as_const().is_some() {
        cast_to(ctx, node, x, DType::I32)?
    } else {
        ctx.emit1(Op::Cast { to: DType::I32 }, &[x], &node.sub("i32"))?
    };
    let int = |v: i64| {
        Tensor::from_i64(DType::I32, Vec::new(), &[v])
            .map(OVal::Const)
            .map_err(|e| node.error(e.to_string()))
    };
    let four = int(4)?;
    let low = if signed {
        // ((v + 2) mod 4) - 2
        let two = int(2)?;
        let up = bin(ctx, BinaryOp::Add, &wide, &two, &node.sub("plus2"))?;
        let m = bin(ctx, BinaryOp::Mod, &up, &four, &node.sub("mod4"))?;
        bin(ctx, BinaryOp::Sub, &m, &two, &node.sub("minus2"))?
    } else {
        bin(ctx, BinaryOp::Mod, &wide, &four, &node.sub("mod4"))?
    };
    cast_to(ctx, node, low, to)
}

/// Cast honouring `saturate`: with `saturate = 0` (opset 19) a float 8 target overflows
/// instead of clamping. The IR cast saturates, so the overflow is put back with a
/// `where`: E4M3FN gives NaN above the round-to-nearest-even overflow point 464, E5M2
/// gives ±inf above its largest finite value 57344 (as ONNX's reference does), both for
/// infinite inputs too.
fn cast_checked(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    to: DType,
) -> Result<Vec<OVal>, FrontendError> {
    let sat = !matches!(
        to,
        DType::F8E4M3 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz
    ) || node.attr_i("saturate", 1)? != 0;
    let from = ctx.ty(&x)?.dtype;
    if to == DType::I4 && from.is_float() {
        // ONNX wraps out-of-range values modulo 16 (-9 → 7) where the IR's float → int
        // cast saturates; its int → int cast wraps, so go through i32.
        let wide = if x.as_const().is_some() {
            cast_to(ctx, node, x, DType::I32)?
        } else {
            ctx.emit1(Op::Cast { to: DType::I32 }, &[x], &node.sub("i32"))?
        };
        return Ok(vec![cast_to(ctx, node, wide, to)?]);
    }
    if sat || !from.is_float() {
        return Ok(vec![cast_to(ctx, node, x, to)?]);
    }
    let y = cast_to(ctx, node, x.clone(), to)?;
    let abs = un(ctx, UnaryOp::Abs, &x, &node.sub("abs"))?;
    let (cmp, limit, special) = if to == DType::F8E4M3 {
        (BinaryOp::Greater, 464.0, fscalar(node, to, f32::NAN)?)
    } else if to == DType::F8E4M3Fnuz {
        // 248 lies halfway between the largest value 240 and 256; the tie rounds to the
        // even 256, which overflows.
        (BinaryOp::GreaterEqual, 248.0, fscalar(node, to, f32::NAN)?)
    } else if to == DType::F8E5M2Fnuz {
        (
            BinaryOp::GreaterEqual,
            61440.0,
            fscalar(node, to, f32::NAN)?,
        )
    } else {
        let zero = fscalar(node, from, 0.0)?;
        let neg = bin(ctx, BinaryOp::Less, &x, &zero, &node.sub("negative"))?;
        // Built from the codes: encoding an f32 infinity saturates to ±57344.
        let code = |b: u8| {
            Tensor::from_bytes(to, Vec::new(), Arc::from([b].as_slice()))
                .map(OVal::Const)
                .map_err(|e| node.error(e.to_string()))
        };
        let pinf = code(0x7c)?;
        let ninf = code(0xfc)?;
        let inf = ctx.emit1(Op::Where, &[neg, ninf, pinf], &node.sub("signed_inf"))?;
        (BinaryOp::Greater, 57344.0, inf)
    };
    let limit = fscalar(node, from, limit)?;
    let over = bin(ctx, cmp, &abs, &limit, &node.sub("overflow"))?;
    Ok(vec![ctx.emit1(
        Op::Where,
        &[over, special, y],
        &node.sub("unsaturated"),
    )?])
}

fn cast_like(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let like = ctx.req(node, 1)?;
    let to = ctx.ty(&like)?.dtype;
    match ctx.model().declared_elem_type(node.input_name(1)) {
        Some(code) => cast_onnx(ctx, node, x, i64::from(code), to),
        None => cast_checked(ctx, node, x, to),
    }
}

/// Resolve `axis` against `rank` or fail naming the node and attribute.
pub fn resolve_axis(
    node: &NodeView<'_>,
    attr: &str,
    axis: i64,
    rank: usize,
) -> Result<usize, FrontendError> {
    normalize_axis(axis, rank).ok_or_else(|| {
        node.attr_error(attr, format!("axis {axis} is out of range for rank {rank}"))
    })
}

/// The static extent of `d`, or an error naming the node.
pub fn fixed_dim(node: &NodeView<'_>, d: &Dim, what: &str) -> Result<u64, FrontendError> {
    d.as_fixed().ok_or_else(|| {
        node.error(format!(
            "{what} is the symbolic dimension {d}; it must be static"
        ))
    })
}
