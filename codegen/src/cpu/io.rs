//! Rust-side access to typed buffers for the drivers that work on f32 slices (GEMM
//! operands of other float types, attention, convolution, selective scan).

use super::helpers::{e4m3_to_f32, e5m2_to_f32};
use dqc_ir::DType;
use dqc_ir::numeric::{E2M1, E4M3, E5M2};
use half::{bf16, f16};
use std::borrow::Cow;

/// The first `numel` elements of a float buffer as f32: borrowed for f32, decoded
/// otherwise. Packed 4-bit floats are decoded too.
///
/// # Safety
/// `ptr` must address `dt.storage_bytes(numel)` readable bytes, aligned for `dt`, valid
/// for `'a`.
pub(super) unsafe fn read_f32<'a>(dt: DType, ptr: *const u8, numel: usize) -> Cow<'a, [f32]> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, dt.storage_bytes(numel)) };
    match dt {
        // SAFETY: forwarded contract (f32-aligned, numel elements).
        DType::F32 => {
            Cow::Borrowed(unsafe { std::slice::from_raw_parts(ptr.cast::<f32>(), numel) })
        }
        DType::F16 => Cow::Owned(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DType::BF16 => Cow::Owned(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DType::F8E4M3 => Cow::Owned(bytes.iter().map(|&b| e4m3_to_f32(b)).collect()),
        DType::F8E5M2 => Cow::Owned(bytes.iter().map(|&b| e5m2_to_f32(b)).collect()),
        _ => Cow::Owned(dqc_ir::numeric::decode_f32(dt, bytes, numel)),
    }
}

/// The first `numel` elements of an integer (or bool) buffer as i64.
///
/// # Safety
/// As [`read_f32`].
pub(super) unsafe fn read_i64(dt: DType, ptr: *const u8, numel: usize) -> Vec<i64> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, dt.storage_bytes(numel)) };
    dqc_ir::numeric::decode_i64(dt, bytes, numel)
}

/// Store `vals` as elements `at..at + vals.len()` of a non-packed float buffer, rounding
/// to nearest even (saturating for fp8).
///
/// # Safety
/// `ptr` must address a writable buffer of at least `at + vals.len()` elements of `dt`;
/// no other thread writes those elements concurrently.
pub(super) unsafe fn write_f32(dt: DType, ptr: *mut u8, at: usize, vals: &[f32]) {
    // SAFETY (all arms): forwarded contract.
    unsafe {
        match dt {
            DType::F32 => {
                let d = std::slice::from_raw_parts_mut(ptr.cast::<f32>().add(at), vals.len());
                d.copy_from_slice(vals);
            }
            DType::F16 => {
                let d = std::slice::from_raw_parts_mut(ptr.cast::<u16>().add(at), vals.len());
                for (o, &v) in d.iter_mut().zip(vals) {
                    *o = f16::from_f32(v).to_bits();
                }
            }
            DType::BF16 => {
                let d = std::slice::from_raw_parts_mut(ptr.cast::<u16>().add(at), vals.len());
                for (o, &v) in d.iter_mut().zip(vals) {
                    *o = bf16::from_f32(v).to_bits();
                }
            }
            DType::F8E4M3 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => {
                let fmt = match dt {
                    DType::F8E4M3 => E4M3,
                    DType::F8E5M2 => E5M2,
                    DType::F8E4M3Fnuz => dqc_ir::numeric::E4M3FNUZ,
                    _ => dqc_ir::numeric::E5M2FNUZ,
                };
                let d = std::slice::from_raw_parts_mut(ptr.add(at), vals.len());
                for (o, &v) in d.iter_mut().zip(vals) {
                    *o = fmt.encode(v, true);
                }
            }
            DType::Fp4E2M1 => {
                for (i, &v) in vals.iter().enumerate() {
                    let idx = at + i;
                    let p = ptr.add(idx / 2);
                    let code = E2M1.encode(v, true) & 0x0f;
                    *p = if idx.is_multiple_of(2) {
                        (*p & 0xf0) | code
                    } else {
                        (*p & 0x0f) | (code << 4)
                    };
                }
            }
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4 | DType::Bool => {
                let bytes = dqc_ir::numeric::encode_f32(dt, vals);
                let sz = dt.bits() / 8;
                if sz > 0 {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.add(at * sz), bytes.len());
                }
            }
        }
    }
}
