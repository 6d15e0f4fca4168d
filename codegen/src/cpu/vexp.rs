//! `e^x` for the Rust-side kernels (softmax, activations on GEMM blocks): `x = n·ln2 + r`
//! with `|r| ≤ ln2/2` (`n` by the 1.5·2²³ rounding trick, no float-to-int conversion),
//! `e^r = 1 + r + r²·P(r)` with a cubic `P` fitted for relative error (2e-7 in f32), and
//! `2^n` built in the exponent bits. The argument must be at least [`FLOOR`] (callers clamp
//! or zero below it, as each needs): f32 results below it would be subnormal, which is slow
//! and loses precision. NaN propagates.

/// The smallest argument: `e^FLOOR ≈ 1.2e-38` is still a normal f32.
pub(super) const FLOOR: f32 = -87.3;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so `n·LN2_HI` is exact for every `n` that occurs (|n| ≤ 126).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
/// `P(r) = c0 + c1·r + c2·r² + c3·r³` (a minimax fit; Taylor's would be 1/2, 1/6, 1/24,
/// 1/120).
const POLY: [f32; 4] = [0.499_992_3, 0.166_671_14, 4.189_009_6e-2, 8.312_506e-3];

/// `e^x` for `FLOOR ≤ x ≤ 88` (or NaN), without fused multiply-adds (Cody–Waite's two-part
/// `ln 2` keeps the reduction exact).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let e = x * LOG2E + MAGIC;
    let n = e - MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let r2 = r * r;
    let p = (POLY[0] + POLY[1] * r) + r2 * (POLY[2] + POLY[3] * r);
    let scale = f32::from_bits(e.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    ((1.0 + r) + r2 * p) * scale
}

/// [`exp`] on eight lanes with fused multiply-adds: the reduction takes `ln 2` as one
/// constant (the product `n·ln2` is exact inside the multiply-add), so results differ from
/// [`exp`]'s in the last bit or two.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let set = _mm256_set1_ps;
    let e = _mm256_fmadd_ps(x, set(LOG2E), set(MAGIC));
    let n = _mm256_sub_ps(e, set(MAGIC));
    let r = _mm256_fnmadd_ps(n, set(std::f32::consts::LN_2), x);
    let r2 = _mm256_mul_ps(r, r);
    let p01 = _mm256_fmadd_ps(set(POLY[1]), r, set(POLY[0]));
    let p23 = _mm256_fmadd_ps(set(POLY[3]), r, set(POLY[2]));
    let p = _mm256_fmadd_ps(r2, p23, p01);
    let y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, set(1.0)));
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_castps_si256(e),
        _mm256_set1_epi32(127i32.wrapping_sub(MAGIC.to_bits() as i32)),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(bits))
}

#[cfg(test)]
mod tests {
    use super::{FLOOR, exp};

    #[test]
    fn exp_is_accurate_from_the_floor_to_88() {
        let mut worst = 0f64;
        let mut x = FLOOR;
        while x <= 88.0 {
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / want);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA.
                let got = unsafe {
                    use std::arch::x86_64::*;
                    let mut out = [0f32; 8];
                    _mm256_storeu_ps(out.as_mut_ptr(), super::exp8(_mm256_set1_ps(x)));
                    out[3]
                };
                worst = worst.max((f64::from(got) - want).abs() / want);
            }
            x += 0.001_37;
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }
}
