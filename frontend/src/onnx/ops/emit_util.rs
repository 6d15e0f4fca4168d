//! Small helpers shared by the compute op families: constants of a given dtype, static
//! shapes, axis normalization and one-line emission of elementwise ops.

use dqc_ir::op::{BinaryOp, UnaryOp};
use dqc_ir::{DType, Dim, Op, Shape, Tensor};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal};

/// A constant of `dtype` and `shape` from f32 values (converted as `Tensor::from_f32`).
pub fn fconst(
    node: &NodeView<'_>,
    dtype: DType,
    shape: Vec<u64>,
    vals: &[f32],
) -> Result<OVal, FrontendError> {
    Tensor::from_f32(dtype, shape, vals)
        .map(OVal::Const)
        .map_err(|e| node.error(e.to_string()))
}

/// A scalar constant of `dtype` holding `v`.
pub fn fscalar(node: &NodeView<'_>, dtype: DType, v: f32) -> Result<OVal, FrontendError> {
    fconst(node, dtype, Vec::new(), &[v])
}

/// A constant of `dtype` and `shape` from i64 values.
pub fn iconst(
    node: &NodeView<'_>,
    dtype: DType,
    shape: Vec<u64>,
    vals: &[i64],
) -> Result<OVal, FrontendError> {
    Tensor::from_i64(dtype, shape, vals)
        .map(OVal::Const)
        .map_err(|e| node.error(e.to_string()))
}

/// The shape of `v`.
pub fn shape_of(ctx: &Ctx<'_>, v: &OVal) -> Result<Shape, FrontendError> {
    Ok(ctx.ty(v)?.shape)
}

/// The dtype of `v`.
pub fn dtype_of(ctx: &Ctx<'_>, v: &OVal) -> Result<DType, FrontendError> {
    Ok(ctx.ty(v)?.dtype)
}

/// The rank of `v`.
pub fn rank_of(ctx: &Ctx<'_>, v: &OVal) -> Result<usize, FrontendError> {
    Ok(ctx.ty(v)?.shape.rank())
}

/// The shape of `v` if every dimension is static, else an error naming `what`.
pub fn static_shape(
    ctx: &Ctx<'_>,
    node: &NodeView<'_>,
    v: &OVal,
    what: &str,
) -> Result<Vec<u64>, FrontendError> {
    let s = shape_of(ctx, v)?;
    s.as_fixed().ok_or_else(|| {
        node.error(format!(
            "{what} needs a static shape, but the operand has shape {s}"
        ))
    })
}

/// `axis` (possibly negative) as an index into a rank-`rank` tensor.
pub fn norm_axis(node: &NodeView<'_>, axis: i64, rank: usize) -> Result<usize, FrontendError> {
    dqc_ir::shape::normalize_axis(axis, rank).ok_or_else(|| {
        node.error(format!(
            "axis {axis} is out of range for a tensor of rank {rank}"
        ))
    })
}

/// Emit `a op b`.
pub fn bin(
    ctx: &mut Ctx<'_>,
    op: BinaryOp,
    a: &OVal,
    b: &OVal,
    name: &str,
) -> Result<OVal, FrontendError> {
    ctx.emit1(Op::Binary(op), &[a.clone(), b.clone()], name)
}

/// Emit `op(x)`.
pub fn un(ctx: &mut Ctx<'_>, op: UnaryOp, x: &OVal, name: &str) -> Result<OVal, FrontendError> {
    ctx.emit1(Op::Unary(op), std::slice::from_ref(x), name)
}

/// Emit a reshape of `x` to `dims`.
pub fn reshape(
    ctx: &mut Ctx<'_>,
    x: &OVal,
    dims: Vec<Dim>,
    name: &str,
) -> Result<OVal, FrontendError> {
    ctx.emit1(
        Op::Reshape { shape: Shape(dims) },
        std::slice::from_ref(x),
        name,
    )
}

/// Emit a transpose of `x`, or return `x` for the identity permutation.
pub fn transpose(
    ctx: &mut Ctx<'_>,
    x: &OVal,
    perm: Vec<usize>,
    name: &str,
) -> Result<OVal, FrontendError> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x.clone());
    }
    ctx.emit1(Op::Transpose { perm }, std::slice::from_ref(x), name)
}

/// Emit a cast of `x` to `to`, or return `x` if it already has that dtype.
pub fn cast(ctx: &mut Ctx<'_>, x: &OVal, to: DType, name: &str) -> Result<OVal, FrontendError> {
    if ctx.ty(x)?.dtype == to {
        return Ok(x.clone());
    }
    ctx.emit1(Op::Cast { to }, std::slice::from_ref(x), name)
}

/// The product of `dims` (`None` if not representable).
pub fn dim_product(dims: &[Dim]) -> Option<Dim> {
    dims.iter()
        .try_fold(Dim::fixed(1), |acc, d| acc.checked_mul(d))
}
