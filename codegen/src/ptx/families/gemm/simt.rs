//! The SIMT GEMM path: f32 FMA with a register tile, for f32 operands (f32-accurate) and for
//! float types without a tensor-core path (decoded to f32 on load).
//!
//! Threads form a `(bm / 8) × (bn / 8)` grid (16 × 16 for the 128 × 128 tile):
//! `ty = tid / (bn / 8)`, `tx = tid % (bn / 8)`; thread `(ty, tx)` owns the 8 × 8 outputs
//! rows `ty·8 .. ty·8 + 8`, columns `tx·8 .. tx·8 + 8` of the block tile.
//!
//! Per step of `GEMM_SIMT_BK` (16) contraction elements, shared memory holds
//! `As[kk][r]` = A(m0 + r, k0 + kk) (transposed, so a thread reads its 8 rows contiguously)
//! and `Bs[kk][c]` = B(k0 + kk, n0 + c), f32, rows padded by `GEMM_PAD_WORDS` words; elements
//! outside `M × K` / `K × N` are zero. Loading: element `e = tid + i·threads` of A is
//! `(r, kk) = (e / 16, e % 16)` (consecutive threads along k: coalesced for row-major A), of
//! B `(kk, c) = (e / bn, e % bn)` (consecutive threads along n: coalesced for row-major B).

use super::{Block, both_lt, stage_slot, staged_epilogue};
use crate::ptx::builder::{Kb, R};
use crate::ptx::tiles::{GEMM_PAD_WORDS, GEMM_SIMT_BK};
use crate::spec::Gemm;
use inkwell::values::{FloatValue, IntValue, PointerValue};

/// Outputs per thread along rows and along columns.
const TM: u32 = 8;
const TN: u32 = 8;

/// Generate the SIMT main loop and epilogue.
pub(super) fn generate<'ctx>(kb: &mut Kb<'ctx, '_>, g: &Gemm, blk: &Block<'ctx>) -> R<()> {
    let t = blk.tile;
    let threads = t.threads();
    let (tx_n, ty_n) = (t.bn / TN, t.bm / TM);
    let bk = GEMM_SIMT_BK;
    let rows = t.epilogue_rows();
    if tx_n * ty_n != threads
        || !(t.bm * bk).is_multiple_of(threads)
        || !(t.bn * bk).is_multiple_of(threads)
        || !rows.is_multiple_of(TM)
    {
        return Err(kb.malformed(format!(
            "GEMM tile {}×{} with {threads} threads does not fit the SIMT layout",
            t.bm, t.bn
        )));
    }
    let a_pitch = i64::from((t.bm + GEMM_PAD_WORDS) * 4);
    let b_pitch = i64::from((t.bn + GEMM_PAD_WORDS) * 4);
    let b_off = i64::from(bk) * a_pitch;
    let f32t = kb.cx.f32_type();
    let mut acc: Vec<PointerValue> = Vec::with_capacity((TM * TN) as usize);
    for _ in 0..TM * TN {
        let p = kb.entry_alloca(f32t.into(), "acc")?;
        kb.b.build_store(p, f32t.const_zero())
            .map_err(|e| kb.e(e))?;
        acc.push(p);
    }
    let ty = kb.udiv(blk.tid, kb.i64c(i64::from(tx_n)))?;
    let tx = kb.urem(blk.tid, kb.i64c(i64::from(tx_n)))?;
    let row0 = kb.mul(ty, kb.i64c(i64::from(TM)))?;
    let col0 = kb.mul(tx, kb.i64c(i64::from(TN)))?;
    let a_col = kb.mul(row0, kb.i64c(4))?; // byte offset of the thread's rows in an As row
    let b_col = kb.add(kb.mul(col0, kb.i64c(4))?, kb.i64c(b_off))?;
    let step = kb.i64c(i64::from(bk));
    kb.for_loop(kb.i64c(0), blk.k, step, |kb, k0| {
        kb.barrier()?;
        // A tile → As[kk][r]
        for i in 0..(t.bm * bk) / threads {
            let e = kb.add(blk.tid, kb.i64c(i64::from(i * threads)))?;
            let r = kb.udiv(e, kb.i64c(i64::from(bk)))?;
            let kk = kb.urem(e, kb.i64c(i64::from(bk)))?;
            let (gm, gk) = (kb.add(blk.m0, r)?, kb.add(k0, kk)?);
            let ok = both_lt(kb, gm, blk.m, gk, blk.k)?;
            let idx = kb.add(
                blk.a.base,
                kb.add(kb.mul(gm, blk.a.rs)?, kb.mul(gk, blk.a.cs)?)?,
            )?;
            let arg = blk.a.arg;
            let v = kb.guarded_val(ok, true, |kb| kb.load(arg, idx))?;
            let off = kb.add(kb.mul(kk, kb.i64c(a_pitch))?, kb.mul(r, kb.i64c(4))?)?;
            store_f(kb, off, kb.as_f(v)?)?;
        }
        // B tile → Bs[kk][c]
        for i in 0..(t.bn * bk) / threads {
            let e = kb.add(blk.tid, kb.i64c(i64::from(i * threads)))?;
            let kk = kb.udiv(e, kb.i64c(i64::from(t.bn)))?;
            let c = kb.urem(e, kb.i64c(i64::from(t.bn)))?;
            let (gk, gn) = (kb.add(k0, kk)?, kb.add(blk.n0, c)?);
            let ok = both_lt(kb, gk, blk.k, gn, blk.n)?;
            let idx = kb.add(
                blk.b.base,
                kb.add(kb.mul(gk, blk.b.rs)?, kb.mul(gn, blk.b.cs)?)?,
            )?;
            let arg = blk.b.arg;
            let v = kb.guarded_val(ok, true, |kb| kb.load(arg, idx))?;
            let off = kb.add(
                kb.i64c(b_off),
                kb.add(kb.mul(kk, kb.i64c(b_pitch))?, kb.mul(c, kb.i64c(4))?)?,
            )?;
            store_f(kb, off, kb.as_f(v)?)?;
        }
        kb.barrier()?;
        for kk in 0..i64::from(bk) {
            let mut av = Vec::with_capacity(TM as usize);
            for i in 0..i64::from(TM) {
                let off = kb.add(a_col, kb.i64c(kk * a_pitch + i * 4))?;
                av.push(load_f(kb, off)?);
            }
            let mut bv = Vec::with_capacity(TN as usize);
            for j in 0..i64::from(TN) {
                let off = kb.add(b_col, kb.i64c(kk * b_pitch + j * 4))?;
                bv.push(load_f(kb, off)?);
            }
            for (i, &a) in av.iter().enumerate() {
                for (j, &b) in bv.iter().enumerate() {
                    let p = acc[i * TN as usize + j];
                    let s =
                        kb.b.build_load(f32t, p, "")
                            .map_err(|e| kb.e(e))?
                            .into_float_value();
                    let s = kb.fma(a, b, s)?;
                    kb.b.build_store(p, s).map_err(|e| kb.e(e))?;
                }
            }
        }
        Ok(())
    })?;
    // Thread rows row0 .. row0 + TM lie in pass row0 / rows (rows is a multiple of TM).
    let my_pass = kb.udiv(row0, kb.i64c(i64::from(rows)))?;
    staged_epilogue(kb, g, blk, false, |kb, p| {
        let mine = kb.icmp(inkwell::IntPredicate::EQ, my_pass, p)?;
        kb.if_then(mine, |kb| {
            let lr0 = kb.sub(row0, kb.mul(p, kb.i64c(i64::from(rows)))?)?;
            for i in 0..TM {
                for j in 0..TN {
                    let r = kb.add(lr0, kb.i64c(i64::from(i)))?;
                    let c = kb.add(col0, kb.i64c(i64::from(j)))?;
                    let ptr = stage_slot(kb, t, r, c)?;
                    let v =
                        kb.b.build_load(f32t, acc[(i * TN + j) as usize], "")
                            .map_err(|e| kb.e(e))?;
                    kb.b.build_store(ptr, v).map_err(|e| kb.e(e))?;
                }
            }
            Ok(())
        })
    })
}

fn store_f<'ctx>(kb: &Kb<'ctx, '_>, off: IntValue<'ctx>, v: FloatValue<'ctx>) -> R<()> {
    let p = kb.smem_at(off)?;
    kb.b.build_store(p, v).map(|_| ()).map_err(|e| kb.e(e))
}

fn load_f<'ctx>(kb: &Kb<'ctx, '_>, off: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
    let p = kb.smem_at(off)?;
    Ok(kb
        .b
        .build_load(kb.cx.f32_type(), p, "")
        .map_err(|e| kb.e(e))?
        .into_float_value())
}
