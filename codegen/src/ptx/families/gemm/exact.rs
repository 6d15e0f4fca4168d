//! The exact integer GEMM path: each thread takes the block-tile outputs
//! `e = tid, tid + threads, …` (`row = e / bn`, `col = e % bn`, consecutive threads on
//! consecutive columns), sums `Σ_k a·b` in i128 straight from global memory, clamps the sum
//! to the accumulator type's range (i32 or i64) and runs the epilogue — the CPU backend's
//! semantics for every integer dtype and any contraction length. Slow but simple: used for
//! integers without a tensor-core path and for i8/u8 contractions too long for s32.

use super::{Block, both_lt, emit_output};
use crate::ptx::builder::{Kb, R, Val};
use crate::spec::Gemm;
use dqc_ir::DType;
use inkwell::IntPredicate;

/// Generate the exact loop and epilogue.
pub(super) fn generate<'ctx>(kb: &mut Kb<'ctx, '_>, g: &Gemm, blk: &Block<'ctx>) -> R<()> {
    let t = blk.tile;
    let i128t = kb.cx.i128_type();
    let sum = kb.entry_alloca(i128t.into(), "isum")?;
    let (lo, hi) = match g.acc_dtype {
        DType::I64 => (i64::MIN, i64::MAX),
        _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
    };
    let lo = i128t.const_int(lo as u64, true);
    let hi = i128t.const_int(hi as u64, true);
    let bn = kb.i64c(i64::from(t.bn));
    let total = kb.i64c(i64::from(t.bm) * i64::from(t.bn));
    let threads = kb.i64c(i64::from(t.threads()));
    kb.for_loop(blk.tid, total, threads, |kb, e| {
        let row = kb.add(blk.m0, kb.udiv(e, bn)?)?;
        let col = kb.add(blk.n0, kb.urem(e, bn)?)?;
        let inside = both_lt(kb, row, blk.m, col, blk.n)?;
        kb.if_then(inside, |kb| {
            kb.b.build_store(sum, i128t.const_zero())
                .map_err(|e| kb.e(e))?;
            let arow = kb.add(blk.a.base, kb.mul(row, blk.a.rs)?)?;
            let bcol = kb.add(blk.b.base, kb.mul(col, blk.b.cs)?)?;
            kb.for_loop(kb.i64c(0), blk.k, kb.i64c(1), |kb, p| {
                let x = kb.load(blk.a.arg, kb.add(arow, kb.mul(p, blk.a.cs)?)?)?;
                let y = kb.load(blk.b.arg, kb.add(bcol, kb.mul(p, blk.b.rs)?)?)?;
                let x =
                    kb.b.build_int_s_extend(kb.as_i(x)?, i128t, "")
                        .map_err(|e| kb.e(e))?;
                let y =
                    kb.b.build_int_s_extend(kb.as_i(y)?, i128t, "")
                        .map_err(|e| kb.e(e))?;
                let xy = kb.b.build_int_mul(x, y, "").map_err(|e| kb.e(e))?;
                let s =
                    kb.b.build_load(i128t, sum, "")
                        .map_err(|e| kb.e(e))?
                        .into_int_value();
                let s = kb.b.build_int_add(s, xy, "").map_err(|e| kb.e(e))?;
                kb.b.build_store(sum, s).map(|_| ()).map_err(|e| kb.e(e))
            })?;
            let s =
                kb.b.build_load(i128t, sum, "")
                    .map_err(|e| kb.e(e))?
                    .into_int_value();
            let below = kb.icmp(IntPredicate::SLT, s, lo)?;
            let s = kb.isel(below, lo, s)?;
            let above = kb.icmp(IntPredicate::SGT, s, hi)?;
            let s = kb.isel(above, hi, s)?;
            let s =
                kb.b.build_int_truncate(s, kb.cx.i64_type(), "")
                    .map_err(|e| kb.e(e))?;
            emit_output(kb, g, blk, row, col, Val::I(s))
        })
    })
}
