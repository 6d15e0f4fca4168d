//! Mamba-1 selective scan: one thread per channel `(b, d)`, the state `h[N]` in registers.
//!
//! Mapping: channel `ch = ctaid.x · SCAN_THREADS + tid.x` (`ch < B·D`, grid from
//! [`crate::ptx::abi::launch_config`]), `b = ch / D`, `d = ch % D`. For `t = 0 … L−1`
//! (all operands dense):
//!
//! ```text
//! i      = ch·L + t                      u, delta, z, out
//! δ      = softplus(delta[i])            (x > 20 ? x : ln(1 + eˣ)), if delta_softplus
//! h[k]   = e^(δ·A[d·N + k]) · h[k] + δ · B[(b·N + k)·L + t] · u[i]
//! y      = Σ_k C[(b·N + k)·L + t] · h[k] + D[d] · u[i]
//! out[i] = y · silu(z[i])                (if z)
//! ```
//!
//! Arithmetic is f32 (the CPU backend uses f64); the state size must be a fixed number
//! (`N ≤ 64`, Mamba uses 16): the state and `A[d, ·]` live in registers, the loop over
//! `k` is unrolled.

use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::tiles::SCAN_THREADS;
use crate::spec::SelectiveScan;
use inkwell::IntPredicate;
use inkwell::values::FloatValue;

/// Largest state size kept in registers.
const MAX_STATE: u64 = 64;

/// `ln(1 + eˣ)` for `x ≤ 20`: a short series when `eˣ < 0.01` (where `ln(1 + e)` loses the
/// low bits of `e`), the logarithm otherwise.
fn softplus<'ctx>(kb: &Kb<'ctx, '_>, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
    let e = kb.exp(x)?;
    // e − e²/2 + e³/3 − e⁴/4
    let mut p = kb.f32c(-0.25);
    for c in [1.0 / 3.0, -0.5, 1.0] {
        p = kb.fma(p, e, kb.f32c(c))?;
    }
    let series = kb.fmul(p, e)?;
    let big = kb.log(kb.fadd(kb.f32c(1.0), e)?)?;
    let small = kb.fcmp(inkwell::FloatPredicate::OLT, e, kb.f32c(0.01))?;
    let sp = kb.fsel(small, series, big)?;
    let over = kb.fcmp(inkwell::FloatPredicate::OGT, x, kb.f32c(20.0))?;
    kb.fsel(over, x, sp)
}

/// Generate a selective-scan kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, s: &SelectiveScan) -> R<()> {
    let n = s.state.as_fixed().ok_or_else(|| {
        kb.unsupported(format!(
            "a selective scan with a symbolic state size `{}`",
            s.state
        ))
    })?;
    if n > MAX_STATE {
        return Err(kb.unsupported(format!(
            "a selective scan with state size {n} (at most {MAX_STATE})"
        )));
    }
    let mut operands = vec![
        (s.u, "u"),
        (s.delta, "delta"),
        (s.a, "A"),
        (s.bm, "B"),
        (s.cm, "C"),
        (s.out, "output"),
    ];
    if let Some(d) = s.d {
        operands.push((d, "D"));
    }
    if let Some(z) = s.z {
        operands.push((z, "z"));
    }
    for (arg, what) in operands {
        let dt = kb.arg_dtype(arg)?;
        if !dt.is_float() {
            return Err(kb.malformed(format!("{what} has dtype {dt}, expected a float")));
        }
    }
    let out_dt = kb.arg_dtype(s.out)?;
    let bsz = kb.dim(&s.batch)?;
    let dsz = kb.dim(&s.channels)?;
    let len = kb.dim(&s.len)?;
    let nn = kb.i64c(n as i64);
    let tid = kb.sreg64("tid.x")?;
    let ctaid = kb.sreg64("ctaid.x")?;
    let ch = kb.add(kb.mul(ctaid, kb.i64c(i64::from(SCAN_THREADS)))?, tid)?;
    let live = kb.icmp(IntPredicate::SLT, ch, kb.mul(bsz, dsz)?)?;
    kb.if_then(live, |kb| {
        let b = kb.udiv(ch, dsz)?;
        let d = kb.urem(ch, dsz)?;
        // A[d, ·] and the state, in registers
        let mut a = Vec::with_capacity(n as usize);
        let mut h = Vec::with_capacity(n as usize);
        for k in 0..n as i64 {
            let idx = kb.add(kb.mul(d, nn)?, kb.i64c(k))?;
            let v = kb.load(s.a, idx)?;
            a.push(kb.as_f(v)?);
            h.push(kb.var_f(kb.f32c(0.0))?);
        }
        let skip = match s.d {
            Some(arg) => {
                let v = kb.load(arg, d)?;
                Some(kb.as_f(v)?)
            }
            None => None,
        };
        let row = kb.mul(ch, len)?;
        // B and C of (b, k = 0, t) are at bc0 + t; k advances by L
        let bc0 = kb.mul(kb.mul(b, nn)?, len)?;
        let one = kb.i64c(1);
        kb.for_loop(kb.i64c(0), len, one, |kb, t| {
            let i = kb.add(row, t)?;
            let raw = kb.load(s.delta, i)?;
            let raw = kb.as_f(raw)?;
            let delta = if s.delta_softplus {
                softplus(kb, raw)?
            } else {
                raw
            };
            let x = kb.load(s.u, i)?;
            let x = kb.as_f(x)?;
            let dx = kb.fmul(delta, x)?;
            let mut acc = kb.f32c(0.0);
            let mut bc = kb.add(bc0, t)?;
            for k in 0..n as usize {
                let bv = kb.load(s.bm, bc)?;
                let bv = kb.as_f(bv)?;
                let cv = kb.load(s.cm, bc)?;
                let cv = kb.as_f(cv)?;
                let decay = kb.exp(kb.fmul(delta, a[k])?)?;
                let hk = kb.get_f(h[k])?;
                let hk = kb.fma(decay, hk, kb.fmul(dx, bv)?)?;
                kb.set(h[k], Val::F(hk))?;
                acc = kb.fma(cv, hk, acc)?;
                bc = kb.add(bc, len)?;
            }
            if let Some(sk) = skip {
                acc = kb.fma(sk, x, acc)?;
            }
            if let Some(z) = s.z {
                let zv = kb.load(z, i)?;
                let zv = kb.as_f(zv)?;
                let g = kb.fmul(zv, kb.sigmoid(zv)?)?;
                acc = kb.fmul(acc, g)?;
            }
            let y = kb.round_to(out_dt, acc)?;
            kb.store(s.out, i, Val::F(y))
        })
    })?;
    kb.ret()
}
