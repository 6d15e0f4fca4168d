//! Movement ops: `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`, `Transpose`, `Concat`,
//! `Expand`, `Tile`.
//!
//! Shapes may come from shape computations ([`OVal::Dims`]); `Reshape`'s `0` (copy) and
//! `-1` (infer) entries are resolved with monomial arithmetic, so `[B, -1, 64]` on a
//! `[B, 256, 384]` input becomes the IR shape `[B, 1536, 64]`. On 0-D/1-D shape values
//! themselves these ops stay symbolic.

use dqc_ir::{Dim, Op, Shape};

use crate::FrontendError;
use crate::onnx::import::oval::{SymInt, SymInts};
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::shape::resolve_axis;
use crate::onnx::ops::unify_dtypes;

/// Register the movement converters.
pub fn register(r: &mut Registry) {
    r.register("", "Reshape", 5, reshape);
    r.register("", "Flatten", 1, flatten);
    r.register("", "Squeeze", 1, squeeze);
    r.register("", "Unsqueeze", 1, unsqueeze);
    r.register("", "Transpose", 1, transpose);
    r.register("", "Concat", 4, concat);
    r.register("", "Expand", 8, expand);
    r.register("", "Tile", 6, tile);
}

/// `x` reshaped to `dims`: shape values stay symbolic when the result has rank ≤ 1,
/// otherwise a `reshape` node (folded on constants).
pub fn reshape_to(
    ctx: &mut Ctx<'_>,
    x: OVal,
    dims: Vec<Dim>,
    name: &str,
) -> Result<OVal, FrontendError> {
    if let OVal::Dims(d) = &x
        && dims.len() <= 1
    {
        return Ok(OVal::Dims(SymInts {
            scalar: dims.is_empty(),
            ..d.clone()
        }));
    }
    if ctx.ty(&x)?.shape.0 == dims {
        return Ok(x);
    }
    ctx.emit1(Op::Reshape { shape: Shape(dims) }, &[x], name)
}

/// The output dims of ONNX `Reshape` of `input` to `spec`: `0` copies the input
/// dimension (unless `allowzero`), one `-1` is solved from the element count.
pub fn reshape_dims(
    node: &NodeView<'_>,
    input: &[Dim],
    spec: &[SymInt],
    allowzero: bool,
) -> Result<Vec<Dim>, FrontendError> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (k, e) in spec.iter().enumerate() {
        match e {
            SymInt::Int(0) if !allowzero => {
                let d = input.get(k).ok_or_else(|| {
                    node.error(format!(
                        "shape entry {k} is 0 (copy), but the input has rank {}",
                        input.len()
                    ))
                })?;
                out.push(Some(d.clone()));
            }
            SymInt::Int(-1) => {
                if infer.replace(k).is_some() {
                    return Err(node.error("the shape has more than one -1 entry"));
                }
                out.push(None);
            }
            other => match other.as_dim() {
                Some(d) => out.push(Some(d)),
                None => return Err(node.error(format!("shape entry {k} is {other}"))),
            },
        }
    }
    if let Some(k) = infer {
        let total = Shape(input.to_vec())
            .numel()
            .ok_or_else(|| node.error("the input's element count overflows"))?;
        let known = out
            .iter()
            .flatten()
            .try_fold(Dim::fixed(1), |a, d| a.checked_mul(d))
            .ok_or_else(|| node.error("the shape's element count overflows"))?;
        let solved = total.checked_div(&known).ok_or_else(|| {
            node.error(format!(
                "cannot solve the -1 entry: {total} elements are not a multiple of {known} \
                 (as monomials of the symbolic dimensions)"
            ))
        })?;
        if let Some(slot) = out.get_mut(k) {
            *slot = Some(solved);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

fn reshape(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let spec_in = ctx.req(node, 1)?;
    let spec = ctx.sym_ints(&spec_in, 1)?;
    let allowzero = node.attr_i("allowzero", 0)? != 0;
    let input = ctx.ty(&x)?.shape.0;
    let dims = reshape_dims(node, &input, &spec.vals, allowzero)?;
    Ok(vec![reshape_to(ctx, x, dims, &node.name())?])
}

/// Product of dims, or an error naming the node.
fn product(node: &NodeView<'_>, dims: &[Dim]) -> Result<Dim, FrontendError> {
    Shape(dims.to_vec())
        .numel()
        .ok_or_else(|| node.error("the element count overflows"))
}

fn flatten(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dims = ctx.ty(&x)?.shape.0;
    let rank = dims.len() as i64;
    let axis = node.attr_i("axis", 1)?;
    let a = if axis < 0 { axis + rank } else { axis };
    if !(0..=rank).contains(&a) {
        return Err(node.attr_error("axis", format!("{axis} is out of range for rank {rank}")));
    }
    let (head, tail) = dims.split_at(a as usize);
    let out = vec![product(node, head)?, product(node, tail)?];
    Ok(vec![reshape_to(ctx, x, out, &node.name())?])
}

/// The axes of `Squeeze`/`Unsqueeze`: the `axes` attribute before opset 13, input 1 from
/// opset 13 on. `None` when absent.
fn axes_arg(ctx: &Ctx<'_>, node: &NodeView<'_>) -> Result<Option<Vec<i64>>, FrontendError> {
    if node.opset() < 13 {
        return node.attr_is("axes");
    }
    match ctx.input(node, 1)? {
        Some(v) => ctx.const_i64s(&v, 1).map(Some),
        None => Ok(None),
    }
}

fn squeeze(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dims = ctx.ty(&x)?.shape.0;
    let one = Dim::fixed(1);
    let out: Vec<Dim> = match axes_arg(ctx, node)? {
        None => dims.iter().filter(|d| **d != one).cloned().collect(),
        Some(axes) => {
            let mut drop = vec![false; dims.len()];
            for &a in &axes {
                let k = resolve_axis(node, "axes", a, dims.len())?;
                if dims.get(k) != Some(&one) {
                    let d = dims.get(k).map(ToString::to_string).unwrap_or_default();
                    return Err(node.error(format!("cannot squeeze axis {a} of extent {d}")));
                }
                if let Some(f) = drop.get_mut(k) {
                    *f = true;
                }
            }
            dims.iter()
                .zip(&drop)
                .filter(|(_, f)| !**f)
                .map(|(d, _)| d.clone())
                .collect()
        }
    };
    Ok(vec![reshape_to(ctx, x, out, &node.name())?])
}

fn unsqueeze(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dims = ctx.ty(&x)?.shape.0;
    let axes = axes_arg(ctx, node)?.ok_or_else(|| node.error("the axes are missing"))?;
    let rank = dims.len() + axes.len();
    let mut new_axis = vec![false; rank];
    for &a in &axes {
        let k = resolve_axis(node, "axes", a, rank)?;
        match new_axis.get_mut(k) {
            Some(f) if !*f => *f = true,
            _ => return Err(node.error(format!("axis {a} is repeated"))),
        }
    }
    let mut src = dims.into_iter();
    let out: Vec<Dim> = new_axis
        .iter()
        .map(|&f| if f { Some(Dim::fixed(1)) } else { src.next() })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| node.error("axes do not match the rank"))?;
    Ok(vec![reshape_to(ctx, x, out, &node.name())?])
}

fn transpose(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let rank = ctx.ty(&x)?.shape.rank();
    let perm: Vec<usize> = match node.attr_is("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&a| resolve_axis(node, "perm", a, rank))
            .collect::<Result<_, _>>()?,
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(vec![x]);
    }
    Ok(vec![ctx.emit1(
        Op::Transpose { perm },
        &[x],
        &node.name(),
    )?])
}

fn concat(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let mut vals = ctx.inputs(node)?;
    let axis = node.attr_i_req("axis")?;
    if vals.iter().any(OVal::is_dims) {
        let parts: Option<Vec<SymInts>> = vals.iter().map(OVal::sym_ints).collect();
        if let Some(parts) = parts
            && parts.iter().all(|p| !p.scalar)
            && (axis == 0 || axis == -1)
        {
            let dtype = parts.first().map_or(dqc_ir::DType::I64, |p| p.dtype);
            let all: Vec<SymInt> = parts.into_iter().flat_map(|p| p.vals).collect();
            return Ok(vec![OVal::ints(SymInts {
                vals: all,
                scalar: false,
                dtype,
            })]);
        }
    }
    unify_dtypes(ctx, node, &mut vals, false)?;
    if let [one] = vals.as_slice() {
        return Ok(vec![one.clone()]);
    }
    Ok(vec![ctx.emit1(Op::Concat { axis }, &vals, &node.name())?])
}

fn expand(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let shape_in = ctx.req(node, 1)?;
    let dims = ctx.dims(&shape_in, 1)?;
    let in_shape = ctx.ty(&x)?.shape;
    // ONNX Expand broadcasts both ways: a 1 in `shape` keeps the input's extent.
    let target = in_shape
        .broadcast(&Shape(dims))
        .map_err(|e| node.input_error(1, e.to_string()))?;
    if target == in_shape {
        return Ok(vec![x]);
    }
    Ok(vec![ctx.emit1(
        Op::Expand { shape: target },
        &[x],
        &node.name(),
    )?])
}

fn tile(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let reps_in = ctx.req(node, 1)?;
    let reps = ctx.const_i64s(&reps_in, 1)?;
    let dims = ctx.ty(&x)?.shape.0;
    if reps.len() != dims.len() {
        return Err(node.input_error(
            1,
            format!(
                "has {} entries for an input of rank {}",
                reps.len(),
                dims.len()
            ),
        ));
    }
    let reps: Vec<u64> = reps
        .iter()
        .map(|&r| {
            u64::try_from(r).map_err(|_| node.input_error(1, format!("repeat {r} is negative")))
        })
        .collect::<Result<_, _>>()?;
    if reps.iter().all(|&r| r == 1) {
        return Ok(vec![x]);
    }
    // [d0, d1, …] → [1, d0, 1, d1, …] → expand to [r0, d0, r1, d1, …] → [r0·d0, r1·d1, …].
    let mut split = Vec::with_capacity(2 * dims.len());
    let mut wide = Vec::with_capacity(2 * dims.len());
    let mut out = Vec::with_capacity(dims.len());
    for (d, &r) in dims.iter().zip(&reps) {
        split.extend([Dim::fixed(1), d.clone()]);
        wide.extend([Dim::fixed(r), d.clone()]);
        out.push(
            d.checked_mul(&Dim::fixed(r))
                .ok_or_else(|| node.error("the tiled extent overflows"))?,
        );
    }
    let s = ctx.emit1(
        Op::Reshape {
            shape: Shape(split),
        },
        &[x],
        &node.sub("split"),
    )?;
    let e = ctx.emit1(Op::Expand { shape: Shape(wide) }, &[s], &node.sub("repeat"))?;
    Ok(vec![ctx.emit1(
        Op::Reshape { shape: Shape(out) },
        &[e],
        &node.name(),
    )?])
}
