//! N-D grouped convolution: per (image, group, column block) in parallel, im2col of the
//! block into a scratch, `gemm` with the group's weights, compiled epilogue per output row.

use super::exprgen::{self, AccKind, ExprKernel, Store};
use super::gemm::sgemm;
use super::io::read_f32;
use super::jit::{self, Jit, JitCode};
use super::par::ArgsPtr;
use super::resolve::Ctx;
use super::{CpuError, fault_error};
use crate::spec::Conv;
use cranelift_module::FuncId;
use dqc_ir::DType;
use rayon::prelude::*;

/// A compiled convolution.
pub(super) struct ConvKernel {
    epilogue: FuncId,
    x: u32,
    w: u32,
    xs: Vec<u64>,
    ws: Vec<u64>,
    os: Vec<u64>,
    strides: Vec<u64>,
    pads: Vec<u64>,
    dil: Vec<u64>,
    groups: u64,
    dtype: DType,
    /// Packed 4-bit output: tasks run one after another.
    serial: bool,
}

/// Check the shapes and generate the epilogue.
pub(super) fn compile(jit: &mut Jit, ctx: &Ctx, spec: &Conv) -> Result<ConvKernel, CpuError> {
    let xs = ctx.shape(&spec.x_shape)?;
    let ws = ctx.shape(&spec.w_shape)?;
    let os = ctx.shape(&spec.out_shape)?;
    if xs.len() < 3 || ws.len() != xs.len() || os.len() != xs.len() {
        return Err(ctx.malformed(format!(
            "conv shapes x {xs:?}, w {ws:?}, out {os:?} (need equal ranks ≥ 3)"
        )));
    }
    let sr = xs.len() - 2;
    if spec.strides.len() != sr || spec.dilations.len() != sr || spec.pads.len() != 2 * sr {
        return Err(ctx.malformed(format!(
            "conv with {sr} spatial axes has {} strides, {} dilations, {} pads",
            spec.strides.len(),
            spec.dilations.len(),
            spec.pads.len()
        )));
    }
    if spec.strides.contains(&0) || spec.dilations.contains(&0) {
        return Err(ctx.malformed("conv strides and dilations must be at least 1"));
    }
    let g = spec.groups;
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    if g == 0 || c % g != 0 || m % g != 0 || ws[1] != c / g || os[0] != n || os[1] != m {
        return Err(ctx.malformed(format!(
            "conv with {g} groups: x {xs:?}, w {ws:?}, out {os:?} are inconsistent"
        )));
    }
    for d in 0..sr {
        let padded = xs[2 + d] as i128 + spec.pads[d] as i128 + spec.pads[sr + d] as i128;
        let span = spec.dilations[d] as i128 * (ws[2 + d] as i128 - 1) + 1;
        let want = if ws[2 + d] == 0 || padded < span {
            -1
        } else {
            (padded - span) / spec.strides[d] as i128 + 1
        };
        if want != os[2 + d] as i128 {
            return Err(ctx.malformed(format!(
                "conv spatial axis {d}: output extent {} but the attributes give {want}",
                os[2 + d]
            )));
        }
    }
    if !spec.dtype.is_float() || spec.dtype.is_packed() {
        return Err(ctx.unsupported(format!("convolution in {}", spec.dtype)));
    }
    ctx.check_dense(spec.x, Some(spec.dtype), xs.iter().product(), "input x")?;
    ctx.check_dense(spec.w, Some(spec.dtype), ws.iter().product(), "weight w")?;
    let epilogue = exprgen::compile(
        jit,
        ctx,
        &ExprKernel {
            exprs: &spec.exprs,
            shape: os.clone(),
            stores: vec![Store::Arg {
                arg: spec.out,
                expr: spec.epilogue,
            }],
            acc: Some(AccKind::F32),
        },
    )?;
    Ok(ConvKernel {
        epilogue,
        x: spec.x,
        w: spec.w,
        xs,
        ws,
        os,
        strides: spec.strides.clone(),
        pads: spec.pads.clone(),
        dil: spec.dilations.clone(),
        groups: g,
        dtype: spec.dtype,
        serial: ctx.arg(spec.out)?.dtype.is_packed(),
    })
}

impl ConvKernel {
    /// Run.
    ///
    /// # Safety
    /// `run_kernel`'s contract.
    pub unsafe fn run(&self, code: &JitCode, name: &str, args: &[*mut u8]) -> Result<(), CpuError> {
        let epi = code.expr_fn(self.epilogue).ok_or_else(|| CpuError::Jit {
            kernel: name.to_string(),
            message: "function missing after finalization".into(),
        })?;
        let sr = self.xs.len() - 2;
        let (n, c, m) = (self.xs[0], self.xs[1], self.ws[0]);
        let g = self.groups;
        let (cg, mg) = (c / g, m / g);
        let sp_in = &self.xs[2..];
        let kern = &self.ws[2..];
        let sp_out = &self.os[2..];
        let p_in: u64 = sp_in.iter().product();
        let p: u64 = sp_out.iter().product();
        let kvol: u64 = kern.iter().product();
        let kdim = (cg * kvol) as usize;
        if n * m * p == 0 {
            return Ok(());
        }
        // SAFETY: sizes checked at compile time.
        let xv = unsafe {
            read_f32(
                self.dtype,
                args[self.x as usize],
                self.xs.iter().product::<u64>() as usize,
            )
        };
        // SAFETY: as above.
        let wv = unsafe {
            read_f32(
                self.dtype,
                args[self.w as usize],
                self.ws.iter().product::<u64>() as usize,
            )
        };
        let pointwise = kvol == 1
            && self.strides.iter().all(|&s| s == 1)
            && self.pads.iter().all(|&q| q == 0)
            && p == p_in;
        let threads = rayon::current_num_threads() as u64;
        let per = (2 * threads).div_ceil(n * g).max(1);
        let pb = p.div_ceil(per).div_ceil(16).saturating_mul(16).clamp(1, p);
        let pt = p.div_ceil(pb);
        let a = ArgsPtr(args.as_ptr());
        (0..(n * g * pt) as usize)
            .into_par_iter()
            .with_min_len(if self.serial { usize::MAX } else { 1 })
            .map(|t| t as u64)
            .try_for_each(|task| {
                let ni = task / (g * pt);
                let gi = (task / pt) % g;
                let p0 = (task % pt) * pb;
                let pc = (p - p0).min(pb) as usize;
                let xbase = ((ni * c + gi * cg) * p_in) as usize;
                let mut col = Vec::new();
                let (cptr, crs) = if pointwise {
                    (xv[xbase + p0 as usize..].as_ptr(), p_in as isize)
                } else {
                    col = vec![0f32; kdim * pc];
                    let mut oc = vec![0u64; sr];
                    let mut kc = vec![0u64; sr];
                    for row in 0..kdim {
                        let ci = row as u64 / kvol;
                        let mut kk = row as u64 % kvol;
                        for d in (0..sr).rev() {
                            kc[d] = kk % kern[d];
                            kk /= kern[d];
                        }
                        let xb = xbase + (ci * p_in) as usize;
                        for q in 0..pc {
                            let mut o = p0 + q as u64;
                            for d in (0..sr).rev() {
                                oc[d] = o % sp_out[d];
                                o /= sp_out[d];
                            }
                            let mut off = 0u64;
                            let mut inside = true;
                            for d in 0..sr {
                                let pos = (oc[d] * self.strides[d] + kc[d] * self.dil[d]) as i64
                                    - self.pads[d] as i64;
                                if pos < 0 || pos >= sp_in[d] as i64 {
                                    inside = false;
                                    break;
                                }
                                off = off * sp_in[d] + pos as u64;
                            }
                            if inside {
                                col[row * pc + q] = xv[xb + off as usize];
                            }
                        }
                    }
                    (col.as_ptr(), pc as isize)
                };
                let mut tile = vec![0f32; mg as usize * pc];
                // SAFETY: weights of group gi are rows gi·mg.. of the dense [m, kdim]
                // weight; the column matrix has kdim rows of pc (row stride crs).
                unsafe {
                    sgemm(
                        mg as usize,
                        pc,
                        kdim,
                        tile.as_mut_ptr(),
                        pc as isize,
                        wv.as_ptr().add((gi * mg) as usize * kdim),
                        kdim as isize,
                        1,
                        cptr,
                        crs,
                        1,
                        1.0,
                    );
                }
                drop(col);
                for r in 0..mg {
                    let lin = ((ni * m + gi * mg + r) * p + p0) as i64;
                    // SAFETY: the epilogue reads pc tile values; writes its outputs.
                    unsafe {
                        jit::call(
                            epi,
                            a.get(),
                            lin,
                            lin + pc as i64,
                            tile.as_mut_ptr().add(r as usize * pc).cast(),
                        )
                    }?;
                }
                Ok(())
            })
            .map_err(|f| fault_error(name, f))
    }
}
