//! ONNX op converters, one file per op family. Each family has
//! `pub fn register(r: &mut Registry)`; [`default_registry`] calls them all.
//!
//! To add a family: write `ops/NAME.rs` with its `register`, declare the module here and
//! add one line to [`default_registry`].
//!
//! A converter reads its inputs with [`Ctx::req`] / [`Ctx::input`] (optional inputs),
//! attributes with `node.attr_i` / `attr_is` / `attr_f` / `attr_s` / `attr_tensor` (errors
//! name the node and attribute), inputs that must be known at compile time with
//! [`Ctx::const_i64s`] or [`Ctx::dims`], and emits IR ops with [`Ctx::emit1`] /
//! [`Ctx::emit`] (which type-check with the verifier and fold constant inputs). Name the
//! op that produces the ONNX output `node.name()` and helper ops of a composite
//! expansion `node.sub("suffix")`:
//!
//! ```ignore
//! fn softmax(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
//!     let x = ctx.req(node, 0)?;
//!     let axis = node.attr_i("axis", -1)?;
//!     Ok(vec![ctx.emit1(Op::Softmax { axis }, &[x], &node.name())?])
//! }
//! pub fn register(r: &mut Registry) {
//!     r.register("", "Softmax", 13, softmax);
//! }
//! ```
//!
//! Return one [`OVal`] per ONNX output slot. Use [`unify_dtypes`] where ONNX lets
//! exporters mix a constant of another dtype into a broadcasting op.

use dqc_ir::interp::{Bindings, eval_op};
use dqc_ir::{DType, Op, Tensor};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};

pub mod activation;
pub mod attention;
pub mod contraction;
pub mod conv;
pub mod elementwise;
pub mod emit_util;
pub mod movement;
pub mod norm;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod resize_matrix;
pub mod shape;
pub mod slicing;

/// A registry with every converter dqc has.
pub fn default_registry() -> Registry {
    let mut r = Registry::new();
    elementwise::register(&mut r);
    shape::register(&mut r);
    movement::register(&mut r);
    slicing::register(&mut r);
    activation::register(&mut r);
    contraction::register(&mut r);
    conv::register(&mut r);
    norm::register(&mut r);
    reduce::register(&mut r);
    attention::register(&mut r);
    quant::register(&mut r);
    resize::register(&mut r);
    r
}

/// Convert a constant to `to` with the semantics of the IR `cast` op.
pub fn cast_tensor(t: &Tensor, to: DType) -> Result<Tensor, String> {
    if t.dtype() == to {
        return Ok(t.clone());
    }
    let mut out = eval_op(&Op::Cast { to }, std::slice::from_ref(t), &Bindings::new())
        .map_err(|e| e.to_string())?;
    out.pop()
        .ok_or_else(|| "cast produced no value".to_string())
}

/// Bring the operands of a broadcasting op to one dtype: a compile-time constant whose
/// dtype differs from a run-time operand's is converted to it (exporters write Python
/// scalars as constants of their own type); two run-time operands of different dtypes
/// are refused, except that `cast_rest` lets the second be cast at run time (the exponent
/// of `Pow`).
pub fn unify_dtypes(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    vals: &mut [OVal],
    cast_rest: bool,
) -> Result<(), FrontendError> {
    let tys = vals
        .iter()
        .map(|v| ctx.ty(v).map(|t| t.dtype))
        .collect::<Result<Vec<_>, _>>()?;
    // The dtype of the first run-time operand wins; else that of the first operand.
    let target = vals
        .iter()
        .zip(&tys)
        .find(|(v, _)| !v.is_const())
        .map_or(tys.first().copied(), |(_, t)| Some(*t));
    let Some(target) = target else {
        return Ok(());
    };
    for (i, v) in vals.iter_mut().enumerate() {
        let dt = tys.get(i).copied().unwrap_or(target);
        if dt == target {
            continue;
        }
        if let Some(t) = v.as_const() {
            let c = cast_tensor(&t, target).map_err(|e| node.input_error(i, e))?;
            *v = OVal::Const(c);
        } else if cast_rest && i > 0 {
            *v = ctx.emit1(
                Op::Cast { to: target },
                std::slice::from_ref(v),
                &node.sub("cast"),
            )?;
        } else {
            return Err(node.input_error(
                i,
                format!("has dtype {dt}, but the other operands are {target}"),
            ));
        }
    }
    Ok(())
}
