//! f32 attention on the SIMT cores, f32-accurate (FMA dot products, `Kb::exp`).
//!
//! Mapping (`G = tile.row_lanes`, 4 or 8; `C = dpad / (4G)` float4 chunks per lane):
//! - thread `tid` of the block serves query row `r = tid / G` (`i = q0 + r`, `bq = 128 / G`
//!   rows per block) as lane `lg = tid % G` of the row's group of `G` consecutive lanes
//!   (a group never straddles a warp: `G` divides 32);
//! - lane `lg` owns head-dimension elements `e = 4·(lg + G·u) + x` for `u < C`, `x < 4`, of
//!   both q (registers, loaded once, zero beyond `head_dim` and for rows `≥ sq`) and the
//!   output accumulator (registers, `v_head_dim` columns);
//! - per key tile `[j0, j0 + bk)`: all threads copy K and V rows into shared memory as
//!   `bk × dpad` f32 (row `jj` at element `jj·dpad`; zeros beyond `sk`, `head_dim`,
//!   `v_head_dim`), barrier, then every group walks the tile's keys in order: partial dot
//!   products over its chunks (float4 shared loads — all groups of a warp read the same
//!   key row, a broadcast), a butterfly sum over the `G` lanes (every lane ends with the
//!   same bits: IEEE addition is commutative), the masked logit, and the online-softmax
//!   step below; barrier before the next tile overwrites shared memory.
//!
//! Online softmax per key (running max `m`, sum `l`, accumulator `acc`; one `exp` per key):
//! with `s` the masked logit, if `s > m`: `α = e^(m − s)`, `p = 1`, `m = s`; otherwise
//! `α = 1`, `p = e^(s − m)` (0 when `s = −∞`, which also covers `m = −∞`); then
//! `l = l·α + p`, `acc = acc·α + p·v_j`. At the end `out = acc / l`, or 0 when `l = 0`.

use super::{Setup, masked_logit, normalize, out_index, setup};
use crate::ptx::attention_ops::Slot;
use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::tiles::AttentionTile;
use crate::spec::Attention;
use inkwell::values::{FloatValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};

/// Generate the f32 kernel for `tile` (a SIMT tile: `row_lanes` 4 or 8).
pub(super) fn generate(kb: &mut Kb<'_, '_>, a: &Attention, tile: &AttentionTile) -> R<()> {
    let lanes = tile.row_lanes as u64;
    if !(lanes == 4 || lanes == 8) || !(tile.dpad as u64).is_multiple_of(4 * lanes) {
        return Err(kb.malformed(format!("SIMT attention tile {tile:?}")));
    }
    let chunks = tile.dpad as u64 / (4 * lanes);
    let threads = tile.threads() as u64;
    let dpad = tile.dpad as u64;
    let bk = tile.bk as u64;
    let tile_elems = bk * dpad;
    if !tile_elems.is_multiple_of(threads) {
        return Err(kb.malformed(format!(
            "SIMT attention tile {tile:?}: {tile_elems} elements per tile for {threads} threads"
        )));
    }
    // registers, created in the entry block
    let m = kb.attn_slot(kb.f32c(f32::NEG_INFINITY))?;
    let l = kb.attn_slot(kb.f32c(0.0))?;
    let acc: Vec<Slot> = (0..chunks * 4)
        .map(|_| kb.attn_slot(kb.f32c(0.0)))
        .collect::<R<_>>()?;

    let st = setup(kb, a, tile.bq)?;
    let tid = kb.sreg64("tid.x")?;
    let r = kb.udiv(tid, kb.i64c(lanes as i64))?;
    let lg = kb.urem(tid, kb.i64c(lanes as i64))?;
    let i = kb.add(st.q0, r)?;
    let row_ok = kb.icmp(IntPredicate::SLT, i, st.sq)?;
    let d = kb.i64c(a.head_dim as i64);
    let dv = kb.i64c(a.v_head_dim as i64);

    // q row in registers
    let qrow = kb.add(st.q_base, kb.mul(i, st.q_ss)?)?;
    let mut q: Vec<FloatValue> = Vec::with_capacity((chunks * 4) as usize);
    for u in 0..chunks {
        for x in 0..4 {
            let e = elem(kb, lg, lanes, u, x)?;
            let c = kb.attn_and(row_ok, kb.icmp(IntPredicate::SLT, e, d)?)?;
            q.push(kb.attn_load_f(a.q.arg, c, kb.add(qrow, e)?)?);
        }
    }
    // byte offset of this lane's chunk 0 within a shared row
    let lane_bytes = kb.mul(lg, kb.i64c(16))?;
    let v_tile = kb.i64c((tile_elems * 4) as i64);
    let f4 = kb.cx.f32_type().vec_type(4);

    kb.for_loop(kb.i64c(0), st.kend, kb.i64c(bk as i64), |kb, j0| {
        load_tile(kb, a, &st, j0, tid, tile, v_tile)?;
        kb.barrier()?;
        let nk = kb.attn_smin(kb.i64c(bk as i64), kb.sub(st.kend, j0)?)?;
        kb.for_loop(kb.i64c(0), nk, kb.i64c(1), |kb, jj| {
            let key = kb.mul(jj, kb.i64c((dpad * 4) as i64))?;
            let key = kb.add(key, lane_bytes)?;
            let mut dot = kb.f32c(0.0);
            for u in 0..chunks {
                let off = kb.add(key, kb.i64c((16 * lanes * u) as i64))?;
                let k4 = kb.attn_lds(f4.into(), off, 16)?.into_vector_value();
                for x in 0..4u64 {
                    let kx =
                        kb.b.build_extract_element(k4, kb.i32c(x as i32), "")
                            .map_err(|e| kb.e(e))?
                            .into_float_value();
                    dot = kb.fma(q[(u * 4 + x) as usize], kx, dot)?;
                }
            }
            let mut mask = 1;
            while mask < lanes {
                let o = kb.shfl_xor_f32(dot, mask as i32)?;
                dot = kb.fadd(dot, o)?;
                mask *= 2;
            }
            let s = kb.fmul(dot, kb.f32c(a.scale))?;
            let j = kb.add(j0, jj)?;
            let s = masked_logit(kb, a, &st, s, i, j, row_ok)?;
            let (alpha, p) = online_step(kb, m, s)?;
            let lv = kb.attn_get(l)?;
            kb.attn_set(l, kb.fma(lv, alpha, p)?)?;
            for u in 0..chunks {
                let off = kb.add(key, kb.i64c((16 * lanes * u) as i64))?;
                let off = kb.add(off, v_tile)?;
                let v4 = kb.attn_lds(f4.into(), off, 16)?.into_vector_value();
                for x in 0..4u64 {
                    let vx =
                        kb.b.build_extract_element(v4, kb.i32c(x as i32), "")
                            .map_err(|e| kb.e(e))?
                            .into_float_value();
                    let slot = acc[(u * 4 + x) as usize];
                    let old = kb.attn_get(slot)?;
                    let scaled = kb.fmul(old, alpha)?;
                    kb.attn_set(slot, kb.fma(p, vx, scaled)?)?;
                }
            }
            Ok(())
        })?;
        kb.barrier()
    })?;

    // out = acc / l (0 for an empty row)
    let lv = kb.attn_get(l)?;
    let empty = kb.fcmp(FloatPredicate::OEQ, lv, kb.f32c(0.0))?;
    let inv = kb.fdiv(kb.f32c(1.0), lv)?;
    for u in 0..chunks {
        for x in 0..4 {
            let e = elem(kb, lg, lanes, u, x)?;
            let c = kb.attn_and(row_ok, kb.icmp(IntPredicate::SLT, e, dv)?)?;
            let v = normalize(kb, kb.attn_get(acc[(u * 4 + x) as usize])?, inv, empty)?;
            let idx = out_index(kb, a, &st, i, e)?;
            kb.if_then(c, |kb| kb.store(a.out, idx, Val::F(v)))?;
        }
    }
    kb.ret()
}

/// Element index of chunk `u`, component `x` of lane `lg`: `4·(lg + G·u) + x`.
fn elem<'ctx>(
    kb: &Kb<'ctx, '_>,
    lg: IntValue<'ctx>,
    lanes: u64,
    u: u64,
    x: u64,
) -> R<IntValue<'ctx>> {
    let c = kb.add(lg, kb.i64c((lanes * u) as i64))?;
    kb.add(kb.mul(c, kb.i64c(4))?, kb.i64c(x as i64))
}

/// One online-softmax step for the logit `s` against the running maximum in `m` (updated):
/// returns `(α, p)` — the factor for the old sum and accumulator, and the weight of `s`.
fn online_step<'ctx>(
    kb: &Kb<'ctx, '_>,
    m: Slot<'ctx>,
    s: FloatValue<'ctx>,
) -> R<(FloatValue<'ctx>, FloatValue<'ctx>)> {
    let mo = kb.attn_get(m)?;
    let gt = kb.fcmp(FloatPredicate::OGT, s, mo)?;
    // the exponent is ≤ 0 in both branches: m − s when s is the new maximum, else s − m
    let d = kb.fsel(gt, kb.fsub(mo, s)?, kb.fsub(s, mo)?)?;
    let e = kb.exp(d)?;
    let dropped = kb.fcmp(FloatPredicate::OEQ, s, kb.f32c(f32::NEG_INFINITY))?;
    let e_kept = kb.fsel(dropped, kb.f32c(0.0), e)?;
    let one = kb.f32c(1.0);
    let alpha = kb.fsel(gt, e, one)?;
    let p = kb.fsel(gt, one, e_kept)?;
    kb.attn_set(m, kb.fsel(gt, s, mo)?)?;
    Ok((alpha, p))
}

/// Copy keys `[j0, j0 + bk)` of K and V into shared memory as `bk × dpad` f32 each (V at
/// byte `v_tile`), zeros outside `sk × head_dim` / `sk × v_head_dim`. Thread `tid` copies
/// elements `tid + threads·n` (row `e / dpad`, column `e % dpad`): consecutive threads read
/// consecutive columns of a key row (coalesced) and write consecutive words.
fn load_tile<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    j0: IntValue<'ctx>,
    tid: IntValue<'ctx>,
    tile: &AttentionTile,
    v_tile: IntValue<'ctx>,
) -> R<()> {
    let threads = tile.threads() as u64;
    let dpad = kb.i64c(tile.dpad as i64);
    let per_thread = (tile.bk as u64 * tile.dpad as u64) / threads;
    let d = kb.i64c(a.head_dim as i64);
    let dv = kb.i64c(a.v_head_dim as i64);
    for n in 0..per_thread {
        let e = kb.add(tid, kb.i64c((threads * n) as i64))?;
        let row = kb.udiv(e, dpad)?;
        let col = kb.urem(e, dpad)?;
        let j = kb.add(j0, row)?;
        let jin = kb.icmp(IntPredicate::SLT, j, st.sk)?;
        let byte = kb.mul(e, kb.i64c(4))?;
        let kc = kb.attn_and(jin, kb.icmp(IntPredicate::SLT, col, d)?)?;
        let kidx = kb.add(kb.add(st.k_base, kb.mul(j, st.k_ss)?)?, col)?;
        let kv = kb.attn_load_f(a.k.arg, kc, kidx)?;
        kb.attn_sts(byte, kv.into(), 4)?;
        let vc = kb.attn_and(jin, kb.icmp(IntPredicate::SLT, col, dv)?)?;
        let vidx = kb.add(kb.add(st.v_base, kb.mul(j, st.v_ss)?)?, col)?;
        let vv = kb.attn_load_f(a.v.arg, vc, vidx)?;
        kb.attn_sts(kb.add(byte, v_tile)?, vv.into(), 4)?;
    }
    Ok(())
}
