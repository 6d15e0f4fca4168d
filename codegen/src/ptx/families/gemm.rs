//! (Batched) GEMM kernels with a fused epilogue:
//! `out[batch…, m, n] = epilogue(alpha · Σ_k A[batch…, m, k] · B[batch…, k, n])`.
//!
//! Grid (see `abi::launch_config`): `x` = column tiles (`bn`), `y` = row tiles (`bm`), `z` =
//! flat batch index (row-major over `batch`); `tiles::gemm_tile` gives the block tile per
//! operand type and target (16-bit 128 × 128 with 8 warps, 8-bit 256 × 128 with 16 warps,
//! SIMT 128 × 128 with 8 warps).
//! Block `(x, y, z)` owns output rows `m0 = y·bm ..`, columns `n0 = x·bn ..` of batch entry
//! `z`; operand `X` of that entry starts at element `X.offset + Σ coord[d]·X.batch_strides[d]`
//! (a stride 0 broadcasts), element `(i, j)` is `+ i·row_stride + j·col_stride`.
//!
//! Paths, chosen from the input dtype and the target:
//! - **tensor** ([`tensor`]): bf16, f16 (`mma.sync` m16n8k16 → f32), i8, u8 (m16n8k32 → s32,
//!   exact while `K · max|a·b| ≤ i32::MAX`, otherwise the exact path at run time), f8e4m3 on
//!   sm_100+ (m16n8k32 e4m3 → f32; see `path` for sm_89/sm_90); shared-memory tiles
//!   filled by `cp.async` (k-contiguous operands, and n-contiguous 16-bit B into an n-major
//!   tile), through registers (n-contiguous 8-bit B, transposed) or by guarded scalar loads,
//!   decided per block at run time (see [`tensor`]).
//! - **simt** ([`simt`]): f32 (f32-accurate FMA, 8 × 8 outputs per thread) and every float
//!   type without a tensor-core path here (f8 other than e4m3, e4m3 before sm_100, fp4):
//!   operands decoded to f32.
//! - **exact** ([`exact`]): integers without a tensor-core path (i4, i32, i64) and i8/u8 with
//!   a long contraction: one output per thread step, i128 sum clamped to the accumulator
//!   type, as the CPU backend does.
//!
//! Every path hands its accumulators to the same epilogue ([`staged_epilogue`] or
//! [`emit_output`]): `alpha` applied to float sums, the epilogue arena evaluated at
//! `batch ++ [m, n]`, the result stored densely; rows and columns outside `M × N` are never
//! loaded (loads are guarded, out-of-range operands read as zero) nor stored.

mod exact;
mod simt;
mod tensor;

use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::expr::At;
use crate::ptx::mma::MmaKind;
use crate::ptx::tiles::{GEMM_PAD_WORDS, GemmTile, gemm_tile, gemm_uses_tensor_cores};
use crate::spec::{Gemm, MatOperand};
use dqc_ir::DType;
use inkwell::IntPredicate;
use inkwell::values::IntValue;

/// One operand resolved for this block's batch entry.
pub(super) struct Operand<'ctx> {
    /// Argument index.
    pub arg: u32,
    /// Element offset of `(row 0, column 0)` of this batch entry.
    pub base: IntValue<'ctx>,
    /// Row stride (elements).
    pub rs: IntValue<'ctx>,
    /// Column stride (elements).
    pub cs: IntValue<'ctx>,
}

/// Everything a path needs about this block.
pub(super) struct Block<'ctx> {
    /// Output rows, columns, contraction length.
    pub m: IntValue<'ctx>,
    /// Output columns.
    pub n: IntValue<'ctx>,
    /// Contraction length.
    pub k: IntValue<'ctx>,
    /// First output row of the block.
    pub m0: IntValue<'ctx>,
    /// First output column of the block.
    pub n0: IntValue<'ctx>,
    /// Flat batch index.
    pub bflat: IntValue<'ctx>,
    /// Batch coordinates of `bflat`.
    pub coords: Vec<IntValue<'ctx>>,
    /// Left operand (`M × K`).
    pub a: Operand<'ctx>,
    /// Right operand (`K × N`).
    pub b: Operand<'ctx>,
    /// Thread index in the block (i64).
    pub tid: IntValue<'ctx>,
    /// The block tile.
    pub tile: GemmTile,
}

/// The code path of a GEMM of these operands on this target.
enum Path {
    Tensor(MmaKind),
    Simt,
    Exact,
}

fn path(kb: &Kb<'_, '_>, dt: DType) -> R<Path> {
    Ok(match dt {
        DType::F32 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz | DType::Fp4E2M1 => {
            Path::Simt
        }
        DType::F16 => Path::Tensor(MmaKind::F16),
        DType::BF16 => Path::Tensor(MmaKind::Bf16),
        DType::F8E4M3 => {
            // The e4m3 mma exists from sm_89 but needs PTX ISA 8.4; compile.rs asks LLVM
            // for no PTX version, so LLVM writes its default per target (7.8 for sm_89 and
            // sm_90, 8.0 for sm_90a, 8.6+ from sm_100) and aborts ("Cannot select") on
            // the intrinsic below 8.4. Until a `+ptx84` feature is passed, only sm_100+
            // take the tensor-core path (`tiles::gemm_uses_tensor_cores`, which the tile
            // table follows).
            if gemm_uses_tensor_cores(DType::F8E4M3, kb.target) {
                Path::Tensor(MmaKind::E4m3)
            } else {
                Path::Simt
            }
        }
        DType::I8 => Path::Tensor(MmaKind::S8),
        DType::U8 => Path::Tensor(MmaKind::U8),
        DType::I4 | DType::I32 | DType::I64 => Path::Exact,
        DType::Bool => return Err(kb.unsupported("a GEMM of bool operands")),
    })
}

/// Check the spec against the argument dtypes, as the CPU backend does.
fn check(kb: &Kb<'_, '_>, g: &Gemm) -> R<()> {
    let nb = g.batch.rank();
    for (op, what) in [(&g.a, "A"), (&g.b, "B")] {
        if op.batch_strides.len() != nb {
            return Err(kb.malformed(format!(
                "operand {what} has {} batch strides for {nb} batch axes",
                op.batch_strides.len()
            )));
        }
        let dt = kb.arg_dtype(op.arg)?;
        if dt != g.in_dtype {
            return Err(kb.malformed(format!(
                "argument {} has dtype {dt}, the GEMM's input dtype is {}",
                op.arg, g.in_dtype
            )));
        }
    }
    if g.in_dtype.is_float() {
        if g.acc_dtype != DType::F32 {
            return Err(kb.unsupported(format!("a float GEMM accumulating in {}", g.acc_dtype)));
        }
    } else {
        if !matches!(g.acc_dtype, DType::I32 | DType::I64) {
            return Err(kb.malformed(format!("integer GEMM with accumulator {}", g.acc_dtype)));
        }
        if g.alpha != 1.0 {
            return Err(kb.unsupported(format!("an integer GEMM with alpha {}", g.alpha)));
        }
    }
    let out_dt = kb.arg_dtype(g.out)?;
    let epi_dt = g.exprs.get(g.epilogue).map(|n| n.dtype).ok_or_else(|| {
        kb.malformed(format!("epilogue expression {} does not exist", g.epilogue))
    })?;
    if epi_dt != out_dt {
        return Err(kb.malformed(format!(
            "output argument {} is {out_dt} but the epilogue is {epi_dt}",
            g.out
        )));
    }
    Ok(())
}

fn operand<'ctx>(
    kb: &Kb<'ctx, '_>,
    op: &MatOperand,
    coords: &[IntValue<'ctx>],
) -> R<Operand<'ctx>> {
    let mut base = kb.poly(&op.offset)?;
    for (t, &c) in op.batch_strides.iter().zip(coords) {
        if t.coeff == 0 {
            continue;
        }
        let s = kb.term(t)?;
        base = kb.add(base, kb.mul(c, s)?)?;
    }
    Ok(Operand {
        arg: op.arg,
        base,
        rs: kb.term(&op.row_stride)?,
        cs: kb.term(&op.col_stride)?,
    })
}

/// Generate a GEMM kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, g: &Gemm) -> R<()> {
    check(kb, g)?;
    let p = path(kb, g.in_dtype)?;
    let tile = gemm_tile(g.in_dtype, kb.target);
    let bdims: Vec<IntValue> = g.batch.dims().iter().map(|d| kb.dim(d)).collect::<R<_>>()?;
    let mut batches = kb.i64c(1);
    for &d in &bdims {
        batches = kb.mul(batches, d)?;
    }
    let (m, n, k) = (kb.dim(&g.m)?, kb.dim(&g.n)?, kb.dim(&g.k)?);
    let tid = kb.sreg64("tid.x")?;
    let bx = kb.sreg64("ctaid.x")?;
    let by = kb.sreg64("ctaid.y")?;
    let bflat = kb.sreg64("ctaid.z")?;
    // An empty batch still launches one block: it has nothing to do.
    let work = kb.block("work");
    let done = kb.block("done");
    let any = kb.icmp(IntPredicate::ULT, bflat, batches)?;
    kb.cond_br(any, work, done)?;
    kb.b.position_at_end(work);
    let coords = super::elementwise::unravel(kb, bflat, &bdims)?;
    let a = operand(kb, &g.a, &coords)?;
    let b = operand(kb, &g.b, &coords)?;
    let blk = Block {
        m,
        n,
        k,
        m0: kb.mul(by, kb.i64c(i64::from(tile.bm)))?,
        n0: kb.mul(bx, kb.i64c(i64::from(tile.bn)))?,
        bflat,
        coords,
        a,
        b,
        tid,
        tile,
    };
    match p {
        Path::Simt => simt::generate(kb, g, &blk)?,
        Path::Exact => exact::generate(kb, g, &blk)?,
        Path::Tensor(kind) if kind.int_acc() => {
            // s32 accumulation is exact (never wraps) while K · max|a·b| ≤ i32::MAX.
            let max_prod: i64 = if kind == MmaKind::U8 {
                255 * 255
            } else {
                128 * 128
            };
            let small = kb.icmp(
                IntPredicate::SLE,
                k,
                kb.i64c(i64::from(i32::MAX) / max_prod),
            )?;
            kb.if_else(
                small,
                |kb| tensor::generate(kb, g, &blk, kind),
                |kb| exact::generate(kb, g, &blk),
            )?;
        }
        Path::Tensor(kind) => tensor::generate(kb, g, &blk, kind)?,
    }
    kb.br(done)?;
    kb.b.position_at_end(done);
    kb.ret()
}

/// Evaluate the epilogue at output `(row, col)` of this block's batch entry with `acc` (the
/// scaled sum) and store it densely at `((bflat·M + row)·N + col)`. The caller guarantees
/// `row < M`, `col < N`.
pub(super) fn emit_output<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    g: &Gemm,
    blk: &Block<'ctx>,
    row: IntValue<'ctx>,
    col: IntValue<'ctx>,
    acc: Val<'ctx>,
) -> R<()> {
    let mut coords = blk.coords.clone();
    coords.extend([row, col]);
    let v = kb.eval(
        &g.exprs,
        g.epilogue,
        &At {
            coords,
            acc: Some(acc),
        },
    )?;
    let lin = kb.add(kb.mul(kb.add(kb.mul(blk.bflat, blk.m)?, row)?, blk.n)?, col)?;
    kb.store(g.out, lin, v)
}

/// Run the epilogue over the block's `bm × bn` tile through shared memory, in
/// `warps_m` passes of `epilogue_rows` rows (the staging area holds one pass of 32-bit
/// accumulators, row pitch `bn + GEMM_PAD_WORDS` words). In pass `p` (a run-time loop, so
/// the epilogue code exists once), `write(kb, p, slot)` stores the accumulators of rows
/// `p·rows .. (p+1)·rows` with `slot(kb, local_row, col)` giving the shared address; then
/// every thread takes tile elements `tid, tid + threads, …` (consecutive threads on
/// consecutive columns), and stores those inside `M × N`. `int`: the staged values are i32
/// (else f32, scaled by `alpha` here).
pub(super) fn staged_epilogue<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    g: &Gemm,
    blk: &Block<'ctx>,
    int: bool,
    mut write: impl FnMut(&mut Kb<'ctx, '_>, IntValue<'ctx>) -> R<()>,
) -> R<()> {
    let t = blk.tile;
    let rows = i64::from(t.epilogue_rows());
    let bn = i64::from(t.bn);
    let passes = i64::from(t.bm) / rows;
    let threads = kb.i64c(i64::from(t.threads()));
    kb.for_loop(kb.i64c(0), kb.i64c(passes), kb.i64c(1), |kb, p| {
        kb.barrier()?;
        write(kb, p)?;
        kb.barrier()?;
        kb.for_loop(blk.tid, kb.i64c(rows * bn), threads, |kb, e| {
            let r = kb.udiv(e, kb.i64c(bn))?;
            let c = kb.urem(e, kb.i64c(bn))?;
            let row = kb.add(kb.add(blk.m0, kb.mul(p, kb.i64c(rows))?)?, r)?;
            let col = kb.add(blk.n0, c)?;
            let rin = kb.icmp(IntPredicate::SLT, row, blk.m)?;
            let cin = kb.icmp(IntPredicate::SLT, col, blk.n)?;
            let inside = kb.b.build_and(rin, cin, "").map_err(|e| kb.e(e))?;
            kb.if_then(inside, |kb| {
                let ptr = stage_slot(kb, t, r, c)?;
                let acc = if int {
                    let v =
                        kb.b.build_load(kb.cx.i32_type(), ptr, "")
                            .map_err(|e| kb.e(e))?
                            .into_int_value();
                    Val::I(
                        kb.b.build_int_s_extend(v, kb.cx.i64_type(), "")
                            .map_err(|e| kb.e(e))?,
                    )
                } else {
                    let v =
                        kb.b.build_load(kb.cx.f32_type(), ptr, "")
                            .map_err(|e| kb.e(e))?
                            .into_float_value();
                    if g.alpha == 1.0 {
                        Val::F(v)
                    } else {
                        Val::F(kb.fmul(v, kb.f32c(g.alpha))?)
                    }
                };
                emit_output(kb, g, blk, row, col, acc)
            })
        })
    })?;
    Ok(())
}

/// Shared address of staged accumulator `(local_row, col)` (i64 values).
pub(super) fn stage_slot<'ctx>(
    kb: &Kb<'ctx, '_>,
    t: GemmTile,
    r: IntValue<'ctx>,
    c: IntValue<'ctx>,
) -> R<inkwell::values::PointerValue<'ctx>> {
    let pitch = i64::from(t.bn + GEMM_PAD_WORDS);
    let word = kb.add(kb.mul(r, kb.i64c(pitch))?, c)?;
    kb.smem_at(kb.mul(word, kb.i64c(4))?)
}

/// `a < b && c < d` (signed i64), as i1.
pub(super) fn both_lt<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: IntValue<'ctx>,
    b: IntValue<'ctx>,
    c: IntValue<'ctx>,
    d: IntValue<'ctx>,
) -> R<IntValue<'ctx>> {
    let x = kb.icmp(IntPredicate::SLT, a, b)?;
    let y = kb.icmp(IntPredicate::SLT, c, d)?;
    kb.b.build_and(x, y, "").map_err(|e| kb.e(e))
}
