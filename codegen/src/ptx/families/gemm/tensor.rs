//! The tensor-core GEMM path: warp-level `mma.sync` on 16-bit (k16) or 8-bit (k32)
//! operands, a `stages`-deep shared-memory pipeline filled by `cp.async` (or through
//! registers when an operand's layout or alignment rules the copies out), accumulators in
//! registers, then the staged epilogue.
//!
//! Shared memory, per stage `s` (`P = bk·eb + 16` bytes per k-major row, `eb` bytes per
//! element; `bk·eb` = 64 bytes = 2 mma k-steps of 32 bytes; `S = tile.mma_stage_bytes()`):
//! - `A_s[r][kbyte]` at `s·S + r·P + kbyte`, `r < bm`: A(m0 + r, k0 + kbyte / eb);
//! - B in one of two layouts, after the A tile:
//!   - k-major `B_s[c][kbyte]` at `s·S + bm·P + c·P + kbyte`, `c < bn`: B(k0 + kbyte / eb,
//!     n0 + c) (B stored transposed, k-contiguous: the "col" operand layout of mma,
//!     fragments by `ldmatrix.x4`);
//!   - n-major (16-bit only) `B_s[k][nbyte]` at `s·S + bm·P + k·Pn + nbyte`, `k < bk`,
//!     `Pn = bn·eb + 16`: B(k0 + k, n0 + nbyte / eb) (fragments by `ldmatrix.x4.trans`);
//!
//! elements outside `M × K` / `K × N` are zero, so they add nothing.
//!
//! Filling (decided per block at run time, uniform):
//! - A vector (`A.col_stride == 1`, rows and start 16-byte aligned): 16-byte chunks
//!   `(r, q) = (c / cpr, c % cpr)` (`c = tid + i·threads`, `cpr = bk·eb / 16`) with
//!   `cp.async … 16, n` copying `min(16, (K − k)·eb)` bytes (0 outside `M`), the rest
//!   zero-filled; a k-tile entirely inside `K` takes a copy of the same chunks whose sizes
//!   and rows do not depend on the k-tile (hoisted).
//! - B k-contiguous and aligned: the same, into the k-major tile.
//! - B n-contiguous and 16-byte aligned, 16-bit: 16-byte chunks along n into the n-major
//!   tile (`min(16, (N − n)·eb)` bytes, 0 outside `K`).
//! - B n-contiguous and 4-byte aligned, 8-bit: 4 × 4-byte blocks (4 k × 4 n) loaded into
//!   registers, transposed with byte shuffles and stored into the k-major tile.
//! - Otherwise guarded scalar loads: chunk `(r, q) = (c % rows, c / rows)`, each of its
//!   `e = 16 / eb` elements loaded (guarded) and stored (k-major), consecutive threads on
//!   consecutive rows of the non-contracted axis (coalesced for a row-major B).
//!
//! Pipeline (`S` = stages): fill k-tiles `0 .. S−1`, one commit each; iteration `kt` waits
//! until at most `S − 2` groups are pending (k-tile `kt` has landed for this thread),
//! passes one barrier (every thread's copies have landed; every warp is done with k-tile
//! `kt − 1`), fills k-tile `kt + S − 1` into the stage of `kt − 1` and commits (possibly an
//! empty group), then computes on k-tile `kt`.
//!
//! Warps: `w = tid / 32`, `wm = w / warps_n`, `wn = w % warps_n`; warp `(wm, wn)` owns rows
//! `wm·WM .. +WM` (`WM = bm / warps_m`), columns `wn·WN .. +WN` (`WN = bn / warps_n`) as
//! `WM/16 × WN/8` mma tiles. Fragments come from `ldmatrix.x4` / `.trans` (see `ptx::mma`
//! for the address patterns); accumulator `(i, j, q)` is row `wm·WM + 16i + g + 8·(q / 2)`,
//! column `wn·WN + 8j + 2t + q % 2` (`g = lane / 4`, `t = lane % 4`). The main loop is
//! generated twice for 16-bit operands (n-major B with `.trans` fragments, or k-major).

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
    /// Bytes per k-major row (`bk·eb + 16`).
    pitch: i64,
    /// Bytes per n-major B row (`bn·eb + 16`).
    pitch_n: i64,
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
        pitch_n: bn * eb + 16,
        cpr,
        epc: 16 / eb,
        a_bytes: bm * (row_bytes + 16),
        stage_bytes: i64::from(t.mma_stage_bytes()),
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
        && (l.bk * bn * eb / 16) % threads == 0
        && bn % 32 == 0
        && (eb != 1 || (l.bk / 4 * bn / 4) % threads == 0)
        && l.a_bytes + (bn * l.pitch).max(l.bk * l.pitch_n) == l.stage_bytes
        && l.stages * l.stage_bytes <= i64::from(t.gemm_shared_bytes());
    if !fits {
        return Err(kb.malformed(format!(
            "GEMM tile {t:?} does not fit the tensor-core layout for {kind:?}"
        )));
    }
    Ok(l)
}

/// How B reaches shared memory (uniform per block, decided at run time).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BFill {
    /// k-contiguous and 16-byte aligned: `cp.async` into the k-major tile.
    KVector,
    /// 16-bit elements, n-contiguous and 16-byte aligned: `cp.async` into the n-major tile
    /// (fragments by `ldmatrix.trans`).
    NVector,
    /// 8-bit elements, n-contiguous and 4-byte aligned: 4 × 4-byte blocks loaded into
    /// registers, transposed with byte shuffles and stored into the k-major tile.
    NTranspose8,
    /// Guarded scalar loads into the k-major tile.
    Scalar,
}

/// Generate the tensor-core main loop and epilogue.
pub(super) fn generate<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    g: &Gemm,
    blk: &Block<'ctx>,
    kind: MmaKind,
) -> R<()> {
    let l = layout(kb, blk, kind)?;
    // As many blocks per multiprocessor as 128 registers per thread allow (≤ 64
    // accumulators; 16 warps at 256 threads to hide one another's shared-memory and
    // tensor-core latencies), or 255 with larger warp tiles.
    let per_thread = if l.mt * l.nt <= 16 { 128 } else { 256 };
    let min_blocks = (65536 / (per_thread * blk.tile.threads())).max(1);
    kb.launch_bounds(blk.tile.threads(), min_blocks);
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
    // byte 16·(l/16); k-major B columns wn·WN + l%8 + 8·(l/16), byte 16·((l/8)%2);
    // n-major B rows (k) l%8 + 8·((l/8)%2), columns wn·WN + 8·(l/16).
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
    let bt_row = kb.add(l8, kb.mul(q2, kb.i64c(8))?)?;
    let bt_col = kb.add(kb.mul(wn, kb.i64c(l.wn_cols))?, kb.mul(h16, kb.i64c(8))?)?;
    let bt_lane = kb.add(
        kb.add(kb.i64c(l.a_bytes), kb.mul(bt_row, kb.i64c(l.pitch_n))?)?,
        kb.mul(bt_col, kb.i64c(l.eb))?,
    )?;
    let a_vec = vector_ok(kb, blk.a.arg, blk.a.base, blk.a.cs, blk.a.rs, l.eb, 16)?;
    let b_kvec = vector_ok(kb, blk.b.arg, blk.b.base, blk.b.rs, blk.b.cs, l.eb, 16)?;
    // number of k-tiles
    let nk = kb.udiv(kb.add(blk.k, kb.i64c(l.bk - 1))?, kb.i64c(l.bk))?;
    let ctx = Main {
        l: &l,
        kind,
        acc_t,
        zero,
        acc: &acc,
        a_lane,
        b_lane,
        bt_lane,
        a_vec,
        nk,
    };
    if l.eb == 2 {
        let b_nvec = vector_ok(kb, blk.b.arg, blk.b.base, blk.b.cs, blk.b.rs, l.eb, 16)?;
        let not_k = kb.b.build_not(b_kvec, "").map_err(|e| kb.e(e))?;
        let trans = kb.b.build_and(b_nvec, not_k, "").map_err(|e| kb.e(e))?;
        kb.if_else(
            trans,
            |kb| main_loop(kb, blk, &ctx, &Choice::Fixed(BFill::NVector)),
            |kb| {
                let c = Choice::Runtime {
                    c1: b_kvec,
                    first: BFill::KVector,
                    second: None,
                    last: BFill::Scalar,
                };
                main_loop(kb, blk, &ctx, &c)
            },
        )?;
    } else {
        let b_t8 = vector_ok(kb, blk.b.arg, blk.b.base, blk.b.cs, blk.b.rs, l.eb, 4)?;
        let c = Choice::Runtime {
            c1: b_kvec,
            first: BFill::KVector,
            second: Some((b_t8, BFill::NTranspose8)),
            last: BFill::Scalar,
        };
        main_loop(kb, blk, &ctx, &c)?;
    }
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

/// How a main loop fills B: one way, or chosen per fill at run time (uniform per block):
/// `first` when `c1`, else `second.1` when `second.0`, else `last`.
enum Choice<'ctx> {
    Fixed(BFill),
    Runtime {
        c1: IntValue<'ctx>,
        first: BFill,
        second: Option<(IntValue<'ctx>, BFill)>,
        last: BFill,
    },
}

/// What both main-loop variants share.
struct Main<'a, 'ctx> {
    l: &'a Layout,
    kind: MmaKind,
    acc_t: BasicTypeEnum<'ctx>,
    zero: BasicValueEnum<'ctx>,
    acc: &'a [PointerValue<'ctx>],
    a_lane: IntValue<'ctx>,
    b_lane: IntValue<'ctx>,
    bt_lane: IntValue<'ctx>,
    a_vec: IntValue<'ctx>,
    nk: IntValue<'ctx>,
}

/// The pipelined main loop (`S` stages): fill k-tiles `0 .. S−1` (one commit group each);
/// iteration `kt` waits until at most `S − 2` groups are pending (k-tile `kt` has landed
/// for this thread), passes a barrier (every thread's copies of k-tile `kt` have landed and
/// every warp has finished computing on k-tile `kt − 1`), fills k-tile `kt + S − 1` into
/// the stage of `kt − 1` and commits (possibly an empty group), then computes on k-tile
/// `kt`. One barrier per k-tile. `choose` gives the B fill: fixed (`NVector` selects the
/// n-major tile and `ldmatrix.trans` fragments), or chosen per fill at run time among the
/// k-major fills.
fn main_loop<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    m: &Main<'_, 'ctx>,
    choice: &Choice<'ctx>,
) -> R<()> {
    let l = m.l;
    let trans = matches!(choice, Choice::Fixed(BFill::NVector));
    let fill_b = |kb: &mut Kb<'ctx, '_>, kt: IntValue<'ctx>| -> R<()> {
        match *choice {
            Choice::Fixed(f) => fill(kb, blk, l, m.a_vec, f, kt),
            Choice::Runtime {
                c1,
                first,
                second,
                last,
            } => kb.if_else(
                c1,
                |kb| fill(kb, blk, l, m.a_vec, first, kt),
                |kb| match second {
                    Some((c2, f2)) => kb.if_else(
                        c2,
                        |kb| fill(kb, blk, l, m.a_vec, f2, kt),
                        |kb| fill(kb, blk, l, m.a_vec, last, kt),
                    ),
                    None => fill(kb, blk, l, m.a_vec, last, kt),
                },
            ),
        }
    };
    for s in 0..l.stages - 1 {
        let kt = kb.i64c(s);
        let more = kb.icmp(IntPredicate::SLT, kt, m.nk)?;
        kb.if_then(more, |kb| fill_b(kb, kt))?;
        kb.cp_async_commit()?;
    }
    kb.for_loop(kb.i64c(0), m.nk, kb.i64c(1), |kb, kt| {
        kb.cp_async_wait((l.stages - 2) as i32)?;
        kb.barrier()?;
        let next = kb.add(kt, kb.i64c(l.stages - 1))?;
        let more = kb.icmp(IntPredicate::SLT, next, m.nk)?;
        kb.if_then(more, |kb| fill_b(kb, next))?;
        kb.cp_async_commit()?;
        let sbase = kb.mul(kb.urem(kt, kb.i64c(l.stages))?, kb.i64c(l.stage_bytes))?;
        for ks in 0..l.ksteps {
            let kbyte = ks * 32;
            let mut af = Vec::with_capacity(l.mt);
            for i in 0..l.mt as i64 {
                let off = kb.add(sbase, kb.add(m.a_lane, kb.i64c(i * 16 * l.pitch + kbyte))?)?;
                af.push(kb.ldmatrix_x4(kb.smem_at(off)?)?);
            }
            let mut bf = Vec::with_capacity(l.nt);
            for jp in 0..(l.nt / 2) as i64 {
                let r = if trans {
                    // k rows 16·ks.., columns 16·jp.. of the warp's slice
                    let off = kb.add(
                        sbase,
                        kb.add(m.bt_lane, kb.i64c(ks * 16 * l.pitch_n + jp * 16 * l.eb))?,
                    )?;
                    kb.ldmatrix_x4_trans(kb.smem_at(off)?)?
                } else {
                    let off =
                        kb.add(sbase, kb.add(m.b_lane, kb.i64c(jp * 16 * l.pitch + kbyte))?)?;
                    kb.ldmatrix_x4(kb.smem_at(off)?)?
                };
                bf.push([r[0], r[1]]);
                bf.push([r[2], r[3]]);
            }
            for (i, a) in af.iter().enumerate() {
                for (j, b) in bf.iter().enumerate() {
                    let base = (i * l.nt + j) * 4;
                    let mut c = [m.zero; 4];
                    for (q, cq) in c.iter_mut().enumerate() {
                        *cq =
                            kb.b.build_load(m.acc_t, m.acc[base + q], "")
                                .map_err(|e| kb.e(e))?;
                    }
                    let d = kb.mma(m.kind, *a, *b, c)?;
                    for (q, dq) in d.iter().enumerate() {
                        kb.b.build_store(m.acc[base + q], *dq)
                            .map_err(|e| kb.e(e))?;
                    }
                }
            }
        }
        Ok(())
    })?;
    kb.cp_async_wait(0)
}

/// Whether an operand can be filled with `align`-byte chunks along its unit-stride axis:
/// that stride (`kstride`) is 1, its other stride keeps rows `align`-byte aligned and its
/// first element (for this batch entry) is `align`-byte aligned. Evaluated at run time,
/// uniform per block.
fn vector_ok<'ctx>(
    kb: &Kb<'ctx, '_>,
    arg: u32,
    base: IntValue<'ctx>,
    kstride: IntValue<'ctx>,
    other: IntValue<'ctx>,
    eb: i64,
    align: i64,
) -> R<IntValue<'ctx>> {
    let unit = kb.icmp(IntPredicate::EQ, kstride, kb.i64c(1))?;
    let mask = kb.i64c(align - 1);
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

/// Fill the stage of k-tile `kt`: A (vector when `a_vec`, else scalar) and B by `bfill`.
fn fill<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    a_vec: IntValue<'ctx>,
    bfill: BFill,
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
    // A k-tile entirely inside K takes copies whose sizes and source rows do not depend
    // on the k-tile (LLVM hoists them out of the loop); the last, partial one clamps.
    let k_end = kb.add(k0, kb.i64c(l.bk))?;
    let full = kb.icmp(IntPredicate::SLE, k_end, blk.k)?;
    kb.if_else(
        a_vec,
        |kb| {
            kb.if_else(
                full,
                |kb| fill_vector(kb, blk, l, &a, k0, true),
                |kb| fill_vector(kb, blk, l, &a, k0, false),
            )
        },
        |kb| fill_scalar(kb, blk, l, &a, k0),
    )?;
    match bfill {
        BFill::KVector => kb.if_else(
            full,
            |kb| fill_vector(kb, blk, l, &b, k0, true),
            |kb| fill_vector(kb, blk, l, &b, k0, false),
        ),
        BFill::NVector => kb.if_else(
            full,
            |kb| fill_vector_n(kb, blk, l, &b, k0, true),
            |kb| fill_vector_n(kb, blk, l, &b, k0, false),
        ),
        BFill::NTranspose8 => fill_transpose8(kb, blk, l, &b, k0),
        BFill::Scalar => fill_scalar(kb, blk, l, &b, k0),
    }
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

/// One operand's k-major tile in 16-byte `cp.async` chunks along k (see the module docs).
/// With `full` (the k-tile lies inside `K`, `k0 + bk ≤ K`) every chunk of a row inside the
/// operand copies 16 bytes and rows outside copy none, reading (nothing) from row
/// `olen − 1`: sizes and source rows do not depend on the k-tile, so LLVM hoists them.
/// Otherwise each chunk copies `min(16, (K − k)·eb)` bytes, 0 outside the operand, from
/// element 0 when it copies nothing.
fn fill_vector<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    s: &Side<'ctx>,
    k0: IntValue<'ctx>,
    full: bool,
) -> R<()> {
    let base_ptr = kb.arg(s.arg)?;
    let last = if full {
        Some(kb.sub(s.olen, kb.i64c(1))?)
    } else {
        None
    };
    for i in 0..(s.rows * l.cpr) / l.threads {
        let c = kb.add(blk.tid, kb.i64c(i * l.threads))?;
        let r = kb.udiv(c, kb.i64c(l.cpr))?;
        let q = kb.urem(c, kb.i64c(l.cpr))?;
        let go = kb.add(s.o0, r)?;
        let (idx, bytes) = match last {
            Some(last) => {
                let oin = kb.icmp(IntPredicate::SLT, go, s.olen)?;
                let bytes = kb.isel(oin, kb.i64c(16), kb.i64c(0))?;
                let go = kb.isel(oin, go, last)?;
                let row = kb.add(
                    s.base,
                    kb.add(kb.mul(go, s.ostride)?, kb.mul(q, kb.i64c(l.epc))?)?,
                )?;
                (kb.add(row, k0)?, bytes)
            }
            None => {
                let gk = kb.add(k0, kb.mul(q, kb.i64c(l.epc))?)?;
                // bytes = o < olen ? clamp((K − k)·eb, 0, 16) : 0
                let rem = clamp16(kb, kb.mul(kb.sub(blk.k, gk)?, kb.i64c(l.eb))?)?;
                let oin = kb.icmp(IntPredicate::SLT, go, s.olen)?;
                let bytes = kb.isel(oin, rem, kb.i64c(0))?;
                let any = kb.icmp(IntPredicate::SGT, bytes, kb.i64c(0))?;
                // element (o, k) with k contiguous; element 0 when nothing is read
                let idx = kb.add(s.base, kb.add(kb.mul(go, s.ostride)?, gk)?)?;
                (kb.isel(any, idx, kb.i64c(0))?, bytes)
            }
        };
        copy_chunk(kb, base_ptr, l.eb, idx, s.smem, r, l.pitch, q, bytes)?;
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

/// B n-contiguous (`ostride` = 1) into the n-major tile: `bk` rows (k) of `bn` elements,
/// pitch `bn·eb + 16`; chunk `c = tid + i·threads` is row `c / (bn·eb/16)`, 16-byte column
/// chunk `c % (bn·eb/16)` (consecutive threads on consecutive chunks of a row: coalesced),
/// copying `min(16, (N − n)·eb)` bytes, the rest zero-filled. With `full` (the k-tile lies
/// inside `K`) the size depends only on the column and a chunk past `N` reads (nothing)
/// from column 0; otherwise rows outside `K` copy nothing and read element 0.
fn fill_vector_n<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    s: &Side<'ctx>,
    k0: IntValue<'ctx>,
    full: bool,
) -> R<()> {
    let base_ptr = kb.arg(s.arg)?;
    let chunks_per_row = l.bn * l.eb / 16;
    for i in 0..(l.bk * chunks_per_row) / l.threads {
        let c = kb.add(blk.tid, kb.i64c(i * l.threads))?;
        let r = kb.udiv(c, kb.i64c(chunks_per_row))?;
        let q = kb.urem(c, kb.i64c(chunks_per_row))?;
        let (gk, gn) = if full {
            (None, kb.add(s.o0, kb.mul(q, kb.i64c(l.epc))?)?)
        } else {
            let gk = kb.add(k0, r)?;
            (Some(gk), kb.add(s.o0, kb.mul(q, kb.i64c(l.epc))?)?)
        };
        let rem = clamp16(kb, kb.mul(kb.sub(s.olen, gn)?, kb.i64c(l.eb))?)?;
        let (idx, bytes) = match gk {
            None => {
                let any = kb.icmp(IntPredicate::SGT, rem, kb.i64c(0))?;
                let gn = kb.isel(any, gn, kb.i64c(0))?;
                let gk = kb.add(k0, r)?;
                (kb.add(s.base, kb.add(kb.mul(gk, s.kstride)?, gn)?)?, rem)
            }
            Some(gk) => {
                let kin = kb.icmp(IntPredicate::SLT, gk, blk.k)?;
                let bytes = kb.isel(kin, rem, kb.i64c(0))?;
                let any = kb.icmp(IntPredicate::SGT, bytes, kb.i64c(0))?;
                // element (k, n): base + k·kstride + n
                let idx = kb.add(s.base, kb.add(kb.mul(gk, s.kstride)?, gn)?)?;
                (kb.isel(any, idx, kb.i64c(0))?, bytes)
            }
        };
        copy_chunk(kb, base_ptr, l.eb, idx, s.smem, r, l.pitch_n, q, bytes)?;
    }
    Ok(())
}

/// 8-bit B n-contiguous (`ostride` = 1, rows and start 4-byte aligned) into the k-major
/// tile: block `c = tid + i·threads` covers k `4·(c / (bn/4)) ..+4`, n `4·(c % (bn/4))
/// ..+4` (consecutive threads on consecutive 4-byte pieces of a row: coalesced). Its four
/// rows are loaded as 32-bit words (guarded bytewise at the edges of `K × N`), transposed
/// by byte shuffles into four words of 4 consecutive k for one n each, and stored into the
/// k-major rows `n` at byte `4·kq`. Synchronous (the stage is free: see `main_loop`).
fn fill_transpose8<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    blk: &Block<'ctx>,
    l: &Layout,
    s: &Side<'ctx>,
    k0: IntValue<'ctx>,
) -> R<()> {
    let base_ptr = kb.arg(s.arg)?;
    let i32t = kb.cx.i32_type();
    let i8t = kb.cx.i8_type();
    let quads_n = l.bn / 4;
    for i in 0..(l.bk / 4 * quads_n) / l.threads {
        let c = kb.add(blk.tid, kb.i64c(i * l.threads))?;
        let kq = kb.udiv(c, kb.i64c(quads_n))?;
        let nq = kb.urem(c, kb.i64c(quads_n))?;
        let gn = kb.add(s.o0, kb.mul(nq, kb.i64c(4))?)?;
        let n_full = kb.icmp(IntPredicate::SLE, kb.add(gn, kb.i64c(4))?, s.olen)?;
        let mut words = Vec::with_capacity(4);
        for r in 0..4i64 {
            let gk = kb.add(k0, kb.add(kb.mul(kq, kb.i64c(4))?, kb.i64c(r))?)?;
            let kin = kb.icmp(IntPredicate::SLT, gk, blk.k)?;
            let row = kb.add(s.base, kb.mul(gk, s.kstride)?)?;
            let full = kb.b.build_and(kin, n_full, "").map_err(|e| kb.e(e))?;
            // the whole word, or its bytes one by one inside K × N
            let wb = kb.block("t8_word");
            let eb_ = kb.block("t8_bytes");
            let join = kb.block("t8_join");
            kb.cond_br(full, wb, eb_)?;
            kb.b.position_at_end(wb);
            let p = kb.elem_ptr(base_ptr, i8t, kb.add(row, gn)?)?;
            let w_full = kb.b.build_load(i32t, p, "").map_err(|e| kb.e(e))?;
            kb.br(join)?;
            kb.b.position_at_end(eb_);
            let mut w = i32t.const_zero();
            for e in 0..4i64 {
                let gne = kb.add(gn, kb.i64c(e))?;
                let ok = both_lt(kb, gk, blk.k, gne, s.olen)?;
                let p = kb.elem_ptr(base_ptr, i8t, kb.add(row, gne)?)?;
                let v = kb.guarded_load(ok, i8t.into(), p)?.into_int_value();
                let v = kb.b.build_int_z_extend(v, i32t, "").map_err(|e| kb.e(e))?;
                let v =
                    kb.b.build_left_shift(v, i32t.const_int(8 * e as u64, false), "")
                        .map_err(|e| kb.e(e))?;
                w = kb.b.build_or(w, v, "").map_err(|e| kb.e(e))?;
            }
            let bytes_end = kb.current()?;
            kb.br(join)?;
            kb.b.position_at_end(join);
            let phi = kb.b.build_phi(i32t, "").map_err(|e| kb.e(e))?;
            phi.add_incoming(&[(&w_full, wb), (&w, bytes_end)]);
            words.push(phi.as_basic_value().into_int_value());
        }
        // out[j] = byte j of words[0..4], k-ordered
        for j in 0..4u64 {
            let mut o = i32t.const_zero();
            for (r, &w) in words.iter().enumerate() {
                let b =
                    kb.b.build_right_shift(w, i32t.const_int(8 * j, false), false, "")
                        .map_err(|e| kb.e(e))?;
                let b =
                    kb.b.build_and(b, i32t.const_int(0xff, false), "")
                        .map_err(|e| kb.e(e))?;
                let b =
                    kb.b.build_left_shift(b, i32t.const_int(8 * r as u64, false), "")
                        .map_err(|e| kb.e(e))?;
                o = kb.b.build_or(o, b, "").map_err(|e| kb.e(e))?;
            }
            let nrow = kb.add(kb.mul(nq, kb.i64c(4))?, kb.i64c(j as i64))?;
            let off = kb.add(
                s.smem,
                kb.add(kb.mul(nrow, kb.i64c(l.pitch))?, kb.mul(kq, kb.i64c(4))?)?,
            )?;
            kb.b.build_store(kb.smem_at(off)?, o).map_err(|e| kb.e(e))?;
        }
    }
    Ok(())
}

/// `clamp(x, 0, 16)`: the bytes a 16-byte chunk copies when `x` bytes remain.
fn clamp16<'ctx>(kb: &Kb<'ctx, '_>, x: IntValue<'ctx>) -> R<IntValue<'ctx>> {
    let neg = kb.icmp(IntPredicate::SLT, x, kb.i64c(0))?;
    let x = kb.isel(neg, kb.i64c(0), x)?;
    let big = kb.icmp(IntPredicate::SGT, x, kb.i64c(16))?;
    kb.isel(big, kb.i64c(16), x)
}

/// `cp.async` of `bytes` (≤ 16, zero-filled to 16) from element `idx` (`eb` bytes each) of
/// `base_ptr` to shared byte `smem + row·pitch + 16·chunk`.
#[allow(clippy::too_many_arguments)]
fn copy_chunk<'ctx>(
    kb: &Kb<'ctx, '_>,
    base_ptr: PointerValue<'ctx>,
    eb: i64,
    idx: IntValue<'ctx>,
    smem: IntValue<'ctx>,
    row: IntValue<'ctx>,
    pitch: i64,
    chunk: IntValue<'ctx>,
    bytes: IntValue<'ctx>,
) -> R<()> {
    let src = kb.elem_ptr(base_ptr, kb.cx.i8_type(), kb.mul(idx, kb.i64c(eb))?)?;
    let dst_off = kb.add(
        smem,
        kb.add(kb.mul(row, kb.i64c(pitch))?, kb.mul(chunk, kb.i64c(16))?)?,
    )?;
    kb.cp_async_16(kb.smem_at(dst_off)?, src, kb.trunc32(bytes)?)
}
