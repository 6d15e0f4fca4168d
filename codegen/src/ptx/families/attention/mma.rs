//! f16 / bf16 attention on tensor cores (FlashAttention-2 register layout): both products
//! on `mma.sync.aligned.m16n8k16.row.col` with f32 accumulation, the softmax in f32.
//!
//! Mapping (`mt = tile.m_tiles` 16-query m-tiles per warp, `W = bq / (16·mt)` warps; in
//! a warp `g = lane / 4`, `t = lane % 4`):
//! - warp `w`, m-tile `mi` owns queries `q0 + 16·mt·w + 16·mi .. +16`; a thread holds rows
//!   `i0 = … + g` and `i1 = i0 + 8` of every fragment (the m16n8k16 C layout: `c0, c1` at
//!   row `g`, columns `2t, 2t+1`; `c2, c3` at row `g + 8`). Every K and V fragment a warp
//!   loads feeds the products of all its m-tiles.
//! - Q stays in registers as A fragments, loaded once from global memory: for k-step `kk`
//!   (head-dimension columns `16kk ..`), registers `{Q[i0][c], Q[i0][c+1]}`,
//!   `{Q[i1][c], Q[i1][c+1]}`, `{Q[i0][c+8], …}`, `{Q[i1][c+8], …}` with `c = 16kk + 2t`;
//!   zero beyond `head_dim` and for rows `≥ sq`.
//! - Per key tile `[j0, j0 + bk)`: K and V rows go to shared memory (`bk` rows of `dpad`
//!   elements, rows `row_bytes = 2·dpad + 16` apart; V after K) in one of two buffers
//!   (tiles alternate), by `cp.async` 16-byte copies issued one tile ahead when every row
//!   starts 16-byte aligned, element by element otherwise; zeros beyond `sk`, `head_dim`,
//!   `v_head_dim` (shared memory starts as garbage, and 0·NaN would poison the products).
//! - `S = Q·Kᵀ`: the B fragments of two 8-key n-tiles (`{K[8nt + g][16kk + 2t], … + 1}`,
//!   `{K[8nt + g][16kk + 8 + 2t], … + 1}`) come from one `ldmatrix.x4` (K rows are
//!   k-contiguous: the k-major pattern of `Kb::ldmatrix_x4`).
//! - Logits in the log2 domain: `s·scale·log₂e` (one multiply when the tile is entirely
//!   inside `sk`, causally visible from the block's first query and there is no mask
//!   operand; otherwise scale, mask (−∞ for dropped keys), then `·log₂e`). Row maximum over
//!   the thread's values then a butterfly over the 4 lanes of the row (`t` = 0..3: xor 1,
//!   2), `m_new = max(m, rowmax)`, `α = 2^(m − m̃)`, `p = 2^(s − m̃)` with `m̃ = m_new`, or
//!   0 when `m_new = −∞` (no key yet: every `p` is 0 and `α` is 0). Each thread keeps a
//!   partial sum `l` of its own columns (`l = l·α + Σp`), reduced over the 4 lanes at the
//!   end.
//! - `O += P·V`: the S accumulators of n-tiles `2ks, 2ks+1` are exactly the A fragment of
//!   k-step `ks` (keys `16ks ..`), rounded to the input type. The B fragments of two output
//!   n-tiles (`{V[16ks + 2t][8nt + g], V[16ks + 2t + 1][8nt + g]}` and the same 8 keys
//!   later) come from one `ldmatrix.x4.trans` (V rows are n-contiguous); with an odd
//!   number of n-tiles the last load also reads 8 columns of zero fill or row padding and
//!   drops them.
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
        || !tile.bq.is_multiple_of(16 * tile.m_tiles.max(1))
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
    let mt = tile.m_tiles.max(1) as usize;
    // Two blocks per multiprocessor: ≤ 128 registers per thread at 8 warps of one m-tile
    // (while Q fragments and O accumulators fit: dpad ≤ 80), ≤ 255 at 4 warps of two.
    // Above, one block (ptxas measured: d 96+ at one m-tile spills at 128).
    kb.launch_bounds(tile.threads(), if tile.dpad <= 80 { 2 } else { 1 });
    // registers, created in the entry block: per m-tile `mi`, rows r = 0, 1 at index 2mi + r
    let ninf = kb.f32c(f32::NEG_INFINITY);
    let m: Vec<Slot> = (0..2 * mt).map(|_| kb.attn_slot(ninf)).collect::<R<_>>()?;
    let l: Vec<Slot> = (0..2 * mt)
        .map(|_| kb.attn_slot(kb.f32c(0.0)))
        .collect::<R<_>>()?;
    // o[(mi·nto + nt)·4 + q]
    let o: Vec<Slot> = (0..mt as u64 * nto * 4)
        .map(|_| kb.attn_slot(kb.f32c(0.0)))
        .collect::<R<_>>()?;

    let st = setup(kb, a, tile.bq)?;
    let tid = kb.sreg64("tid.x")?;
    let warp = kb.udiv(tid, kb.i64c(32))?;
    let lane = kb.urem(tid, kb.i64c(32))?;
    let g = kb.udiv(lane, kb.i64c(4))?;
    let t = kb.urem(lane, kb.i64c(4))?;
    // warp w owns queries q0 + 16·mt·w + 16·mi + (g, g + 8)
    let w0 = kb.add(st.q0, kb.mul(warp, kb.i64c(16 * mt as i64))?)?;
    let mut rows = Vec::with_capacity(2 * mt);
    let mut row_ok = Vec::with_capacity(2 * mt);
    for mi in 0..mt {
        for r in 0..2 {
            let i = kb.add(w0, kb.add(g, kb.i64c((16 * mi + 8 * r) as i64))?)?;
            row_ok.push(kb.icmp(IntPredicate::SLT, i, st.sq)?);
            rows.push(i);
        }
    }
    let t2 = kb.mul(t, kb.i64c(2))?;

    // Q as A fragments, qa[kk][mi]
    let d = kb.i64c(a.head_dim as i64);
    let qel = |kb: &Kb<'ctx, '_>, r: usize, c: IntValue<'ctx>| -> R<FloatValue<'ctx>> {
        let ok = kb.attn_and(row_ok[r], kb.icmp(IntPredicate::SLT, c, d)?)?;
        let idx = kb.add(kb.add(st.q_base, kb.mul(rows[r], st.q_ss)?)?, c)?;
        kb.attn_load_f(a.q.arg, ok, idx)
    };
    let mut qa: Vec<Vec<[BasicValueEnum; 4]>> = Vec::with_capacity(kd as usize);
    for kk in 0..kd {
        let c = kb.add(t2, kb.i64c((16 * kk) as i64))?;
        let c1 = kb.add(c, kb.i64c(1))?;
        let c8 = kb.add(c, kb.i64c(8))?;
        let c9 = kb.add(c, kb.i64c(9))?;
        let mut per = Vec::with_capacity(mt);
        for mi in 0..mt {
            let mut regs = Vec::with_capacity(4);
            for (r, lo, hi) in [(0, c, c1), (1, c, c1), (0, c8, c9), (1, c8, c9)] {
                let x = qel(kb, 2 * mi + r, lo)?;
                let y = qel(kb, 2 * mi + r, hi)?;
                regs.push(kb.attn_pack2(dt, x, y)?);
            }
            per.push([regs[0], regs[1], regs[2], regs[3]]);
        }
        qa.push(per);
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
    let buf_bytes = i64::from(tile.buffer_bytes());
    let log2e = kb.f32c(std::f32::consts::LOG2_E);
    // ldmatrix lane patterns (see `Kb::ldmatrix_x4` / `ldmatrix_x4_trans`): K rows (keys)
    // l%8 + 8·(l/16), byte 16·((l/8)%2); V rows (keys) l%8 + 8·((l/8)%2), column 8·(l/16).
    let l8 = kb.urem(lane, kb.i64c(8))?;
    let q2 = kb.urem(kb.udiv(lane, kb.i64c(8))?, kb.i64c(2))?;
    let h16 = kb.udiv(lane, kb.i64c(16))?;
    let k_lane = kb.add(
        kb.mul(kb.add(l8, kb.mul(h16, kb.i64c(8))?)?, kb.i64c(rowb as i64))?,
        kb.mul(q2, kb.i64c(16))?,
    )?;
    let v_lane = kb.add(
        v_tile,
        kb.add(
            kb.mul(kb.add(l8, kb.mul(q2, kb.i64c(8))?)?, kb.i64c(rowb as i64))?,
            kb.mul(h16, kb.i64c(16))?,
        )?,
    )?;
    // Key tiles alternate between two buffers. With cp.async (aligned rows) the copy of
    // tile j0 + bk is issued before tile j0 is computed on: prologue copies tile 0; each
    // iteration issues the next tile (or an empty group), waits until only that group is
    // pending, and passes a barrier; a second barrier after the computation frees the
    // buffer for the copy issued next iteration. The scalar path copies tile j0 itself.
    if let Some(c) = aligned {
        kb.if_then(c, |kb| {
            let any = kb.icmp(IntPredicate::SLT, kb.i64c(0), st.kend)?;
            kb.if_then(any, |kb| {
                load_tile_async(kb, a, &st, kb.i64c(0), tid, tile, kb.i64c(0))
            })?;
            kb.cp_async_commit()
        })?;
    }
    kb.for_loop(kb.i64c(0), st.kend, kb.i64c(bk as i64), |kb, j0| {
        let it = kb.udiv(j0, kb.i64c(bk as i64))?;
        let cur = kb.mul(kb.urem(it, kb.i64c(2))?, kb.i64c(buf_bytes))?;
        match aligned {
            Some(c) => {
                let fast = kb.block("cp_async_tile");
                let slow = kb.block("scalar_tile");
                let join = kb.block("tile_loaded");
                kb.cond_br(c, fast, slow)?;
                kb.b.position_at_end(fast);
                let next = kb.add(j0, kb.i64c(bk as i64))?;
                let more = kb.icmp(IntPredicate::SLT, next, st.kend)?;
                let other = kb.sub(kb.i64c(buf_bytes), cur)?;
                kb.if_then(more, |kb| {
                    load_tile_async(kb, a, &st, next, tid, tile, other)
                })?;
                kb.cp_async_commit()?;
                kb.cp_async_wait(1)?;
                kb.br(join)?;
                kb.b.position_at_end(slow);
                load_tile_scalar(kb, a, &st, j0, tid, tile, cur)?;
                kb.br(join)?;
                kb.b.position_at_end(join);
            }
            None => load_tile_scalar(kb, a, &st, j0, tid, tile, cur)?,
        }
        kb.barrier()?;

        // S = Q·Kᵀ: B fragments of two 8-key n-tiles per ldmatrix, used by every m-tile;
        // raw[mi·nts + nt]
        let zero4 = [kb.f32c(0.0); 4];
        let mut raw: Vec<[FloatValue; 4]> = vec![zero4; mt * nts as usize];
        let k_at = kb.add(cur, k_lane)?;
        for ntp in 0..(nts / 2) as usize {
            for (kk, q_kk) in qa.iter().enumerate() {
                let off = kb.add(
                    k_at,
                    kb.i64c((16 * ntp as u64 * rowb) as i64 + 32 * kk as i64),
                )?;
                let r = kb.ldmatrix_x4(kb.attn_smem(off)?)?;
                for (mi, qf) in q_kk.iter().enumerate() {
                    for h in 0..2 {
                        let at = mi * nts as usize + 2 * ntp + h;
                        let b = [r[2 * h].into(), r[2 * h + 1].into()];
                        raw[at] = kb.attn_mma(dt, qf, &b, &raw[at])?;
                    }
                }
            }
        }
        // Logits in the log2 domain (scale · log2 e folded in); masked ones −∞. A tile
        // with every key inside `sk` and (causal) visible from the block's first query
        // needs no mask at all when there is no mask operand.
        let edge = |kb: &mut Kb<'ctx, '_>| -> R<Vec<FloatValue<'ctx>>> {
            let mut out = Vec::with_capacity(raw.len() * 4);
            for (at, c) in raw.iter().enumerate() {
                let (mi, nt) = (at / nts as usize, at % nts as usize);
                let jb = kb.add(kb.add(j0, kb.i64c((8 * nt) as i64))?, t2)?;
                for (q, &cq) in c.iter().enumerate() {
                    let r = 2 * mi + q / 2;
                    let j = kb.add(jb, kb.i64c((q % 2) as i64))?;
                    let sc = kb.fmul(cq, kb.f32c(a.scale))?;
                    let sc = masked_logit(kb, a, &st, sc, rows[r], j, row_ok[r])?;
                    out.push(kb.fmul(sc, log2e)?);
                }
            }
            Ok(out)
        };
        let flat = if a.mask.is_none() {
            let j_end = kb.add(j0, kb.i64c(bk as i64))?;
            let mut inside = kb.icmp(IntPredicate::SLE, j_end, st.sk)?;
            if a.causal {
                // last key j0 + bk − 1 ≤ q0 + shift (the block's smallest limit)
                let lim = kb.add(st.q0, st.shift)?;
                let seen = kb.icmp(IntPredicate::SLT, j_end, kb.add(lim, kb.i64c(1))?)?;
                inside = kb.attn_and(inside, seen)?;
            }
            let sl2 = kb.f32c(a.scale * std::f32::consts::LOG2_E);
            branch_values(
                kb,
                inside,
                |kb| {
                    let mut out = Vec::with_capacity(raw.len() * 4);
                    for c in &raw {
                        for &cq in c {
                            out.push(kb.fmul(cq, sl2)?);
                        }
                    }
                    Ok(out)
                },
                edge,
            )?
        } else {
            edge(kb)?
        };
        let mut s: Vec<[FloatValue; 4]> =
            flat.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();

        // online softmax, per m-tile and row r (values q = 2r, 2r + 1 of every n-tile)
        let mut alpha = vec![kb.f32c(0.0); 2 * mt];
        let mut shift = vec![kb.f32c(0.0); 2 * mt];
        for mi in 0..mt {
            let tiles = &s[mi * nts as usize..(mi + 1) * nts as usize];
            for r in 0..2 {
                let mut mx = kb.f32c(f32::NEG_INFINITY);
                for c in tiles {
                    mx = kb.fmax(mx, c[2 * r])?;
                    mx = kb.fmax(mx, c[2 * r + 1])?;
                }
                for x in [1, 2] {
                    let other = kb.shfl_xor_f32(mx, x)?;
                    mx = kb.fmax(mx, other)?;
                }
                let ri = 2 * mi + r;
                let mo = kb.attn_get(m[ri])?;
                let mn = kb.fmax(mo, mx)?;
                let none = kb.fcmp(FloatPredicate::OEQ, mn, kb.f32c(f32::NEG_INFINITY))?;
                let ms = kb.fsel(none, kb.f32c(0.0), mn)?;
                alpha[ri] = kb.exp2_approx(kb.fsub(mo, ms)?)?;
                shift[ri] = ms;
                kb.attn_set(m[ri], mn)?;
            }
        }
        let mut psum = vec![kb.f32c(0.0); 2 * mt];
        for (at, c) in s.iter_mut().enumerate() {
            let mi = at / nts as usize;
            for (q, cq) in c.iter_mut().enumerate() {
                let ri = 2 * mi + q / 2;
                *cq = kb.exp2_approx(kb.fsub(*cq, shift[ri])?)?;
                psum[ri] = kb.fadd(psum[ri], *cq)?;
            }
        }
        for ri in 0..2 * mt {
            let lv = kb.attn_get(l[ri])?;
            kb.attn_set(l[ri], kb.fma(lv, alpha[ri], psum[ri])?)?;
        }

        // O = O·α + P·V; ov[mi·nto + nt]
        let mut ov: Vec<[FloatValue; 4]> = Vec::with_capacity(mt * nto as usize);
        for mi in 0..mt {
            for nt in 0..nto as usize {
                let mut c = [kb.f32c(0.0); 4];
                for (q, cq) in c.iter_mut().enumerate() {
                    let old = kb.attn_get(o[(mi * nto as usize + nt) * 4 + q])?;
                    *cq = kb.fmul(old, alpha[2 * mi + q / 2])?;
                }
                ov.push(c);
            }
        }
        for ks in 0..kspv as usize {
            let mut af = Vec::with_capacity(mt);
            for mi in 0..mt {
                let (pa, pb) = (
                    s[mi * nts as usize + 2 * ks],
                    s[mi * nts as usize + 2 * ks + 1],
                );
                af.push([
                    kb.attn_pack2(dt, pa[0], pa[1])?,
                    kb.attn_pack2(dt, pa[2], pa[3])?,
                    kb.attn_pack2(dt, pb[0], pb[1])?,
                    kb.attn_pack2(dt, pb[2], pb[3])?,
                ]);
            }
            // V rows (keys) 16ks.., two 8-column n-tiles per ldmatrix.trans; with an odd
            // count the last one also reads the next 8 columns (zero fill or the row's
            // 16-byte pad, inside the tile) and drops them
            let v_at = kb.add(
                kb.add(cur, v_lane)?,
                kb.i64c((16 * ks as u64 * rowb) as i64),
            )?;
            for ntp in 0..(nto as usize).div_ceil(2) {
                let off = kb.add(v_at, kb.i64c(32 * ntp as i64))?;
                let r = kb.ldmatrix_x4_trans(kb.attn_smem(off)?)?;
                for h in 0..2 {
                    let nt = 2 * ntp + h;
                    if nt >= nto as usize {
                        continue;
                    }
                    let b = [r[2 * h].into(), r[2 * h + 1].into()];
                    for (mi, afm) in af.iter().enumerate() {
                        let at = mi * nto as usize + nt;
                        ov[at] = kb.attn_mma(dt, afm, &b, &ov[at])?;
                    }
                }
            }
        }
        for (at, c) in ov.iter().enumerate() {
            for (q, &cq) in c.iter().enumerate() {
                kb.attn_set(o[at * 4 + q], cq)?;
            }
        }
        kb.barrier()
    })?;

    // out = O / l, l summed over the row's 4 lanes
    let mut inv = vec![kb.f32c(0.0); 2 * mt];
    let mut empty = row_ok.clone();
    for ri in 0..2 * mt {
        let mut lv = kb.attn_get(l[ri])?;
        for x in [1, 2] {
            let other = kb.shfl_xor_f32(lv, x)?;
            lv = kb.fadd(lv, other)?;
        }
        empty[ri] = kb.fcmp(FloatPredicate::OEQ, lv, kb.f32c(0.0))?;
        inv[ri] = kb.fdiv(kb.f32c(1.0), lv)?;
    }
    let dv = kb.i64c(a.v_head_dim as i64);
    for mi in 0..mt {
        for nt in 0..nto {
            let cb = kb.add(t2, kb.i64c((8 * nt) as i64))?;
            for q in 0..4usize {
                let ri = 2 * mi + q / 2;
                let col = kb.add(cb, kb.i64c((q % 2) as i64))?;
                let ok = kb.attn_and(row_ok[ri], kb.icmp(IntPredicate::SLT, col, dv)?)?;
                let acc = kb.attn_get(o[(mi * nto as usize + nt as usize) * 4 + q])?;
                let v = normalize(kb, acc, inv[ri], empty[ri])?;
                let idx = out_index(kb, a, &st, rows[ri], col)?;
                kb.if_then(ok, |kb| kb.store(a.out, idx, Val::F(v)))?;
            }
        }
    }
    kb.ret()
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
    buf: IntValue<'ctx>,
) -> R<()> {
    let v_tile = kb.i64c(i64::from(tile.bk * tile.row_bytes()));
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
        let off = kb.add(buf, tile_off(kb, row, col, rowb)?)?;
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

/// `cp.async` tile copy in 16-byte chunks (8 elements) into the buffer at shared byte
/// `buf`: thread `tid` copies chunks `tid, tid + threads, …` of each tile (row
/// `c / (dpad/8)`, columns `8·(c % (dpad/8)) ..`). A chunk outside the data (key `≥ sk`,
/// columns `≥ head_dim` — whole chunks, both head dims being multiples of 8 on this path)
/// copies 0 bytes from the argument's base and is zero-filled. Issues the copies only: the
/// caller commits, waits and passes a barrier.
fn load_tile_async<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    j0: IntValue<'ctx>,
    tid: IntValue<'ctx>,
    tile: &AttentionTile,
    buf: IntValue<'ctx>,
) -> R<()> {
    let v_tile = kb.i64c(i64::from(tile.bk * tile.row_bytes()));
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
        let off = kb.add(buf, tile_off(kb, row, col, rowb)?)?;
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
    })
}

/// `cond ? then_() : else_()` for equally long lists of f32 values (phi nodes at the join).
fn branch_values<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    cond: IntValue<'ctx>,
    then_: impl FnOnce(&mut Kb<'ctx, '_>) -> R<Vec<FloatValue<'ctx>>>,
    else_: impl FnOnce(&mut Kb<'ctx, '_>) -> R<Vec<FloatValue<'ctx>>>,
) -> R<Vec<FloatValue<'ctx>>> {
    let tb = kb.block("fast_tile");
    let eb = kb.block("edge_tile");
    let join = kb.block("tile_logits");
    kb.cond_br(cond, tb, eb)?;
    kb.b.position_at_end(tb);
    let a = then_(kb)?;
    let a_end = kb.current()?;
    kb.br(join)?;
    kb.b.position_at_end(eb);
    let b = else_(kb)?;
    let b_end = kb.current()?;
    kb.br(join)?;
    kb.b.position_at_end(join);
    if a.len() != b.len() {
        return Err(kb.malformed("branch values of different lengths"));
    }
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(&b) {
        let phi = kb.b.build_phi(kb.cx.f32_type(), "").map_err(|e| kb.e(e))?;
        phi.add_incoming(&[(x, a_end), (y, b_end)]);
        out.push(phi.as_basic_value().into_float_value());
    }
    Ok(out)
}
