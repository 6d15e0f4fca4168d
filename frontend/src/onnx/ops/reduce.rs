//! Reductions: `ReduceMean/Sum/Max/Min/Prod/L2` map to the IR `Reduce`;
//! `ReduceL1/SumSquare/LogSum/LogSumExp` expand into an elementwise op and a sum;
//! `ArgMax/ArgMin` (with `select_last_index` through a reversed copy) and `CumSum`.
//!
//! Axes come from the `axes` attribute before opset 18 (13 for `ReduceSum`) and from the
//! optional second input after; the input must be known at compile time. Empty axes
//! reduce over every axis, or with `noop_with_empty_axes = 1` return the input unchanged.

use dqc_ir::op::{BinaryOp, ReduceOp, UnaryOp};
use dqc_ir::{DType, Op};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{bin, cast, iconst, norm_axis, rank_of, shape_of, un};

/// Register the reduction converters.
pub fn register(r: &mut Registry) {
    for op in [
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL2",
        "ReduceL1",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
    ] {
        r.register("", op, 1, reduce_attr_axes);
        r.register("", op, 18, reduce_input_axes);
    }
    r.register("", "ReduceSum", 1, reduce_attr_axes);
    r.register("", "ReduceSum", 13, reduce_input_axes);
    r.register_many(&["ArgMax", "ArgMin"], 1, arg_reduce);
    r.register("", "CumSum", 11, cumsum);
}

fn reduce_attr_axes(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let axes = node.attr_is("axes")?.unwrap_or_default();
    reduce(ctx, node, axes)
}

fn reduce_input_axes(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let axes = match ctx.input(node, 1)? {
        Some(v) => ctx.const_i64s(&v, 1)?,
        None => Vec::new(),
    };
    reduce(ctx, node, axes)
}

fn reduce(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    axes: Vec<i64>,
) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let keepdims = node.attr_i("keepdims", 1)? != 0;
    if axes.is_empty() && node.attr_i("noop_with_empty_axes", 0)? != 0 {
        return Ok(vec![x]);
    }
    let rank = rank_of(ctx, &x)?;
    for &a in &axes {
        norm_axis(node, a, rank)?;
    }
    let name = node.name();
    let sum = |ctx: &mut Ctx<'_>, v: &OVal, n: &str| {
        ctx.emit1(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: axes.clone(),
                keepdims,
            },
            std::slice::from_ref(v),
            n,
        )
    };
    let out = match node.op_type() {
        "ReduceL1" => {
            let a = un(ctx, UnaryOp::Abs, &x, &node.sub("abs"))?;
            sum(ctx, &a, &name)?
        }
        "ReduceSumSquare" => {
            let sq = bin(ctx, BinaryOp::Mul, &x, &x, &node.sub("square"))?;
            sum(ctx, &sq, &name)?
        }
        "ReduceLogSum" => {
            let s = sum(ctx, &x, &node.sub("sum"))?;
            un(ctx, UnaryOp::Log, &s, &name)?
        }
        "ReduceLogSumExp" => {
            let e = un(ctx, UnaryOp::Exp, &x, &node.sub("exp"))?;
            let s = sum(ctx, &e, &node.sub("sum"))?;
            un(ctx, UnaryOp::Log, &s, &name)?
        }
        other => {
            let op = match other {
                "ReduceMean" => ReduceOp::Mean,
                "ReduceSum" => ReduceOp::Sum,
                "ReduceMax" => ReduceOp::Max,
                "ReduceMin" => ReduceOp::Min,
                "ReduceProd" => ReduceOp::Prod,
                "ReduceL2" => ReduceOp::L2,
                _ => return Err(node.error(format!("`{other}` is not a reduction"))),
            };
            if ctx.ty(&x)?.dtype == DType::Bool && matches!(op, ReduceOp::Max | ReduceOp::Min) {
                // any / all: reduce the 0/1 codes and turn them back into bools.
                let codes = cast(ctx, &x, DType::I32, &node.sub("codes"))?;
                let r = ctx.emit1(
                    Op::Reduce { op, axes, keepdims },
                    &[codes],
                    &node.sub("reduced"),
                )?;
                cast(ctx, &r, DType::Bool, &name)?
            } else {
                ctx.emit1(Op::Reduce { op, axes, keepdims }, &[x], &name)?
            }
        }
    };
    Ok(vec![out])
}

/// `ArgMax`/`ArgMin`. With `select_last_index = 1` the axis is reversed first and the
/// index mapped back (`n - 1 - i`), which needs a static extent along the axis.
fn arg_reduce(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let max = node.op_type() == "ArgMax";
    let axis = node.attr_i("axis", 0)?;
    let keepdims = node.attr_i("keepdims", 1)? != 0;
    let last = node.attr_i("select_last_index", 0)? != 0;
    let shape = shape_of(ctx, &x)?;
    let ax = norm_axis(node, axis, shape.rank())?;
    let op = Op::ArgReduce {
        max,
        axis: ax as i64,
        keepdims,
    };
    if !last {
        return Ok(vec![ctx.emit1(op, &[x], &node.name())?]);
    }
    let n = shape
        .dims()
        .get(ax)
        .and_then(|d| d.as_fixed())
        .ok_or_else(|| {
            node.attr_error(
                "select_last_index",
                format!("needs a static extent along axis {axis}, but the shape is {shape}"),
            )
        })?;
    let rev = ctx.emit1(
        Op::Slice {
            axes: vec![ax as i64],
            starts: vec![-1],
            ends: vec![i64::MIN],
            steps: vec![-1],
        },
        &[x],
        &node.sub("reversed"),
    )?;
    let idx = ctx.emit1(op, &[rev], &node.sub("rev_index"))?;
    let top = iconst(node, DType::I64, Vec::new(), &[n as i64 - 1])?;
    Ok(vec![bin(ctx, BinaryOp::Sub, &top, &idx, &node.name())?])
}

fn cumsum(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let axis_v = ctx.req(node, 1)?;
    let axis = match ctx.const_i64s(&axis_v, 1)?.as_slice() {
        [a] => *a,
        other => {
            return Err(node.input_error(
                1,
                format!("axis must be one integer, found {} values", other.len()),
            ));
        }
    };
    norm_axis(node, axis, rank_of(ctx, &x)?)?;
    let op = Op::CumSum {
        axis,
        exclusive: node.attr_i("exclusive", 0)? != 0,
        reverse: node.attr_i("reverse", 0)? != 0,
    };
    Ok(vec![ctx.emit1(op, &[x], &node.name())?])
}
