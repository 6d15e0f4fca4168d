//! `Conv`: N-D convolution with groups, strides, dilations and explicit or automatic
//! (`SAME_UPPER`, `SAME_LOWER`, `VALID`) padding → IR `Conv`. Automatic padding needs
//! static spatial input dims and kernel dims.

use dqc_ir::Op;

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{cast, dtype_of, shape_of};

/// Register the convolution converter.
pub fn register(r: &mut Registry) {
    r.register("", "Conv", 1, conv);
}

/// A non-negative attribute list of length `n`, or `default` repeated.
fn attr_u64s(
    node: &NodeView<'_>,
    name: &str,
    n: usize,
    default: u64,
    min: u64,
) -> Result<Vec<u64>, FrontendError> {
    match node.attr_is(name)? {
        None => Ok(vec![default; n]),
        Some(v) => {
            if v.len() != n {
                return Err(node.attr_error(
                    name,
                    format!(
                        "has {} entries, expected {n} (one per spatial axis)",
                        v.len()
                    ),
                ));
            }
            v.iter()
                .map(|&x| {
                    u64::try_from(x)
                        .ok()
                        .filter(|&x| x >= min)
                        .ok_or_else(|| node.attr_error(name, format!("entry {x} is below {min}")))
                })
                .collect()
        }
    }
}

fn conv(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let w = ctx.req(node, 1)?;
    let dt = dtype_of(ctx, &x)?;
    let xs = shape_of(ctx, &x)?;
    let ws = shape_of(ctx, &w)?;
    let rank = xs.rank();
    if rank < 3 || ws.rank() != rank {
        return Err(node.error(format!(
            "Conv needs X [N, C, spatial…] and W [M, C/group, kernel…] of the same rank ≥ 3, \
             found {xs} and {ws}"
        )));
    }
    let n = rank - 2;
    let strides = attr_u64s(node, "strides", n, 1, 1)?;
    let dilations = attr_u64s(node, "dilations", n, 1, 1)?;
    let group = node.attr_i("group", 1)?;
    let groups = u64::try_from(group)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or_else(|| node.attr_error("group", format!("must be ≥ 1, found {group}")))?;
    let kernel: Option<Vec<u64>> = match node.attr_is("kernel_shape")? {
        Some(k) => Some(
            k.iter()
                .map(|&v| u64::try_from(v).ok())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| node.attr_error("kernel_shape", "negative entry"))?,
        ),
        None => ws
            .dims()
            .get(2..)
            .and_then(|d| d.iter().map(|x| x.as_fixed()).collect()),
    };
    let auto_pad = node.attr_s("auto_pad", "NOTSET")?;
    let pads = match auto_pad.as_str() {
        "NOTSET" => attr_u64s(node, "pads", 2 * n, 0, 0)?,
        "VALID" => vec![0; 2 * n],
        "SAME_UPPER" | "SAME_LOWER" => {
            let k = kernel.clone().ok_or_else(|| {
                node.attr_error(
                    "auto_pad",
                    format!("{auto_pad} needs static kernel dims, W is {ws}"),
                )
            })?;
            let mut begins = Vec::with_capacity(n);
            let mut ends = Vec::with_capacity(n);
            for i in 0..n {
                let size = xs
                    .dims()
                    .get(i + 2)
                    .and_then(|d| d.as_fixed())
                    .ok_or_else(|| {
                        node.attr_error(
                            "auto_pad",
                            format!("{auto_pad} needs static spatial dims, X is {xs}"),
                        )
                    })?;
                let (s, d) = (strides[i], dilations[i]);
                let kk = k.get(i).copied().unwrap_or(1);
                let out = size.div_ceil(s);
                let span = (out.saturating_sub(1)) * s + (kk.saturating_sub(1)) * d + 1;
                let total = span.saturating_sub(size);
                let small = total / 2;
                let big = total - small;
                if auto_pad == "SAME_UPPER" {
                    begins.push(small);
                    ends.push(big);
                } else {
                    begins.push(big);
                    ends.push(small);
                }
            }
            begins.extend(ends);
            begins
        }
        other => {
            return Err(node.attr_error(
                "auto_pad",
                format!("expected NOTSET, SAME_UPPER, SAME_LOWER or VALID, found `{other}`"),
            ));
        }
    };
    if let (Some(k), Some(wk)) = (
        &kernel,
        ws.dims()
            .get(2..)
            .and_then(|d| d.iter().map(|x| x.as_fixed()).collect::<Option<Vec<_>>>()),
    ) && *k != wk
    {
        return Err(node.attr_error(
            "kernel_shape",
            format!("{k:?} does not match the weight's kernel dims {wk:?}"),
        ));
    }
    let w = cast(ctx, &w, dt, &node.sub("w"))?;
    let bias = match ctx.input(node, 2)? {
        Some(b) => Some(cast(ctx, &b, dt, &node.sub("bias"))?),
        None => None,
    };
    let op = Op::Conv {
        strides,
        pads,
        dilations,
        groups,
        has_bias: bias.is_some(),
    };
    let mut ins = vec![x, w];
    ins.extend(bias);
    Ok(vec![ctx.emit1(op, &ins, &node.name())?])
}
