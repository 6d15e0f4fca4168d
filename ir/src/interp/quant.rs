//! Quantize, Dequantize and QMatMul, bit-exactly.
//!
//! Which scale governs an element is fixed by [`QuantScheme`] (see [`crate::quant`]):
//! per-tensor scales have shape `[]`, per-channel `[d_axis]`, block schemes (`PerGroup`,
//! `Nvfp4`, `Mx`) `x`'s shape with `d_axis → ceil(d_axis / block)` (the last block may be
//! ragged). All arithmetic is f32 where the formulas below say so, with exact f64 products
//! otherwise; results are encoded with the round-to-nearest-even, saturating encoders of
//! [`crate::numeric`].
//!
//! - **Affine** (`PerTensor`, `PerChannel`, `PerGroup`), `q ∈ {i8, u8, i4}`:
//!   `q = saturate(round_half_even(x / scale) + zp)` with `x / scale` an f32 division (NaN
//!   gives `zp`); `q ∈ {f8e4m3, f8e5m2, fp4e2m1}`: `q = encode_saturating(x / scale)`, no
//!   zero point. Dequantize: `(q − zp) · scale`. Scales are any of f32/f16/bf16.
//! - **NVFP4** (`q: fp4e2m1`, blocks of 16): `amax` = largest `|x|` of the block (NaN
//!   ignored); `block_scale = e4m3((amax / 6) / tensor_scale)` (f32 arithmetic, saturating
//!   RNE); `s = decode(block_scale) · tensor_scale`; `q = e2m1(x / s)`, or 0 where `s = 0`.
//!   Dequantize: `q · decode(block_scale) · tensor_scale`.
//! - **MX** (OCP MX v1.0, blocks of 32, scale E8M0 in u8): `E = floor(log2 amax) − emax`
//!   with `emax` = 2 (fp4e2m1), 8 (f8e4m3), 15 (f8e5m2), 0 (i8 = MXINT8), clamped to
//!   `[−127, 127]`; `amax = 0` gives `E = −127`; a block holding an infinity or NaN gets the
//!   NaN scale `0xff` (its elements then encode NaN: the NaN code for fp8, 0 for fp4/i8).
//!   Elements: `q = encode_saturating(x / 2^E)`. **MXINT8** elements are 1.6 fixed point as
//!   in the OCP spec: an i8 `q` stands for `q / 64`, so `q = saturate(round_half_even(64 ·
//!   x / 2^E))` in `[−128, 127]`; with `emax = 0` the stored scale is the spec's. (Writing
//!   this as `emax = 6` on plain integers gives the same `q` but a scale 2⁶ smaller.)
//!   Dequantize: `value(q) · 2^E`, NaN if the scale is `0xff`.
//! - **QMatMul**: each quantized operand is dequantized to the f32 values `Dequantize`
//!   (to f32) would produce, then multiplied as [`super::linalg`] does (f64 accumulation),
//!   and the result encoded into `out`. `b` must be `[K, N]`.

use super::linalg;
use super::util::{norm_axis, require_dtype, require_float, require_shape, shape_str};
use super::{InterpError, op_err};
use crate::DType;
use crate::numeric::{e8m0_from_exponent, e8m0_to_f32, round_half_even};
use crate::op::dequant_extra_inputs;
use crate::quant::QuantScheme;
use crate::tensor::Tensor;

/// Where each element's scale lives, for one tensor shape and scheme.
struct Layout {
    /// Shape of the scale tensor.
    scale_shape: Vec<u64>,
    /// Product of the extents before the axis.
    d: usize,
    /// Product of the extents after the axis.
    inner: usize,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Tensor,
    Channel,
    Block { size: usize, groups: usize },
}

impl Layout {
    fn new(shape: &[u64], scheme: &QuantScheme) -> Result<Layout, InterpError> {
        let what = format!("{scheme}");
        let Some(axis) = scheme.axis() else {
            return Ok(Layout {
                scale_shape: Vec::new(),
                d: 1,
                inner: 1,
                kind: Kind::Tensor,
            });
        };
        let a = norm_axis(axis, shape.len(), &what)?;
        let d = shape[a];
        let inner = shape[a + 1..].iter().product::<u64>() as usize;
        match scheme.block_size() {
            None => Ok(Layout {
                scale_shape: vec![d],
                d: d as usize,
                inner,
                kind: Kind::Channel,
            }),
            Some(0) => Err(op_err(format!("{what}: the group size must be at least 1"))),
            Some(size) => {
                let groups = d.div_ceil(size);
                let mut scale_shape = shape.to_vec();
                scale_shape[a] = groups;
                Ok(Layout {
                    scale_shape,
                    d: d as usize,
                    inner,
                    kind: Kind::Block {
                        size: size as usize,
                        groups: groups as usize,
                    },
                })
            }
        }
    }

    /// Flat index in the scale tensor of the scale governing flat element `i`.
    fn scale_index(&self, i: usize) -> usize {
        match self.kind {
            Kind::Tensor => 0,
            Kind::Channel => (i / self.inner) % self.d,
            Kind::Block { size, groups } => {
                let r = i % self.inner;
                let along = (i / self.inner) % self.d;
                let outer = i / (self.inner * self.d);
                (outer * groups + along / size) * self.inner + r
            }
        }
    }

    fn scale_count(&self) -> usize {
        self.scale_shape.iter().product::<u64>() as usize
    }
}

/// The elements of a tensor as f32, integers converted exactly (up to 2²⁴).
fn element_values(t: &Tensor) -> Vec<f32> {
    if t.dtype().is_int() {
        t.to_i64_vec().into_iter().map(|v| v as f32).collect()
    } else {
        t.to_f32_vec()
    }
}

fn is_affine_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8 | DType::I4)
}

fn is_affine_float(d: DType) -> bool {
    matches!(d, DType::F8E4M3 | DType::F8E5M2 | DType::Fp4E2M1)
}

/// `emax` of an MX element type (exponent of its largest power of two ≤ max).
fn mx_emax(d: DType) -> Option<i32> {
    match d {
        DType::Fp4E2M1 => Some(2),
        DType::F8E4M3 => Some(8),
        DType::F8E5M2 => Some(15),
        DType::I8 => Some(0),
        _ => None,
    }
}

/// Exact `floor(log2(a))` of a positive finite f32 (subnormals included).
fn floor_log2(a: f32) -> i32 {
    let bits = a.to_bits() & 0x7fff_ffff;
    let exp = (bits >> 23) as i32;
    if exp == 0 {
        let m = bits & 0x7f_ffff;
        (31 - m.leading_zeros() as i32) - 149
    } else {
        exp - 127
    }
}

/// Check a scale operand: a float dtype (f32, f16 or bf16) of the layout's shape.
fn check_scale(t: &Tensor, layout: &Layout, what: &str) -> Result<(), InterpError> {
    if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) {
        return Err(op_err(format!(
            "{what}: expected an f32, f16 or bf16 scale, got {}",
            t.dtype()
        )));
    }
    require_shape(t, &layout.scale_shape, what)
}

fn check_zero_point(
    zp: &Tensor,
    dtype: DType,
    layout: &Layout,
    what: &str,
) -> Result<(), InterpError> {
    require_dtype(zp, dtype, what)?;
    require_shape(zp, &layout.scale_shape, what)
}

/// Evaluate `Quantize`: outputs `[q]` for affine schemes, `[q, block_scale]` for NVFP4 and
/// `[q, scale]` for MX.
pub(super) fn quantize(
    inputs: &[Tensor],
    dtype: DType,
    scheme: &QuantScheme,
    zp: bool,
) -> Result<Vec<Tensor>, InterpError> {
    let x = inputs
        .first()
        .ok_or_else(|| op_err("quantize needs an input x"))?;
    require_float(x, "quantize x")?;
    let layout = Layout::new(x.shape(), scheme)?;
    let xv = x.to_f32_vec();
    match scheme {
        QuantScheme::PerTensor | QuantScheme::PerChannel { .. } | QuantScheme::PerGroup { .. } => {
            let expected = 2 + usize::from(zp);
            if inputs.len() != expected {
                return Err(op_err(format!(
                    "quantize ({scheme}) takes {expected} operands, got {}",
                    inputs.len()
                )));
            }
            check_scale(&inputs[1], &layout, "quantize scale")?;
            let scale = inputs[1].to_f32_vec();
            if is_affine_int(dtype) {
                let zpv = if zp {
                    check_zero_point(&inputs[2], dtype, &layout, "quantize zero_point")?;
                    inputs[2].to_i64_vec()
                } else {
                    vec![0; layout.scale_count()]
                };
                let (lo, hi) = dtype.int_range().unwrap_or((0, 0));
                let q: Vec<i64> = xv
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let s = layout.scale_index(i);
                        let r = round_half_even(f64::from(v / scale[s]));
                        let r = if r.is_nan() { 0.0 } else { r };
                        (r + zpv[s] as f64).clamp(lo as f64, hi as f64) as i64
                    })
                    .collect();
                Ok(vec![Tensor::from_i64(dtype, x.shape().to_vec(), &q)?])
            } else if is_affine_float(dtype) {
                if zp {
                    return Err(op_err(format!(
                        "quantize: a zero point is only allowed for i8, u8 and i4, not {dtype}"
                    )));
                }
                let q: Vec<f32> = xv
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v / scale[layout.scale_index(i)])
                    .collect();
                Ok(vec![Tensor::from_f32(dtype, x.shape().to_vec(), &q)?])
            } else {
                Err(op_err(format!(
                    "quantize ({scheme}): expected q dtype i8, u8, i4, f8e4m3, f8e5m2 or fp4e2m1, got {dtype}"
                )))
            }
        }
        QuantScheme::Nvfp4 { .. } => {
            if dtype != DType::Fp4E2M1 || zp {
                return Err(op_err(format!(
                    "quantize ({scheme}): expected q dtype fp4e2m1 without zero point, got {dtype}{}",
                    if zp { " with a zero point" } else { "" }
                )));
            }
            let ts = tensor_scale(inputs.get(1), "quantize tensor_scale")?;
            let mut amax = vec![0f32; layout.scale_count()];
            for (i, &v) in xv.iter().enumerate() {
                let s = layout.scale_index(i);
                amax[s] = amax[s].max(v.abs());
            }
            let raw: Vec<f32> = amax.iter().map(|&a| (a / 6.0) / ts).collect();
            let bs = Tensor::from_f32(DType::F8E4M3, layout.scale_shape.clone(), &raw)?;
            let s: Vec<f32> = bs.to_f32_vec().iter().map(|&b| b * ts).collect();
            let q: Vec<f32> = xv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let si = s[layout.scale_index(i)];
                    if si == 0.0 { 0.0 } else { v / si }
                })
                .collect();
            Ok(vec![
                Tensor::from_f32(DType::Fp4E2M1, x.shape().to_vec(), &q)?,
                bs,
            ])
        }
        QuantScheme::Mx { .. } => {
            let emax = mx_emax(dtype).ok_or_else(|| {
                op_err(format!(
                    "quantize ({scheme}): expected q dtype fp4e2m1, f8e4m3, f8e5m2 or i8, got {dtype}"
                ))
            })?;
            if zp {
                return Err(op_err(format!(
                    "quantize ({scheme}): MX formats take no zero point"
                )));
            }
            let n = layout.scale_count();
            let (mut amax, mut bad) = (vec![0f32; n], vec![false; n]);
            for (i, &v) in xv.iter().enumerate() {
                let s = layout.scale_index(i);
                bad[s] |= !v.is_finite();
                amax[s] = amax[s].max(v.abs());
            }
            let codes: Vec<u8> = amax
                .iter()
                .zip(&bad)
                .map(|(&a, &b)| {
                    if b {
                        0xff
                    } else if a == 0.0 {
                        e8m0_from_exponent(-127)
                    } else {
                        e8m0_from_exponent(floor_log2(a) - emax)
                    }
                })
                .collect();
            let scaled: Vec<f32> = xv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = codes[layout.scale_index(i)];
                    if c == 0xff {
                        f32::NAN
                    } else {
                        // Exact: a power-of-two rescaling that stays in f32's normal range.
                        (f64::from(v) * 2f64.powi(127 - i32::from(c))) as f32
                    }
                })
                .collect();
            let q = if dtype == DType::I8 {
                let ints: Vec<i64> = scaled
                    .iter()
                    .map(|&v| {
                        let r = round_half_even(f64::from(v) * 64.0);
                        if r.is_nan() {
                            0
                        } else {
                            r.clamp(-128.0, 127.0) as i64
                        }
                    })
                    .collect();
                Tensor::from_i64(DType::I8, x.shape().to_vec(), &ints)?
            } else {
                Tensor::from_f32(dtype, x.shape().to_vec(), &scaled)?
            };
            let scale = Tensor::from_bytes(DType::U8, layout.scale_shape.clone(), codes.into())?;
            Ok(vec![q, scale])
        }
    }
}

/// The per-tensor scale of NVFP4: a float scalar of shape `[]`.
fn tensor_scale(t: Option<&Tensor>, what: &str) -> Result<f32, InterpError> {
    let t = t.ok_or_else(|| op_err(format!("{what}: missing operand")))?;
    require_float(t, what)?;
    require_shape(t, &[], what)?;
    Ok(t.to_f32_vec()[0])
}

/// The f32 values that dequantizing `q` (first of `inputs`, then its scheme's inputs and
/// the zero point if `zp`) yields.
fn dequant_values(
    inputs: &[Tensor],
    scheme: &QuantScheme,
    zp: bool,
    what: &str,
) -> Result<Vec<f32>, InterpError> {
    let expected = 1 + dequant_extra_inputs(scheme) + usize::from(zp);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "{what} ({scheme}) takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let q = &inputs[0];
    let layout = Layout::new(q.shape(), scheme)?;
    let qv = element_values(q);
    match scheme {
        QuantScheme::PerTensor | QuantScheme::PerChannel { .. } | QuantScheme::PerGroup { .. } => {
            if q.dtype() == DType::Bool {
                return Err(op_err(format!("{what}: q cannot be bool")));
            }
            check_scale(&inputs[1], &layout, &format!("{what} scale"))?;
            let scale = inputs[1].to_f32_vec();
            let zpv = if zp {
                if !q.dtype().is_int() {
                    return Err(op_err(format!(
                        "{what}: a zero point needs an integer q, got {}",
                        q.dtype()
                    )));
                }
                check_zero_point(
                    &inputs[2],
                    q.dtype(),
                    &layout,
                    &format!("{what} zero_point"),
                )?;
                inputs[2].to_i64_vec()
            } else {
                vec![0; layout.scale_count()]
            };
            Ok(qv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let s = layout.scale_index(i);
                    ((f64::from(v) - zpv[s] as f64) * f64::from(scale[s])) as f32
                })
                .collect())
        }
        QuantScheme::Nvfp4 { .. } => {
            if zp {
                return Err(op_err(format!("{what} ({scheme}) takes no zero point")));
            }
            require_dtype(q, DType::Fp4E2M1, &format!("{what} q"))?;
            let bs = &inputs[1];
            require_dtype(bs, DType::F8E4M3, &format!("{what} block_scale"))?;
            require_shape(bs, &layout.scale_shape, &format!("{what} block_scale"))?;
            let ts = f64::from(tensor_scale(
                inputs.get(2),
                &format!("{what} tensor_scale"),
            )?);
            let bsv = bs.to_f32_vec();
            Ok(qv
                .iter()
                .enumerate()
                .map(|(i, &v)| (f64::from(v) * f64::from(bsv[layout.scale_index(i)]) * ts) as f32)
                .collect())
        }
        QuantScheme::Mx { .. } => {
            if zp {
                return Err(op_err(format!("{what} ({scheme}) takes no zero point")));
            }
            if mx_emax(q.dtype()).is_none() {
                return Err(op_err(format!(
                    "{what} ({scheme}): expected q dtype fp4e2m1, f8e4m3, f8e5m2 or i8, got {}",
                    q.dtype()
                )));
            }
            let sc = &inputs[1];
            require_dtype(sc, DType::U8, &format!("{what} scale (E8M0)"))?;
            require_shape(sc, &layout.scale_shape, &format!("{what} scale"))?;
            let unit = if q.dtype() == DType::I8 { 64.0 } else { 1.0 };
            let codes = sc.bytes();
            Ok(qv
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let e = f64::from(e8m0_to_f32(codes[layout.scale_index(i)]));
                    (f64::from(v) / unit * e) as f32
                })
                .collect())
        }
    }
}

/// Evaluate `Dequantize` into the float dtype `out`.
pub(super) fn dequantize(
    inputs: &[Tensor],
    scheme: &QuantScheme,
    zp: bool,
    out: DType,
) -> Result<Tensor, InterpError> {
    if !out.is_float() {
        return Err(op_err(format!(
            "dequantize: expected a float output dtype, got {out}"
        )));
    }
    let v = dequant_values(inputs, scheme, zp, "dequantize")?;
    let shape = inputs
        .first()
        .map(|q| q.shape().to_vec())
        .unwrap_or_default();
    Ok(Tensor::from_f32(out, shape, &v)?)
}

/// Evaluate `QMatMul` (see the module docs).
pub(super) fn qmatmul(
    inputs: &[Tensor],
    a_scheme: Option<&QuantScheme>,
    b_scheme: &QuantScheme,
    out: DType,
) -> Result<Tensor, InterpError> {
    if !out.is_float() {
        return Err(op_err(format!(
            "qmatmul: expected a float output dtype, got {out}"
        )));
    }
    let a_n = 1 + a_scheme.map_or(0, dequant_extra_inputs);
    let expected = a_n + 1 + dequant_extra_inputs(b_scheme);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "qmatmul takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let (a_in, b_in) = inputs.split_at(a_n);
    let a = &a_in[0];
    let av = match a_scheme {
        Some(s) => dequant_values(a_in, s, false, "qmatmul a")?,
        None => {
            require_float(a, "qmatmul a")?;
            a.to_f32_vec()
        }
    };
    let b = &b_in[0];
    if b.shape().len() != 2 {
        return Err(op_err(format!(
            "qmatmul b: expected a [K, N] weight, got {}",
            shape_str(b.shape())
        )));
    }
    let bv = dequant_values(b_in, b_scheme, false, "qmatmul b")?;
    let plan = linalg::plan(a.shape(), b.shape())?;
    let af: Vec<f64> = av.into_iter().map(f64::from).collect();
    let bf: Vec<f64> = bv.into_iter().map(f64::from).collect();
    linalg::matmul_values(&plan, &af, &bf, out)
}

#[cfg(test)]
mod tests {
    use super::floor_log2;
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use crate::quant::QuantScheme;
    use crate::{DType, Tensor};
    use proptest::prelude::*;

    fn f32t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn quantize(dtype: DType, scheme: QuantScheme, inputs: &[Tensor]) -> Vec<Tensor> {
        let op = Op::Quantize {
            dtype,
            scheme,
            has_zero_point: inputs.len() == 3,
        };
        eval_op(&op, inputs, &Bindings::new()).unwrap()
    }

    fn dequantize(scheme: QuantScheme, zp: bool, inputs: &[Tensor]) -> Vec<f32> {
        let op = Op::Dequantize {
            scheme,
            has_zero_point: zp,
            out: DType::F32,
        };
        eval_op(&op, inputs, &Bindings::new()).unwrap()[0].to_f32_vec()
    }

    #[test]
    fn floor_log2_is_exact() {
        assert_eq!(floor_log2(1.0), 0);
        assert_eq!(floor_log2(0.999_999_94), -1);
        assert_eq!(floor_log2(3.0), 1);
        assert_eq!(floor_log2(f32::from_bits(1)), -149);
        assert_eq!(floor_log2(f32::MAX), 127);
    }

    #[test]
    fn int8_per_channel_with_zero_point() {
        let x = f32t(&[2, 3], &[1.0, -1.25, 100.0, 3.0, 5.0, -7.0]);
        let scale = f32t(&[2], &[0.5, 2.0]);
        let zp = Tensor::from_i64(DType::I8, vec![2], &[10, -3]).unwrap();
        let s = QuantScheme::PerChannel { axis: 0 };
        let q = quantize(DType::I8, s, &[x, scale.clone(), zp.clone()]).remove(0);
        // Row 0: x/0.5 = 2, −2.5 → −2 (ties to even), 200; + 10 → 12, 8, 210 → 127.
        // Row 1: x/2 = 1.5 → 2, 2.5 → 2, −3.5 → −4; − 3 → −1, −1, −7.
        assert_eq!(q.to_i64_vec(), vec![12, 8, 127, -1, -1, -7]);
        let d = dequantize(s, true, &[q, scale, zp]);
        assert_eq!(d, vec![1.0, -1.0, 58.5, 4.0, 4.0, -8.0]);
    }

    #[test]
    fn i4_saturates_and_u8_zero_point() {
        let x = f32t(&[5], &[7.4, 7.6, -8.6, -9.0, 0.5]);
        let one = Tensor::scalar_f32(1.0);
        let q = quantize(DType::I4, QuantScheme::PerTensor, &[x.clone(), one.clone()]).remove(0);
        assert_eq!(q.to_i64_vec(), vec![7, 7, -8, -8, 0]);
        let zp = Tensor::from_i64(DType::U8, vec![], &[128]).unwrap();
        let q = quantize(DType::U8, QuantScheme::PerTensor, &[x, one, zp]).remove(0);
        assert_eq!(q.to_i64_vec(), vec![135, 136, 119, 119, 128]);
    }

    #[test]
    fn per_group_ragged() {
        // [1, 5] along axis 1 in groups of 2 → 3 scales, the last governing one element.
        let x = f32t(&[1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let scale = f32t(&[1, 3], &[1.0, 0.5, 0.25]);
        let s = QuantScheme::PerGroup { axis: 1, size: 2 };
        let q = quantize(DType::I8, s, &[x.clone(), scale.clone()]).remove(0);
        assert_eq!(q.to_i64_vec(), vec![1, 2, 6, 8, 20]);
        let bad = f32t(&[1, 2], &[1.0, 1.0]);
        let op = Op::Quantize {
            dtype: DType::I8,
            scheme: s,
            has_zero_point: false,
        };
        let e = eval_op(&op, &[x, bad], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("[1,3]"), "{e}");
    }

    #[test]
    fn fp8_per_tensor() {
        let x = f32t(&[3], &[1000.0, 3.0, -0.1]);
        let two = Tensor::scalar_f32(2.0);
        let q = quantize(
            DType::F8E4M3,
            QuantScheme::PerTensor,
            &[x.clone(), two.clone()],
        )
        .remove(0);
        // 500 saturates to 448; 1.5 is exact; −0.05 → −13·2⁻⁸ = −0.05078125 (1.101₂·2⁻⁵).
        assert_eq!(q.bytes(), &[0x7e, 0x3c, 0x95]);
        let d = dequantize(QuantScheme::PerTensor, false, &[q, two.clone()]);
        assert_eq!(d, vec![896.0, 3.0, -0.1015625]);
        let q = quantize(DType::F8E5M2, QuantScheme::PerTensor, &[x, two]).remove(0);
        // e5m2: 500 → 512 (quantum 64); −0.05 → −6·2⁻⁷.
        assert_eq!(q.to_f32_vec(), vec![512.0, 1.5, -0.046875]);
        // A zero point with an fp8 q is refused.
        let op = Op::Quantize {
            dtype: DType::F8E4M3,
            scheme: QuantScheme::PerTensor,
            has_zero_point: true,
        };
        let zp = Tensor::from_f32(DType::F8E4M3, vec![], &[0.0]).unwrap();
        let args = [f32t(&[1], &[1.0]), Tensor::scalar_f32(1.0), zp];
        assert!(eval_op(&op, &args, &Bindings::new()).is_err());
    }

    #[test]
    fn nvfp4_blocks_by_hand() {
        // 20 elements along the last axis: a full block of 16 and a ragged block of 4.
        let mut v = vec![0f32; 20];
        v[0] = 12.0; // amax of block 0 → block scale 12/6 = 2 (exact in e4m3)
        v[1] = 5.0; // 5/2 = 2.5 → e2m1 tie → 2 → 4
        v[2] = -1.0; // −0.5 → −1
        v[3] = 0.4; // 0.2 → 0
        v[16] = 0.9; // amax of block 1: 0.15 → e4m3 0.15625; 0.9/0.15625 = 5.76 → 6
        v[17] = -0.3; // −1.92 → −2 → −0.3125
        let x = f32t(&[1, 20], &v);
        let ts = Tensor::scalar_f32(1.0);
        let out = quantize(
            DType::Fp4E2M1,
            QuantScheme::Nvfp4 { axis: -1 },
            &[x, ts.clone()],
        );
        let (q, bs) = (&out[0], &out[1]);
        assert_eq!(bs.dtype(), DType::F8E4M3);
        assert_eq!(bs.shape(), &[1, 2]);
        assert_eq!(bs.to_f32_vec(), vec![2.0, 0.15625]);
        let qv = q.to_f32_vec();
        assert_eq!(&qv[..4], &[6.0, 2.0, -0.5, 0.0]);
        assert_eq!(&qv[16..], &[6.0, -2.0, 0.0, 0.0]);
        let d = dequantize(
            QuantScheme::Nvfp4 { axis: -1 },
            false,
            &[q.clone(), bs.clone(), ts],
        );
        assert_eq!(&d[..4], &[12.0, 4.0, -1.0, 0.0]);
        assert_eq!(&d[16..18], &[0.9375, -0.3125]);
        // A tensor scale of 0.5 halves the block scale's job: 12/6/0.5 = 4, s = 2 again.
        let x = f32t(&[2], &[12.0, 3.0]);
        let half = Tensor::scalar_f32(0.5);
        let out = quantize(DType::Fp4E2M1, QuantScheme::Nvfp4 { axis: 0 }, &[x, half]);
        assert_eq!(out[1].to_f32_vec(), vec![4.0]);
        assert_eq!(out[0].to_f32_vec(), vec![6.0, 1.5]);
        // All-zero block: scale 0, q 0.
        let out = quantize(
            DType::Fp4E2M1,
            QuantScheme::Nvfp4 { axis: 0 },
            &[f32t(&[3], &[0.0; 3]), Tensor::scalar_f32(1.0)],
        );
        assert_eq!(out[1].to_f32_vec(), vec![0.0]);
        assert_eq!(out[0].to_f32_vec(), vec![0.0; 3]);
    }

    #[test]
    fn mx_fp4_and_int8_blocks_by_hand() {
        // 32 elements, amax 3 → E = floor(log2 3) − 2 = −1, scale 2⁻¹ (code 126).
        let mut v = vec![0f32; 32];
        v[0] = 3.0; // 6
        v[1] = 1.25; // 2.5 → 2 (tie to even)
        v[2] = -0.1; // −0.2 → −0
        v[3] = 0.2; // 0.4 → 0.5
        let x = f32t(&[32], &v);
        let s = QuantScheme::Mx { axis: 0 };
        let out = quantize(DType::Fp4E2M1, s, std::slice::from_ref(&x));
        assert_eq!(out[1].dtype(), DType::U8);
        assert_eq!(out[1].bytes(), &[126]);
        assert_eq!(&out[0].to_f32_vec()[..4], &[6.0, 2.0, 0.0, 0.5]);
        let d = dequantize(s, false, &out);
        assert_eq!(&d[..4], &[3.0, 1.0, 0.0, 0.25]);
        // amax 7 → E = 0; 7 saturates to 6. Second (ragged) block of 1: amax 0 → code 0.
        let mut v = vec![0f32; 33];
        v[0] = 7.0;
        let out = quantize(DType::Fp4E2M1, s, &[f32t(&[33], &v)]);
        assert_eq!(out[1].bytes(), &[127, 0]);
        assert_eq!(out[0].to_f32_vec()[0], 6.0);
        // MXINT8: amax 3 → E = 1 (emax 0); q = round(64·x/2) → 96, 40, −3.
        let out = quantize(DType::I8, s, &[f32t(&[3], &[3.0, 1.25, -0.1])]);
        assert_eq!(out[1].bytes(), &[128]);
        assert_eq!(out[0].to_i64_vec(), vec![96, 40, -3]);
        assert_eq!(dequantize(s, false, &out), vec![3.0, 1.25, -0.09375]);
        // A non-finite block gets the NaN scale.
        let out = quantize(DType::F8E4M3, s, &[f32t(&[2], &[1.0, f32::INFINITY])]);
        assert_eq!(out[1].bytes(), &[0xff]);
        assert!(dequantize(s, false, &out).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn mx_fp8_saturates_above_448() {
        // amax 500 → E = 8 − 8 = 0 and 500 > 448 → 448.
        let out = quantize(
            DType::F8E4M3,
            QuantScheme::Mx { axis: 0 },
            &[f32t(&[2], &[500.0, 1.0])],
        );
        assert_eq!(out[1].bytes(), &[127]);
        assert_eq!(out[0].to_f32_vec(), vec![448.0, 1.0]);
    }

    #[test]
    fn qmatmul_by_hand_and_errors() {
        let a = f32t(&[1, 2], &[1.0, 2.0]);
        let b = Tensor::from_i64(DType::I8, vec![2, 2], &[1, -2, 3, 4]).unwrap();
        let sb = f32t(&[2], &[0.5, 0.25]);
        let op = Op::QMatMul {
            a_scheme: None,
            b_scheme: QuantScheme::PerChannel { axis: 1 },
            out: DType::F32,
        };
        let r = eval_op(&op, &[a.clone(), b.clone(), sb.clone()], &Bindings::new()).unwrap();
        // dequant(b) = [[0.5, −0.5], [1.5, 1]] → [0.5 + 3, −0.5 + 2].
        assert_eq!(r[0].to_f32_vec(), vec![3.5, 1.5]);
        let bad = Op::QMatMul {
            a_scheme: None,
            b_scheme: QuantScheme::PerChannel { axis: 1 },
            out: DType::I32,
        };
        assert!(eval_op(&bad, &[a.clone(), b.clone(), sb.clone()], &Bindings::new()).is_err());
        let short = f32t(&[1, 3], &[1.0; 3]);
        assert!(eval_op(&op, &[short, b, sb], &Bindings::new()).is_err());
    }

    #[test]
    fn dequantize_output_dtype_and_operand_checks() {
        let q = Tensor::from_i64(DType::I8, vec![2], &[3, -1]).unwrap();
        let scale = Tensor::scalar_f32(0.1);
        let op = |out| Op::Dequantize {
            scheme: QuantScheme::PerTensor,
            has_zero_point: false,
            out,
        };
        let r = eval_op(
            &op(DType::F16),
            &[q.clone(), scale.clone()],
            &Bindings::new(),
        )
        .unwrap();
        assert_eq!(r[0].dtype(), DType::F16);
        // 0.3 is rounded to f32 first, then to f16.
        assert_eq!(
            r[0].to_f32_vec(),
            vec![half::f16::from_f32(0.3).to_f32(), -0.099975586]
        );
        assert!(
            eval_op(
                &op(DType::I32),
                &[q.clone(), scale.clone()],
                &Bindings::new()
            )
            .is_err()
        );
        let nv = Op::Dequantize {
            scheme: QuantScheme::Nvfp4 { axis: 0 },
            has_zero_point: false,
            out: DType::F32,
        };
        let bs = Tensor::from_f32(DType::F8E4M3, vec![1], &[1.0]).unwrap();
        let e = eval_op(&nv, &[q, bs, scale], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("fp4e2m1"), "{e}");
        let mx = Op::Dequantize {
            scheme: QuantScheme::Mx { axis: 0 },
            has_zero_point: false,
            out: DType::F32,
        };
        let q = Tensor::from_f32(DType::Fp4E2M1, vec![33], &[1.0; 33]).unwrap();
        let one_scale = Tensor::from_i64(DType::U8, vec![1], &[127]).unwrap();
        let e = eval_op(&mx, &[q, one_scale], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("[2]"), "{e}");
    }

    fn fill(seed: &[f32], n: usize, mul: usize) -> Vec<f32> {
        (0..n).map(|i| seed[(i * mul + 1) % seed.len()]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn int8_affine_round_trip_within_half_scale(
            rows in 1usize..4, cols in 1usize..6, group in 1u64..4, per_group in any::<bool>(),
            seed in proptest::collection::vec(-100.0f32..100.0, 16..17),
            scales in proptest::collection::vec(0.01f32..4.0, 16..17),
            zps in proptest::collection::vec(-20i64..20, 16..17),
        ) {
            let (scheme, sshape): (QuantScheme, Vec<u64>) = if per_group {
                (QuantScheme::PerGroup { axis: 1, size: group }, vec![rows as u64, (cols as u64).div_ceil(group)])
            } else {
                (QuantScheme::PerChannel { axis: 0 }, vec![rows as u64])
            };
            let ns: usize = sshape.iter().product::<u64>() as usize;
            let sv: Vec<f32> = (0..ns).map(|i| scales[i % 16]).collect();
            let zv: Vec<i64> = (0..ns).map(|i| zps[(i + 3) % 16]).collect();
            // x/scale in [−100, 100], so q − zp never saturates.
            let layout = super::Layout::new(&[rows as u64, cols as u64], &scheme).unwrap();
            let xv: Vec<f32> = fill(&seed, rows * cols, 5)
                .iter().enumerate().map(|(i, v)| v * sv[layout.scale_index(i)]).collect();
            let x = f32t(&[rows as u64, cols as u64], &xv);
            let st = f32t(&sshape, &sv);
            let zt = Tensor::from_i64(DType::I8, sshape.clone(), &zv).unwrap();
            let q = quantize(DType::I8, scheme, &[x, st.clone(), zt.clone()]).remove(0);
            let d = dequantize(scheme, true, &[q, st, zt]);
            for (i, (&x, &y)) in xv.iter().zip(&d).enumerate() {
                let s = sv[layout.scale_index(i)];
                prop_assert!((x - y).abs() <= s * (0.5 + 1e-4), "{x} → {y} (scale {s})");
            }
        }

        #[test]
        fn nvfp4_round_trip_within_block_step(
            n in 1usize..40, ts in prop_oneof![Just(1.0f32), Just(0.25f32), Just(3.0f32)],
            seed in proptest::collection::vec(prop_oneof![-100.0f32..-1.0, 1.0f32..100.0], 16..17),
        ) {
            let xv = fill(&seed, n, 3);
            let s = QuantScheme::Nvfp4 { axis: 0 };
            let out = quantize(DType::Fp4E2M1, s, &[f32t(&[n as u64], &xv), Tensor::scalar_f32(ts)]);
            prop_assert_eq!(out[1].shape(), &[(n as u64).div_ceil(16)]);
            let bs = out[1].to_f32_vec();
            let d = dequantize(s, false, &[out[0].clone(), out[1].clone(), Tensor::scalar_f32(ts)]);
            for (i, (&x, &y)) in xv.iter().zip(&d).enumerate() {
                // The largest e2m1 gap is 2 (between 4 and 6): error ≤ 1 step of s.
                let step = bs[i / 16] * ts;
                prop_assert!((x - y).abs() <= step * (1.0 + 1e-6), "{x} → {y} (s = {step})");
            }
        }

        #[test]
        fn mx_round_trip_within_element_step(
            n in 1usize..70, int8 in any::<bool>(),
            seed in proptest::collection::vec(-50.0f32..50.0, 16..17),
        ) {
            let xv = fill(&seed, n, 7);
            let s = QuantScheme::Mx { axis: 0 };
            let dtype = if int8 { DType::I8 } else { DType::Fp4E2M1 };
            let out = quantize(dtype, s, &[f32t(&[n as u64], &xv)]);
            let d = dequantize(s, false, &out);
            for (i, (&x, &y)) in xv.iter().zip(&d).enumerate() {
                let block = &xv[i / 32 * 32..((i / 32 + 1) * 32).min(n)];
                let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                let emax = if int8 { 0 } else { 2 };
                let e = if amax == 0.0 { -127 } else { floor_log2(amax) - emax };
                prop_assert_eq!(out[1].bytes()[i / 32] as i32, e + 127);
                // fp4: gaps ≤ 2·2^E, saturation (values < 8·2^E clamp to 6·2^E) < 2·2^E.
                // int8: quantum 2^E/64, saturation of 64·x/2^E < 128 at 127: ≤ 2^E/64.
                let bound = if int8 { 2f32.powi(e) / 64.0 } else { 2.0 * 2f32.powi(e) };
                prop_assert!((x - y).abs() <= bound, "{x} → {y} (E = {e})");
            }
        }

        #[test]
        fn qmatmul_equals_matmul_of_dequantized(
            m in 1usize..3, k in 1usize..40, n in 1usize..3, which in 0usize..3,
            seed in proptest::collection::vec(-4.0f32..4.0, 16..17),
        ) {
            let av = fill(&seed, m * k, 3);
            let bv = fill(&seed, k * n, 5);
            let b = f32t(&[k as u64, n as u64], &bv);
            let (b_scheme, b_ins) = match which {
                0 => {
                    let s = QuantScheme::PerChannel { axis: 1 };
                    let sc = f32t(&[n as u64], &vec![0.05; n]);
                    let q = quantize(DType::I8, s, &[b, sc.clone()]).remove(0);
                    (s, vec![q, sc])
                }
                1 => {
                    let s = QuantScheme::Nvfp4 { axis: 0 };
                    let ts = Tensor::scalar_f32(0.5);
                    let mut out = quantize(DType::Fp4E2M1, s, &[b, ts.clone()]);
                    out.push(ts);
                    (s, out)
                }
                _ => {
                    let s = QuantScheme::Mx { axis: 0 };
                    (s, quantize(DType::F8E4M3, s, &[b]))
                }
            };
            // a quantized per tensor to i8 as well, on half the cases.
            let a = f32t(&[m as u64, k as u64], &av);
            let a_scale = Tensor::scalar_f32(0.03);
            let a_q = quantize(DType::I8, QuantScheme::PerTensor, &[a.clone(), a_scale.clone()]).remove(0);
            for a_quant in [false, true] {
                let mut ins = if a_quant { vec![a_q.clone(), a_scale.clone()] } else { vec![a.clone()] };
                ins.extend(b_ins.iter().cloned());
                let op = Op::QMatMul {
                    a_scheme: a_quant.then_some(QuantScheme::PerTensor),
                    b_scheme,
                    out: DType::F32,
                };
                let r = eval_op(&op, &ins, &Bindings::new()).unwrap().remove(0);
                let deq_b = Op::Dequantize { scheme: b_scheme, has_zero_point: false, out: DType::F32 };
                let db = eval_op(&deq_b, &b_ins, &Bindings::new()).unwrap().remove(0);
                let da = if a_quant {
                    let deq_a = Op::Dequantize { scheme: QuantScheme::PerTensor, has_zero_point: false, out: DType::F32 };
                    eval_op(&deq_a, &[a_q.clone(), a_scale.clone()], &Bindings::new()).unwrap().remove(0)
                } else {
                    a.clone()
                };
                let want = eval_op(&Op::MatMul, &[da, db], &Bindings::new()).unwrap().remove(0);
                prop_assert!(r.bit_eq(&want));
            }
        }
    }
}
