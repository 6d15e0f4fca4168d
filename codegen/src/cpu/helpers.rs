//! `extern "C"` helpers that generated code calls: transcendental functions (the hot ones —
//! exp, tanh, sigmoid, SiLU, GELU — in f32 libm precision, within a few ulp of the
//! interpreter's f64-then-round; the rest in f64 rounded once), conversions to and from
//! the 16-, 8- and 4-bit storage formats, and packed 4-bit loads and stores.
//!
//! Each helper is registered as a JIT symbol under the name [`Helper::name`] gives.

use dqc_ir::numeric::{E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ};
use half::f16;
use std::sync::LazyLock;

/// Value types of helper parameters and results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ty {
    /// 32-bit float.
    F32,
    /// 32-bit integer.
    I32,
    /// 64-bit integer (also pointers).
    I64,
}

/// Every helper generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Helper {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Erf,
    Sin,
    Cos,
    Softplus,
    GeluErf,
    GeluTanh,
    Silu,
    Pow,
    FMod,
    F16ToF32,
    F32ToF16,
    RoundF16,
    E4m3ToF32,
    F32ToE4m3,
    RoundE4m3,
    E5m2ToF32,
    F32ToE5m2,
    RoundE5m2,
    E4m3FnuzToF32,
    F32ToE4m3Fnuz,
    RoundE4m3Fnuz,
    E5m2FnuzToF32,
    F32ToE5m2Fnuz,
    RoundE5m2Fnuz,
    RoundFp4,
    LoadFp4,
    StoreFp4,
    LoadI4,
    StoreI4,
    I64ToBf16,
    IPow,
}

impl Helper {
    /// Every helper.
    pub(super) const ALL: [Helper; 35] = [
        Helper::Exp,
        Helper::Log,
        Helper::Tanh,
        Helper::Sigmoid,
        Helper::Erf,
        Helper::Sin,
        Helper::Cos,
        Helper::Softplus,
        Helper::GeluErf,
        Helper::GeluTanh,
        Helper::Silu,
        Helper::Pow,
        Helper::FMod,
        Helper::F16ToF32,
        Helper::F32ToF16,
        Helper::RoundF16,
        Helper::E4m3ToF32,
        Helper::F32ToE4m3,
        Helper::RoundE4m3,
        Helper::E5m2ToF32,
        Helper::F32ToE5m2,
        Helper::RoundE5m2,
        Helper::E4m3FnuzToF32,
        Helper::F32ToE4m3Fnuz,
        Helper::RoundE4m3Fnuz,
        Helper::E5m2FnuzToF32,
        Helper::F32ToE5m2Fnuz,
        Helper::RoundE5m2Fnuz,
        Helper::RoundFp4,
        Helper::LoadFp4,
        Helper::StoreFp4,
        Helper::LoadI4,
        Helper::StoreI4,
        Helper::I64ToBf16,
        Helper::IPow,
    ];

    /// Symbol name, parameter types, result type (if any) and address.
    pub(super) fn signature(self) -> (&'static str, &'static [Ty], Option<Ty>, *const u8) {
        use Ty::*;
        const F: &[Ty] = &[F32];
        const FF: &[Ty] = &[F32, F32];
        const I: &[Ty] = &[I32];
        const PI: &[Ty] = &[I64, I64];
        match self {
            Helper::Exp => ("dqc_exp", F, Some(F32), dqc_exp as *const u8),
            Helper::Log => ("dqc_log", F, Some(F32), dqc_log as *const u8),
            Helper::Tanh => ("dqc_tanh", F, Some(F32), dqc_tanh as *const u8),
            Helper::Sigmoid => ("dqc_sigmoid", F, Some(F32), dqc_sigmoid as *const u8),
            Helper::Erf => ("dqc_erf", F, Some(F32), dqc_erf as *const u8),
            Helper::Sin => ("dqc_sin", F, Some(F32), dqc_sin as *const u8),
            Helper::Cos => ("dqc_cos", F, Some(F32), dqc_cos as *const u8),
            Helper::Softplus => ("dqc_softplus", F, Some(F32), dqc_softplus as *const u8),
            Helper::GeluErf => ("dqc_gelu_erf", F, Some(F32), dqc_gelu_erf as *const u8),
            Helper::GeluTanh => ("dqc_gelu_tanh", F, Some(F32), dqc_gelu_tanh as *const u8),
            Helper::Silu => ("dqc_silu", F, Some(F32), dqc_silu as *const u8),
            Helper::Pow => ("dqc_pow", FF, Some(F32), dqc_pow as *const u8),
            Helper::FMod => ("dqc_fmod", FF, Some(F32), dqc_fmod as *const u8),
            Helper::F16ToF32 => ("dqc_f16_to_f32", I, Some(F32), dqc_f16_to_f32 as *const u8),
            Helper::F32ToF16 => ("dqc_f32_to_f16", F, Some(I32), dqc_f32_to_f16 as *const u8),
            Helper::RoundF16 => ("dqc_round_f16", F, Some(F32), dqc_round_f16 as *const u8),
            Helper::E4m3ToF32 => (
                "dqc_e4m3_to_f32",
                I,
                Some(F32),
                dqc_e4m3_to_f32 as *const u8,
            ),
            Helper::F32ToE4m3 => (
                "dqc_f32_to_e4m3",
                F,
                Some(I32),
                dqc_f32_to_e4m3 as *const u8,
            ),
            Helper::RoundE4m3 => ("dqc_round_e4m3", F, Some(F32), dqc_round_e4m3 as *const u8),
            Helper::E5m2ToF32 => (
                "dqc_e5m2_to_f32",
                I,
                Some(F32),
                dqc_e5m2_to_f32 as *const u8,
            ),
            Helper::F32ToE5m2 => (
                "dqc_f32_to_e5m2",
                F,
                Some(I32),
                dqc_f32_to_e5m2 as *const u8,
            ),
            Helper::RoundE5m2 => ("dqc_round_e5m2", F, Some(F32), dqc_round_e5m2 as *const u8),
            Helper::E4m3FnuzToF32 => (
                "dqc_e4m3fnuz_to_f32",
                I,
                Some(F32),
                dqc_e4m3fnuz_to_f32 as *const u8,
            ),
            Helper::F32ToE4m3Fnuz => (
                "dqc_f32_to_e4m3fnuz",
                F,
                Some(I32),
                dqc_f32_to_e4m3fnuz as *const u8,
            ),
            Helper::RoundE4m3Fnuz => (
                "dqc_round_e4m3fnuz",
                F,
                Some(F32),
                dqc_round_e4m3fnuz as *const u8,
            ),
            Helper::E5m2FnuzToF32 => (
                "dqc_e5m2fnuz_to_f32",
                I,
                Some(F32),
                dqc_e5m2fnuz_to_f32 as *const u8,
            ),
            Helper::F32ToE5m2Fnuz => (
                "dqc_f32_to_e5m2fnuz",
                F,
                Some(I32),
                dqc_f32_to_e5m2fnuz as *const u8,
            ),
            Helper::RoundE5m2Fnuz => (
                "dqc_round_e5m2fnuz",
                F,
                Some(F32),
                dqc_round_e5m2fnuz as *const u8,
            ),
            Helper::RoundFp4 => ("dqc_round_fp4", F, Some(F32), dqc_round_fp4 as *const u8),
            Helper::LoadFp4 => ("dqc_load_fp4", PI, Some(F32), dqc_load_fp4 as *const u8),
            Helper::StoreFp4 => (
                "dqc_store_fp4",
                &[I64, I64, F32],
                None,
                dqc_store_fp4 as *const u8,
            ),
            Helper::LoadI4 => ("dqc_load_i4", PI, Some(I64), dqc_load_i4 as *const u8),
            Helper::StoreI4 => (
                "dqc_store_i4",
                &[I64, I64, I64],
                None,
                dqc_store_i4 as *const u8,
            ),
            Helper::IPow => ("dqc_ipow", &[I64, I64], Some(I64), dqc_ipow as *const u8),
            Helper::I64ToBf16 => (
                "dqc_i64_to_bf16",
                &[I64],
                Some(F32),
                dqc_i64_to_bf16 as *const u8,
            ),
        }
    }
}

/// `1/(1+e^-x)` without overflow.
pub(super) fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1+e^x)` without overflow.
pub(super) fn softplus64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1/(1+e^-x)` in f32 without overflow.
pub(super) fn sigmoid32(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

extern "C" fn dqc_exp(x: f32) -> f32 {
    x.exp()
}
extern "C" fn dqc_log(x: f32) -> f32 {
    f64::from(x).ln() as f32
}
extern "C" fn dqc_tanh(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn dqc_sigmoid(x: f32) -> f32 {
    sigmoid32(x)
}
extern "C" fn dqc_erf(x: f32) -> f32 {
    libm::erf(f64::from(x)) as f32
}
extern "C" fn dqc_sin(x: f32) -> f32 {
    f64::from(x).sin() as f32
}
extern "C" fn dqc_cos(x: f32) -> f32 {
    f64::from(x).cos() as f32
}
extern "C" fn dqc_softplus(x: f32) -> f32 {
    softplus64(f64::from(x)) as f32
}
extern "C" fn dqc_gelu_erf(x: f32) -> f32 {
    0.5 * x * libm::erfcf(-x * std::f32::consts::FRAC_1_SQRT_2)
}
extern "C" fn dqc_gelu_tanh(x: f32) -> f32 {
    // 0.5·x·(1 + tanh(u)) = x·sigmoid(2u), without cancellation for negative x
    const K: f32 = 0.797_884_6; // √(2/π)
    let u = K * (x + 0.044_715 * x * x * x);
    x * sigmoid32(2.0 * u)
}
extern "C" fn dqc_silu(x: f32) -> f32 {
    x * sigmoid32(x)
}
extern "C" fn dqc_pow(x: f32, y: f32) -> f32 {
    f64::from(x).powf(f64::from(y)) as f32
}
extern "C" fn dqc_fmod(x: f32, y: f32) -> f32 {
    let r = x % y;
    if r != 0.0 && (r < 0.0) != (y < 0.0) {
        r + y
    } else {
        r
    }
}
extern "C" fn dqc_f16_to_f32(bits: i32) -> f32 {
    f16::from_bits(bits as u16).to_f32()
}
extern "C" fn dqc_f32_to_f16(x: f32) -> i32 {
    i32::from(f16::from_f32(x).to_bits())
}
extern "C" fn dqc_round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

static E4M3_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| decode_table(|b| E4M3.decode(b)));
static E5M2_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| decode_table(|b| E5M2.decode(b)));
static E2M1_TABLE: LazyLock<[f32; 16]> = LazyLock::new(|| {
    let mut t = [0f32; 16];
    for (i, v) in t.iter_mut().enumerate() {
        *v = E2M1.decode(i as u8);
    }
    t
});

fn decode_table(f: impl Fn(u8) -> f32) -> [f32; 256] {
    let mut t = [0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = f(i as u8);
    }
    t
}

/// f32 value of an f8e4m3 code.
pub(super) fn e4m3_to_f32(bits: u8) -> f32 {
    E4M3_TABLE[usize::from(bits)]
}
/// f32 value of an f8e5m2 code.
pub(super) fn e5m2_to_f32(bits: u8) -> f32 {
    E5M2_TABLE[usize::from(bits)]
}

extern "C" fn dqc_e4m3_to_f32(bits: i32) -> f32 {
    e4m3_to_f32(bits as u8)
}
extern "C" fn dqc_f32_to_e4m3(x: f32) -> i32 {
    i32::from(E4M3.encode(x, true))
}
extern "C" fn dqc_round_e4m3(x: f32) -> f32 {
    e4m3_to_f32(E4M3.encode(x, true))
}
extern "C" fn dqc_e5m2_to_f32(bits: i32) -> f32 {
    e5m2_to_f32(bits as u8)
}
/// Stores an already rounded value: ±inf is a value of f8e5m2 and stays one (rounding
/// arithmetic results saturates, see [`dqc_round_e5m2`]).
extern "C" fn dqc_f32_to_e5m2(x: f32) -> i32 {
    i32::from(E5M2.encode(x, false))
}
extern "C" fn dqc_round_e5m2(x: f32) -> f32 {
    e5m2_to_f32(E5M2.encode(x, true))
}
extern "C" fn dqc_e4m3fnuz_to_f32(bits: i32) -> f32 {
    E4M3FNUZ.decode(bits as u8)
}
extern "C" fn dqc_f32_to_e4m3fnuz(x: f32) -> i32 {
    i32::from(E4M3FNUZ.encode(x, true))
}
extern "C" fn dqc_round_e4m3fnuz(x: f32) -> f32 {
    E4M3FNUZ.decode(E4M3FNUZ.encode(x, true))
}
extern "C" fn dqc_e5m2fnuz_to_f32(bits: i32) -> f32 {
    E5M2FNUZ.decode(bits as u8)
}
extern "C" fn dqc_f32_to_e5m2fnuz(x: f32) -> i32 {
    i32::from(E5M2FNUZ.encode(x, true))
}
extern "C" fn dqc_round_e5m2fnuz(x: f32) -> f32 {
    E5M2FNUZ.decode(E5M2FNUZ.encode(x, true))
}
extern "C" fn dqc_round_fp4(x: f32) -> f32 {
    E2M1_TABLE[usize::from(E2M1.encode(x, true) & 0x0f)]
}

/// The 4-bit code of element `idx` of packed bytes at `ptr`.
///
/// # Safety
/// `ptr` must address at least `idx / 2 + 1` bytes.
unsafe fn nibble_at(ptr: i64, idx: i64) -> u8 {
    // SAFETY: the caller (generated code, bounds-checked at compile time) guarantees it.
    let b = unsafe { *(ptr as *const u8).add((idx >> 1) as usize) };
    if idx & 1 == 0 { b & 0x0f } else { b >> 4 }
}

/// Replace the 4-bit code of element `idx` of packed bytes at `ptr`.
///
/// # Safety
/// `ptr` must address at least `idx / 2 + 1` writable bytes; no other thread may write the
/// same byte concurrently (the drivers split work at even element boundaries).
unsafe fn set_nibble(ptr: i64, idx: i64, code: u8) {
    // SAFETY: as above.
    let p = unsafe { (ptr as *mut u8).add((idx >> 1) as usize) };
    // SAFETY: as above.
    unsafe {
        let b = *p;
        *p = if idx & 1 == 0 {
            (b & 0xf0) | (code & 0x0f)
        } else {
            (b & 0x0f) | (code << 4)
        };
    }
}

unsafe extern "C" fn dqc_load_fp4(ptr: i64, idx: i64) -> f32 {
    // SAFETY: see `nibble_at`.
    E2M1_TABLE[usize::from(unsafe { nibble_at(ptr, idx) })]
}
unsafe extern "C" fn dqc_store_fp4(ptr: i64, idx: i64, x: f32) {
    // SAFETY: see `set_nibble`.
    unsafe { set_nibble(ptr, idx, E2M1.encode(x, true)) }
}
unsafe extern "C" fn dqc_load_i4(ptr: i64, idx: i64) -> i64 {
    // SAFETY: see `nibble_at`.
    let n = unsafe { nibble_at(ptr, idx) };
    i64::from(((n << 4) as i8) >> 4)
}
unsafe extern "C" fn dqc_store_i4(ptr: i64, idx: i64, v: i64) {
    // SAFETY: see `set_nibble`.
    unsafe { set_nibble(ptr, idx, (v.clamp(-8, 7) as i8 as u8) & 0x0f) }
}

/// `x^y` on integers with wrapping multiplication; a negative exponent gives the truncated
/// `1/x^|y|` (generated code refuses `0^negative` before calling).
extern "C" fn dqc_ipow(x: i64, y: i64) -> i64 {
    if y < 0 {
        return match x {
            1 => 1,
            -1 => {
                if y % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let (mut base, mut e, mut acc) = (x, y as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

/// `v` rounded once to bf16's 8 significant bits (ties to even), as an exact f32.
extern "C" fn dqc_i64_to_bf16(v: i64) -> f32 {
    let a = v.unsigned_abs();
    let len = u64::BITS - a.leading_zeros();
    let bits = 8;
    let mag = if len <= bits {
        a as f32
    } else {
        let shift = len - bits;
        let (q, rem, half) = (a >> shift, a & ((1u64 << shift) - 1), 1u64 << (shift - 1));
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        q as f32 * 2f32.powi(shift as i32)
    };
    if v < 0 { -mag } else { mag }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_from_int_rounds_once() {
        assert_eq!(dqc_i64_to_bf16((1 << 32) + (1 << 24) + 1), 4_328_521_728.0);
        assert_eq!(dqc_i64_to_bf16(-3), -3.0);
    }

    #[test]
    fn packed_nibbles_round_trip() {
        let mut bytes = [0u8; 2];
        let p = bytes.as_mut_ptr() as i64;
        // SAFETY: indices 0..4 address the two bytes.
        unsafe {
            dqc_store_i4(p, 1, -3);
            dqc_store_i4(p, 2, 9);
            assert_eq!(dqc_load_i4(p, 1), -3);
            assert_eq!(dqc_load_i4(p, 2), 7);
            assert_eq!(dqc_load_i4(p, 0), 0);
            dqc_store_fp4(p, 3, 5.0);
            assert_eq!(dqc_load_fp4(p, 3), 4.0);
        }
    }
}
