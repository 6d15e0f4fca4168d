//! Attribute values as parsed, before an op gives them a meaning: numbers stay text until
//! the op says whether it wants an integer or a float, so both parse exactly.

use pest::iterators::Pair;

use crate::DType;
use crate::shape::{Dim, Shape, TensorType};

use super::error::{ParseError, ParseErrorKind};
use super::parse::Rule;

/// A value with the byte offset where it starts in the source.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spanned<T> {
    /// Byte offset in the source.
    pub off: usize,
    /// The value.
    pub v: T,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val<'s> {
    /// A number literal (`3`, `-1`, `1e-6`, `inf`, `nan`) as written.
    Num(&'s str),
    /// A bare word (`true`, `none`, `per_tensor`, `B`, `f16`).
    Ident(&'s str),
    /// A quoted string, unescaped.
    Str(String),
    /// `[a, b, …]`.
    List(Vec<Spanned<Val<'s>>>),
    /// `f(args)` with optionally named arguments.
    Call(&'s str, Vec<(Option<&'s str>, Spanned<Val<'s>>)>),
    /// A product of dimension factors (`2*B`).
    Product(Dim),
    /// A tensor type (`f32[B,4]`).
    Type(TensorType),
    /// `dense<type> [elements]` with the element literals as written.
    Dense(TensorType, Vec<Spanned<&'s str>>),
    /// `external<type> "key"`.
    External(TensorType, String),
}

impl Val<'_> {
    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Val::Num(t) => format!("`{t}`"),
            Val::Ident(t) => format!("`{t}`"),
            Val::Str(s) => format!("the string {}", super::print::quote(s)),
            Val::List(_) => "a list".to_string(),
            Val::Call(f, _) => format!("`{f}(…)`"),
            Val::Product(d) => format!("`{}`", super::print::dim(d)),
            Val::Type(t) => format!("the type `{}`", super::print::tensor_type(t)),
            Val::Dense(..) => "a dense tensor".to_string(),
            Val::External(..) => "an external tensor".to_string(),
        }
    }
}

/// Convert an `attr_value` pair.
pub(crate) fn attr_value<'s>(
    src: &'s str,
    pair: Pair<'s, Rule>,
) -> Result<Spanned<Val<'s>>, ParseError> {
    let off = pair.as_span().start();
    let inner = match pair.as_rule() {
        Rule::attr_value => match pair.into_inner().next() {
            Some(p) => p,
            None => return Err(internal(src, off)),
        },
        _ => pair,
    };
    let off = inner.as_span().start();
    let v = match inner.as_rule() {
        Rule::number => Val::Num(inner.as_str()),
        Rule::ident => Val::Ident(inner.as_str()),
        Rule::string => Val::Str(string(src, inner)?),
        Rule::list => Val::List(
            inner
                .into_inner()
                .map(|p| attr_value(src, p))
                .collect::<Result<_, _>>()?,
        ),
        Rule::call => {
            let mut it = inner.into_inner();
            let f = it.next().ok_or_else(|| internal(src, off))?.as_str();
            let mut args = Vec::new();
            for arg in it {
                let mut parts: Vec<Pair<'s, Rule>> = arg.into_inner().collect();
                let value = parts.pop().ok_or_else(|| internal(src, off))?;
                let name = parts.pop().map(|p| p.as_str());
                args.push((name, attr_value(src, value)?));
            }
            Val::Call(f, args)
        }
        Rule::product => Val::Product(dim_factors(src, inner)?),
        Rule::tensor_type => Val::Type(tensor_type(src, inner)?),
        Rule::dense => {
            let mut it = inner.into_inner();
            let ty = tensor_type(src, it.next().ok_or_else(|| internal(src, off))?)?;
            let values = it
                .map(|p| Spanned {
                    off: p.as_span().start(),
                    v: p.as_str(),
                })
                .collect();
            Val::Dense(ty, values)
        }
        Rule::external => {
            let mut it = inner.into_inner();
            let ty = tensor_type(src, it.next().ok_or_else(|| internal(src, off))?)?;
            let key = string(src, it.next().ok_or_else(|| internal(src, off))?)?;
            Val::External(ty, key)
        }
        _ => return Err(internal(src, off)),
    };
    Ok(Spanned { off, v })
}

/// A grammar shape the conversion did not expect: only a bug in this module causes it.
fn internal(src: &str, off: usize) -> ParseError {
    ParseError::at(
        src,
        off,
        ParseErrorKind::Syntax {
            expected: "a well-formed value (internal parser mismatch)".to_string(),
        },
    )
}

/// Convert a `tensor_type` pair.
pub(crate) fn tensor_type(src: &str, pair: Pair<'_, Rule>) -> Result<TensorType, ParseError> {
    let off = pair.as_span().start();
    let mut it = pair.into_inner();
    let dt = it.next().ok_or_else(|| internal(src, off))?;
    let dtype = dt.as_str().parse::<DType>().map_err(|_| {
        ParseError::at(
            src,
            dt.as_span().start(),
            ParseErrorKind::UnknownDType {
                name: dt.as_str().to_string(),
            },
        )
    })?;
    let shape = it.next().ok_or_else(|| internal(src, off))?;
    let dims = shape
        .into_inner()
        .map(|d| dim_factors(src, d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorType::new(dtype, Shape(dims)))
}

/// Multiply the `dim_factor`s inside a `dim` or `product` pair.
fn dim_factors(src: &str, pair: Pair<'_, Rule>) -> Result<Dim, ParseError> {
    let mut d = Dim::fixed(1);
    for f in pair.into_inner() {
        let off = f.as_span().start();
        let inner = f.into_inner().next().ok_or_else(|| internal(src, off))?;
        let factor = match inner.as_rule() {
            Rule::uint => Dim::fixed(inner.as_str().parse::<u64>().map_err(|_| {
                ParseError::at(
                    src,
                    off,
                    ParseErrorKind::Syntax {
                        expected: "a dimension that fits in 64 bits".to_string(),
                    },
                )
            })?),
            Rule::ident => Dim::sym(inner.as_str()),
            Rule::string => Dim::sym(string(src, inner)?),
            _ => return Err(internal(src, off)),
        };
        d = d.checked_mul(&factor).ok_or_else(|| {
            ParseError::at(
                src,
                off,
                ParseErrorKind::Syntax {
                    expected: "a dimension that fits in 64 bits".to_string(),
                },
            )
        })?;
    }
    Ok(d)
}

/// Unescape a `string` pair (`\"`, `\\`, `\n`, `\t`, `\r`, `\0`, `\u{…}`).
pub(crate) fn string(src: &str, pair: Pair<'_, Rule>) -> Result<String, ParseError> {
    let off = pair.as_span().start() + 1;
    let body = pair.into_inner().next().map_or("", |p| p.as_str());
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err(ParseError::at(
                src,
                off + i,
                ParseErrorKind::BadEscape("`\\` at the end".into()),
            ));
        };
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'u' => {
                let rest = &body[i + 2..];
                let end = rest.find('}').unwrap_or(rest.len());
                let hex = rest.get(1..end).unwrap_or("");
                let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                match ch {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(ParseError::at(
                            src,
                            off + i,
                            ParseErrorKind::BadEscape(format!("`\\u{{{hex}}}` is not a character")),
                        ));
                    }
                }
                // Skip `{hex}`.
                for _ in 0..=end {
                    chars.next();
                }
            }
            other => {
                return Err(ParseError::at(
                    src,
                    off + i,
                    ParseErrorKind::BadEscape(format!("`\\{other}`")),
                ));
            }
        }
    }
    Ok(out)
}
