//! Literal and external tensors of `constant` statements: `dense<…> […]` is re-encoded
//! exactly (a literal the dtype cannot hold is refused), `external<…> "key"` comes from the
//! weight store and must match its declared type.

use crate::DType;
use crate::numeric::{self, E5M2};
use crate::shape::TensorType;
use crate::tensor::{Tensor, checked_numel};

use super::WeightStore;
use super::error::{ParseError, ParseErrorKind};
use super::print::{shape, tensor_type};
use super::reader::Attr;
use super::value::{Spanned, Val};

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

pub(crate) fn constant(
    a: &Attr<'_, '_>,
    weights: Option<&dyn WeightStore>,
) -> Result<Tensor, ParseError> {
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
