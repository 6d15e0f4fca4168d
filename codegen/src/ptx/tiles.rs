//! Tile tables: block shapes per kernel family and target. The generator and the launcher
//! ([`super::abi::launch_config`]) both read these, so they always agree.

use dqc_ir::DType;
use dqc_ir::target::{Target, TargetKind};

/// Threads per block of elementwise kernels (grid-stride loop over the elements).
pub const ELEMENTWISE_THREADS: u32 = 256;
/// Threads per block of row reductions: one block per row, warp-shuffle reductions.
pub const ROW_THREADS: u32 = 256;
/// Threads per block of the selective scan (one thread per (batch, channel)).
pub const SCAN_THREADS: u32 = 128;
/// Threads in a warp.
pub const WARP: u32 = 32;

/// Compute capability `(major, minor)` of a GPU target; `(0, 0)` for the CPU.
pub fn capability(target: &Target) -> (u32, u32) {
    match target.kind {
        TargetKind::Cuda { major, minor, .. } => (major, minor),
        TargetKind::Cpu => (0, 0),
    }
}

/// Block tile of a GEMM: `bm × bn` outputs per block, `bk` of the contraction per stage,
/// `warps_m × warps_n` warps, `stages` shared-memory buffers (cp.async pipeline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    /// Output rows per block.
    pub bm: u32,
    /// Output columns per block.
    pub bn: u32,
    /// Contraction elements per stage.
    pub bk: u32,
    /// Warps along rows.
    pub warps_m: u32,
    /// Warps along columns.
    pub warps_n: u32,
    /// Shared-memory stages.
    pub stages: u32,
    /// Bytes per operand element in shared memory.
    pub elem_bytes: u32,
}

impl GemmTile {
    /// Threads per block.
    pub fn threads(&self) -> u32 {
        self.warps_m * self.warps_n * WARP
    }

    /// Dynamic shared memory: `stages` copies of the A tile (`bm × bk`) and the B tile
    /// (`bk × bn`), each row padded by 16 bytes against bank conflicts.
    pub fn shared_bytes(&self) -> u32 {
        let a = self.bm * (self.bk * self.elem_bytes + 16);
        let b = self.bk * (self.bn * self.elem_bytes + 16);
        self.stages * (a + b)
    }
}

/// Contraction elements per step of the SIMT GEMM path (f32 FMA, and the fallback for
/// floats without a tensor-core path): one `GEMM_SIMT_BK × bm` and one `GEMM_SIMT_BK × bn`
/// f32 tile in shared memory, rows padded by [`GEMM_PAD_WORDS`] words.
pub const GEMM_SIMT_BK: u32 = 16;
/// Padding (32-bit words) at the end of every f32 / i32 row of the SIMT tiles and of the
/// epilogue staging area, against bank conflicts.
pub const GEMM_PAD_WORDS: u32 = 4;

impl GemmTile {
    /// Rows of the output tile staged through shared memory per epilogue pass: one warp row
    /// (`bm / warps_m`).
    pub fn epilogue_rows(&self) -> u32 {
        self.bm / self.warps_m.max(1)
    }

    /// Dynamic shared memory of a GEMM kernel (what [`super::abi::launch_config`] asks for):
    /// the largest of
    /// - the tensor-core pipeline: `stages` copies of the A tile (`bm` rows of `bk`
    ///   elements) and of the B tile stored transposed (`bn` rows of `bk` elements), every
    ///   row padded by 16 bytes;
    /// - the SIMT step: `GEMM_SIMT_BK` rows of `bm` and of `bn` f32, padded;
    /// - the epilogue staging: [`Self::epilogue_rows`] rows of `bn` 32-bit accumulators,
    ///   padded.
    pub fn gemm_shared_bytes(&self) -> u32 {
        let pitch = self.bk * self.elem_bytes + 16;
        let mma = self.stages * (self.bm + self.bn) * pitch;
        let simt = GEMM_SIMT_BK * (self.bm + self.bn + 2 * GEMM_PAD_WORDS) * 4;
        let epi = self.epilogue_rows() * (self.bn + GEMM_PAD_WORDS) * 4;
        mma.max(simt).max(epi)
    }
}

/// Bytes per element of a GEMM operand as staged in shared memory (f32 for float types the
/// tensor cores do not take directly).
pub fn staged_bytes(dtype: DType) -> u32 {
    match dtype {
        DType::F16 | DType::BF16 => 2,
        DType::I8 | DType::U8 | DType::F8E4M3 | DType::F8E5M2 => 1,
        _ => 4,
    }
}

/// The GEMM tile for operands of `dtype` on `target`.
pub fn gemm_tile(dtype: DType, target: &Target) -> GemmTile {
    let _ = capability(target);
    let elem_bytes = staged_bytes(dtype);
    let bk = match elem_bytes {
        1 => 64,
        2 => 32,
        _ => 16,
    };
    GemmTile {
        bm: 128,
        bn: 128,
        bk,
        warps_m: 2,
        warps_n: 4,
        stages: 2,
        elem_bytes,
    }
}

/// Block tile of attention: `bq` queries per block (16 per warp), `bk` keys per step,
/// `head_dim` padded to a multiple of 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionTile {
    /// Queries per block.
    pub bq: u32,
    /// Keys per step.
    pub bk: u32,
    /// Head dimension padded to a multiple of 16.
    pub dpad: u32,
    /// Bytes per element in shared memory.
    pub elem_bytes: u32,
}

impl AttentionTile {
    /// Threads per block: one warp per 16 queries.
    pub fn threads(&self) -> u32 {
        (self.bq / 16) * WARP
    }

    /// Dynamic shared memory: the K and V tiles (`bk × dpad`, double buffered) and the Q
    /// tile (`bq × dpad`), rows padded by 16 bytes.
    pub fn shared_bytes(&self) -> u32 {
        let row = self.dpad * self.elem_bytes + 16;
        self.bq * row + 2 * 2 * self.bk * row
    }
}

/// The attention tile for a head dimension, element type and target.
pub fn attention_tile(head_dim: u64, dtype: DType, target: &Target) -> AttentionTile {
    let _ = capability(target);
    let dpad = (head_dim.div_ceil(16) * 16).max(16) as u32;
    let elem_bytes = staged_bytes(dtype);
    let bq = if dpad > 128 { 64 } else { 128 };
    AttentionTile {
        bq,
        bk: 64,
        dpad,
        elem_bytes,
    }
}

/// The implicit-GEMM tile of a convolution (`bm` output pixels × `bn` output channels).
pub fn conv_tile(dtype: DType, target: &Target) -> GemmTile {
    let mut t = gemm_tile(dtype, target);
    t.bm = 64;
    t.bn = 64;
    t.warps_m = 2;
    t.warps_n = 2;
    t
}
