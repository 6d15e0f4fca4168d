//! Op attributes in both directions: [`op_attrs`] spells an op's attributes for the printer,
//! [`build_op`] reads them back (any order; unknown, duplicate, missing and mistyped
//! attributes are errors that point at the attribute, see `reader.rs`).

use crate::op::{
    BinaryOp, CoordTransform, GeluApprox, NearestRounding, Op, PadMode, ReduceOp, ResizeMode,
    StepSchedule, UnaryOp,
};

use super::WeightStore;
use super::constant::constant;
use super::error::{ParseError, ParseErrorKind};
use super::print::{float, quote, shape, tensor_type};
use super::reader::Attrs;
use super::value::Val;

/// The attributes of `op` in their fixed order, values spelled as the parser reads them.
/// `Input` has none (it is the signature) and `Constant` is handled by the printer.
pub(crate) fn op_attrs(op: &Op) -> Vec<(&'static str, String)> {
    let ints = |v: &[i64]| list(v.iter().map(|x| x.to_string()));
    let uints = |v: &[u64]| list(v.iter().map(|x| x.to_string()));
    match op {
        Op::Input { .. } | Op::Constant(_) => Vec::new(),
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Modulate | Op::MatMul | Op::Silu => {
            Vec::new()
        }
        Op::Cast { to } => vec![("to", to.to_string())],
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            has_c,
        } => vec![
            ("alpha", float(*alpha)),
            ("beta", float(*beta)),
            ("trans_a", trans_a.to_string()),
            ("trans_b", trans_b.to_string()),
            ("has_c", has_c.to_string()),
        ],
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
            has_bias,
        } => vec![
            ("strides", uints(strides)),
            ("pads", uints(pads)),
            ("dilations", uints(dilations)),
            ("groups", groups.to_string()),
            ("has_bias", has_bias.to_string()),
        ],
        Op::LayerNorm { axis, eps, affine } | Op::RmsNorm { axis, eps, affine } => vec![
            ("axis", axis.to_string()),
            ("eps", float(*eps)),
            ("affine", affine.to_string()),
        ],
        Op::GroupNorm {
            groups,
            eps,
            affine,
        } => vec![
            ("groups", groups.to_string()),
            ("eps", float(*eps)),
            ("affine", affine.to_string()),
        ],
        Op::Softmax { axis } | Op::Concat { axis } | Op::Gather { axis } => {
            vec![("axis", axis.to_string())]
        }
        Op::Gelu { approx } => vec![(
            "approx",
            match approx {
                GeluApprox::Erf => "erf",
                GeluApprox::Tanh => "tanh",
            }
            .to_string(),
        )],
        Op::Attention {
            heads,
            kv_heads,
            scale,
            causal,
            has_mask,
        } => vec![
            ("heads", heads.to_string()),
            ("kv_heads", kv_heads.to_string()),
            ("scale", scale.map_or_else(|| "none".to_string(), float)),
            ("causal", causal.to_string()),
            ("has_mask", has_mask.to_string()),
        ],
        Op::SelectiveScan {
            delta_softplus,
            has_d,
            has_z,
        } => vec![
            ("delta_softplus", delta_softplus.to_string()),
            ("has_d", has_d.to_string()),
            ("has_z", has_z.to_string()),
        ],
        Op::Reduce { axes, keepdims, .. } => {
            vec![("axes", ints(axes)), ("keepdims", keepdims.to_string())]
        }
        Op::ArgReduce { axis, keepdims, .. } => vec![
            ("axis", axis.to_string()),
            ("keepdims", keepdims.to_string()),
        ],
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => vec![
            ("axis", axis.to_string()),
            ("exclusive", exclusive.to_string()),
            ("reverse", reverse.to_string()),
        ],
        Op::Reshape { shape: s } | Op::Expand { shape: s } => vec![("shape", shape(s))],
        Op::Transpose { perm } => vec![("perm", list(perm.iter().map(|x| x.to_string())))],
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => vec![
            ("axes", ints(axes)),
            ("starts", ints(starts)),
            ("ends", ints(ends)),
            ("steps", ints(steps)),
        ],
        Op::Split { axis, sizes } => {
            vec![("axis", axis.to_string()), ("sizes", uints(sizes))]
        }
        Op::Pad { pads, mode } => vec![
            ("pads", uints(pads)),
            (
                "mode",
                match mode {
                    PadMode::Constant(v) => format!("constant({})", float(*v)),
                    PadMode::Reflect => "reflect".to_string(),
                    PadMode::Edge => "edge".to_string(),
                },
            ),
        ],
        Op::Resize { size, mode, coord } => vec![
            ("size", shape(size)),
            (
                "mode",
                match mode {
                    ResizeMode::Nearest(r) => format!("nearest({})", rounding_name(*r)),
                    ResizeMode::Linear => "linear".to_string(),
                },
            ),
            ("coord", coord_name(*coord).to_string()),
        ],
        Op::Quantize {
            dtype,
            scheme,
            has_zero_point,
        } => vec![
            ("dtype", dtype.to_string()),
            ("scheme", scheme.to_string()),
            ("has_zero_point", has_zero_point.to_string()),
        ],
        Op::Dequantize {
            scheme,
            has_zero_point,
            out,
        } => vec![
            ("scheme", scheme.to_string()),
            ("has_zero_point", has_zero_point.to_string()),
            ("out", out.to_string()),
        ],
        Op::QMatMul {
            a_scheme,
            b_scheme,
            out,
        } => vec![
            (
                "a_scheme",
                a_scheme.map_or_else(|| "none".to_string(), |s| s.to_string()),
            ),
            ("b_scheme", b_scheme.to_string()),
            ("out", out.to_string()),
        ],
        Op::CacheRead { slot, ty } => vec![("slot", quote(slot)), ("ty", tensor_type(ty))],
        Op::CacheWrite { slot } => vec![("slot", quote(slot))],
        Op::StepGate { schedule } => vec![(
            "schedule",
            match schedule {
                StepSchedule::Always => "always".to_string(),
                StepSchedule::Every { period, warmup } => {
                    format!("every(period = {period}, warmup = {warmup})")
                }
                StepSchedule::Steps(s) => {
                    format!("steps({})", list(s.iter().map(|x| x.to_string())))
                }
            },
        )],
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

fn rounding_name(r: NearestRounding) -> &'static str {
    match r {
        NearestRounding::RoundPreferFloor => "round_prefer_floor",
        NearestRounding::RoundPreferCeil => "round_prefer_ceil",
        NearestRounding::Floor => "floor",
        NearestRounding::Ceil => "ceil",
    }
}

fn coord_name(c: CoordTransform) -> &'static str {
    match c {
        CoordTransform::HalfPixel => "half_pixel",
        CoordTransform::Asymmetric => "asymmetric",
        CoordTransform::AlignCorners => "align_corners",
    }
}

/// The attribute names op `name` takes, in printing order; `None` for an unknown op.
pub(crate) fn attr_names(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "constant" => &["value"],
        "where" | "modulate" | "matmul" | "silu" => &[],
        "cast" => &["to"],
        "gemm" => &["alpha", "beta", "trans_a", "trans_b", "has_c"],
        "conv" => &["strides", "pads", "dilations", "groups", "has_bias"],
        "layer_norm" | "rms_norm" => &["axis", "eps", "affine"],
        "group_norm" => &["groups", "eps", "affine"],
        "softmax" | "concat" | "gather" => &["axis"],
        "gelu" => &["approx"],
        "attention" => &["heads", "kv_heads", "scale", "causal", "has_mask"],
        "selective_scan" => &["delta_softplus", "has_d", "has_z"],
        "argmax" | "argmin" => &["axis", "keepdims"],
        "cumsum" => &["axis", "exclusive", "reverse"],
        "reshape" | "expand" => &["shape"],
        "transpose" => &["perm"],
        "slice" => &["axes", "starts", "ends", "steps"],
        "split" => &["axis", "sizes"],
        "pad" => &["pads", "mode"],
        "resize" => &["size", "mode", "coord"],
        "quantize" => &["dtype", "scheme", "has_zero_point"],
        "dequantize" => &["scheme", "has_zero_point", "out"],
        "qmatmul" => &["a_scheme", "b_scheme", "out"],
        "cache_read" => &["slot", "ty"],
        "cache_write" => &["slot"],
        "step_gate" => &["schedule"],
        n if UnaryOp::ALL.iter().any(|u| u.name() == n)
            || BinaryOp::ALL.iter().any(|b| b.name() == n) =>
        {
            &[]
        }
        n if ReduceOp::ALL.iter().any(|r| r.name() == n) => &["axes", "keepdims"],
        _ => return None,
    })
}

/// Build the op `name` from its attributes. `weights` resolves `external<…>` constants.
pub(crate) fn build_op(
    name: &str,
    a: &Attrs<'_, '_>,
    weights: Option<&dyn WeightStore>,
) -> Result<Op, ParseError> {
    if let Some(u) = UnaryOp::ALL.iter().find(|u| u.name() == name) {
        return Ok(Op::Unary(*u));
    }
    if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == name) {
        return Ok(Op::Binary(*b));
    }
    if let Some(r) = ReduceOp::ALL.iter().find(|r| r.name() == name) {
        return Ok(Op::Reduce {
            op: *r,
            axes: a.ints("axes")?,
            keepdims: a.flag("keepdims")?,
        });
    }
    Ok(match name {
        "constant" => Op::Constant(constant(&a.get("value")?, weights)?),
        "where" => Op::Where,
        "modulate" => Op::Modulate,
        "matmul" => Op::MatMul,
        "silu" => Op::Silu,
        "cast" => Op::Cast { to: a.dtype("to")? },
        "gemm" => Op::Gemm {
            alpha: a.f32("alpha")?,
            beta: a.f32("beta")?,
            trans_a: a.flag("trans_a")?,
            trans_b: a.flag("trans_b")?,
            has_c: a.flag("has_c")?,
        },
        "conv" => Op::Conv {
            strides: a.uints("strides")?,
            pads: a.uints("pads")?,
            dilations: a.uints("dilations")?,
            groups: a.uint("groups")?,
            has_bias: a.flag("has_bias")?,
        },
        "layer_norm" => Op::LayerNorm {
            axis: a.int("axis")?,
            eps: a.f32("eps")?,
            affine: a.flag("affine")?,
        },
        "rms_norm" => Op::RmsNorm {
            axis: a.int("axis")?,
            eps: a.f32("eps")?,
            affine: a.flag("affine")?,
        },
        "group_norm" => Op::GroupNorm {
            groups: a.uint("groups")?,
            eps: a.f32("eps")?,
            affine: a.flag("affine")?,
        },
        "softmax" => Op::Softmax {
            axis: a.int("axis")?,
        },
        "gelu" => {
            let at = a.get("approx")?;
            Op::Gelu {
                approx: match at.ident("`erf` or `tanh`")? {
                    "erf" => GeluApprox::Erf,
                    "tanh" => GeluApprox::Tanh,
                    _ => return Err(at.wrong("`erf` or `tanh`")),
                },
            }
        }
        "attention" => {
            let s = a.get("scale")?;
            Op::Attention {
                heads: a.uint("heads")?,
                kv_heads: a.uint("kv_heads")?,
                scale: match &s.v.v {
                    Val::Ident("none") => None,
                    Val::Num(_) => Some(s.f32()?),
                    _ => return Err(s.wrong("`none` or a number")),
                },
                causal: a.flag("causal")?,
                has_mask: a.flag("has_mask")?,
            }
        }
        "selective_scan" => Op::SelectiveScan {
            delta_softplus: a.flag("delta_softplus")?,
            has_d: a.flag("has_d")?,
            has_z: a.flag("has_z")?,
        },
        "argmax" | "argmin" => Op::ArgReduce {
            max: name == "argmax",
            axis: a.int("axis")?,
            keepdims: a.flag("keepdims")?,
        },
        "cumsum" => Op::CumSum {
            axis: a.int("axis")?,
            exclusive: a.flag("exclusive")?,
            reverse: a.flag("reverse")?,
        },
        "reshape" => Op::Reshape {
            shape: a.shape("shape")?,
        },
        "expand" => Op::Expand {
            shape: a.shape("shape")?,
        },
        "transpose" => {
            let perm = a.get("perm")?;
            Op::Transpose {
                perm: perm
                    .items()?
                    .iter()
                    .map(|p| p.uint().map(|x| x as usize))
                    .collect::<Result<_, _>>()?,
            }
        }
        "slice" => Op::Slice {
            axes: a.ints("axes")?,
            starts: a.ints("starts")?,
            ends: a.ints("ends")?,
            steps: a.ints("steps")?,
        },
        "concat" => Op::Concat {
            axis: a.int("axis")?,
        },
        "split" => Op::Split {
            axis: a.int("axis")?,
            sizes: a.uints("sizes")?,
        },
        "gather" => Op::Gather {
            axis: a.int("axis")?,
        },
        "pad" => Op::Pad {
            pads: a.uints("pads")?,
            mode: a.get("mode")?.pad_mode()?,
        },
        "resize" => {
            let c = a.get("coord")?;
            const WHAT: &str = "`half_pixel`, `asymmetric` or `align_corners`";
            Op::Resize {
                size: a.shape("size")?,
                mode: a.get("mode")?.resize_mode()?,
                coord: match c.ident(WHAT)? {
                    "half_pixel" => CoordTransform::HalfPixel,
                    "asymmetric" => CoordTransform::Asymmetric,
                    "align_corners" => CoordTransform::AlignCorners,
                    _ => return Err(c.wrong(WHAT)),
                },
            }
        }
        "quantize" => Op::Quantize {
            dtype: a.dtype("dtype")?,
            scheme: a.scheme("scheme")?,
            has_zero_point: a.flag("has_zero_point")?,
        },
        "dequantize" => Op::Dequantize {
            scheme: a.scheme("scheme")?,
            has_zero_point: a.flag("has_zero_point")?,
            out: a.dtype("out")?,
        },
        "qmatmul" => {
            let s = a.get("a_scheme")?;
            Op::QMatMul {
                a_scheme: match &s.v.v {
                    Val::Ident("none") => None,
                    _ => Some(s.scheme()?),
                },
                b_scheme: a.scheme("b_scheme")?,
                out: a.dtype("out")?,
            }
        }
        "cache_read" => {
            let t = a.get("ty")?;
            Op::CacheRead {
                slot: a.string("slot")?,
                ty: match &t.v.v {
                    Val::Type(ty) => ty.clone(),
                    _ => return Err(t.wrong("a tensor type like `f32[B,4]`")),
                },
            }
        }
        "cache_write" => Op::CacheWrite {
            slot: a.string("slot")?,
        },
        "step_gate" => Op::StepGate {
            schedule: a.get("schedule")?.schedule()?,
        },
        _ => {
            return Err(ParseError::at(
                a.src,
                a.op_off,
                ParseErrorKind::UnknownOp {
                    name: name.to_string(),
                },
            ));
        }
    })
}
