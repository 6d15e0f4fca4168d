//! The tensor-core GEMM path: warp-level `mma.sync` on 16-bit (k16) or 8-bit (k32)
//! operands, a `stages`-deep shared-memory pipeline filled by `cp.async` (or by guarded
//! scalar loads when an operand is not k-contiguous and 16-byte aligned), accumulators in
//! registers, then the staged epilogue.
//!
//! Shared memory, per stage `s` (`P = bk·eb + 16` bytes per row, `eb` bytes per element;
//! `bk·eb` = 64 bytes = 2 mma k-steps of 32 bytes):
//! - `A_s[r][kbyte]` at `s·S + r·P + kbyte`, `r < bm`: A(m0 + r, k0 + kbyte / eb);
//! - `B_s[c][kbyte]` at `s·S + bm·P + c·P + kbyte`, `c < bn`: B(k0 + kbyte / eb, n0 + c)
//!   (B stored transposed, k-contiguous, which is the "col" operand layout of mma);
//!
//! with `S = (bm + bn)·P`; elements outside `M × K` / `K × N` are zero, so they add nothing.
//!
//! Filling (16-byte chunks, `bk·eb / 16` per row, `e = 16 / eb` elements each; chunk
//! `c = tid + i·threads`):
//! - A vector (`A.col_stride == 1`, `A.row_stride·eb ≡ 0`, base address ≡ 0 mod 16):
//!   chunk `(r, q) = (c / cpr, c % cpr)` copies `min(16, (K − k)·eb)` bytes (0 if the row is
//!   outside `M` or `k ≥ K`) from element `(m0 + r, k0 + q·e)` with `cp.async … 16, n`
//!   (the rest zero-filled).
//! - A scalar: chunk `(r, q) = (c % bm, c / bm)`, each of its `e` elements loaded (guarded)
//!   and stored to shared memory.
//! - B likewise with `(c, q)`, vector when `B.row_stride == 1` (k-contiguous), scalar chunks
//!   `(n, q) = (c % bn, c / bn)` (consecutive threads on consecutive columns: coalesced for
//!   a row-major B).
//!
//! Pipeline (`S` = stages): fill k-tiles `0 .. S−1`, one commit each; iteration `kt` fills
//! k-tile `kt + S − 1` (if any) into stage `(kt + S − 1) % S`, commits (possibly an empty
//! group), waits until at most `S − 1` groups are pending (so k-tile `kt` has landed),
//! barrier, computes on stage `kt % S`, barrier (the next iteration overwrites the stage
//! just read).
//!
//! Warps: `w = tid / 32`, `wm = w / warps_n`, `wn = w % warps_n`; warp `(wm, wn)` owns rows
//! `wm·WM .. +WM` (`WM = bm / warps_m`), columns `wn·WN .. +WN` (`WN = bn / warps_n`) as
//! `WM/16 × WN/8` mma tiles. Fragments come from `ldmatrix.x4` (see `ptx::mma` for the
//! address patterns); accumulator `(i, j, q)` is row `wm·WM + 16i + g + 8·(q / 2)`, column
//! `wn·WN + 8j + 2t + q % 2` (`g = lane / 4`, `t = lane % 4`).

use super::{Block, both_lt, stage_slot, staged_epilogue};
use crate::ptx::builder::{Kb, R};
use crate::ptx::mma::MmaKind;
use crate::spec::Gemm;
use inkwell::IntPredicate;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValueEnum, IntValue, PointerValue};

/// Static layout of the path for one tile and operand kind.
struct Layout {
    eb: i64,
    pitch: i64,
    cpr: i64,
    epc: i64,
    a_bytes: i64,
    stage_bytes: i64,
    stages: i64,
    threads: i64,
    bm: i64,
    bn: i64,
    bk: i64,
    wm_rows: i64,
    wn_cols: i64,
    mt: usize,
    nt: usize,
    ksteps: i64,
}

fn layout(kb: &Kb<'_, '_>, blk: &Block<'_>, kind: MmaKind) -> R<Layout> {
    let t = blk.tile;
    let eb = i64::from(kind.elem_bytes());
    let row_bytes = i64::from(t.bk) * eb;
    let threads = i64::from(t.threads());
    let (bm, bn) = (i64::from(t.bm), i64::from(t.bn));
    let wm_rows = bm / i64::from(t.warps_m.max(1));
    let wn_cols = bn / i64::from(t.warps_n.max(1));
    let cpr = row_bytes / 16;
    let l = Layout {
        eb,
        pitch: row_bytes + 16,
        cpr,
        epc: 16 / eb,
        a_bytes: bm * (row_bytes + 16),
        stage_bytes: (bm + bn) * (row_bytes + 16),
        stages: i64::from(t.stages),
        threads,
        bm,
        bn,
        bk: i64::from(t.bk),
        wm_rows,
        wn_cols,
        mt: (wm_rows / 16) as usize,
        nt: (wn_cols / 8) as usize,
        ksteps: row_bytes / 32,
    };
    // one mma k-step is 32 bytes of k per row (16 × 16-bit or 32 × 8-bit)
    let fits = i64::from(t.elem_bytes) == eb
        && i64::from(kind.k()) * eb == 32
        && row_bytes % 32 == 0
        && l.ksteps > 0
        && l.stages >= 2
        && wm_rows % 16 == 0
        && wn_cols % 16 == 0
        && i64::from(t.epilogue_rows()) == wm_rows
        && (bm * cpr) % threads == 0
        && (bn * cpr) % threads == 0
        && l.stages * l.stage_bytes <= i64::from(t.gemm_shared_bytes());
    if !fits {
        return Err(kb.malformed(format!(
            "GEMM tile {t:?} does not fit the tensor-core layout for {kind:?}"
        )));
    }
    Ok(l)
}

/// Generate the tensor-core main loop and epilogue.
pub(super) fn generate<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    g: &Gemm,
    blk: &Block<'ctx>,
    kind: MmaKind,
) -> R<()> {
    let l = layout(kb, blk, kind)?;
    let acc_t: BasicTypeEnum = if kind.int_acc() {
        kb.cx.i32_type().into()
    } else {
        kb.cx.f32_type().into()
    };
    let zero: BasicValueEnum = if kind.int_acc() {
        kb.cx.i32_type().const_zero().into()
    } else {
        kb.cx.f32_type().const_zero().into()
    };
    // acc[(i·nt + j)·4 + q]
    let mut acc: Vec<PointerValue> = Vec::with_capacity(l.mt * l.nt * 4);
    for _ in 0..l.mt * l.nt * 4 {
        let p = kb.entry_alloca(acc_t, "acc")?;
        kb.b.build_store(p, zero).map_err(|e| kb.e(e))?;
        acc.push(p);
    }
    let lane =
        kb.b.build_and(blk.tid, kb.i64c(31), "")
            .map_err(|e| kb.e(e))?;
    let warp = kb.udiv(blk.tid, kb.i64c(32))?;
    let warps_n = kb.i64c(i64::from(blk.tile.warps_n));
    let wm = kb.udiv(warp, warps_n)?;
    let wn = kb.urem(warp, warps_n)?;
    let l8 = kb.urem(lane, kb.i64c(8))?;
    let q2 = kb.urem(kb.udiv(lane, kb.i64c(8))?, kb.i64c(2))?;
    let h16 = kb.udiv(lane, kb.i64c(16))?;
    // ldmatrix lane offsets (bytes, within a stage): A rows wm·WM + l%8 + 8·((l/8)%2),
    // byte 16·(l/16); B columns wn·WN + l%8 + 8·(l/16), byte 16·((l/8)%2).
    let a_row = kb.add(
        kb.mul(wm, kb.i64c(l.wm_rows))?,
        kb.add(l8, kb.mul(q2, kb.i64c(8))?)?,
    )?;
    let a_lane = kb.add(kb.mul(a_row, kb.i64c(l.pitch))?, kb.mul(h16, kb.i64c(16))?)?;
    let b_col = kb.add(
        kb.mul(wn, kb.i64c(l.wn_cols))?,
        kb.add(l8, kb.mul(h16, kb.i64c(8))?)?,
    )?;
    let b_lane = kb.add(
        kb.add(kb.i64c(l.a_bytes), kb.mul(b_col, kb.i64c(l.pitch))?)?,
        kb.mul(q2, kb.i64c(16))?,
    )?;
    let a_vec = vector_ok(kb, blk.a.arg, blk.a.base, blk.a.cs, blk.a.rs, l.eb)?;
    let b_vec = vector_ok(kb, blk.b.arg, blk.b.base, blk.b.rs, blk.b.cs, l.eb)?;
    // number of k-tiles
    let nk = kb.udiv(kb.add(blk.k, kb.i64c(l.bk - 1))?, kb.i64c(l.bk))?;
    for s in 0..l.stages - 1 {
        let kt = kb.i64c(s);
        let more = kb.icmp(IntPredicate::SLT, kt, nk)?;
        kb.if_then(more, |kb| fill(kb, blk, &l, a_vec, b_vec, kt))?;
        kb.cp_async_commit()?;
    }
    kb.for_loop(kb.i64c(0), nk, kb.i64c(1), |kb, kt| {
        let next = kb.add(kt, kb.i64c(l.stages - 1))?;
        let more = kb.icmp(IntPredicate::SLT, next, nk)?;
        kb.if_then(more, |kb| fill(kb, blk, &l, a_vec, b_vec, next))?;
        kb.cp_async_commit()?;
        kb.cp_async_wait((l.stages - 1) as i32)?;
        kb.barrier()?;
        let sbase = kb.mul(kb.urem(kt, kb.i64c(l.stages))?, kb.i64c(l.stage_bytes))?;
        for ks in 0..l.ksteps {
            let kbyte = ks * 32;
            let mut af = Vec::with_capacity(l.mt);
            for i in 0..l.mt as i64 {
                let off = kb.add(sbase, kb.add(a_lane, kb.i64c(i * 16 * l.pitch + kbyte))?)?;
                af.push(kb.ldmatrix_x4(kb.smem_at(off)?)?);
            }
            let mut bf = Vec::with_capacity(l.nt);
            for jp in 0..(l.nt / 2) as i64 {
                let off = kb.add(sbase, kb.add(b_lane, kb.i64c(jp * 16 * l.pitch + kbyte))?)?;
                let r = kb.ldmatrix_x4(kb.smem_at(off)?)?;
                bf.push([r[0], r[1]]);
                bf.push([r[2], r[3]]);
            }
            for (i, a) in af.iter().enumerate() {
                for (j, b) in bf.iter().enumerate() {
                    let base = (i * l.nt + j) * 4;
                    let mut c = [zero; 4];
                    for (q, cq) in c.iter_mut().enumerate() {
                        *cq =
                            kb.b.build_load(acc_t, acc[base + q], "")
                                .map_err(|e| kb.e(e))?;
                    }
                    let d = kb.mma(kind, *a, *b, c)?;
                    for (q, dq) in d.iter().enumerate() {
                        kb.b.build_store(acc[base + q], *dq).map_err(|e| kb.e(e))?;
                    }
                }
            }
        }
        kb.barrier()
    })?;
    kb.cp_async_wait(0)?;
    // Epilogue: warp row wm is pass wm.
    let g4 = kb.udiv(lane, kb.i64c(4))?;
    let t2 = kb.mul(kb.urem(lane, kb.i64c(4))?, kb.i64c(2))?;
    let col_base = kb.add(kb.mul(wn, kb.i64c(l.wn_cols))?, t2)?;
    staged_epilogue(kb, g, blk, kind.int_acc(), |kb, p| {
        let mine = kb.icmp(IntPredicate::EQ, wm, p)?;
        kb.if_then(mine, |kb| {
            for i in 0..l.mt {
                for j in 0..l.nt {
                    for q in 0..4usize {
                        let r = kb.add(g4, kb.i64c((16 * i + 8 * (q / 2)) as i64))?;
                        let c = kb.add(col_base, kb.i64c((8 * j + q % 2) as i64))?;
                        let ptr = stage_slot(kb, blk.tile, r, c)?;
                        let v =
                            kb.b.build_load(acc_t, acc[(i * l.nt + j) * 4 + q], "")
                                .map_err(|e| kb.e(e))?;
                        kb.b.build_store(ptr, v).map_err(|e| kb.e(e))?;
                    }
                }
            }
            Ok(())
        })
    })
}

/// Whether an operand can be filled with 16-byte `cp.async` chunks along k: its k stride
/// (`kstride`) is 1, its other stride keeps rows 16-byte aligned and its first element
/// (for this batch entry) is 16-byte aligned. Evaluated at run time, uniform per block.
fn vector_ok<'ctx>(
    kb: &Kb<'ctx, '_>,
    arg: u32,
    base: IntValue<'ctx>,
    kstride: IntValue<'ctx>,
    other: IntValue<'ctx>,
    eb: i64,
) -> R<IntValue<'ctx>> {
    let unit = kb.icmp(IntPredicate::EQ, kstride, kb.i64c(1))?;
    let mask = kb.i64c(15);
    let rows = kb.mul(other, kb.i64c(eb))?;
    let rows = kb.b.build_and(rows, mask, "").map_err(|e| kb.e(e))?;
    let rows_ok = kb.icmp(IntPredicate::EQ, rows, kb.i64c(0))?;
    let ptr =
        kb.b.build_ptr_to_int(kb.arg(arg)?, kb.cx.i64_type(), "")
            .map_err(|e| kb.e(e))?;
    let addr = kb.add(ptr, kb.mul(base, kb.i64c(eb))?)?;
    let addr = kb.b.build_and(addr, mask, "").map_err(|e| kb.e(e))?;
    let addr_ok = kb.icmp(IntPredicate::EQ, addr, kb.i64c(0))?;
    let r = kb.b.build_and(unit, rows_ok, "").map_err(|e| kb.e(e))?;
    kb.b.build_and(r, addr_ok, "").map_err(|e| kb.e(e))
}

/// Fill the stage of k-tile `kt` (A and B, vector or scalar per operand).
fn fill<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    a_vec: IntValue<'ctx>,
    b_vec: IntValue<'ctx>,
    kt: IntValue<'ctx>,
) -> R<()> {
    let k0 = kb.mul(kt, kb.i64c(l.bk))?;
    let sbase = kb.mul(kb.urem(kt, kb.i64c(l.stages))?, kb.i64c(l.stage_bytes))?;
    let b_base = kb.add(sbase, kb.i64c(l.a_bytes))?;
    // A: rows r < bm along m (row stride rs), k along cs.
    let a = Side {
        arg: blk.a.arg,
        base: blk.a.base,
        kstride: blk.a.cs,
        ostride: blk.a.rs,
        o0: blk.m0,
        olen: blk.m,
        rows: l.bm,
        smem: sbase,
    };
    let b = Side {
        arg: blk.b.arg,
        base: blk.b.base,
        kstride: blk.b.rs,
        ostride: blk.b.cs,
        o0: blk.n0,
        olen: blk.n,
        rows: l.bn,
        smem: b_base,
    };
    for (side, vec) in [(a, a_vec), (b, b_vec)] {
        kb.if_else(
            vec,
            |kb| fill_vector(kb, blk, l, &side, k0),
            |kb| fill_scalar(kb, blk, l, &side, k0),
        )?;
    }
    Ok(())
}

/// One operand's shared tile: `rows` rows along the non-contracted axis (`o`), each
/// `bk` elements of k; global element `(o, k)` at `base + o·ostride + k·kstride`.
struct Side<'ctx> {
    arg: u32,
    base: IntValue<'ctx>,
    kstride: IntValue<'ctx>,
    ostride: IntValue<'ctx>,
    o0: IntValue<'ctx>,
    olen: IntValue<'ctx>,
    rows: i64,
    smem: IntValue<'ctx>,
}

fn fill_vector<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    s: &Side<'ctx>,
    k0: IntValue<'ctx>,
) -> R<()> {
    let base_ptr = kb.arg(s.arg)?;
    for i in 0..(s.rows * l.cpr) / l.threads {
        let c = kb.add(blk.tid, kb.i64c(i * l.threads))?;
        let r = kb.udiv(c, kb.i64c(l.cpr))?;
        let q = kb.urem(c, kb.i64c(l.cpr))?;
        let go = kb.add(s.o0, r)?;
        let gk = kb.add(k0, kb.mul(q, kb.i64c(l.epc))?)?;
        // bytes = o < olen ? clamp((K − k)·eb, 0, 16) : 0
        let rem = kb.mul(kb.sub(blk.k, gk)?, kb.i64c(l.eb))?;
        let neg = kb.icmp(IntPredicate::SLT, rem, kb.i64c(0))?;
        let rem = kb.isel(neg, kb.i64c(0), rem)?;
        let big = kb.icmp(IntPredicate::SGT, rem, kb.i64c(16))?;
        let rem = kb.isel(big, kb.i64c(16), rem)?;
        let oin = kb.icmp(IntPredicate::SLT, go, s.olen)?;
        let bytes = kb.isel(oin, rem, kb.i64c(0))?;
        let any = kb.icmp(IntPredicate::SGT, bytes, kb.i64c(0))?;
        // element (o, k) with k contiguous; element 0 when nothing is read
        let idx = kb.add(s.base, kb.add(kb.mul(go, s.ostride)?, gk)?)?;
        let idx = kb.isel(any, idx, kb.i64c(0))?;
        let src = kb.elem_ptr(base_ptr, kb.cx.i8_type(), kb.mul(idx, kb.i64c(l.eb))?)?;
        let dst_off = kb.add(
            s.smem,
            kb.add(kb.mul(r, kb.i64c(l.pitch))?, kb.mul(q, kb.i64c(16))?)?,
        )?;
        let dst = kb.smem_at(dst_off)?;
        kb.cp_async_16(dst, src, kb.trunc32(bytes)?)?;
    }
    Ok(())
}

fn fill_scalar<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    s: &Side<'ctx>,
    k0: IntValue<'ctx>,
) -> R<()> {
    let base_ptr = kb.arg(s.arg)?;
    let et: BasicTypeEnum = if l.eb == 2 {
        kb.cx.i16_type().into()
    } else {
        kb.cx.i8_type().into()
    };
    for i in 0..(s.rows * l.cpr) / l.threads {
        let c = kb.add(blk.tid, kb.i64c(i * l.threads))?;
        let r = kb.urem(c, kb.i64c(s.rows))?;
        let q = kb.udiv(c, kb.i64c(s.rows))?;
        let go = kb.add(s.o0, r)?;
        let orow = kb.add(s.base, kb.mul(go, s.ostride)?)?;
        let row_off = kb.add(s.smem, kb.mul(r, kb.i64c(l.pitch))?)?;
        for e in 0..l.epc {
            let kk = kb.add(kb.mul(q, kb.i64c(l.epc))?, kb.i64c(e))?;
            let gk = kb.add(k0, kk)?;
            let ok = both_lt(kb, go, s.olen, gk, blk.k)?;
            let idx = kb.add(orow, kb.mul(gk, s.kstride)?)?;
            let src = kb.elem_ptr(base_ptr, et, idx)?;
            let v = kb.guarded_load(ok, et, src)?;
            let dst = kb.smem_at(kb.add(row_off, kb.mul(kk, kb.i64c(l.eb))?)?)?;
            kb.b.build_store(dst, v).map_err(|e| kb.e(e))?;
        }
    }
    Ok(())
}
