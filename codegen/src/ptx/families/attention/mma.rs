//! f16 / bf16 attention on tensor cores (FlashAttention-2 register layout): both products
//! on `mma.sync.aligned.m16n8k16.row.col` with f32 accumulation, the softmax in f32.
//!
//! Mapping (`W = bq / 16` warps; in a warp `g = lane / 4`, `t = lane % 4`):
//! - warp `w` owns queries `q0 + 16w .. +16`; a thread holds rows `i0 = q0 + 16w + g` and
//!   `i1 = i0 + 8` of every fragment (the m16n8k16 C layout: `c0, c1` at row `g`, columns
//!   `2t, 2t+1`; `c2, c3` at row `g + 8`).
//! - Q stays in registers as A fragments, loaded once from global memory: for k-step `kk`
//!   (head-dimension columns `16kk ..`), registers `{Q[i0][c], Q[i0][c+1]}`,
//!   `{Q[i1][c], Q[i1][c+1]}`, `{Q[i0][c+8], …}`, `{Q[i1][c+8], …}` with `c = 16kk + 2t`;
//!   zero beyond `head_dim` and for rows `≥ sq`.
//! - Per key tile `[j0, j0 + bk)`: K and V rows go to shared memory (`bk` rows of `dpad`
//!   elements, rows `row_bytes = 2·dpad + 16` apart; V after K), by `cp.async` 16-byte
//!   copies when every row starts 16-byte aligned, element by element otherwise; zeros
//!   beyond `sk`, `head_dim`, `v_head_dim` (shared memory starts as garbage, and 0·NaN would
//!   poison the products).
//! - `S = Q·Kᵀ` per 8-key n-tile `nt`: B fragment `{K[8nt + g][16kk + 2t], … + 1}` and
//!   `{K[8nt + g][16kk + 8 + 2t], … + 1}` — two consecutive elements of a K row, one 32-bit
//!   shared load each.
//! - Scale, mask (−∞ for dropped keys), row maximum over the thread's values then a
//!   butterfly over the 4 lanes of the row (`t` = 0..3: xor 1, 2), `m_new = max(m, rowmax)`,
//!   `α = 2^((m − m̃)·log2 e)`, `p = 2^((s − m̃)·log2 e)` with `m̃ = m_new`, or 0 when
//!   `m_new = −∞` (no key yet: every `p` is 0 and `α` is 0). Each thread keeps a partial sum
//!   `l` of its own columns (`l = l·α + Σp`), reduced over the 4 lanes at the end.
//! - `O += P·V`: the S accumulators of n-tiles `2ks, 2ks+1` are exactly the A fragment of
//!   k-step `ks` (keys `16ks ..`), rounded to the input type. B fragment for output n-tile
//!   `nt`: `{V[16ks + 2t][8nt + g], V[16ks + 2t + 1][8nt + g]}` and the same 8 keys later —
//!   two 16-bit shared loads each (no `ldmatrix.trans` yet).
//! - `out = O / l`, or 0 when `l = 0` (every key dropped).

use super::{Setup, masked_logit, normalize, out_index, setup};
use crate::ptx::attention_ops::Slot;
use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::tiles::AttentionTile;
use crate::spec::Attention;
use inkwell::values::{BasicValueEnum, FloatValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};

/// Generate the tensor-core kernel for `tile` (`row_lanes == 0`).
pub(super) fn generate<'ctx>(kb: &mut Kb<'ctx, '_>, a: &Attention, tile: &AttentionTile) -> R<()> {
    let dt = a.dtype;
    if !tile.tensor_cores()
        || !tile.bq.is_multiple_of(16)
        || !tile.bk.is_multiple_of(16)
        || !tile.dpad.is_multiple_of(16)
    {
        return Err(kb.malformed(format!("tensor-core attention tile {tile:?}")));
    }
    let bk = tile.bk as u64;
    let rowb = tile.row_bytes() as u64;
    let kd = a.head_dim.div_ceil(16); // k-steps of S = Q·Kᵀ
    let nts = bk / 8; // n-tiles of S
    let kspv = bk / 16; // k-steps of O += P·V
    let nto = a.v_head_dim.div_ceil(8); // n-tiles of O
    if kd * 16 > tile.dpad as u64 || nto * 8 > tile.dpad as u64 {
        return Err(kb.malformed(format!(
            "tile {tile:?} narrower than head dims {} / {}",
            a.head_dim, a.v_head_dim
        )));
    }
    // registers, created in the entry block
    let ninf = kb.f32c(f32::NEG_INFINITY);
    let m = [kb.attn_slot(ninf)?, kb.attn_slot(ninf)?];
    let l = [kb.attn_slot(kb.f32c(0.0))?, kb.attn_slot(kb.f32c(0.0))?];
    let o: Vec<Slot> = (0..nto * 4)
        .map(|_| kb.attn_slot(kb.f32c(0.0)))
        .collect::<R<_>>()?;

    let st = setup(kb, a, tile.bq)?;
    let tid = kb.sreg64("tid.x")?;
    let warp = kb.udiv(tid, kb.i64c(32))?;
    let lane = kb.urem(tid, kb.i64c(32))?;
    let g = kb.udiv(lane, kb.i64c(4))?;
    let t = kb.urem(lane, kb.i64c(4))?;
    let i0 = kb.add(kb.add(st.q0, kb.mul(warp, kb.i64c(16))?)?, g)?;
    let i1 = kb.add(i0, kb.i64c(8))?;
    let rows = [i0, i1];
    let row_ok = [
        kb.icmp(IntPredicate::SLT, i0, st.sq)?,
        kb.icmp(IntPredicate::SLT, i1, st.sq)?,
    ];
    let t2 = kb.mul(t, kb.i64c(2))?;

    // Q as A fragments
    let d = kb.i64c(a.head_dim as i64);
    let qel = |kb: &Kb<'ctx, '_>, r: usize, c: IntValue<'ctx>| -> R<FloatValue<'ctx>> {
        let ok = kb.attn_and(row_ok[r], kb.icmp(IntPredicate::SLT, c, d)?)?;
        let idx = kb.add(kb.add(st.q_base, kb.mul(rows[r], st.q_ss)?)?, c)?;
        kb.attn_load_f(a.q.arg, ok, idx)
    };
    let mut qa: Vec<[BasicValueEnum; 4]> = Vec::with_capacity(kd as usize);
    for kk in 0..kd {
        let c = kb.add(t2, kb.i64c((16 * kk) as i64))?;
        let c1 = kb.add(c, kb.i64c(1))?;
        let c8 = kb.add(c, kb.i64c(8))?;
        let c9 = kb.add(c, kb.i64c(9))?;
        let mut regs = Vec::with_capacity(4);
        for (r, lo, hi) in [(0, c, c1), (1, c, c1), (0, c8, c9), (1, c8, c9)] {
            let x = qel(kb, r, lo)?;
            let y = qel(kb, r, hi)?;
            regs.push(kb.attn_pack2(dt, x, y)?);
        }
        qa.push([regs[0], regs[1], regs[2], regs[3]]);
    }

    // cp.async needs every copied 8-element chunk 16-byte aligned in global memory
    let aligned = if a.head_dim.is_multiple_of(8) && a.v_head_dim.is_multiple_of(8) {
        let mut c = kb.attn_arg_aligned(a.k.arg, 16)?;
        c = kb.attn_and(c, kb.attn_arg_aligned(a.v.arg, 16)?)?;
        for x in [st.k_base, st.k_ss, st.v_base, st.v_ss] {
            c = kb.attn_and(c, kb.attn_multiple(x, 8)?)?;
        }
        Some(c)
    } else {
        None
    };
    let v_tile = kb.i64c((bk * rowb) as i64);
    let log2e = kb.f32c(std::f32::consts::LOG2_E);

    kb.for_loop(kb.i64c(0), st.kend, kb.i64c(bk as i64), |kb, j0| {
        match aligned {
            Some(c) => {
                let fast = kb.block("cp_async_tile");
                let slow = kb.block("scalar_tile");
                let join = kb.block("tile_loaded");
                kb.cond_br(c, fast, slow)?;
                kb.b.position_at_end(fast);
                load_tile_async(kb, a, &st, j0, tid, tile, v_tile)?;
                kb.br(join)?;
                kb.b.position_at_end(slow);
                load_tile_scalar(kb, a, &st, j0, tid, tile, v_tile)?;
                kb.br(join)?;
                kb.b.position_at_end(join);
            }
            None => load_tile_scalar(kb, a, &st, j0, tid, tile, v_tile)?,
        }
        kb.barrier()?;

        // S = Q·Kᵀ, then scale and mask
        let mut s: Vec<[FloatValue; 4]> = Vec::with_capacity(nts as usize);
        for nt in 0..nts {
            let krow = kb.mul(kb.add(g, kb.i64c((8 * nt) as i64))?, kb.i64c(rowb as i64))?;
            let mut c = [kb.f32c(0.0); 4];
            for (kk, qf) in qa.iter().enumerate() {
                let col = kb.add(t2, kb.i64c((16 * kk) as i64))?;
                let off0 = kb.add(krow, kb.mul(col, kb.i64c(2))?)?;
                let off1 = kb.add(off0, kb.i64c(16))?;
                let b0 = kb.attn_lds(kb.cx.i32_type().into(), off0, 4)?;
                let b1 = kb.attn_lds(kb.cx.i32_type().into(), off1, 4)?;
                c = kb.attn_mma(dt, qf, &[b0, b1], &c)?;
            }
            let jb = kb.add(kb.add(j0, kb.i64c((8 * nt) as i64))?, t2)?;
            for (q, cq) in c.iter_mut().enumerate() {
                let r = q / 2;
                let j = kb.add(jb, kb.i64c((q % 2) as i64))?;
                let sc = kb.fmul(*cq, kb.f32c(a.scale))?;
                *cq = masked_logit(kb, a, &st, sc, rows[r], j, row_ok[r])?;
            }
            s.push(c);
        }

        // online softmax, per row r (values q = 2r, 2r + 1 of every n-tile)
        let mut alpha = [kb.f32c(0.0); 2];
        let mut shift = [kb.f32c(0.0); 2];
        for r in 0..2 {
            let mut mx = kb.f32c(f32::NEG_INFINITY);
            for c in &s {
                mx = kb.fmax(mx, c[2 * r])?;
                mx = kb.fmax(mx, c[2 * r + 1])?;
            }
            for x in [1, 2] {
                let other = kb.shfl_xor_f32(mx, x)?;
                mx = kb.fmax(mx, other)?;
            }
            let mo = kb.attn_get(m[r])?;
            let mn = kb.fmax(mo, mx)?;
            let none = kb.fcmp(FloatPredicate::OEQ, mn, kb.f32c(f32::NEG_INFINITY))?;
            let ms = kb.fsel(none, kb.f32c(0.0), mn)?;
            alpha[r] = kb.exp2_approx(kb.fmul(kb.fsub(mo, ms)?, log2e)?)?;
            shift[r] = ms;
            kb.attn_set(m[r], mn)?;
        }
        let mut psum = [kb.f32c(0.0); 2];
        for c in s.iter_mut() {
            for (q, cq) in c.iter_mut().enumerate() {
                let r = q / 2;
                *cq = kb.exp2_approx(kb.fmul(kb.fsub(*cq, shift[r])?, log2e)?)?;
                psum[r] = kb.fadd(psum[r], *cq)?;
            }
        }
        for r in 0..2 {
            let lv = kb.attn_get(l[r])?;
            kb.attn_set(l[r], kb.fma(lv, alpha[r], psum[r])?)?;
        }

        // O = O·α + P·V
        let mut ov: Vec<[FloatValue; 4]> = Vec::with_capacity(nto as usize);
        for nt in 0..nto {
            let mut c = [kb.f32c(0.0); 4];
            for (q, cq) in c.iter_mut().enumerate() {
                let old = kb.attn_get(o[(nt * 4) as usize + q])?;
                *cq = kb.fmul(old, alpha[q / 2])?;
            }
            ov.push(c);
        }
        for ks in 0..kspv as usize {
            let (pa, pb) = (s[2 * ks], s[2 * ks + 1]);
            let af = [
                kb.attn_pack2(dt, pa[0], pa[1])?,
                kb.attn_pack2(dt, pa[2], pa[3])?,
                kb.attn_pack2(dt, pb[0], pb[1])?,
                kb.attn_pack2(dt, pb[2], pb[3])?,
            ];
            // key rows 16ks + 2t (+1) and 16ks + 8 + 2t (+1)
            let k0 = kb.add(t2, kb.i64c((16 * ks) as i64))?;
            let r0 = kb.add(v_tile, kb.mul(k0, kb.i64c(rowb as i64))?)?;
            for (nt, c) in ov.iter_mut().enumerate() {
                let col = kb.add(g, kb.i64c((8 * nt) as i64))?;
                let at = kb.add(r0, kb.mul(col, kb.i64c(2))?)?;
                let b0 = pair16(kb, at, rowb)?;
                let b1 = pair16(kb, kb.add(at, kb.i64c((8 * rowb) as i64))?, rowb)?;
                *c = kb.attn_mma(dt, &af, &[b0, b1], c)?;
            }
        }
        for (nt, c) in ov.iter().enumerate() {
            for (q, &cq) in c.iter().enumerate() {
                kb.attn_set(o[nt * 4 + q], cq)?;
            }
        }
        kb.barrier()
    })?;

    // out = O / l, l summed over the row's 4 lanes
    let mut inv = [kb.f32c(0.0); 2];
    let mut empty = row_ok;
    for r in 0..2 {
        let mut lv = kb.attn_get(l[r])?;
        for x in [1, 2] {
            let other = kb.shfl_xor_f32(lv, x)?;
            lv = kb.fadd(lv, other)?;
        }
        empty[r] = kb.fcmp(FloatPredicate::OEQ, lv, kb.f32c(0.0))?;
        inv[r] = kb.fdiv(kb.f32c(1.0), lv)?;
    }
    let dv = kb.i64c(a.v_head_dim as i64);
    for nt in 0..nto {
        let cb = kb.add(t2, kb.i64c((8 * nt) as i64))?;
        for q in 0..4usize {
            let r = q / 2;
            let col = kb.add(cb, kb.i64c((q % 2) as i64))?;
            let ok = kb.attn_and(row_ok[r], kb.icmp(IntPredicate::SLT, col, dv)?)?;
            let acc = kb.attn_get(o[nt as usize * 4 + q])?;
            let v = normalize(kb, acc, inv[r], empty[r])?;
            let idx = out_index(kb, a, &st, rows[r], col)?;
            kb.if_then(ok, |kb| kb.store(a.out, idx, Val::F(v)))?;
        }
    }
    kb.ret()
}

/// The B register `{V[k][n], V[k + 1][n]}` from two 16-bit shared loads: the element at
/// shared byte `at` in bits 0..16, the one a row (`rowb` bytes) below in bits 16..32.
fn pair16<'ctx>(kb: &Kb<'ctx, '_>, at: IntValue<'ctx>, rowb: u64) -> R<BasicValueEnum<'ctx>> {
    let i16t = kb.cx.i16_type();
    let i32t = kb.cx.i32_type();
    let lo = kb.attn_lds(i16t.into(), at, 2)?.into_int_value();
    let hi = kb
        .attn_lds(i16t.into(), kb.add(at, kb.i64c(rowb as i64))?, 2)?
        .into_int_value();
    let lo = kb.b.build_int_z_extend(lo, i32t, "").map_err(|e| kb.e(e))?;
    let hi = kb.b.build_int_z_extend(hi, i32t, "").map_err(|e| kb.e(e))?;
    let hi =
        kb.b.build_left_shift(hi, kb.i32c(16), "")
            .map_err(|e| kb.e(e))?;
    Ok(kb.b.build_or(lo, hi, "").map_err(|e| kb.e(e))?.into())
}

/// Shared byte offset of element `(row, col)` of the K tile (add `v_tile` for V).
fn tile_off<'ctx>(
    kb: &Kb<'ctx, '_>,
    row: IntValue<'ctx>,
    col: IntValue<'ctx>,
    rowb: u64,
) -> R<IntValue<'ctx>> {
    kb.add(kb.mul(row, kb.i64c(rowb as i64))?, kb.mul(col, kb.i64c(2))?)
}

/// Element-by-element tile copy: thread `tid` copies elements `tid, tid + threads, …` of
/// the `bk × dpad` K and V tiles (row `e / dpad`, column `e % dpad`), zero outside the data.
fn load_tile_scalar<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    j0: IntValue<'ctx>,
    tid: IntValue<'ctx>,
    tile: &AttentionTile,
    v_tile: IntValue<'ctx>,
) -> R<()> {
    let dpad = kb.i64c(tile.dpad as i64);
    let total = kb.i64c((tile.bk * tile.dpad) as i64);
    let step = kb.i64c(tile.threads() as i64);
    let rowb = tile.row_bytes() as u64;
    let d = kb.i64c(a.head_dim as i64);
    let dv = kb.i64c(a.v_head_dim as i64);
    kb.for_loop(tid, total, step, |kb, e| {
        let row = kb.udiv(e, dpad)?;
        let col = kb.urem(e, dpad)?;
        let j = kb.add(j0, row)?;
        let jin = kb.icmp(IntPredicate::SLT, j, st.sk)?;
        let off = tile_off(kb, row, col, rowb)?;
        let kc = kb.attn_and(jin, kb.icmp(IntPredicate::SLT, col, d)?)?;
        let kidx = kb.add(kb.add(st.k_base, kb.mul(j, st.k_ss)?)?, col)?;
        let kv = kb.attn_load_f(a.k.arg, kc, kidx)?;
        kb.attn_sts(off, kb.attn_to_half(a.dtype, kv)?.into(), 2)?;
        let vc = kb.attn_and(jin, kb.icmp(IntPredicate::SLT, col, dv)?)?;
        let vidx = kb.add(kb.add(st.v_base, kb.mul(j, st.v_ss)?)?, col)?;
        let vv = kb.attn_load_f(a.v.arg, vc, vidx)?;
        kb.attn_sts(
            kb.add(off, v_tile)?,
            kb.attn_to_half(a.dtype, vv)?.into(),
            2,
        )
    })
}

/// `cp.async` tile copy in 16-byte chunks (8 elements): thread `tid` copies chunks
/// `tid, tid + threads, …` of each tile (row `c / (dpad/8)`, columns `8·(c % (dpad/8)) ..`).
/// A chunk outside the data (key `≥ sk`, columns `≥ head_dim` — whole chunks, both head dims
/// being multiples of 8 on this path) copies 0 bytes from the argument's base and is
/// zero-filled. Waits for this thread's copies; the caller's barrier publishes them.
fn load_tile_async<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    j0: IntValue<'ctx>,
    tid: IntValue<'ctx>,
    tile: &AttentionTile,
    v_tile: IntValue<'ctx>,
) -> R<()> {
    let cpr = kb.i64c((tile.dpad / 8) as i64);
    let total = kb.i64c((tile.bk * tile.dpad / 8) as i64);
    let step = kb.i64c(tile.threads() as i64);
    let rowb = tile.row_bytes() as u64;
    let d = kb.i64c(a.head_dim as i64);
    let dv = kb.i64c(a.v_head_dim as i64);
    kb.for_loop(tid, total, step, |kb, c| {
        let row = kb.udiv(c, cpr)?;
        let col = kb.mul(kb.urem(c, cpr)?, kb.i64c(8))?;
        let j = kb.add(j0, row)?;
        let jin = kb.icmp(IntPredicate::SLT, j, st.sk)?;
        let off = tile_off(kb, row, col, rowb)?;
        for (arg, base, ss, width, dst) in [
            (a.k.arg, st.k_base, st.k_ss, d, off),
            (a.v.arg, st.v_base, st.v_ss, dv, kb.add(off, v_tile)?),
        ] {
            let ok = kb.attn_and(jin, kb.icmp(IntPredicate::SLT, col, width)?)?;
            let idx = kb.add(kb.add(base, kb.mul(j, ss)?)?, col)?;
            let idx = kb.isel(ok, idx, kb.i64c(0))?;
            let src = kb.attn_gptr(arg, idx, 2)?;
            let bytes =
                kb.b.build_select(ok, kb.i32c(16), kb.i32c(0), "")
                    .map_err(|e| kb.e(e))?
                    .into_int_value();
            kb.attn_cp_async16(dst, src, bytes)?;
        }
        Ok(())
    })?;
    kb.attn_cp_async_wait_all()
}
