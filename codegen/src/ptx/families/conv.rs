//! N-D grouped convolution as a SIMT implicit GEMM: output pixels × output channels,
//! the input patch gathered on the fly with padding checks, f32 FMA accumulation.
//!
//! Shapes: `x: [N, C, *S]`, `w: [M, C/G, *K]`, `out: [N, M, *O]`, `P = Π O`, `Pin = Π S`,
//! `kvol = Π K`, `cg = C/G`, `mg = M/G`.
//!
//! Mapping: the grid is `⌈N·P / bm⌉ × ⌈M / bn⌉` blocks of [`conv_tile`]`.threads()`
//! threads (see [`crate::ptx::abi::launch_config`]). Block `(bx, by)` owns global pixels
//! `q ∈ [bx·bm, bx·bm + bm)` (`q = n·P + p`) and channels `m ∈ [by·bn, by·bn + bn)`.
//! Thread `t` computes the tile entries `e = t, t + threads, …` (`e < bm·bn`) with
//! `q = bx·bm + e % bm`, `m = by·bn + e / bm` — consecutive threads take consecutive
//! pixels, so input loads (stride 1) and output stores coalesce and a warp shares one
//! weight row. Entries with `q ≥ N·P` or `m ≥ M` are skipped. Each entry:
//!
//! ```text
//! g = m / mg,  p = q % P (unravelled into o[d]),  n = q / P
//! acc = Σ_{ci < cg} Σ_{k ∈ K} x[n, g·cg + ci, o·s + k·dil − pad_begin] · w[m, ci, k]
//!       (terms whose input position is outside [0, S[d]) are the zero padding)
//! out[(n·M + m)·P + p] = epilogue(acc) at coordinates (n, m, o…)
//! ```
//!
//! The kernel axes are nested loops (one per spatial axis), so each input position is one
//! multiply-add away from the previous one. No shared memory: a warp's weight loads are
//! one broadcast address, neighbouring pixels' input loads overlap and hit L1. Depthwise
//! (`G = C = M`, Mamba's conv1d) and patchify (`stride = kernel`, DiT) are the same code.

use super::elementwise::unravel;
use crate::ptx::block::Var;
use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::expr::At;
use crate::ptx::tiles::conv_tile;
use crate::spec::Conv;
use inkwell::IntPredicate;
use inkwell::values::IntValue;

/// Everything the inner loops need for one output entry.
struct Entry<'ctx, 'c> {
    c: &'c Conv,
    /// Input spatial sizes `S`.
    sin: Vec<IntValue<'ctx>>,
    /// Kernel sizes `K`.
    kern: Vec<IntValue<'ctx>>,
    /// Output spatial coordinates `o`.
    o: Vec<IntValue<'ctx>>,
    /// The accumulator.
    acc: Var<'ctx>,
}

/// Check the spec the way the CPU backend does (ranks, attribute lengths, groups) for what
/// is known at generation time.
fn check(kb: &Kb<'_, '_>, c: &Conv) -> R<()> {
    let (xr, wr, or) = (c.x_shape.rank(), c.w_shape.rank(), c.out_shape.rank());
    if xr < 3 || wr != xr || or != xr {
        return Err(kb.malformed(format!(
            "conv shapes x {}, w {}, out {} (need equal ranks ≥ 3)",
            c.x_shape, c.w_shape, c.out_shape
        )));
    }
    let sr = xr - 2;
    if c.strides.len() != sr || c.dilations.len() != sr || c.pads.len() != 2 * sr {
        return Err(kb.malformed(format!(
            "conv with {sr} spatial axes has {} strides, {} dilations, {} pads",
            c.strides.len(),
            c.dilations.len(),
            c.pads.len()
        )));
    }
    if c.strides.contains(&0) || c.dilations.contains(&0) || c.groups == 0 {
        return Err(kb.malformed("conv strides, dilations and groups must be at least 1"));
    }
    let too_big = |v: u64| v > i64::MAX as u64 / 4;
    if c.strides
        .iter()
        .chain(&c.pads)
        .chain(&c.dilations)
        .any(|&v| too_big(v))
    {
        return Err(kb.malformed("conv attribute beyond the i64 range"));
    }
    let fixed = |s: &dqc_ir::Shape, i: usize| s.dims().get(i).and_then(|d| d.as_fixed());
    if let (Some(ci), Some(mo), Some(wc)) = (
        fixed(&c.x_shape, 1),
        fixed(&c.w_shape, 0),
        fixed(&c.w_shape, 1),
    ) {
        let g = c.groups;
        if ci % g != 0 || mo % g != 0 || wc != ci / g {
            return Err(kb.malformed(format!(
                "conv with {g} groups: x {}, w {} are inconsistent",
                c.x_shape, c.w_shape
            )));
        }
    }
    if !c.dtype.is_float() || c.dtype.is_packed() {
        return Err(kb.unsupported(format!("convolution in {}", c.dtype)));
    }
    for (arg, what) in [(c.x, "input x"), (c.w, "weight w")] {
        let dt = kb.arg_dtype(arg)?;
        if dt != c.dtype {
            return Err(kb.malformed(format!(
                "conv {what} (argument {arg}) is {dt}, the spec says {}",
                c.dtype
            )));
        }
    }
    let epi_dt = c.exprs.get(c.epilogue).map(|n| n.dtype).ok_or_else(|| {
        kb.malformed(format!("epilogue expression {} does not exist", c.epilogue))
    })?;
    let out_dt = kb.arg_dtype(c.out)?;
    if out_dt != epi_dt {
        return Err(kb.malformed(format!(
            "output argument {} is {out_dt} but the epilogue is {epi_dt}",
            c.out
        )));
    }
    Ok(())
}

/// Generate a convolution kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, c: &Conv) -> R<()> {
    check(kb, c)?;
    let tile = conv_tile(c.dtype, kb.target);
    let (bm, bn, threads) = (
        i64::from(tile.bm),
        i64::from(tile.bn),
        i64::from(tile.threads()),
    );
    let xs: Vec<IntValue> = c
        .x_shape
        .dims()
        .iter()
        .map(|d| kb.dim(d))
        .collect::<R<_>>()?;
    let ws: Vec<IntValue> = c
        .w_shape
        .dims()
        .iter()
        .map(|d| kb.dim(d))
        .collect::<R<_>>()?;
    let os: Vec<IntValue> = c
        .out_shape
        .dims()
        .iter()
        .map(|d| kb.dim(d))
        .collect::<R<_>>()?;
    let (n_img, cin, m_out) = (xs[0], xs[1], ws[0]);
    let g = kb.i64c(c.groups as i64);
    let cg = kb.udiv(cin, g)?;
    let mg = kb.udiv(m_out, g)?;
    let mut p_out = kb.i64c(1);
    for &d in &os[2..] {
        p_out = kb.mul(p_out, d)?;
    }
    let pixels = kb.mul(n_img, p_out)?;
    let tid = kb.sreg64("tid.x")?;
    let bx = kb.sreg64("ctaid.x")?;
    let by = kb.sreg64("ctaid.y")?;
    let q0 = kb.mul(bx, kb.i64c(bm))?;
    let m0 = kb.mul(by, kb.i64c(bn))?;
    let sin = xs[2..].to_vec();
    let kern = ws[2..].to_vec();
    let osp = os[2..].to_vec();
    kb.for_loop(tid, kb.i64c(bm * bn), kb.i64c(threads), |kb, e| {
        let q = kb.add(q0, kb.urem(e, kb.i64c(bm))?)?;
        let m = kb.add(m0, kb.udiv(e, kb.i64c(bm))?)?;
        let qin = kb.icmp(IntPredicate::SLT, q, pixels)?;
        let min = kb.icmp(IntPredicate::SLT, m, m_out)?;
        let live = kb.b.build_and(qin, min, "").map_err(|e| kb.e(e))?;
        kb.if_then(live, |kb| {
            let n = kb.udiv(q, p_out)?;
            let p = kb.urem(q, p_out)?;
            let o = unravel(kb, p, &osp)?;
            let grp = kb.udiv(m, mg)?;
            // x[n, grp·cg + ci, ·] is channel row n·C + grp·cg + ci (its elements start at
            // that · Pin), w[m, ci, ·] is row m·cg + ci (elements from that · kvol)
            let xc0 = kb.add(kb.mul(n, cin)?, kb.mul(grp, cg)?)?;
            let wc0 = kb.mul(m, cg)?;
            let acc = kb.var_f(kb.f32c(0.0))?;
            let en = Entry {
                c,
                sin: sin.clone(),
                kern: kern.clone(),
                o: o.clone(),
                acc,
            };
            kb.for_loop(kb.i64c(0), cg, kb.i64c(1), |kb, ci| {
                // channel rows; `axes` turns them into element offsets
                let xbase = kb.add(xc0, ci)?;
                let wbase = kb.add(wc0, ci)?;
                axes(kb, &en, 0, xbase, wbase, None)
            })?;
            let sum = kb.get(acc)?;
            let mut coords = vec![n, m];
            coords.extend(o);
            let v = kb.eval(
                &c.exprs,
                c.epilogue,
                &At {
                    coords,
                    acc: Some(sum),
                },
            )?;
            let idx = kb.add(kb.mul(kb.add(kb.mul(n, m_out)?, m)?, p_out)?, p)?;
            kb.store(c.out, idx, v)
        })
    })?;
    kb.ret()
}

/// The loops over kernel axes `d..`: `xoff` / `woff` are the row-major offsets over the
/// axes before `d` (channel row, then input positions; channel row, then kernel indices),
/// so after the last axis they are element offsets: `((row·S0 + pos0)·S1 + pos1)…`.
/// `inside` says whether all positions so far are inside the input. At the innermost
/// level: `acc += x · w` when inside.
fn axes<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    en: &Entry<'ctx, '_>,
    d: usize,
    xoff: IntValue<'ctx>,
    woff: IntValue<'ctx>,
    inside: Option<IntValue<'ctx>>,
) -> R<()> {
    if d == en.sin.len() {
        let body = |kb: &mut Kb<'ctx, '_>| -> R<()> {
            let xv = kb.load(en.c.x, xoff)?;
            let wv = kb.load(en.c.w, woff)?;
            let cur = kb.get_f(en.acc)?;
            let nv = kb.fma(kb.as_f(xv)?, kb.as_f(wv)?, cur)?;
            kb.set(en.acc, Val::F(nv))
        };
        return match inside {
            Some(c) => kb.if_then(c, body),
            None => body(kb),
        };
    }
    let stride = kb.i64c(en.c.strides[d] as i64);
    let dil = kb.i64c(en.c.dilations[d] as i64);
    let pad = kb.i64c(en.c.pads[d] as i64);
    // position of kernel index 0 along axis d
    let start = kb.sub(kb.mul(en.o[d], stride)?, pad)?;
    let size = en.sin[d];
    let xrow = kb.mul(xoff, size)?;
    let wrow = kb.mul(woff, en.kern[d])?;
    kb.for_loop(kb.i64c(0), en.kern[d], kb.i64c(1), |kb, k| {
        let pos = kb.add(start, kb.mul(k, dil)?)?;
        let lo = kb.icmp(IntPredicate::SGE, pos, kb.i64c(0))?;
        let hi = kb.icmp(IntPredicate::SLT, pos, size)?;
        let ok = kb.b.build_and(lo, hi, "").map_err(|e| kb.e(e))?;
        let ok = match inside {
            Some(c) => kb.b.build_and(c, ok, "").map_err(|e| kb.e(e))?,
            None => ok,
        };
        // an outside position gives an offset that is never loaded
        let x = kb.add(xrow, pos)?;
        let w = kb.add(wrow, k)?;
        axes(kb, en, d + 1, x, w, Some(ok))
    })
}
