//! Tile tables: block shapes per kernel family and target. The generator and the launcher
//! ([`super::abi::launch_config`]) both read these, so they always agree.

use dqc_ir::DType;
use dqc_ir::target::{Target, TargetKind};

/// Threads per block of elementwise kernels (grid-stride loop over the elements).
pub const ELEMENTWISE_THREADS: u32 = 256;
/// Threads per block of row reductions: one block per row, warp-shuffle reductions.
pub const ROW_THREADS: u32 = 256;
/// Dynamic shared memory of a row reduction: the running sums' 16-byte chunk slots, one
/// per thread (the block reductions' per-warp slots fit in the same bytes).
pub const ROW_SHARED_BYTES: u32 = ROW_THREADS * 16;
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

    /// Bytes of one tensor-core pipeline stage: the A tile (`bm` rows of `bk` elements)
    /// and room for the B tile in either layout — k-major (`bn` rows of `bk` elements) or
    /// n-major (`bk` rows of `bn` elements) — every row padded by 16 bytes.
    pub fn mma_stage_bytes(&self) -> u32 {
        let pitch_k = self.bk * self.elem_bytes + 16;
        let pitch_n = self.bn * self.elem_bytes + 16;
        self.bm * pitch_k + (self.bn * pitch_k).max(self.bk * pitch_n)
    }

    /// Dynamic shared memory of a GEMM kernel (what [`super::abi::launch_config`] asks for):
    /// the largest of
    /// - the tensor-core pipeline: `stages` times [`Self::mma_stage_bytes`];
    /// - the SIMT step: `GEMM_SIMT_BK` rows of `bm` and of `bn` f32, padded;
    /// - the epilogue staging: [`Self::epilogue_rows`] rows of `bn` 32-bit accumulators,
    ///   padded.
    pub fn gemm_shared_bytes(&self) -> u32 {
        let mma = self.stages * self.mma_stage_bytes();
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

/// sm_86, sm_89 and sm_120: less shared memory (at most 99 KiB per block) and register
/// file per SM than sm_80 / sm_90 / sm_100, so some tiles are smaller there.
fn consumer_part(target: &Target) -> bool {
    let (major, minor) = capability(target);
    (major == 8 && minor >= 6) || major == 12
}

/// True when a GEMM of `dtype` operands runs on tensor cores (`mma.sync`) on `target`:
/// bf16, f16, i8, u8 everywhere; f8e4m3 from sm_100 (the e4m3 `mma` exists from sm_89 but
/// needs PTX ISA 8.4, above what LLVM writes for sm_89 / sm_90). Everything else takes the
/// SIMT (f32 FMA) or exact integer path.
pub fn gemm_uses_tensor_cores(dtype: DType, target: &Target) -> bool {
    match dtype {
        DType::F16 | DType::BF16 | DType::I8 | DType::U8 => true,
        DType::F8E4M3 => capability(target) >= (10, 0),
        _ => false,
    }
}

/// The GEMM tile for operands of `dtype` on `target`. The tensor-core types run a 4-stage
/// `cp.async` pipeline; the shapes were chosen on an H100 among 128×128 (2×4 and 2×2
/// warps), 128×256 and 256×128 (8 and 16 warps), 3 to 5 stages (`docs/performance.md`,
/// "GPU"):
/// - 16-bit: 128 × 128, 8 warps of 64 × 32 (2 blocks per SM: ≤ 128 registers, 2 × 80 KiB
///   of shared memory). 4 warps of 64 × 64 ran plain products 3–12 % faster but the fused
///   epilogues of a DiT block 12–33 % slower (half the threads run the staged epilogue);
///   the block is what models run;
/// - 8-bit: 256 × 128, 16 warps of 64 × 32 (1 block per SM: ≤ 128 registers, 120 KiB);
/// - the SIMT path (f32 and the types without a tensor-core path here, see
///   [`gemm_uses_tensor_cores`]) stages one step at a time: 128 × 128, 8 warps, 2 stages.
///
/// Shared memory above 99 KiB (the 8-bit tile) exceeds what sm_86 / sm_89 / sm_120 give a
/// block; those targets keep the 16-bit shape for 8-bit operands.
pub fn gemm_tile(dtype: DType, target: &Target) -> GemmTile {
    let consumer = consumer_part(target);
    let elem_bytes = staged_bytes(dtype);
    let bk = match elem_bytes {
        1 => 64,
        2 => 32,
        _ => 16,
    };
    let (bm, warps_m, warps_n, stages) = if !gemm_uses_tensor_cores(dtype, target) {
        (128, 2, 4, 2)
    } else if elem_bytes == 1 && !consumer {
        (256, 4, 4, 4)
    } else {
        (128, 2, 4, 4)
    };
    GemmTile {
        bm,
        bn: 128,
        bk,
        warps_m,
        warps_n,
        stages,
        elem_bytes,
    }
}

/// Block tile of attention. Two shapes, chosen by the element type:
///
/// - **Tensor cores** (`f16`, `bf16`): one warp per 16 queries (`bq / 16` warps), Q·Kᵀ and
///   P·V on `mma.sync` m16n8k16 with f32 accumulation; K and V tiles of `bk` keys ×
///   `dpad` elements in shared memory, each row padded by 16 bytes (conflict-free fragment
///   reads). `row_lanes` is 0.
/// - **SIMT** (`f32`): `row_lanes` consecutive threads share one query row, each owning a
///   strided quarter (or eighth) of the head dimension in float4 chunks; K and V tiles of
///   `bk × dpad` f32 in shared memory, unpadded (every warp reads one key row: broadcast).
///
/// `dpad` is the larger of the two head dimensions rounded up to what the path needs
/// (16 for tensor cores, `4 · row_lanes` for SIMT); the padding is zero-filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionTile {
    /// Queries per block.
    pub bq: u32,
    /// Keys per step.
    pub bk: u32,
    /// Head dimension (max of Q·K and V) padded as described above.
    pub dpad: u32,
    /// Bytes per element in shared memory.
    pub elem_bytes: u32,
    /// SIMT path: threads per query row (4 or 8); 0 on the tensor-core path.
    pub row_lanes: u32,
    /// Tensor-core path: 16-query m-tiles per warp (1 or 2; with 2 every K / V fragment a
    /// warp loads from shared memory feeds two products). 1 on the SIMT path.
    pub m_tiles: u32,
}

/// Threads per block of the SIMT (f32) attention path.
pub const ATTENTION_SIMT_THREADS: u32 = 128;

/// Largest head dimension the attention generator accepts.
pub const ATTENTION_MAX_HEAD_DIM: u64 = 256;

impl AttentionTile {
    /// True on the tensor-core path.
    pub fn tensor_cores(&self) -> bool {
        self.row_lanes == 0
    }

    /// Threads per block: one warp per 16 queries (tensor cores), or `row_lanes` per query
    /// (SIMT).
    pub fn threads(&self) -> u32 {
        if self.tensor_cores() {
            (self.bq / (16 * self.m_tiles.max(1))) * WARP
        } else {
            self.bq * self.row_lanes
        }
    }

    /// Bytes between consecutive key rows of the K and V tiles in shared memory.
    pub fn row_bytes(&self) -> u32 {
        if self.tensor_cores() {
            self.dpad * self.elem_bytes + 16
        } else {
            self.dpad * self.elem_bytes
        }
    }

    /// Shared-memory buffers of K and V tiles: two on the tensor-core path (the next key
    /// tile is copied while the current one is computed on), one on the SIMT path.
    pub fn buffers(&self) -> u32 {
        if self.tensor_cores() { 2 } else { 1 }
    }

    /// Bytes of one buffer: the K tile then the V tile, `bk` rows each.
    pub fn buffer_bytes(&self) -> u32 {
        2 * self.bk * self.row_bytes()
    }

    /// Dynamic shared memory: [`Self::buffers`] × [`Self::buffer_bytes`].
    pub fn shared_bytes(&self) -> u32 {
        self.buffers() * self.buffer_bytes()
    }
}

/// The attention tile for a head dimension (the larger of Q·K's and V's), element type
/// and target. Tensor-core tiles are double-buffered (shared memory below is both
/// buffers); above 48 KiB the executor raises the kernel's dynamic shared-memory limit.
///
/// | path | dpad | bq | bk | warps | shared |
/// |---|---|---|---|---|---|
/// | path | dpad | bq | bk | warps | shared |
/// |---|---|---|---|---|---|
/// | tensor cores | ≤ 64 | 128 | 64 | 4 (2 m-tiles each) | ≤ 36 KiB |
/// | tensor cores | 80 | 128 (consumer parts: 64) | 64 (consumer: 32) | 4 (2), 2 m-tiles each | 44 KiB (22 KiB) |
/// | tensor cores | 96 – 128 | 128 (consumer: 64) | 64 (consumer: 32) | 8 (4) | ≤ 68 KiB (≤ 34 KiB) |
/// | tensor cores | ≤ 256 | 64 | 32 | 4 | ≤ 66 KiB |
/// | SIMT f32 | ≤ 128 | 32 | 32 | 4 | ≤ 32 KiB |
/// | SIMT f32 | ≤ 256 | 16 | 16 | 4 | ≤ 32 KiB |
///
/// "Consumer parts" are sm_86, sm_89 and sm_120 (less shared memory and register file per
/// SM than sm_80 / sm_90 / sm_100). The D ≤ 80 rows were measured on an H100 (two m-tiles
/// per warp: 0.697 → 0.629 ms at B 2, H 16, S 4096, D 72; `docs/performance.md`); the
/// others are not tuned yet.
pub fn attention_tile(head_dim: u64, dtype: DType, target: &Target) -> AttentionTile {
    let consumer = consumer_part(target);
    let elem_bytes = staged_bytes(dtype);
    match dtype {
        DType::F16 | DType::BF16 => {
            let dpad = (head_dim.div_ceil(16) * 16).max(16) as u32;
            let (bq, bk) = if dpad <= 64 {
                (128, 64)
            } else if dpad <= 128 {
                if consumer { (64, 32) } else { (128, 64) }
            } else {
                (64, 32)
            };
            AttentionTile {
                bq,
                bk,
                dpad,
                elem_bytes,
                row_lanes: 0,
                m_tiles: if dpad <= 80 { 2 } else { 1 },
            }
        }
        _ => {
            let row_lanes: u32 = if head_dim <= 128 { 4 } else { 8 };
            let q = 4 * row_lanes as u64;
            let dpad = (head_dim.div_ceil(q) * q).max(16) as u32;
            AttentionTile {
                bq: ATTENTION_SIMT_THREADS / row_lanes,
                bk: if row_lanes == 4 { 32 } else { 16 },
                dpad,
                elem_bytes: 4,
                row_lanes,
                m_tiles: 1,
            }
        }
    }
}

/// The implicit-GEMM tile of a convolution (`bm` output pixels × `bn` output channels).
pub fn conv_tile(dtype: DType, target: &Target) -> GemmTile {
    let mut t = gemm_tile(dtype, target);
    t.bm = 64;
    t.bn = 64;
    t.warps_m = 2;
    t.warps_n = 2;
    t.stages = 2;
    t
}
