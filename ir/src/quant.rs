//! How a quantized tensor maps back to real numbers.
//!
//! A quantized tensor `q` of a low-precision dtype is paired with scale (and optionally
//! zero-point) tensors that are ordinary values of the graph. The real value of element `i`
//! is `(q[i] - zero_point[g(i)]) * scale[g(i)]`, where `g` picks the scale that governs the
//! element according to the scheme:
//!
//! | scheme | scale shape (for `x: [d0, …, dn]`) | scale dtype |
//! |---|---|---|
//! | `PerTensor` | `[]` | f32 |
//! | `PerChannel { axis }` | `[d_axis]` | f32 |
//! | `PerGroup { axis, size }` | `x`'s shape with `d_axis` replaced by `ceil(d_axis / size)` | f32 |
//! | `Nvfp4 { axis }` | block scales: `x`'s shape with `d_axis → ceil(d_axis/16)`, f8e4m3; plus a per-tensor f32 scale `[]` | f8e4m3 + f32 |
//! | `Mx { axis }` | `x`'s shape with `d_axis → ceil(d_axis/32)`, E8M0 stored as u8 | u8 |
//!
//! Zero points are allowed for the integer element types with the affine schemes
//! (`PerTensor`, `PerChannel`, `PerGroup`); they have the scale's shape and the element's
//! dtype.

use std::fmt;

/// Block size of NVFP4 (elements per f8e4m3 scale).
pub const NVFP4_BLOCK: u64 = 16;
/// Block size of the OCP MX formats (elements per E8M0 scale).
pub const MX_BLOCK: u64 = 32;

/// A quantization scheme: which scale governs which element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum QuantScheme {
    /// One scale for the whole tensor.
    PerTensor,
    /// One scale per index along `axis`.
    PerChannel {
        /// The channel axis (may be negative).
        axis: i64,
    },
    /// One scale per `size` consecutive elements along `axis`.
    PerGroup {
        /// The grouped axis (may be negative).
        axis: i64,
        /// Elements per group.
        size: u64,
    },
    /// NVFP4: fp4e2m1 elements, one f8e4m3 scale per 16 elements along `axis`, and one f32
    /// per-tensor scale: `x = q * block_scale * tensor_scale`.
    Nvfp4 {
        /// The blocked axis (may be negative; usually the reduction axis of a GEMM).
        axis: i64,
    },
    /// OCP MX: one E8M0 (power of two) scale per 32 elements along `axis`.
    Mx {
        /// The blocked axis (may be negative).
        axis: i64,
    },
}

impl QuantScheme {
    /// Number of consecutive elements along the scheme's axis that share one scale
    /// (`None` for per-tensor and per-channel).
    pub fn block_size(&self) -> Option<u64> {
        match self {
            QuantScheme::PerTensor | QuantScheme::PerChannel { .. } => None,
            QuantScheme::PerGroup { size, .. } => Some(*size),
            QuantScheme::Nvfp4 { .. } => Some(NVFP4_BLOCK),
            QuantScheme::Mx { .. } => Some(MX_BLOCK),
        }
    }

    /// The axis the scheme indexes, if any.
    pub fn axis(&self) -> Option<i64> {
        match self {
            QuantScheme::PerTensor => None,
            QuantScheme::PerChannel { axis }
            | QuantScheme::PerGroup { axis, .. }
            | QuantScheme::Nvfp4 { axis }
            | QuantScheme::Mx { axis } => Some(*axis),
        }
    }

    /// True for schemes whose scales may be paired with a zero point.
    pub fn allows_zero_point(&self) -> bool {
        matches!(
            self,
            QuantScheme::PerTensor | QuantScheme::PerChannel { .. } | QuantScheme::PerGroup { .. }
        )
    }
}

impl fmt::Display for QuantScheme {
    /// The text-format spelling: `per_tensor`, `per_channel(axis = 0)`,
    /// `per_group(axis = 1, size = 64)`, `nvfp4(axis = -1)`, `mx(axis = -1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantScheme::PerTensor => f.write_str("per_tensor"),
            QuantScheme::PerChannel { axis } => write!(f, "per_channel(axis = {axis})"),
            QuantScheme::PerGroup { axis, size } => {
                write!(f, "per_group(axis = {axis}, size = {size})")
            }
            QuantScheme::Nvfp4 { axis } => write!(f, "nvfp4(axis = {axis})"),
            QuantScheme::Mx { axis } => write!(f, "mx(axis = {axis})"),
        }
    }
}
