//! Quantization rules: quantize, dequantize, qmatmul (the table in [`crate::quant`]).
//!
//! Element dtypes by scheme: the affine schemes (`per_tensor`, `per_channel`,
//! `per_group`) take i8, u8, i4, f8e4m3, f8e5m2; `nvfp4` takes fp4e2m1; `mx` takes
//! fp4e2m1, f8e4m3, f8e5m2 or i8. Scales: f32 for the affine schemes (`[]`, `[d_axis]`, or
//! the shape with `d_axis → ceil(d_axis/size)`); nvfp4 block scales f8e4m3 with
//! `d_axis → ceil(d_axis/16)` plus a per-tensor f32 `[]`; mx scales u8 (E8M0) with
//! `d_axis → ceil(d_axis/32)`. A ragged last block is allowed for static extents; a
//! symbolic blocked axis must be divisible by the block as a monomial. Zero points exist
//! only for the integer element types under the affine schemes and have the scale's shape
//! and the element dtype.

use super::{InferError, ceil_div, operand, resolve_axis, want_dtype, want_float, want_shape};
use crate::DType;
use crate::quant::{MX_BLOCK, NVFP4_BLOCK, QuantScheme};
use crate::shape::{Shape, TensorType};

/// Element dtypes a scheme allows.
fn allowed(scheme: &QuantScheme) -> &'static [DType] {
    match scheme {
        QuantScheme::PerTensor | QuantScheme::PerChannel { .. } | QuantScheme::PerGroup { .. } => {
            &[
                DType::I8,
                DType::U8,
                DType::I4,
                DType::F8E4M3,
                DType::F8E5M2,
            ]
        }
        QuantScheme::Nvfp4 { .. } => &[DType::Fp4E2M1],
        QuantScheme::Mx { .. } => &[DType::Fp4E2M1, DType::F8E4M3, DType::F8E5M2, DType::I8],
    }
}

fn names(ds: &[DType]) -> String {
    let v: Vec<&str> = ds.iter().map(|d| d.name()).collect();
    v.join(", ")
}

/// The element dtype `q` must be allowed by `scheme`; `operand` is `None` for the
/// quantize attribute `dtype`.
fn check_element(
    scheme: &QuantScheme,
    dtype: DType,
    operand: Option<usize>,
) -> Result<(), InferError> {
    let ok = allowed(scheme);
    if ok.contains(&dtype) {
        return Ok(());
    }
    let expected = format!("one of {} for scheme {scheme}", names(ok));
    Err(match operand {
        Some(operand) => InferError::DType {
            operand,
            actual: dtype,
            expected,
        },
        None => InferError::Attr {
            attr: "dtype",
            reason: format!("is {dtype}, expected {expected}"),
        },
    })
}

/// The scales a scheme needs for a tensor of shape `x` (operand `xi`): for each, its
/// expected shape and dtype, in `Dequantize` input order.
fn scale_types(
    scheme: &QuantScheme,
    x: &TensorType,
    xi: usize,
) -> Result<Vec<TensorType>, InferError> {
    let blocked = |block: u64, attr: &'static str| -> Result<Shape, InferError> {
        let axis = scheme.axis().unwrap_or(0);
        let a = resolve_axis(xi, x, axis)?;
        if block == 0 {
            return Err(InferError::Attr {
                attr,
                reason: "is 0, expected at least 1".to_string(),
            });
        }
        let mut dims = x.shape.dims().to_vec();
        let Some(d) = dims.get_mut(a) else {
            return Err(InferError::Axis {
                operand: xi,
                axis,
                rank: x.shape.rank(),
            });
        };
        let Some(c) = ceil_div(d, block) else {
            return Err(InferError::Shape {
                operand: xi,
                shape: x.shape.clone(),
                expected: format!(
                    "a blocked axis {a} that is static or divisible by the block size {block} (ceil({d}/{block}) is not a monomial)"
                ),
            });
        };
        *d = c;
        Ok(Shape(dims))
    };
    Ok(match scheme {
        QuantScheme::PerTensor => vec![TensorType::new(DType::F32, Shape::scalar())],
        QuantScheme::PerChannel { axis } => {
            let a = resolve_axis(xi, x, *axis)?;
            let d = x.shape.dims().get(a).cloned().ok_or(InferError::Axis {
                operand: xi,
                axis: *axis,
                rank: x.shape.rank(),
            })?;
            vec![TensorType::new(DType::F32, Shape(vec![d]))]
        }
        QuantScheme::PerGroup { size, .. } => {
            vec![TensorType::new(DType::F32, blocked(*size, "size")?)]
        }
        QuantScheme::Nvfp4 { .. } => vec![
            TensorType::new(DType::F8E4M3, blocked(NVFP4_BLOCK, "axis")?),
            TensorType::new(DType::F32, Shape::scalar()),
        ],
        QuantScheme::Mx { .. } => vec![TensorType::new(DType::U8, blocked(MX_BLOCK, "axis")?)],
    })
}

/// Check operands `first..` against the expected scale types.
fn check_scales(
    inputs: &[&TensorType],
    first: usize,
    expected: &[TensorType],
    scheme: &QuantScheme,
) -> Result<(), InferError> {
    for (k, want) in expected.iter().enumerate() {
        let i = first + k;
        let t = operand(inputs, i)?;
        want_dtype(i, t, want.dtype)?;
        want_shape(i, t, &want.shape, &format!("scale of scheme {scheme}"))?;
    }
    Ok(())
}

/// A zero point is allowed for integer elements under an affine scheme.
fn check_zero_point_allowed(scheme: &QuantScheme, q: DType) -> Result<(), InferError> {
    if scheme.allows_zero_point() && q.is_int() {
        Ok(())
    } else {
        Err(InferError::Attr {
            attr: "has_zero_point",
            reason: format!(
                "is set, but zero points exist only for integer elements (not {q}) under per_tensor, per_channel or per_group (not {scheme})"
            ),
        })
    }
}

/// Check the zero point operand `i` against the scale type and element dtype.
fn check_zero_point(
    inputs: &[&TensorType],
    i: usize,
    scale: &TensorType,
    q: DType,
) -> Result<(), InferError> {
    let zp = operand(inputs, i)?;
    want_dtype(i, zp, q)?;
    want_shape(i, zp, &scale.shape, "the shape of the scale")
}

pub(super) fn quantize(
    dtype: DType,
    scheme: &QuantScheme,
    has_zero_point: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    check_element(scheme, dtype, None)?;
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    let scales = scale_types(scheme, x, 0)?;
    let q = TensorType::new(dtype, x.shape.clone());
    if has_zero_point {
        check_zero_point_allowed(scheme, dtype)?;
    }
    match scheme {
        QuantScheme::PerTensor | QuantScheme::PerChannel { .. } | QuantScheme::PerGroup { .. } => {
            check_scales(inputs, 1, &scales, scheme)?;
            if has_zero_point && let Some(s) = scales.first() {
                check_zero_point(inputs, 2, s, dtype)?;
            }
            Ok(vec![q])
        }
        QuantScheme::Nvfp4 { .. } => {
            // Input: the per-tensor scale; output: the block scales.
            let (Some(block), Some(tensor)) = (scales.first(), scales.get(1)) else {
                return Err(InferError::Attr {
                    attr: "scheme",
                    reason: "nvfp4 needs block and tensor scales".to_string(),
                });
            };
            check_scales(inputs, 1, std::slice::from_ref(tensor), scheme)?;
            Ok(vec![q, block.clone()])
        }
        QuantScheme::Mx { .. } => {
            let mut out = vec![q];
            out.extend(scales);
            Ok(out)
        }
    }
}

pub(super) fn dequantize(
    scheme: &QuantScheme,
    has_zero_point: bool,
    out: DType,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    if !out.is_float() {
        return Err(InferError::Attr {
            attr: "out",
            reason: format!("is {out}, expected a float type"),
        });
    }
    let q = operand(inputs, 0)?;
    check_element(scheme, q.dtype, Some(0))?;
    if has_zero_point {
        check_zero_point_allowed(scheme, q.dtype)?;
    }
    let scales = scale_types(scheme, q, 0)?;
    check_scales(inputs, 1, &scales, scheme)?;
    if has_zero_point && let Some(s) = scales.first() {
        check_zero_point(inputs, 1 + scales.len(), s, q.dtype)?;
    }
    Ok(vec![TensorType::new(out, q.shape.clone())])
}

pub(super) fn qmatmul(
    a_scheme: Option<&QuantScheme>,
    b_scheme: &QuantScheme,
    out: DType,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    if !out.is_float() {
        return Err(InferError::Attr {
            attr: "out",
            reason: format!("is {out}, expected a float type"),
        });
    }
    let a = operand(inputs, 0)?;
    let mut next = 1;
    match a_scheme {
        None => want_float(0, a)?,
        Some(s) => {
            check_element(s, a.dtype, Some(0))?;
            let scales = scale_types(s, a, 0)?;
            check_scales(inputs, 1, &scales, s)?;
            next += scales.len();
        }
    }
    let bi = next;
    let b = operand(inputs, bi)?;
    check_element(b_scheme, b.dtype, Some(bi))?;
    let [k, n] = b.shape.dims() else {
        return Err(InferError::Shape {
            operand: bi,
            shape: b.shape.clone(),
            expected: "rank 2 ([K, N], the quantized weight)".to_string(),
        });
    };
    let scales = scale_types(b_scheme, b, bi)?;
    check_scales(inputs, bi + 1, &scales, b_scheme)?;
    let Some((ka, batch)) = a.shape.dims().split_last() else {
        return Err(InferError::Shape {
            operand: 0,
            shape: a.shape.clone(),
            expected: "rank at least 1 ([.., M, K])".to_string(),
        });
    };
    if ka != k {
        return Err(InferError::Shape {
            operand: bi,
            shape: b.shape.clone(),
            expected: format!("inner dimension {ka} to match operand 0 {}", a.shape),
        });
    }
    let mut dims = batch.to_vec();
    dims.push(n.clone());
    Ok(vec![TensorType::new(out, Shape(dims))])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
#[path = "quant_tests.rs"]
mod tests;
