//! Element types, including the low-bit formats that quantized layers use.
//!
//! Conversions between these formats and `f32` live in [`crate::numeric`]; this file only
//! describes each type: its name in the text format, its width and how it is stored.

use std::fmt;
use std::str::FromStr;

/// The element type of a tensor.
///
/// Sub-byte types (`I4`, `Fp4E2M1`) are packed two per byte: element `2k` in the low
/// nibble of byte `k`, element `2k+1` in the high nibble (the ONNX and PTX convention).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16: the upper half of an f32.
    BF16,
    /// OCP FP8 E4M3 "fn": finite only, max ±448, NaN = S.1111.111, no infinities.
    F8E4M3,
    /// OCP FP8 E5M2: IEEE-like, max ±57344, has infinities and NaNs.
    F8E5M2,
    /// FP8 E4M3 "fnuz" (AMD/Graphcore): bias 8, max ±240, `0x80` is the only NaN, no
    /// negative zero, no infinities.
    F8E4M3Fnuz,
    /// FP8 E5M2 "fnuz": bias 16, max ±57344, `0x80` is the only NaN, no negative zero, no
    /// infinities.
    F8E5M2Fnuz,
    /// Signed 64-bit integer (shapes, indices).
    I64,
    /// Signed 32-bit integer (integer GEMM accumulators).
    I32,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer (also the storage of E8M0 scales).
    U8,
    /// Signed 4-bit integer in [-8, 7], packed two per byte.
    I4,
    /// FP4 E2M1 (value set ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}), packed two per byte; the element
    /// type of NVFP4 and MXFP4.
    Fp4E2M1,
    /// Boolean, one byte per element (0 or 1).
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 14] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E4M3Fnuz,
        DType::F8E5M2Fnuz,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::I4,
        DType::Fp4E2M1,
        DType::Bool,
    ];

    /// The name used by the text format (`f32`, `f8e4m3`, `fp4e2m1`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F8E4M3 => "f8e4m3",
            DType::F8E5M2 => "f8e5m2",
            DType::F8E4M3Fnuz => "f8e4m3fnuz",
            DType::F8E5M2Fnuz => "f8e5m2fnuz",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I4 => "i4",
            DType::Fp4E2M1 => "fp4e2m1",
            DType::Bool => "bool",
        }
    }

    /// Width of one element in bits.
    pub fn bits(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 32,
            DType::F16 | DType::BF16 => 16,
            DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::I8
            | DType::U8
            | DType::Bool => 8,
            DType::I64 => 64,
            DType::I4 | DType::Fp4E2M1 => 4,
        }
    }

    /// True for types stored two elements per byte.
    pub fn is_packed(self) -> bool {
        self.bits() < 8
    }

    /// Bytes needed to store `numel` elements (packed types round up to whole bytes).
    pub fn storage_bytes(self, numel: usize) -> usize {
        if self.is_packed() {
            numel.div_ceil(2)
        } else {
            numel * (self.bits() / 8)
        }
    }

    /// Floating-point types, including the 8- and 4-bit ones.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F32
                | DType::F16
                | DType::BF16
                | DType::F8E4M3
                | DType::F8E5M2
                | DType::F8E4M3Fnuz
                | DType::F8E5M2Fnuz
                | DType::Fp4E2M1
        )
    }

    /// Integer types (not bool).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4
        )
    }

    /// Types that only quantized tensors use (8-bit and 4-bit formats, not `u8`/`i8`).
    pub fn is_low_precision_float(self) -> bool {
        matches!(
            self,
            DType::F8E4M3 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz | DType::Fp4E2M1
        )
    }

    /// Smallest and largest value an integer type holds, as i64.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            DType::I64 => Some((i64::MIN, i64::MAX)),
            DType::I32 => Some((i32::MIN as i64, i32::MAX as i64)),
            DType::I8 => Some((-128, 127)),
            DType::U8 => Some((0, 255)),
            DType::I4 => Some((-8, 7)),
            DType::Bool => Some((0, 1)),
            DType::F32
            | DType::F16
            | DType::BF16
            | DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::Fp4E2M1 => None,
        }
    }

    /// Largest finite value of a float type.
    pub fn float_max(self) -> Option<f32> {
        match self {
            DType::F32 => Some(f32::MAX),
            DType::F16 => Some(65504.0),
            DType::BF16 => Some(3.389_531_4e38),
            DType::F8E4M3 => Some(448.0),
            DType::F8E5M2 => Some(57344.0),
            DType::F8E4M3Fnuz => Some(240.0),
            DType::F8E5M2Fnuz => Some(57344.0),
            DType::Fp4E2M1 => Some(6.0),
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4 | DType::Bool => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a dtype name that is not one of [`DType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown dtype `{0}` (expected one of f32, f16, bf16, f8e4m3, f8e5m2, i64, i32, i8, u8, i4, fp4e2m1, bool)"
)]
pub struct UnknownDType(pub String);

impl FromStr for DType {
    type Err = UnknownDType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DType::ALL
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert!("f64".parse::<DType>().is_err());
    }

    #[test]
    fn packed_storage_rounds_up() {
        assert_eq!(DType::I4.storage_bytes(3), 2);
        assert_eq!(DType::Fp4E2M1.storage_bytes(4), 2);
        assert_eq!(DType::F32.storage_bytes(3), 12);
        assert_eq!(DType::Bool.storage_bytes(3), 3);
    }
}
