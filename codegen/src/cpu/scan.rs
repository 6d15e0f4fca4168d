//! Mamba-1 selective scan: channels `(b, d)` in parallel, the state in a small vector,
//! arithmetic in f64 like the reference interpreter.

use super::CpuError;
use super::helpers::sigmoid64;
use super::io::{read_f32, write_f32};
use super::par::SyncPtr;
use super::resolve::Ctx;
use crate::spec::SelectiveScan;
use dqc_ir::DType;
use rayon::prelude::*;

/// A checked selective scan.
pub(super) struct ScanKernel {
    b: u64,
    d: u64,
    l: u64,
    n: u64,
    softplus: bool,
    /// (arg, dtype, numel) of u, delta, a, bm, cm, d, z.
    ops: [Option<(u32, DType, u64)>; 7],
    out: (u32, DType),
}

/// Resolve and check the spec.
pub(super) fn compile(ctx: &Ctx, spec: &SelectiveScan) -> Result<ScanKernel, CpuError> {
    let (b, d, l, n) = (
        ctx.dim(&spec.batch)?,
        ctx.dim(&spec.channels)?,
        ctx.dim(&spec.len)?,
        ctx.dim(&spec.state)?,
    );
    let want = [
        (Some(spec.u), b * d * l, "u"),
        (Some(spec.delta), b * d * l, "delta"),
        (Some(spec.a), d * n, "A"),
        (Some(spec.bm), b * n * l, "Bm"),
        (Some(spec.cm), b * n * l, "Cm"),
        (spec.d, d, "Dskip"),
        (spec.z, b * d * l, "z"),
    ];
    let mut ops = [None; 7];
    for (i, (arg, numel, what)) in want.into_iter().enumerate() {
        if let Some(arg) = arg {
            let info = ctx.arg(arg)?;
            if !info.dtype.is_float() {
                return Err(
                    ctx.malformed(format!("{what} has dtype {}, expected a float", info.dtype))
                );
            }
            ctx.check_dense(arg, None, numel, what)?;
            ops[i] = Some((arg, info.dtype, numel));
        }
    }
    let out = ctx.arg(spec.out)?;
    if !out.dtype.is_float() || out.dtype.is_packed() {
        return Err(ctx.unsupported(format!("a selective scan writing {}", out.dtype)));
    }
    ctx.check_dense(spec.out, None, b * d * l, "output")?;
    Ok(ScanKernel {
        b,
        d,
        l,
        n,
        softplus: spec.delta_softplus,
        ops,
        out: (spec.out, out.dtype),
    })
}

impl ScanKernel {
    /// Run.
    ///
    /// # Safety
    /// `run_kernel`'s contract.
    pub unsafe fn run(&self, _name: &str, args: &[*mut u8]) -> Result<(), CpuError> {
        let vals: Vec<Option<std::borrow::Cow<'_, [f32]>>> = self
            .ops
            .iter()
            .map(|o| {
                o.map(|(arg, dt, numel)| {
                    // SAFETY: sizes checked at compile time.
                    unsafe { read_f32(dt, args[arg as usize], numel as usize) }
                })
            })
            .collect();
        let get = |i: usize| vals[i].as_deref();
        let (Some(u), Some(dl), Some(a), Some(bm), Some(cm)) =
            (get(0), get(1), get(2), get(3), get(4))
        else {
            return Ok(());
        };
        let (skip, z) = (get(5), get(6));
        let (bs, ds, ls, ns) = (
            self.b as usize,
            self.d as usize,
            self.l as usize,
            self.n as usize,
        );
        let out = SyncPtr(args[self.out.0 as usize]);
        let odt = self.out.1;
        (0..bs * ds).into_par_iter().for_each(|ch| {
            let (b, d) = (ch / ds, ch % ds);
            let mut h = vec![0f64; ns];
            let mut y = vec![0f32; ls];
            for (t, yt) in y.iter_mut().enumerate() {
                let i = ch * ls + t;
                let raw = f64::from(dl[i]);
                let delta = if self.softplus {
                    if raw > 20.0 { raw } else { raw.exp().ln_1p() }
                } else {
                    raw
                };
                let x = f64::from(u[i]);
                let mut acc = 0.0;
                for (k, hk) in h.iter_mut().enumerate() {
                    let bc = (b * ns + k) * ls + t;
                    *hk = (delta * f64::from(a[d * ns + k])).exp() * *hk
                        + delta * f64::from(bm[bc]) * x;
                    acc += f64::from(cm[bc]) * *hk;
                }
                if let Some(s) = skip {
                    acc += f64::from(s[d]) * x;
                }
                if let Some(z) = z {
                    let zz = f64::from(z[i]);
                    acc *= zz * sigmoid64(zz);
                }
                *yt = acc as f32;
            }
            // SAFETY: channel `ch` owns output elements ch·L..(ch+1)·L.
            unsafe { write_f32(odt, out.get(), ch * ls, &y) };
        });
        Ok(())
    }
}
