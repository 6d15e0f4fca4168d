//! Op attributes in both directions: [`op_attrs`] spells an op's attributes for the printer,
//! [`build_op`] reads them back (any order; unknown, duplicate, missing and mistyped
//! attributes are errors that point at the attribute).

use crate::DType;
use crate::numeric::{self, E5M2};
use crate::op::{
    BinaryOp, CoordTransform, GeluApprox, NearestRounding, Op, PadMode, ReduceOp, ResizeMode,
    StepSchedule, UnaryOp,
};
use crate::quant::QuantScheme;
use crate::shape::{Dim, Shape, TensorType};
use crate::tensor::{Tensor, checked_numel};

use super::WeightStore;
use super::error::{ParseError, ParseErrorKind};
use super::print::{float, quote, shape, tensor_type};
use super::value::{Spanned, Val};

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

/// The attributes of one statement, checked against the op's attribute list.
pub(crate) struct Attrs<'s, 'a> {
    src: &'s str,
    op: &'a str,
    /// Where a missing attribute is reported (the op name).
    op_off: usize,
    items: Vec<(&'a str, &'a Spanned<Val<'s>>)>,
}

impl<'s, 'a> Attrs<'s, 'a> {
    /// Check `items` (name, name offset, value) against the attributes of `op`.
    pub(crate) fn new(
        src: &'s str,
        op: &'a str,
        op_off: usize,
        known: &[&str],
        items: &'a [(String, usize, Spanned<Val<'s>>)],
    ) -> Result<Attrs<'s, 'a>, ParseError> {
        let mut out: Vec<(&'a str, &'a Spanned<Val<'s>>)> = Vec::new();
        for (name, off, v) in items {
            if !known.contains(&name.as_str()) {
                let expected = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                return Err(ParseError::at(
                    src,
                    *off,
                    ParseErrorKind::UnknownAttribute {
                        op: op.to_string(),
                        name: name.clone(),
                        expected,
                    },
                ));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(ParseError::at(
                    src,
                    *off,
                    ParseErrorKind::DuplicateAttribute {
                        op: op.to_string(),
                        name: name.clone(),
                    },
                ));
            }
            out.push((name.as_str(), v));
        }
        Ok(Attrs {
            src,
            op,
            op_off,
            items: out,
        })
    }

    fn get(&self, name: &'static str) -> Result<Attr<'s, 'a>, ParseError> {
        match self.items.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(Attr {
                src: self.src,
                op: self.op,
                name,
                v,
            }),
            None => Err(ParseError::at(
                self.src,
                self.op_off,
                ParseErrorKind::MissingAttribute {
                    op: self.op.to_string(),
                    name: name.to_string(),
                },
            )),
        }
    }

    fn int(&self, name: &'static str) -> Result<i64, ParseError> {
        self.get(name)?.int()
    }
    fn uint(&self, name: &'static str) -> Result<u64, ParseError> {
        self.get(name)?.uint()
    }
    fn flag(&self, name: &'static str) -> Result<bool, ParseError> {
        self.get(name)?.flag()
    }
    fn f32(&self, name: &'static str) -> Result<f32, ParseError> {
        self.get(name)?.f32()
    }
    fn ints(&self, name: &'static str) -> Result<Vec<i64>, ParseError> {
        self.get(name)?.items()?.iter().map(Attr::int).collect()
    }
    fn uints(&self, name: &'static str) -> Result<Vec<u64>, ParseError> {
        self.get(name)?.items()?.iter().map(Attr::uint).collect()
    }
    fn dtype(&self, name: &'static str) -> Result<DType, ParseError> {
        self.get(name)?.dtype()
    }
    fn shape(&self, name: &'static str) -> Result<Shape, ParseError> {
        self.get(name)?.shape()
    }
    fn scheme(&self, name: &'static str) -> Result<QuantScheme, ParseError> {
        self.get(name)?.scheme()
    }
    fn string(&self, name: &'static str) -> Result<String, ParseError> {
        let a = self.get(name)?;
        match &a.v.v {
            Val::Str(s) => Ok(s.clone()),
            _ => Err(a.wrong("a quoted string")),
        }
    }
}

/// One attribute value (or a part of one) with what is needed to report errors on it.
#[derive(Clone, Copy)]
struct Attr<'s, 'a> {
    src: &'s str,
    op: &'a str,
    name: &'static str,
    v: &'a Spanned<Val<'s>>,
}

impl<'s, 'a> Attr<'s, 'a> {
    fn wrong(&self, expected: &str) -> ParseError {
        ParseError::at(
            self.src,
            self.v.off,
            ParseErrorKind::AttributeType {
                op: self.op.to_string(),
                name: self.name.to_string(),
                expected: expected.to_string(),
                found: self.v.v.describe(),
            },
        )
    }

    fn part(&self, v: &'a Spanned<Val<'s>>) -> Attr<'s, 'a> {
        Attr { v, ..*self }
    }

    fn int(&self) -> Result<i64, ParseError> {
        match &self.v.v {
            Val::Num(t) => t.parse::<i64>().map_err(|_| self.wrong("an integer")),
            _ => Err(self.wrong("an integer")),
        }
    }

    fn uint(&self) -> Result<u64, ParseError> {
        match &self.v.v {
            Val::Num(t) => t
                .parse::<u64>()
                .map_err(|_| self.wrong("a non-negative integer")),
            _ => Err(self.wrong("a non-negative integer")),
        }
    }

    fn u32(&self) -> Result<u32, ParseError> {
        match &self.v.v {
            Val::Num(t) => t
                .parse::<u32>()
                .map_err(|_| self.wrong("a non-negative 32-bit integer")),
            _ => Err(self.wrong("a non-negative 32-bit integer")),
        }
    }

    fn flag(&self) -> Result<bool, ParseError> {
        match &self.v.v {
            Val::Ident("true") => Ok(true),
            Val::Ident("false") => Ok(false),
            _ => Err(self.wrong("`true` or `false`")),
        }
    }

    fn f32(&self) -> Result<f32, ParseError> {
        match &self.v.v {
            Val::Num(t) => t.parse::<f32>().map_err(|_| self.wrong("a number")),
            _ => Err(self.wrong("a number")),
        }
    }

    fn items(&self) -> Result<Vec<Attr<'s, 'a>>, ParseError> {
        match &self.v.v {
            Val::List(items) => Ok(items.iter().map(|v| self.part(v)).collect()),
            _ => Err(self.wrong("a list `[…]`")),
        }
    }

    fn ident(&self, expected: &str) -> Result<&'s str, ParseError> {
        match &self.v.v {
            Val::Ident(s) => Ok(s),
            _ => Err(self.wrong(expected)),
        }
    }

    fn dtype(&self) -> Result<DType, ParseError> {
        let s = self.ident("a dtype")?;
        s.parse::<DType>().map_err(|_| self.wrong("a dtype"))
    }

    fn shape(&self) -> Result<Shape, ParseError> {
        let mut dims = Vec::new();
        for item in self.items()? {
            let d = match &item.v.v {
                Val::Num(t) => Dim::fixed(t.parse::<u64>().map_err(|_| item.wrong("a dimension"))?),
                Val::Ident(s) => Dim::sym(*s),
                Val::Str(s) => Dim::sym(s.clone()),
                Val::Product(d) => d.clone(),
                _ => return Err(item.wrong("a dimension")),
            };
            dims.push(d);
        }
        Ok(Shape(dims))
    }

    /// A call `name(args)` with exactly the named arguments `names` (positional when
    /// `names` is `[""]`), in any order for named ones.
    fn call_args(
        &self,
        expected: &str,
        names: &[&str],
    ) -> Result<(&'s str, Vec<Attr<'s, 'a>>), ParseError> {
        let Val::Call(f, args) = &self.v.v else {
            return Err(self.wrong(expected));
        };
        if args.len() != names.len() {
            return Err(self.wrong(expected));
        }
        let mut out = Vec::with_capacity(names.len());
        for want in names {
            let found = args.iter().find(|(n, _)| match n {
                Some(n) => n == want,
                None => want.is_empty(),
            });
            match found {
                Some((_, v)) => out.push(self.part(v)),
                None => return Err(self.wrong(expected)),
            }
        }
        Ok((f, out))
    }

    fn scheme(&self) -> Result<QuantScheme, ParseError> {
        const WHAT: &str = "a quantization scheme (`per_tensor`, `per_channel(axis = A)`, \
                            `per_group(axis = A, size = N)`, `nvfp4(axis = A)`, `mx(axis = A)`)";
        if let Val::Ident("per_tensor") = &self.v.v {
            return Ok(QuantScheme::PerTensor);
        }
        let Val::Call(f, _) = &self.v.v else {
            return Err(self.wrong(WHAT));
        };
        match *f {
            "per_channel" => {
                let (_, a) = self.call_args(WHAT, &["axis"])?;
                Ok(QuantScheme::PerChannel { axis: a[0].int()? })
            }
            "per_group" => {
                let (_, a) = self.call_args(WHAT, &["axis", "size"])?;
                Ok(QuantScheme::PerGroup {
                    axis: a[0].int()?,
                    size: a[1].uint()?,
                })
            }
            "nvfp4" => {
                let (_, a) = self.call_args(WHAT, &["axis"])?;
                Ok(QuantScheme::Nvfp4 { axis: a[0].int()? })
            }
            "mx" => {
                let (_, a) = self.call_args(WHAT, &["axis"])?;
                Ok(QuantScheme::Mx { axis: a[0].int()? })
            }
            _ => Err(self.wrong(WHAT)),
        }
    }

    fn schedule(&self) -> Result<StepSchedule, ParseError> {
        const WHAT: &str = "a schedule (`always`, `every(period = P, warmup = W)`, `steps([…])`)";
        match &self.v.v {
            Val::Ident("always") => Ok(StepSchedule::Always),
            Val::Call("every", _) => {
                let (_, a) = self.call_args(WHAT, &["period", "warmup"])?;
                Ok(StepSchedule::Every {
                    period: a[0].u32()?,
                    warmup: a[1].u32()?,
                })
            }
            Val::Call("steps", _) => {
                let (_, a) = self.call_args(WHAT, &[""])?;
                let steps = a[0]
                    .items()?
                    .iter()
                    .map(Attr::u32)
                    .collect::<Result<_, _>>()?;
                Ok(StepSchedule::Steps(steps))
            }
            _ => Err(self.wrong(WHAT)),
        }
    }

    fn pad_mode(&self) -> Result<PadMode, ParseError> {
        const WHAT: &str = "a pad mode (`constant(V)`, `reflect`, `edge`)";
        match &self.v.v {
            Val::Ident("reflect") => Ok(PadMode::Reflect),
            Val::Ident("edge") => Ok(PadMode::Edge),
            Val::Call("constant", _) => {
                let (_, a) = self.call_args(WHAT, &[""])?;
                Ok(PadMode::Constant(a[0].f32()?))
            }
            _ => Err(self.wrong(WHAT)),
        }
    }

    fn resize_mode(&self) -> Result<ResizeMode, ParseError> {
        const WHAT: &str = "a resize mode (`nearest(round_prefer_floor | round_prefer_ceil | \
                            floor | ceil)`, `linear`)";
        match &self.v.v {
            Val::Ident("linear") => Ok(ResizeMode::Linear),
            Val::Call("nearest", _) => {
                let (_, a) = self.call_args(WHAT, &[""])?;
                let r = match a[0].ident(WHAT)? {
                    "round_prefer_floor" => NearestRounding::RoundPreferFloor,
                    "round_prefer_ceil" => NearestRounding::RoundPreferCeil,
                    "floor" => NearestRounding::Floor,
                    "ceil" => NearestRounding::Ceil,
                    _ => return Err(a[0].wrong(WHAT)),
                };
                Ok(ResizeMode::Nearest(r))
            }
            _ => Err(self.wrong(WHAT)),
        }
    }
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

/// Static extents of a constant's declared type.
fn static_shape(a: &Attr<'_, '_>, ty: &TensorType) -> Result<(Vec<u64>, usize), ParseError> {
    let bad = || {
        ParseError::at(
            a.src,
            a.v.off,
            ParseErrorKind::ConstantShape {
                shape: shape(&ty.shape),
            },
        )
    };
    let dims = ty.shape.as_fixed().ok_or_else(bad)?;
    let n = checked_numel(&dims).map_err(|_| bad())?;
    Ok((dims, n))
}

fn constant(a: &Attr<'_, '_>, weights: Option<&dyn WeightStore>) -> Result<Tensor, ParseError> {
    match &a.v.v {
        Val::Dense(ty, values) => {
            let (dims, n) = static_shape(a, ty)?;
            if values.len() != n {
                return Err(ParseError::at(
                    a.src,
                    a.v.off,
                    ParseErrorKind::DenseCount {
                        ty: tensor_type(ty),
                        expected: n,
                        actual: values.len(),
                    },
                ));
            }
            dense_tensor(a.src, ty.dtype, dims, values)
        }
        Val::External(ty, key) => {
            let (dims, _) = static_shape(a, ty)?;
            let err = |kind| ParseError::at(a.src, a.v.off, kind);
            let store =
                weights.ok_or_else(|| err(ParseErrorKind::NoWeights { key: key.clone() }))?;
            let t = store
                .get(key)
                .ok_or_else(|| err(ParseErrorKind::ExternalMissing { key: key.clone() }))?;
            if t.dtype() != ty.dtype || t.shape() != dims.as_slice() {
                return Err(err(ParseErrorKind::ExternalType {
                    key: key.clone(),
                    declared: tensor_type(ty),
                    actual: tensor_type(&t.ty()),
                }));
            }
            Ok(t)
        }
        _ => Err(a.wrong("`dense<type> […]` or `external<type> \"key\"`")),
    }
}

/// Encode literal elements exactly; a literal the dtype cannot hold is an error.
fn dense_tensor(
    src: &str,
    dtype: DType,
    dims: Vec<u64>,
    values: &[Spanned<&str>],
) -> Result<Tensor, ParseError> {
    let bad = |v: &Spanned<&str>| {
        ParseError::at(
            src,
            v.off,
            ParseErrorKind::DenseValue {
                value: v.v.to_string(),
                dtype: dtype.to_string(),
            },
        )
    };
    let tensor = match dtype.int_range() {
        Some((lo, hi)) => {
            let mut ints = Vec::with_capacity(values.len());
            for v in values {
                let x = match (v.v, dtype) {
                    ("true", DType::Bool) => 1,
                    ("false", DType::Bool) => 0,
                    (t, _) => t.parse::<i64>().map_err(|_| bad(v))?,
                };
                if x < lo || x > hi {
                    return Err(bad(v));
                }
                ints.push(x);
            }
            Tensor::from_i64(dtype, dims, &ints)
        }
        None => {
            let mut floats = Vec::with_capacity(values.len());
            for v in values {
                let x = v.v.parse::<f32>().map_err(|_| bad(v))?;
                let back = match dtype {
                    DType::F8E5M2 => E5M2.decode(numeric::f32_to_minifloat(&E5M2, x, false)),
                    _ => numeric::round_trip(dtype, x),
                };
                let exact = if x.is_nan() {
                    back.is_nan()
                } else {
                    back.to_bits() == x.to_bits()
                };
                if !exact {
                    return Err(bad(v));
                }
                floats.push(x);
            }
            // f8e5m2 encodes without saturation so that its infinities stay infinities
            // (`Tensor::from_f32` saturates them); only exact values get here, so nothing
            // else changes.
            let bytes = match dtype {
                DType::F8E5M2 => floats
                    .iter()
                    .map(|x| numeric::f32_to_minifloat(&E5M2, *x, false))
                    .collect(),
                _ => numeric::encode_f32(dtype, &floats),
            };
            Tensor::from_bytes(dtype, dims, bytes.into())
        }
    };
    // The element count was checked above, so construction cannot fail; report it as a
    // count error all the same rather than panic.
    tensor.map_err(|e| {
        ParseError::at(
            src,
            values.first().map_or(0, |v| v.off),
            ParseErrorKind::DenseValue {
                value: e.to_string(),
                dtype: dtype.to_string(),
            },
        )
    })
}
