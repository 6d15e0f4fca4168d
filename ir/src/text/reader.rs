//! Typed access to the attributes of one statement: each accessor names the attribute and
//! what it expected when the written value does not fit, at the value's position.

use crate::DType;
use crate::op::{NearestRounding, PadMode, ResizeMode, StepSchedule};
use crate::quant::QuantScheme;
use crate::shape::{Dim, Shape};

use super::error::{ParseError, ParseErrorKind};
use super::value::{Spanned, Val};

/// The attributes of one statement, checked against the op's attribute list.
pub(crate) struct Attrs<'s, 'a> {
    pub(crate) src: &'s str,
    op: &'a str,
    /// Where a missing attribute is reported (the op name).
    pub(crate) op_off: usize,
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

    pub(crate) fn get(&self, name: &'static str) -> Result<Attr<'s, 'a>, ParseError> {
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

    pub(crate) fn int(&self, name: &'static str) -> Result<i64, ParseError> {
        self.get(name)?.int()
    }
    pub(crate) fn uint(&self, name: &'static str) -> Result<u64, ParseError> {
        self.get(name)?.uint()
    }
    pub(crate) fn flag(&self, name: &'static str) -> Result<bool, ParseError> {
        self.get(name)?.flag()
    }
    pub(crate) fn f32(&self, name: &'static str) -> Result<f32, ParseError> {
        self.get(name)?.f32()
    }
    pub(crate) fn ints(&self, name: &'static str) -> Result<Vec<i64>, ParseError> {
        self.get(name)?.items()?.iter().map(Attr::int).collect()
    }
    pub(crate) fn uints(&self, name: &'static str) -> Result<Vec<u64>, ParseError> {
        self.get(name)?.items()?.iter().map(Attr::uint).collect()
    }
    pub(crate) fn dtype(&self, name: &'static str) -> Result<DType, ParseError> {
        self.get(name)?.dtype()
    }
    pub(crate) fn shape(&self, name: &'static str) -> Result<Shape, ParseError> {
        self.get(name)?.shape()
    }
    pub(crate) fn scheme(&self, name: &'static str) -> Result<QuantScheme, ParseError> {
        self.get(name)?.scheme()
    }
    pub(crate) fn string(&self, name: &'static str) -> Result<String, ParseError> {
        let a = self.get(name)?;
        match &a.v.v {
            Val::Str(s) => Ok(s.clone()),
            _ => Err(a.wrong("a quoted string")),
        }
    }
}

/// One attribute value (or a part of one) with what is needed to report errors on it.
#[derive(Clone, Copy)]
pub(crate) struct Attr<'s, 'a> {
    pub(crate) src: &'s str,
    op: &'a str,
    name: &'static str,
    pub(crate) v: &'a Spanned<Val<'s>>,
}

impl<'s, 'a> Attr<'s, 'a> {
    pub(crate) fn wrong(&self, expected: &str) -> ParseError {
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

    pub(crate) fn part(&self, v: &'a Spanned<Val<'s>>) -> Attr<'s, 'a> {
        Attr { v, ..*self }
    }

    pub(crate) fn int(&self) -> Result<i64, ParseError> {
        match &self.v.v {
            Val::Num(t) => t.parse::<i64>().map_err(|_| self.wrong("an integer")),
            _ => Err(self.wrong("an integer")),
        }
    }

    pub(crate) fn uint(&self) -> Result<u64, ParseError> {
        match &self.v.v {
            Val::Num(t) => t
                .parse::<u64>()
                .map_err(|_| self.wrong("a non-negative integer")),
            _ => Err(self.wrong("a non-negative integer")),
        }
    }

    pub(crate) fn u32(&self) -> Result<u32, ParseError> {
        match &self.v.v {
            Val::Num(t) => t
                .parse::<u32>()
                .map_err(|_| self.wrong("a non-negative 32-bit integer")),
            _ => Err(self.wrong("a non-negative 32-bit integer")),
        }
    }

    pub(crate) fn flag(&self) -> Result<bool, ParseError> {
        match &self.v.v {
            Val::Ident("true") => Ok(true),
            Val::Ident("false") => Ok(false),
            _ => Err(self.wrong("`true` or `false`")),
        }
    }

    pub(crate) fn f32(&self) -> Result<f32, ParseError> {
        match &self.v.v {
            Val::Num(t) => t.parse::<f32>().map_err(|_| self.wrong("a number")),
            _ => Err(self.wrong("a number")),
        }
    }

    pub(crate) fn items(&self) -> Result<Vec<Attr<'s, 'a>>, ParseError> {
        match &self.v.v {
            Val::List(items) => Ok(items.iter().map(|v| self.part(v)).collect()),
            _ => Err(self.wrong("a list `[…]`")),
        }
    }

    pub(crate) fn ident(&self, expected: &str) -> Result<&'s str, ParseError> {
        match &self.v.v {
            Val::Ident(s) => Ok(s),
            _ => Err(self.wrong(expected)),
        }
    }

    pub(crate) fn dtype(&self) -> Result<DType, ParseError> {
        let s = self.ident("a dtype")?;
        s.parse::<DType>().map_err(|_| self.wrong("a dtype"))
    }

    pub(crate) fn shape(&self) -> Result<Shape, ParseError> {
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
    pub(crate) fn call_args(
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

    pub(crate) fn scheme(&self) -> Result<QuantScheme, ParseError> {
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

    pub(crate) fn schedule(&self) -> Result<StepSchedule, ParseError> {
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

    pub(crate) fn pad_mode(&self) -> Result<PadMode, ParseError> {
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

    pub(crate) fn resize_mode(&self) -> Result<ResizeMode, ParseError> {
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
