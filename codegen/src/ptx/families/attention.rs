//! Scaled dot-product attention, FlashAttention-2 style: one block per (query tile, head,
//! batch) — grid `(⌈sq / bq⌉, heads, batch)` from [`crate::ptx::abi::launch_config`] — that
//! walks the keys in tiles of `bk` staged in shared memory, keeping a running maximum and
//! sum per query row and rescaling its output accumulator when the maximum grows.
//!
//! Two generators share the setup here ([`Setup`]):
//! - [`simt`]: f32, exact f32 arithmetic (FMA dot products, `Kb::exp`);
//! - [`mma`]: f16 / bf16, both products on tensor cores (`mma.sync` m16n8k16, f32
//!   accumulation), `cp.async` tile loads when the views are 16-byte aligned.
//!
//! Semantics (the reference executor's and the CPU backend's): logit
//! `scale · ⟨q_i, k_j⟩ (+ float mask)`; key `j` of query `i` is dropped when
//! `j > i + sk − sq` (causal) or the bool mask is false; a row without any key left (or whose
//! logits are all −∞) is all zeros; NaN logits propagate to the row's output.
//! Tile tables: [`crate::ptx::tiles::attention_tile`].

mod mma;
mod simt;

use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::tiles::{ATTENTION_MAX_HEAD_DIM, attention_tile};
use crate::spec::{Attention, HeadsView};
use dqc_ir::DType;
use inkwell::IntPredicate;
use inkwell::values::{FloatValue, IntValue};

/// Generate an attention kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, a: &Attention) -> R<()> {
    check(kb, a)?;
    let tile = attention_tile(a.head_dim.max(a.v_head_dim), a.dtype, kb.target);
    match a.dtype {
        DType::F32 => simt::generate(kb, a, &tile),
        DType::F16 | DType::BF16 => mma::generate(kb, a, &tile),
        other => Err(kb.unsupported(format!(
            "attention in {other} (f32, f16 and bf16 are generated)"
        ))),
    }
}

/// Refuse specs the generators cannot honour.
fn check(kb: &Kb<'_, '_>, a: &Attention) -> R<()> {
    if a.heads == 0 || a.kv_heads == 0 || !a.heads.is_multiple_of(a.kv_heads) {
        return Err(kb.malformed(format!(
            "heads ({}) must be a positive multiple of kv_heads ({})",
            a.heads, a.kv_heads
        )));
    }
    if a.head_dim == 0 || a.v_head_dim == 0 {
        return Err(kb.malformed(format!(
            "head dimensions must be positive (q·k {}, v {})",
            a.head_dim, a.v_head_dim
        )));
    }
    let d = a.head_dim.max(a.v_head_dim);
    if d > ATTENTION_MAX_HEAD_DIM {
        return Err(kb.unsupported(format!(
            "attention head dimension {d} (at most {ATTENTION_MAX_HEAD_DIM})"
        )));
    }
    for (what, arg) in [
        ("q", a.q.arg),
        ("k", a.k.arg),
        ("v", a.v.arg),
        ("out", a.out),
    ] {
        let dt = kb.arg_dtype(arg)?;
        if dt != a.dtype {
            return Err(kb.malformed(format!(
                "attention {what} (argument {arg}) is {dt}, the kernel runs in {}",
                a.dtype
            )));
        }
    }
    if let Some((arg, _, dt)) = &a.mask {
        let ad = kb.arg_dtype(*arg)?;
        if ad != *dt || !(*dt == DType::Bool || (dt.is_float() && !dt.is_packed())) {
            return Err(kb.malformed(format!(
                "mask argument {arg} is {ad}, spec says {dt} (bool or float needed)"
            )));
        }
    }
    Ok(())
}

/// Per-block values both generators use (all i64).
pub(super) struct Setup<'ctx> {
    /// Batch index (`ctaid.z`).
    pub bi: IntValue<'ctx>,
    /// Query head (`ctaid.y`).
    pub hi: IntValue<'ctx>,
    /// Query length.
    pub sq: IntValue<'ctx>,
    /// Key length.
    pub sk: IntValue<'ctx>,
    /// `sk − sq`: query `i` sees keys `j ≤ i + shift` when causal.
    pub shift: IntValue<'ctx>,
    /// First query of the block.
    pub q0: IntValue<'ctx>,
    /// Keys the block has to visit: `[0, kend)`.
    pub kend: IntValue<'ctx>,
    /// Element offset of `q[bi, 0, hi, 0]`.
    pub q_base: IntValue<'ctx>,
    /// Element offset of `k[bi, 0, hi / group, 0]`.
    pub k_base: IntValue<'ctx>,
    /// Element offset of `v[bi, 0, hi / group, 0]`.
    pub v_base: IntValue<'ctx>,
    /// Sequence strides of q, k, v.
    pub q_ss: IntValue<'ctx>,
    /// Sequence stride of k.
    pub k_ss: IntValue<'ctx>,
    /// Sequence stride of v.
    pub v_ss: IntValue<'ctx>,
}

fn base<'ctx>(
    kb: &Kb<'ctx, '_>,
    v: &HeadsView,
    bi: IntValue<'ctx>,
    head: IntValue<'ctx>,
) -> R<IntValue<'ctx>> {
    let off = kb.poly(&v.offset)?;
    let bs = kb.term(&v.batch_stride)?;
    let hs = kb.term(&v.head_stride)?;
    let o = kb.add(off, kb.mul(bi, bs)?)?;
    kb.add(o, kb.mul(head, hs)?)
}

/// Read the block's coordinates and sizes; return early (whole block) when the block has
/// no query (`q0 ≥ sq`) or its batch/head lies outside the spec. `bq` is the block's
/// query count. Leaves the builder in the block's body.
pub(super) fn setup<'ctx>(kb: &mut Kb<'ctx, '_>, a: &Attention, bq: u32) -> R<Setup<'ctx>> {
    let bx = kb.sreg64("ctaid.x")?;
    let hi = kb.sreg64("ctaid.y")?;
    let bi = kb.sreg64("ctaid.z")?;
    let batch = kb.dim(&a.batch)?;
    let sq = kb.dim(&a.sq)?;
    let sk = kb.dim(&a.sk)?;
    let q0 = kb.mul(bx, kb.i64c(bq as i64))?;
    let live = kb.attn_and(
        kb.icmp(IntPredicate::SLT, q0, sq)?,
        kb.icmp(IntPredicate::SLT, bi, batch)?,
    )?;
    let live = kb.attn_and(
        live,
        kb.icmp(IntPredicate::SLT, hi, kb.i64c(a.heads as i64))?,
    )?;
    let body = kb.block("attention");
    let dead = kb.block("no_queries");
    kb.cond_br(live, body, dead)?;
    kb.b.position_at_end(dead);
    kb.ret()?;
    kb.b.position_at_end(body);
    let shift = kb.sub(sk, sq)?;
    // keys visited: [0, min(sk, last + 1 + shift)) when causal (last = the block's last
    // query), [0, sk) otherwise; never negative.
    let kend = if a.causal {
        let last = kb.sub(
            kb.attn_smin(kb.add(q0, kb.i64c(bq as i64))?, sq)?,
            kb.i64c(1),
        )?;
        let lim = kb.add(kb.add(last, kb.i64c(1))?, shift)?;
        kb.attn_smax(kb.attn_smin(lim, sk)?, kb.i64c(0))?
    } else {
        sk
    };
    let group = kb.i64c((a.heads / a.kv_heads) as i64);
    let g = kb.udiv(hi, group)?;
    Ok(Setup {
        bi,
        hi,
        sq,
        sk,
        shift,
        q0,
        kend,
        q_base: base(kb, &a.q, bi, hi)?,
        k_base: base(kb, &a.k, bi, g)?,
        v_base: base(kb, &a.v, bi, g)?,
        q_ss: kb.term(&a.q.seq_stride)?,
        k_ss: kb.term(&a.k.seq_stride)?,
        v_ss: kb.term(&a.v.seq_stride)?,
    })
}

/// The logit of query `i`, key `j` after masking: `s` (already scaled) plus the float mask,
/// or −∞ when the key is dropped (`j ≥ sk`, causal, bool mask false) or the row does not
/// exist (`row_ok` false; then nothing is loaded from the mask).
pub(super) fn masked_logit<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    s: FloatValue<'ctx>,
    i: IntValue<'ctx>,
    j: IntValue<'ctx>,
    row_ok: IntValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    let mut ok = kb.attn_and(row_ok, kb.icmp(IntPredicate::SLT, j, st.sk)?)?;
    if a.causal {
        // j ≤ i + (sk − sq)
        let lim = kb.add(i, st.shift)?;
        ok = kb.attn_and(ok, kb.icmp(IntPredicate::SLE, j, lim)?)?;
    }
    let mut s = s;
    if let Some((arg, map, dt)) = &a.mask {
        let idx = kb.map_offset(map, &[st.bi, st.hi, i, j])?;
        let v = kb.attn_load_raw(*arg, ok, idx)?;
        if *dt == DType::Bool {
            let bit = match v {
                Val::I(x) => x,
                Val::F(_) => return Err(kb.malformed("bool mask loaded as a float")),
            };
            ok = kb.attn_and(ok, kb.icmp(IntPredicate::NE, bit, kb.i64c(0))?)?;
        } else {
            let f = kb.as_f(v)?;
            s = kb.fadd(s, f)?;
        }
    }
    kb.fsel(ok, s, kb.f32c(f32::NEG_INFINITY))
}

/// Element index of `out[bi, i, hi, e]` in the dense `[batch, sq, heads · dv]` output.
pub(super) fn out_index<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: &Attention,
    st: &Setup<'ctx>,
    i: IntValue<'ctx>,
    e: IntValue<'ctx>,
) -> R<IntValue<'ctx>> {
    let h = kb.i64c(a.heads as i64);
    let dv = kb.i64c(a.v_head_dim as i64);
    let row = kb.add(kb.mul(st.bi, st.sq)?, i)?;
    let r = kb.add(kb.mul(row, h)?, st.hi)?;
    kb.add(kb.mul(r, dv)?, e)
}

/// `acc / l`, or 0 when `l == 0` (no key reached the row: fully masked); NaN stays NaN.
pub(super) fn normalize<'ctx>(
    kb: &Kb<'ctx, '_>,
    acc: FloatValue<'ctx>,
    inv_l: FloatValue<'ctx>,
    empty: IntValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    let v = kb.fmul(acc, inv_l)?;
    kb.fsel(empty, kb.f32c(0.0), v)
}
