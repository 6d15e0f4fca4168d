//! Shared helpers of the interpreter: shapes and strides, index iteration, broadcasting,
//! element encodings (for bit-exact data movement), dtype checks and the error function.
//!
//! Everything here works on concrete (`u64`/`usize`) extents of tensors that already exist,
//! so element counts are known to fit in memory; helpers that build a *new* shape check
//! its size with [`checked_numel`].

use super::{InterpError, op_err};
use crate::DType;
use crate::numeric::nibble;
use crate::tensor::{Tensor, checked_numel};

/// Row-major (C order) strides of `shape`, in elements.
pub(super) fn strides(shape: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Product of the extents of `shape` (1 for a scalar). The caller guarantees the shape
/// belongs to an existing tensor or was checked with [`checked_numel`].
pub(super) fn numel(shape: &[u64]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}

/// Element count of a shape the op is about to create; errors if it cannot fit in memory.
pub(super) fn new_numel(shape: &[u64]) -> Result<usize, InterpError> {
    Ok(checked_numel(shape)?)
}

/// Resolve a possibly negative `axis` against `rank`, or an error naming `what`
/// (e.g. `"softmax axis"`), the axis and the rank.
pub(super) fn norm_axis(axis: i64, rank: usize, what: &str) -> Result<usize, InterpError> {
    crate::shape::normalize_axis(axis, rank).ok_or_else(|| {
        op_err(format!(
            "{what} {axis} is out of range for rank {rank} (expected -{rank}..{rank})"
        ))
    })
}

/// Call `f` with every multi-index of `shape` in row-major order (the last axis fastest).
/// A shape with a zero extent has no indices; a scalar has exactly one (the empty index).
pub(super) fn for_each_index(shape: &[u64], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            if (idx[axis] as u64) < shape[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Numpy broadcast of two concrete shapes (align from the right; an extent of 1
/// stretches). Errors name both shapes.
pub(super) fn broadcast_shapes(a: &[u64], b: &[u64]) -> Result<Vec<u64>, InterpError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0u64; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = (i + a.len()).checked_sub(rank).map_or(1, |j| a[j]);
        let db = (i + b.len()).checked_sub(rank).map_or(1, |j| b[j]);
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(op_err(format!(
                "shapes {a:?} and {b:?} do not broadcast (axis {i} of the aligned result: {da} vs {db})"
            )));
        };
    }
    Ok(out)
}

/// For a tensor of shape `from` broadcast to `to` (numpy rules, `from` aligned right), the
/// flat source index of every output element in row-major order. Errors if `from` does
/// not broadcast to `to` (an extent must equal the target's or be 1).
pub(super) fn broadcast_map(from: &[u64], to: &[u64]) -> Result<Vec<usize>, InterpError> {
    if from.len() > to.len() {
        return Err(op_err(format!(
            "shape {from:?} cannot broadcast to lower-rank shape {to:?}"
        )));
    }
    let offset = to.len() - from.len();
    let src_strides = strides(from);
    let mut eff = vec![0usize; to.len()];
    for (j, &d) in from.iter().enumerate() {
        let t = to[offset + j];
        if d == t {
            eff[offset + j] = src_strides[j];
        } else if d != 1 {
            return Err(op_err(format!(
                "shape {from:?} does not broadcast to {to:?} (axis {j}: {d} vs {t})"
            )));
        }
    }
    let mut map = Vec::with_capacity(new_numel(to)?);
    for_each_index(to, |idx| {
        map.push(idx.iter().zip(&eff).map(|(i, s)| i * s).sum());
    });
    Ok(map)
}

/// The encoding of every element as an integer code (the element's raw bits: a nibble for
/// packed types, little-endian bytes otherwise). Moving codes preserves every bit pattern
/// (NaN payloads, i64 beyond 2^53, packed nibbles).
pub(super) fn codes(t: &Tensor) -> Vec<u64> {
    let n = t.numel();
    let bytes = t.bytes();
    if t.dtype().is_packed() {
        return (0..n).map(|i| u64::from(nibble(bytes, i))).collect();
    }
    let w = t.dtype().bits() / 8;
    bytes
        .chunks_exact(w)
        .take(n)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        })
        .collect()
}

/// Build a tensor from element codes as produced by [`codes`] (inverse of it).
pub(super) fn from_codes(
    dtype: DType,
    shape: Vec<u64>,
    codes: &[u64],
) -> Result<Tensor, InterpError> {
    let n = new_numel(&shape)?;
    if n != codes.len() {
        return Err(op_err(format!(
            "internal: {} element codes for shape {shape:?} ({n} elements)",
            codes.len()
        )));
    }
    let bytes: Vec<u8> = if dtype.is_packed() {
        let mut out = vec![0u8; dtype.storage_bytes(n)];
        for (i, &c) in codes.iter().enumerate() {
            let nib = (c & 0x0f) as u8;
            out[i / 2] |= if i % 2 == 0 { nib } else { nib << 4 };
        }
        out
    } else {
        let w = dtype.bits() / 8;
        codes
            .iter()
            .flat_map(|&c| c.to_le_bytes().into_iter().take(w))
            .collect()
    };
    Ok(Tensor::from_bytes(dtype, shape, bytes.into())?)
}

/// A tensor of shape `shape` whose element `i` is element `src[i]` of `t`, copied bit for
/// bit. Errors if an index is out of range (an internal inconsistency).
pub(super) fn take_elements(
    t: &Tensor,
    src: &[usize],
    shape: Vec<u64>,
) -> Result<Tensor, InterpError> {
    let c = codes(t);
    let picked = src
        .iter()
        .map(|&i| {
            c.get(i).copied().ok_or_else(|| {
                op_err(format!(
                    "internal: element {i} of a tensor with {} elements",
                    c.len()
                ))
            })
        })
        .collect::<Result<Vec<u64>, _>>()?;
    from_codes(t.dtype(), shape, &picked)
}

/// The encoding of `value` in `dtype` as an element code (rounded and saturated as
/// [`Tensor::from_f32`] does).
pub(super) fn code_of_f32(dtype: DType, value: f32) -> Result<u64, InterpError> {
    let t = Tensor::from_f32(dtype, vec![1], &[value])?;
    codes(&t)
        .first()
        .copied()
        .ok_or_else(|| op_err("internal: empty one-element tensor"))
}

/// Error unless `t` has a float dtype; `what` names the operand (e.g. `"layer_norm x"`).
pub(super) fn require_float(t: &Tensor, what: &str) -> Result<(), InterpError> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what} must have a float dtype, got {}",
            t.dtype()
        )))
    }
}

/// Error unless `a` and `b` have the same dtype.
pub(super) fn require_same_dtype(a: &Tensor, b: &Tensor, what: &str) -> Result<(), InterpError> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: operands must have the same dtype, got {} and {}",
            a.dtype(),
            b.dtype()
        )))
    }
}

/// Error unless `t` has exactly shape `expected`.
pub(super) fn require_shape(t: &Tensor, expected: &[u64], what: &str) -> Result<(), InterpError> {
    if t.shape() == expected {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what} must have shape {}, got {}",
            shape_str(expected),
            shape_str(t.shape())
        )))
    }
}

/// `[2,3,4]`-style rendering of a static shape for error messages.
pub(super) fn shape_str(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// Advance the multi-index `idx` over `shape` in row-major order; false once it wraps
/// around (all indices visited). An empty shape has a single index, so this returns false.
pub(super) fn next_index(idx: &mut [usize], shape: &[u64]) -> bool {
    for i in (0..idx.len()).rev() {
        idx[i] += 1;
        if (idx[i] as u64) < shape[i] {
            return true;
        }
        idx[i] = 0;
    }
    false
}

/// True if `from` broadcasts to exactly `to` (one-directional numpy rule).
pub(super) fn broadcasts_to(from: &[u64], to: &[u64]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// Flat offset into an operand of shape `shape` (row-major, strides `st`) of the element
/// that a broadcast output multi-index `idx` reads. `shape` is right-aligned with `idx`
/// and must broadcast to the output's shape.
pub(super) fn broadcast_offset(idx: &[usize], shape: &[u64], st: &[usize]) -> usize {
    let lead = idx.len() - shape.len();
    shape
        .iter()
        .zip(st)
        .zip(&idx[lead..])
        .map(|((&d, &s), &i)| if d == 1 { 0 } else { i * s })
        .sum()
}

/// Refuse an operand whose dtype differs from `expected`.
pub(super) fn require_dtype(t: &Tensor, expected: DType, what: &str) -> Result<(), InterpError> {
    if t.dtype() == expected {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected dtype {expected}, got {}",
            t.dtype()
        )))
    }
}

/// Refuse an operand whose rank differs from `rank`.
pub(super) fn require_rank(t: &Tensor, rank: usize, what: &str) -> Result<(), InterpError> {
    if t.shape().len() == rank {
        Ok(())
    } else {
        Err(op_err(format!(
            "{what}: expected rank {rank}, got shape {}",
            shape_str(t.shape())
        )))
    }
}

/// Every element of a tensor as f64 (through its exact f32 decoding).
pub(super) fn values_f64(t: &Tensor) -> Vec<f64> {
    t.to_f32_vec().into_iter().map(f64::from).collect()
}

/// Wrap an integer to the width of `dtype` (two's complement; `u8` modulo 256; `i4` to
/// [-8, 7]; bool to 0/1 as `v != 0`). Float dtypes leave `v` unchanged.
pub(super) fn wrap_int(v: i64, dtype: DType) -> i64 {
    match dtype {
        DType::I64 => v,
        DType::I32 => i64::from(v as i32),
        DType::I8 => i64::from(v as i8),
        DType::U8 => i64::from(v as u8),
        DType::I4 => i64::from(((v as u8) << 4) as i8 >> 4),
        DType::Bool => i64::from(v != 0),
        DType::F32
        | DType::F16
        | DType::BF16
        | DType::F8E4M3
        | DType::F8E5M2
        | DType::F8E4M3Fnuz
        | DType::F8E5M2Fnuz
        | DType::Fp4E2M1 => v,
    }
}

/// Encode f64 results into `dtype`: each value is rounded to f32 first (the interpreter's
/// working precision), then to `dtype` with [`Tensor::from_f32`].
pub(super) fn from_f64(
    dtype: DType,
    shape: Vec<u64>,
    values: &[f64],
) -> Result<Tensor, InterpError> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_f32(dtype, shape, &v)?)
}

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// The Gauss error function `erf(x) = 2/√π ∫₀ˣ e^{-t²} dt` in f64, relative error below
/// about 1e-15 (series with positive terms for |x| < 3, continued fraction for erfc
/// beyond; tested against 30-digit reference values to 1e-14).
/// NaN propagates; `erf(±∞) = ±1`.
pub(super) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        erf_series(a)
    } else {
        1.0 - erfc_cf(a)
    };
    r.copysign(x)
}

/// The complementary error function `erfc(x) = 1 - erf(x)` in f64, accurate in relative
/// terms also where it is tiny (large positive `x`). NaN propagates.
pub(super) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= 3.0 {
        erfc_cf(x)
    } else if x > -3.0 {
        1.0 - erf(x)
    } else {
        2.0 - erfc_cf(-x)
    }
}

/// `erf(a)` for `0 ≤ a < 3`: `2/√π · e^{-a²} · Σ 2ⁿ a^{2n+1} / (1·3·…·(2n+1))`, whose terms
/// are all positive (no cancellation).
fn erf_series(a: f64) -> f64 {
    let a2 = a * a;
    let mut term = a;
    let mut sum = a;
    let mut n = 0u32;
    while n < 200 {
        n += 1;
        term *= 2.0 * a2 / f64::from(2 * n + 1);
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-a2).exp() * sum
}

/// `erfc(a)` for `a ≥ 3` by the continued fraction
/// `√π·e^{a²}·erfc(a) = 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …))))`, evaluated bottom-up.
fn erfc_cf(a: f64) -> f64 {
    if a.is_infinite() {
        return 0.0;
    }
    let mut t = a;
    for k in (1..=120u32).rev() {
        t = a + f64::from(k) / 2.0 / t;
    }
    (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn erf_known_values() {
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (-3.0, -0.9999779095030014),
            (3.5, 0.9999992569016276),
            (-0.3, -0.3286267594591112),
            (6.0, 1.0),
        ];
        for (x, e) in cases {
            assert!(close(erf(x), e, 1e-13), "erf({x}) = {} want {e}", erf(x));
        }
        assert_eq!(erf(f64::INFINITY), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn erfc_known_values_including_tails() {
        let cases = [
            (3.0, 2.209049699858544e-05),
            (4.0, 1.541725790028002e-08),
            (5.0, 1.537459794428035e-12),
            (10.0, 2.088487583762545e-45),
            (-3.0, 1.999977909503001),
            (1.0, 0.1572992070502851),
        ];
        for (x, e) in cases {
            assert!(close(erfc(x), e, 1e-11), "erfc({x}) = {} want {e}", erfc(x));
        }
        // continuity at the switch between series and continued fraction
        let below = erf(3.0 - 1e-12);
        let above = erf(3.0);
        assert!((below - above).abs() < 1e-14);
    }

    #[test]
    fn erf_matches_mpmath_around_the_switch_point() {
        // reference values from mpmath at 30 digits
        let erf_ref = [
            (0.01, 0.011_283_415_555_849_617),
            (0.9, 0.796_908_212_422_832),
            (1.7, 0.983_790_458_590_774_6),
            (2.4, 0.999_311_486_103_354_9),
            (2.9, 0.999_958_902_121_900_5),
            (2.99, 0.999_976_474_396_919_4),
            (3.01, 0.999_979_261_036_362_9),
            (3.3, 0.999_996_942_290_203_6),
            (4.2, 0.999_999_997_144_505_8),
            (5.5, 0.999_999_999_999_992_6),
        ];
        for (x, e) in erf_ref {
            assert!(close(erf(x), e, 1e-14), "erf({x}) = {} want {e}", erf(x));
        }
        let erfc_ref = [
            (2.9, 4.109_787_809_945_886e-5),
            (3.01, 2.073_896_363_713_263_4e-5),
            (4.2, 2.855_494_179_592_184_2e-9),
            (5.5, 7.357_847_917_974_398e-15),
            (7.0, 4.183_825_607_779_414e-23),
        ];
        for (x, e) in erfc_ref {
            assert!(close(erfc(x), e, 1e-10), "erfc({x}) = {} want {e}", erfc(x));
        }
    }

    #[test]
    fn codes_round_trip_every_dtype() {
        for d in DType::ALL {
            let bytes: Vec<u8> = (0..d.storage_bytes(3))
                .map(|b| (b as u8).wrapping_mul(37).wrapping_add(0x7b))
                .collect();
            let t = Tensor::from_bytes(d, vec![3], bytes.into()).unwrap();
            let back = from_codes(d, vec![3], &codes(&t)).unwrap();
            // the unused high nibble of the last packed byte is dropped
            assert_eq!(codes(&back), codes(&t), "{d}");
        }
    }

    #[test]
    fn broadcast_map_stretches_ones() {
        assert_eq!(
            broadcast_map(&[2, 1], &[2, 3]).unwrap(),
            vec![0, 0, 0, 1, 1, 1]
        );
        assert_eq!(
            broadcast_map(&[3], &[2, 3]).unwrap(),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_eq!(broadcast_map(&[], &[2]).unwrap(), vec![0, 0]);
        assert!(broadcast_map(&[2], &[3]).is_err());
        assert_eq!(broadcast_shapes(&[2, 1], &[4]).unwrap(), vec![2, 4]);
        assert!(broadcast_shapes(&[2], &[3]).is_err());
    }

    #[test]
    fn wrap_int_widths() {
        assert_eq!(wrap_int(130, DType::I8), -126);
        assert_eq!(wrap_int(-2, DType::U8), 254);
        assert_eq!(wrap_int(8, DType::I4), -8);
        assert_eq!(wrap_int(1 << 31, DType::I32), i64::from(i32::MIN));
    }
}

#[cfg(test)]
mod nd_tests {
    use super::*;

    #[test]
    fn strides_and_odometer() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        let shape = [2u64, 3];
        let mut idx = vec![0usize; 2];
        let mut seen = vec![idx.clone()];
        while next_index(&mut idx, &shape) {
            seen.push(idx.clone());
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[4], vec![1, 1]);
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Ok(vec![2, 3, 4]));
        assert!(broadcast_shapes(&[2], &[3]).is_err());
        assert!(broadcasts_to(&[1, 4], &[3, 4]));
        assert!(!broadcasts_to(&[2, 4], &[3, 4]));
        assert!(!broadcasts_to(&[1, 3, 4], &[3, 4]));
        // shape [3,1] read at output index [1,2,0] → element 2 of the first axis.
        assert_eq!(broadcast_offset(&[1, 2, 0], &[3, 1], &strides(&[3, 1])), 2);
    }
}
