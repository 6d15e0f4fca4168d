//! Ops that select parts of a tensor or add a border: `Slice`, `Split`, `Gather`, `Pad`.
//!
//! On shape values ([`OVal::Dims`]) `Slice` and `Gather` select entries at compile time.

use dqc_ir::op::PadMode;
use dqc_ir::{Dim, Op};

use crate::FrontendError;
use crate::onnx::import::oval::{SymInt, SymInts};
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::shape::{fixed_dim, resolve_axis};

/// Register the slicing converters.
pub fn register(r: &mut Registry) {
    r.register("", "Slice", 1, slice);
    r.register("", "Split", 2, split);
    r.register("", "Gather", 1, gather);
    r.register("", "Pad", 2, pad);
    r.register("", "GatherND", 11, gather_nd);
}

/// Bounds at or beyond this mean "to the end" (exporters write `INT_MAX` or
/// `i64::MAX`).
const TO_END: i64 = i64::MAX / 2;

/// The entries of an optional integer input known at compile time.
fn opt_i64s(
    ctx: &Ctx<'_>,
    node: &NodeView<'_>,
    i: usize,
) -> Result<Option<Vec<i64>>, FrontendError> {
    match ctx.input(node, i)? {
        Some(v) => ctx.const_i64s(&v, i).map(Some),
        None => Ok(None),
    }
}

/// `[start, end)` with `step` on an axis of static extent `n`, ONNX clamping: the selected
/// indices.
fn slice_indices(n: i64, start: i64, end: i64, step: i64) -> Vec<i64> {
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = (norm(start), norm(end));
    let mut out = Vec::new();
    if step > 0 {
        let (s, e) = (s.clamp(0, n), e.clamp(0, n));
        let mut k = s;
        while k < e {
            out.push(k);
            k = k.saturating_add(step);
        }
    } else {
        let (s, e) = (s.clamp(-1, n - 1), e.clamp(-1, n - 1));
        let mut k = s;
        while k > e {
            out.push(k);
            k = k.saturating_add(step);
        }
    }
    out
}

fn slice(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let (starts, ends, axes, steps) = if node.opset() < 10 {
        let starts = node
            .attr_is("starts")?
            .ok_or_else(|| node.attr_error("starts", "required but missing"))?;
        let ends = node
            .attr_is("ends")?
            .ok_or_else(|| node.attr_error("ends", "required but missing"))?;
        (starts, ends, node.attr_is("axes")?, None)
    } else {
        let s = ctx.req(node, 1)?;
        let e = ctx.req(node, 2)?;
        (
            ctx.const_i64s(&s, 1)?,
            ctx.const_i64s(&e, 2)?,
            opt_i64s(ctx, node, 3)?,
            opt_i64s(ctx, node, 4)?,
        )
    };
    let dims = ctx.ty(&x)?.shape.0;
    let rank = dims.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(node.error(format!(
            "starts, ends, axes and steps have different lengths ({}, {}, {}, {})",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    if steps.contains(&0) {
        return Err(node.error("a step is 0"));
    }
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| resolve_axis(node, "axes", a, rank))
        .collect::<Result<_, _>>()?;
    // On a 1-D shape value: select the entries now.
    if let OVal::Dims(d) = &x
        && !d.scalar
        && let ([s], [e], [st]) = (starts.as_slice(), ends.as_slice(), steps.as_slice())
    {
        let idx = slice_indices(d.vals.len() as i64, *s, *e, *st);
        let vals: Vec<SymInt> = idx
            .iter()
            .filter_map(|&k| d.vals.get(k as usize).cloned())
            .collect();
        return Ok(vec![OVal::ints(SymInts { vals, ..d.clone() })]);
    }
    // Clamp "to the end" bounds on static axes to the extent; keep i64::MAX on symbolic
    // ones (the verifier keeps the symbolic extent for a full-range slice).
    let mut ends = ends;
    for ((e, &a), &st) in ends.iter_mut().zip(&axes).zip(&steps) {
        let extent = dims.get(a).and_then(Dim::as_fixed);
        if st > 0 && *e >= TO_END {
            *e = match extent {
                Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
                None => i64::MAX,
            };
        } else if st < 0 && *e <= -TO_END {
            *e = match extent {
                Some(n) => -(i64::try_from(n).unwrap_or(i64::MAX)) - 1,
                None => i64::MIN,
            };
        }
    }
    let mut starts = starts;
    for ((s, &a), &st) in starts.iter_mut().zip(&axes).zip(&steps) {
        if let Some(n) = dims.get(a).and_then(Dim::as_fixed) {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            *s = (*s).clamp(-n - 1, n);
            if st < 0 && *s >= n {
                *s = n - 1;
            }
        }
    }
    let op = Op::Slice {
        axes: axes.iter().map(|&a| a as i64).collect(),
        starts,
        ends,
        steps,
    };
    Ok(vec![ctx.emit1(op, &[x], &node.name())?])
}

fn split(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dims = ctx.ty(&x)?.shape.0;
    let axis = resolve_axis(node, "axis", node.attr_i("axis", 0)?, dims.len())?;
    let extent = dims.get(axis).cloned().unwrap_or_else(|| Dim::fixed(0));
    let sizes = if node.opset() < 13 {
        node.attr_is("split")?
    } else {
        opt_i64s(ctx, node, 1)?
    };
    let n_out = node.num_outputs();
    let sizes: Vec<u64> = match sizes {
        Some(s) => s
            .iter()
            .map(|&v| {
                u64::try_from(v).map_err(|_| node.error(format!("split size {v} is negative")))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let n = fixed_dim(node, &extent, "the split axis")?;
            let parts = if node.opset() >= 18 && node.has_attr("num_outputs") {
                u64::try_from(node.attr_i_req("num_outputs")?)
                    .ok()
                    .filter(|&k| k > 0)
                    .ok_or_else(|| node.attr_error("num_outputs", "must be positive"))?
            } else {
                n_out as u64
            };
            if parts == 0 {
                return Err(node.error("no outputs to split into"));
            }
            // Equal pieces; with num_outputs the last may be smaller (ceil division).
            let piece = n.div_ceil(parts);
            (0..parts)
                .map(|k| piece.min(n.saturating_sub(k * piece)))
                .collect()
        }
    };
    let names: Vec<String> = (0..sizes.len())
        .map(|k| match node.output_name(k) {
            "" => node.sub(&format!("out{k}")),
            n => n.to_string(),
        })
        .collect();
    let op = Op::Split {
        axis: axis as i64,
        sizes,
    };
    ctx.emit_named(op, &[x], &names)
}

fn gather(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let data = ctx.req(node, 0)?;
    let idx = ctx.req(node, 1)?;
    let axis = node.attr_i("axis", 0)?;
    if let OVal::Dims(d) = &data
        && !d.scalar
        && (axis == 0 || axis == -1)
        && let Some(t) = idx.as_const()
        && t.shape().len() <= 1
    {
        let n = d.vals.len() as i64;
        let vals: Option<Vec<SymInt>> = t
            .to_i64_vec()
            .into_iter()
            .map(|k| {
                let k = if k < 0 { k + n } else { k };
                usize::try_from(k).ok().and_then(|k| d.vals.get(k).cloned())
            })
            .collect();
        let vals =
            vals.ok_or_else(|| node.input_error(1, format!("an index is out of range for {d}")))?;
        return Ok(vec![OVal::ints(SymInts {
            vals,
            scalar: t.shape().is_empty(),
            dtype: d.dtype,
        })]);
    }
    Ok(vec![ctx.emit1(
        Op::Gather { axis },
        &[data, idx],
        &node.name(),
    )?])
}

fn pad(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let rank = ctx.ty(&x)?.shape.rank();
    let mode_name = node.attr_s("mode", "constant")?;
    let (pads, value, axes) = if node.opset() < 11 {
        let pads = node
            .attr_is("pads")?
            .or(node.attr_is("paddings")?)
            .ok_or_else(|| node.attr_error("pads", "required but missing"))?;
        (pads, node.attr_f("value", 0.0)?, None)
    } else {
        let p = ctx.req(node, 1)?;
        let pads = ctx.const_i64s(&p, 1)?;
        let value = match ctx.input(node, 2)? {
            None => 0.0,
            Some(v) => {
                let t = v.as_const().ok_or_else(|| {
                    node.input_error(2, "the pad value must be known at compile time")
                })?;
                t.to_f32_vec().first().copied().unwrap_or(0.0)
            }
        };
        (pads, value, opt_i64s(ctx, node, 3)?)
    };
    let axes: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&a| resolve_axis(node, "axes", a, rank))
            .collect::<Result<_, _>>()?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(node.error(format!(
            "{} pads for {} axes (expected begins then ends of each)",
            pads.len(),
            axes.len()
        )));
    }
    let mode = match mode_name.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => {
            return Err(node.attr_error(
                "mode",
                format!("`{other}` is not supported (constant, reflect, edge)"),
            ));
        }
    };
    let n = axes.len();
    let mut begins = vec![0i64; rank];
    let mut ends = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        if let (Some(b), Some(e)) = (begins.get_mut(a), ends.get_mut(a)) {
            *b = pads.get(k).copied().unwrap_or(0);
            *e = pads.get(k + n).copied().unwrap_or(0);
        }
    }
    // Negative pads crop: slice them off first.
    let mut x = x;
    if begins.iter().chain(&ends).any(|&p| p < 0) {
        let crop: Vec<usize> = (0..rank)
            .filter(|&a| {
                begins.get(a).is_some_and(|&b| b < 0) || ends.get(a).is_some_and(|&e| e < 0)
            })
            .collect();
        let op = Op::Slice {
            axes: crop.iter().map(|&a| a as i64).collect(),
            starts: crop.iter().map(|&a| (-begins[a]).max(0)).collect(),
            ends: crop
                .iter()
                .map(|&a| if ends[a] < 0 { ends[a] } else { i64::MAX })
                .collect(),
            steps: vec![1; crop.len()],
        };
        x = ctx.emit1(op, &[x], &node.sub("crop"))?;
    }
    let pads: Vec<u64> = begins
        .iter()
        .chain(&ends)
        .map(|&p| p.max(0) as u64)
        .collect();
    if pads.iter().all(|&p| p == 0) {
        return Ok(vec![x]);
    }
    Ok(vec![ctx.emit1(
        Op::Pad { pads, mode },
        &[x],
        &node.name(),
    )?])
}

/// `GatherND` with `batch_dims = 0`: `indices[..., k]` address the first `k` axes of
/// `data`. Expanded to one flat index `Σ idx_m · stride_m` (negative indices wrapped on
/// static axes) and a `gather` on `data` reshaped to `[d0·…·d(k−1), rest…]`. The axes
/// after the first must be static; indices into a symbolic first axis must be
/// non-negative.
fn gather_nd(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    use dqc_ir::Shape;
    use dqc_ir::op::BinaryOp;
    if node.attr_i("batch_dims", 0)? != 0 {
        return Err(node.attr_error("batch_dims", "only 0 is supported"));
    }
    let data = ctx.req(node, 0)?;
    let idx = ctx.req(node, 1)?;
    let dims = ctx.ty(&data)?.shape.0;
    let ity = ctx.ty(&idx)?;
    let Some(k_dim) = ity.shape.dims().last() else {
        return Err(node.input_error(1, "indices must have rank ≥ 1"));
    };
    let k = fixed_dim(node, k_dim, "the index tuple length")? as usize;
    if k == 0 || k > dims.len() {
        return Err(node.input_error(
            1,
            format!("index tuples of length {k} for data of rank {}", dims.len()),
        ));
    }
    let idx_dtype = ity.dtype;
    let scalar = |v: i64| {
        dqc_ir::Tensor::from_i64(idx_dtype, Vec::new(), &[v])
            .map(OVal::Const)
            .map_err(|e| node.error(e.to_string()))
    };
    // Strides of the addressed axes: stride_m = d(m+1)·…·d(k−1) (static).
    let mut strides = vec![1i64; k];
    for m in (0..k.saturating_sub(1)).rev() {
        let d = fixed_dim(node, &dims[m + 1], "an indexed axis after the first")?;
        strides[m] = strides[m + 1]
            .checked_mul(i64::try_from(d).map_err(|_| node.error("extent too large"))?)
            .ok_or_else(|| node.error("the flat index overflows"))?;
    }
    let mut flat: Option<OVal> = None;
    for (m, &stride) in strides.iter().enumerate() {
        let pick = scalar(m as i64)?;
        let mut c = ctx.emit1(
            Op::Gather { axis: -1 },
            &[idx.clone(), pick],
            &node.sub(&format!("idx{m}")),
        )?;
        if let Some(n) = dims[m].as_fixed() {
            let n = i64::try_from(n).map_err(|_| node.error("extent too large"))?;
            let zero = scalar(0)?;
            let neg = ctx.emit1(
                Op::Binary(BinaryOp::Less),
                &[c.clone(), zero],
                &node.sub(&format!("neg{m}")),
            )?;
            let wrapped = ctx.emit1(
                Op::Binary(BinaryOp::Add),
                &[c.clone(), scalar(n)?],
                &node.sub(&format!("wrap{m}")),
            )?;
            c = ctx.emit1(
                Op::Where,
                &[neg, wrapped, c],
                &node.sub(&format!("norm{m}")),
            )?;
        }
        if stride != 1 {
            c = ctx.emit1(
                Op::Binary(BinaryOp::Mul),
                &[c, scalar(stride)?],
                &node.sub(&format!("off{m}")),
            )?;
        }
        flat = Some(match flat {
            None => c,
            Some(acc) => ctx.emit1(
                Op::Binary(BinaryOp::Add),
                &[acc, c],
                &node.sub(&format!("flat{m}")),
            )?,
        });
    }
    let flat = flat.ok_or_else(|| node.error("no index components"))?;
    let lead = Shape(dims[..k].to_vec())
        .numel()
        .ok_or_else(|| node.error("the element count overflows"))?;
    let mut merged = vec![lead];
    merged.extend(dims[k..].iter().cloned());
    let data = if k == 1 {
        data
    } else {
        ctx.emit1(
            Op::Reshape {
                shape: Shape(merged),
            },
            &[data],
            &node.sub("flat_data"),
        )?
    };
    Ok(vec![ctx.emit1(
        Op::Gather { axis: 0 },
        &[data, flat],
        &node.name(),
    )?])
}

#[cfg(test)]
mod tests {
    use super::slice_indices;

    #[test]
    fn slice_indices_follow_onnx_clamping() {
        assert_eq!(slice_indices(5, 1, 3, 1), [1, 2]);
        assert_eq!(slice_indices(5, -2, i64::MAX, 1), [3, 4]);
        assert_eq!(slice_indices(5, 0, 10, 2), [0, 2, 4]);
        assert_eq!(slice_indices(5, -1, i64::MIN, -1), [4, 3, 2, 1, 0]);
        assert_eq!(slice_indices(5, 10, 0, -2), [4, 2]);
        assert!(slice_indices(5, 3, 1, 1).is_empty());
        assert!(slice_indices(0, 0, 1, 1).is_empty());
    }
}
