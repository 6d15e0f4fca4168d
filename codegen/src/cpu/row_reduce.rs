//! Row reductions: compiled prologue → Rust row op → compiled epilogue, rows in parallel
//! blocks. The row op accumulates in f64 (norms: f32 partial sums combined in f64); an
//! input that is a plain dense f32 load is read in place, without the prologue.

use super::exprgen::{self, AccKind, ExprKernel, Store};
use super::jit::{self, ExprFn, Jit, JitCode};
use super::par::{ArgsPtr, for_ranges};
use super::resolve::Ctx;
use super::with_scratch;
use super::{CpuError, fault_error};
use crate::spec::{Expr, RowOp, RowReduce};
use cranelift_module::FuncId;
use dqc_ir::DType;
use dqc_ir::op::ReduceOp;

/// Elements per block of rows (at least one row).
const BLOCK: u64 = 16 * 1024;

/// Per-thread buffers of a range of rows (reused across ranges and kernels).
#[derive(Default)]
struct RowScratch {
    xf: Vec<f32>,
    xi: Vec<i64>,
    yf: Vec<f32>,
    yi: Vec<i64>,
}

thread_local! {
    static ROW_SCRATCH: std::cell::RefCell<RowScratch> = std::cell::RefCell::new(RowScratch::default());
}

/// A compiled row reduction.
pub(super) struct RowReduceKernel {
    input: Input,
    epilogue: FuncId,
    op: RowOp,
    in_dtype: DType,
    rows: u64,
    row_len: u64,
}

/// Where the rows come from.
#[derive(Clone, Copy)]
enum Input {
    /// The compiled prologue writes them into per-thread scratch.
    Prologue(FuncId),
    /// They are f32 argument `arg` read densely from element `offset` on (a plain load in
    /// row-major order): the row op reads them in place, there is no prologue.
    Dense { arg: u32, offset: u64 },
}

/// Generate the prologue and epilogue functions.
pub(super) fn compile(
    jit: &mut Jit,
    ctx: &Ctx,
    spec: &RowReduce,
) -> Result<RowReduceKernel, CpuError> {
    let shape = ctx.shape(&spec.shape)?;
    let axis = spec.axis as usize;
    if axis > shape.len() {
        return Err(ctx.malformed(format!(
            "reduction axis {axis} of a rank-{} space",
            shape.len()
        )));
    }
    let rows: u64 = shape[..axis].iter().product();
    let row_len: u64 = shape[axis..].iter().product();
    let in_dtype = spec
        .exprs
        .get(spec.input)
        .ok_or_else(|| ctx.malformed(format!("input expression {} does not exist", spec.input)))?
        .dtype;
    let in_kind = AccKind::of(in_dtype);
    let float_only = matches!(
        spec.op,
        RowOp::LayerNorm { .. } | RowOp::RmsNorm { .. } | RowOp::Softmax | RowOp::LogSoftmax
    );
    if float_only && !in_dtype.is_float() {
        return Err(ctx.malformed(format!("{:?} of a {in_dtype} row", spec.op)));
    }
    let res_kind = match spec.op {
        RowOp::LayerNorm { .. } | RowOp::RmsNorm { .. } | RowOp::Softmax | RowOp::LogSoftmax => {
            AccKind::F32
        }
        RowOp::ArgReduce { .. } => AccKind::I64,
        RowOp::Reduce(op) => {
            if in_dtype == DType::Bool {
                return Err(ctx.malformed(format!("{} of a bool row", op.name())));
            }
            if !in_dtype.is_float() {
                if op == ReduceOp::L2 {
                    return Err(ctx.malformed(format!("l2 of a {in_dtype} row (cast first)")));
                }
                if row_len == 0
                    && rows > 0
                    && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::Mean)
                {
                    return Err(ctx.malformed(format!("{} of empty {in_dtype} rows", op.name())));
                }
            }
            in_kind
        }
        RowOp::CumSum { .. } => {
            if in_dtype == DType::Bool {
                return Err(ctx.malformed("cumsum of a bool row"));
            }
            in_kind
        }
    };
    if matches!(spec.op, RowOp::ArgReduce { .. }) && row_len == 0 && rows > 0 {
        return Err(ctx.malformed("arg-reduction over empty rows"));
    }
    let input = match dense_input(ctx, spec, &shape)? {
        Some((arg, offset)) => Input::Dense { arg, offset },
        None => Input::Prologue(exprgen::compile(
            jit,
            ctx,
            &ExprKernel {
                exprs: &spec.exprs,
                shape: shape.clone(),
                stores: vec![Store::Aux {
                    expr: spec.input,
                    kind: in_kind,
                }],
                acc: None,
            },
        )?),
    };
    let out_shape = if spec.op.reduces() {
        shape[..axis].to_vec()
    } else {
        shape.clone()
    };
    let epilogue = exprgen::compile(
        jit,
        ctx,
        &ExprKernel {
            exprs: &spec.exprs,
            shape: out_shape,
            stores: vec![Store::Arg {
                arg: spec.out,
                expr: spec.epilogue,
            }],
            acc: Some(res_kind),
        },
    )?;
    Ok(RowReduceKernel {
        input,
        epilogue,
        op: spec.op,
        in_dtype,
        rows,
        row_len,
    })
}

/// `(arg, offset)` when the reduction's input is an f32 argument loaded densely in
/// row-major order over the whole iteration space from `offset` on.
fn dense_input(ctx: &Ctx, spec: &RowReduce, shape: &[u64]) -> Result<Option<(u32, u64)>, CpuError> {
    let Some(Expr::Load { arg, map }) = spec.exprs.get(spec.input).map(|n| &n.expr) else {
        return Ok(None);
    };
    if ctx.arg(*arg)?.dtype != DType::F32
        || spec.exprs.get(spec.input).map(|n| n.dtype) != Some(DType::F32)
    {
        return Ok(None);
    }
    let m = ctx.map(map, shape.len(), "row input")?;
    let mut want = 1i64;
    for (&n, &s) in shape.iter().zip(&m.strides).rev() {
        if n > 1 && s != want {
            return Ok(None);
        }
        want = want.saturating_mul(n as i64);
    }
    let ranges: Vec<(i64, i64)> = shape.iter().map(|&n| (0, n as i64)).collect();
    ctx.check_bounds(*arg, m.offset, &m.strides, &ranges, "row input")?;
    Ok(u64::try_from(m.offset).ok().map(|o| (*arg, o)))
}

/// Wrap an integer to `dt`'s width.
fn wrap(v: i64, dt: DType) -> i64 {
    match dt {
        DType::I32 => i64::from(v as i32),
        DType::I8 => i64::from(v as i8),
        DType::U8 => i64::from(v as u8),
        DType::I4 => (v << 60) >> 60,
        _ => v,
    }
}

impl RowReduceKernel {
    /// Run every row.
    ///
    /// # Safety
    /// `run_kernel`'s contract.
    pub unsafe fn run(&self, code: &JitCode, name: &str, args: &[*mut u8]) -> Result<(), CpuError> {
        let missing = || CpuError::Jit {
            kernel: name.to_string(),
            message: "function missing after finalization".into(),
        };
        // The prologue's address, or where the rows are read in place.
        let src = match self.input {
            Input::Prologue(f) => Ok(code.expr_fn(f).ok_or_else(missing)?),
            Input::Dense { arg, offset } => Err((arg, offset)),
        };
        let epi = code.expr_fn(self.epilogue).ok_or_else(missing)?;
        let a = ArgsPtr(args.as_ptr());
        let per_block = (BLOCK / self.row_len.max(1)).max(2);
        let float = self.in_dtype.is_float();
        for_ranges(self.rows, per_block, 2, |r0, r1| {
            let n = self.row_len as usize;
            let blk = per_block.min(r1 - r0) as usize;
            let out_per_row = if self.op.reduces() { 1 } else { n };
            with_scratch(&ROW_SCRATCH, |sc| {
                // Reused without clearing: the prologue writes every element of the rows
                // it is given and the row op every result before anything reads them, so
                // a steady state neither allocates nor writes the buffers twice.
                fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
                    if v.len() < len {
                        v.resize(len, T::default());
                    }
                }
                grow(&mut sc.xf, if float && src.is_ok() { blk * n } else { 0 });
                grow(&mut sc.xi, if float { 0 } else { blk * n });
                grow(&mut sc.yf, blk * out_per_row);
                grow(&mut sc.yi, blk * out_per_row);
                let RowScratch { xf, xi, yf, yi } = sc;
                let mut r = r0;
                while r < r1 {
                    let re = (r + blk as u64).min(r1);
                    let cnt = (re - r) as usize;
                    let aux = if float {
                        xf.as_mut_ptr().cast::<u8>()
                    } else {
                        xi.as_mut_ptr().cast::<u8>()
                    };
                    let xs: &[f32] = match src {
                        Ok(pro) => {
                            // SAFETY: the prologue writes (re - r)·n elements of the scratch.
                            unsafe {
                                jit::call(
                                    pro,
                                    a.get(),
                                    (r * n as u64) as i64,
                                    (re * n as u64) as i64,
                                    aux,
                                )
                            }?;
                            &xf[..if float { cnt * n } else { 0 }]
                        }
                        // SAFETY: rows r..re of the dense input are inside the argument
                        // (checked at compile time), f32, and not written by this kernel.
                        Err((arg, offset)) => unsafe {
                            std::slice::from_raw_parts(
                                (*a.get().add(arg as usize))
                                    .cast::<f32>()
                                    .add((offset + r * n as u64) as usize),
                                cnt * n,
                            )
                        },
                    };
                    let res_f32 =
                        self.rows_op(xs, &xi[..if float { 0 } else { cnt * n }], n, cnt, yf, yi);
                    let aux = if res_f32 {
                        yf.as_mut_ptr().cast::<u8>()
                    } else {
                        yi.as_mut_ptr().cast::<u8>()
                    };
                    let o0 = r * out_per_row as u64;
                    let o1 = re * out_per_row as u64;
                    // SAFETY: the epilogue reads o1 - o0 scratch elements and writes that
                    // disjoint part of the output.
                    unsafe { call_epi(epi, a, o0, o1, aux) }?;
                    r = re;
                }
                Ok(())
            })
        })
        .map_err(|f| fault_error(name, f))
    }

    /// Apply the row op to `cnt` rows; returns true if the results are in `yf`.
    fn rows_op(
        &self,
        xf: &[f32],
        xi: &[i64],
        n: usize,
        cnt: usize,
        yf: &mut [f32],
        yi: &mut [i64],
    ) -> bool {
        let float = self.in_dtype.is_float();
        for row in 0..cnt {
            let xs = if float {
                &xf[row * n..(row + 1) * n]
            } else {
                &[][..]
            };
            let xis = if float {
                &[][..]
            } else {
                &xi[row * n..(row + 1) * n]
            };
            match self.op {
                RowOp::LayerNorm { eps } => {
                    norm_row(xs, &mut yf[row * n..(row + 1) * n], eps, true);
                }
                RowOp::RmsNorm { eps } => {
                    norm_row(xs, &mut yf[row * n..(row + 1) * n], eps, false);
                }
                RowOp::Softmax | RowOp::LogSoftmax => {
                    let y = &mut yf[row * n..(row + 1) * n];
                    let max = xs.iter().fold(f64::NEG_INFINITY, |m, &e| {
                        let e = f64::from(e);
                        if m.is_nan() || e.is_nan() {
                            f64::NAN
                        } else {
                            m.max(e)
                        }
                    });
                    let sum: f64 = xs.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                    if self.op == RowOp::Softmax {
                        for (o, &v) in y.iter_mut().zip(xs) {
                            *o = ((f64::from(v) - max).exp() / sum) as f32;
                        }
                    } else {
                        let ls = sum.ln();
                        for (o, &v) in y.iter_mut().zip(xs) {
                            *o = (f64::from(v) - max - ls) as f32;
                        }
                    }
                }
                RowOp::Reduce(op) => {
                    if float {
                        let init = match op {
                            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => 0.0,
                            ReduceOp::Prod => 1.0,
                            ReduceOp::Max => f64::NEG_INFINITY,
                            ReduceOp::Min => f64::INFINITY,
                        };
                        let mut acc = init;
                        for &v in xs {
                            let v = f64::from(v);
                            acc = match op {
                                ReduceOp::Sum | ReduceOp::Mean => acc + v,
                                ReduceOp::L2 => acc + v * v,
                                ReduceOp::Prod => acc * v,
                                ReduceOp::Max | ReduceOp::Min if acc.is_nan() || v.is_nan() => {
                                    f64::NAN
                                }
                                ReduceOp::Max => acc.max(v),
                                ReduceOp::Min => acc.min(v),
                            };
                        }
                        acc = match op {
                            ReduceOp::Mean => acc / n as f64,
                            ReduceOp::L2 => acc.sqrt(),
                            ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => acc,
                        };
                        yf[row] = acc as f32;
                    } else {
                        let mut acc: i64 = match op {
                            ReduceOp::Prod => 1,
                            ReduceOp::Max => i64::MIN,
                            ReduceOp::Min => i64::MAX,
                            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => 0,
                        };
                        for &v in xis {
                            acc = match op {
                                ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => {
                                    acc.wrapping_add(v)
                                }
                                ReduceOp::Prod => acc.wrapping_mul(v),
                                ReduceOp::Max => acc.max(v),
                                ReduceOp::Min => acc.min(v),
                            };
                        }
                        if op == ReduceOp::Mean && n > 0 {
                            acc /= n as i64;
                        }
                        yi[row] = wrap(acc, self.in_dtype);
                    }
                }
                RowOp::ArgReduce { max } => {
                    let mut best = 0usize;
                    if float {
                        for k in 1..n {
                            let (c, b) = (xs[k], xs[best]);
                            let better = if b.is_nan() {
                                false
                            } else if c.is_nan() {
                                true
                            } else if max {
                                c > b
                            } else {
                                c < b
                            };
                            if better {
                                best = k;
                            }
                        }
                    } else {
                        for k in 1..n {
                            let better = if max {
                                xis[k] > xis[best]
                            } else {
                                xis[k] < xis[best]
                            };
                            if better {
                                best = k;
                            }
                        }
                    }
                    yi[row] = best as i64;
                }
                RowOp::CumSum { exclusive, reverse } => {
                    let order = |k: usize| if reverse { n - 1 - k } else { k };
                    if float {
                        let y = &mut yf[row * n..(row + 1) * n];
                        let mut acc = 0f64;
                        for k in 0..n {
                            let p = order(k);
                            let e = f64::from(xs[p]);
                            if exclusive {
                                y[p] = acc as f32;
                                acc += e;
                            } else {
                                acc += e;
                                y[p] = acc as f32;
                            }
                        }
                    } else {
                        let y = &mut yi[row * n..(row + 1) * n];
                        let mut acc = 0i64;
                        for k in 0..n {
                            let p = order(k);
                            if exclusive {
                                y[p] = wrap(acc, self.in_dtype);
                                acc = acc.wrapping_add(xis[p]);
                            } else {
                                acc = acc.wrapping_add(xis[p]);
                                y[p] = wrap(acc, self.in_dtype);
                            }
                        }
                    }
                }
            }
        }
        match self.op {
            RowOp::LayerNorm { .. }
            | RowOp::RmsNorm { .. }
            | RowOp::Softmax
            | RowOp::LogSoftmax => true,
            RowOp::ArgReduce { .. } => false,
            RowOp::Reduce(_) | RowOp::CumSum { .. } => float,
        }
    }
}

/// LayerNorm (`centered`) or RMSNorm of one row: `y = (x − mean)·(var + eps)^−½`, or
/// `y = x·(mean(x²) + eps)^−½`. Sums run in 16 f32 partial sums (each over a sixteenth of
/// the row, so rounding error stays near that of a 16-times shorter sum), combined in f64;
/// the variance is taken around the mean (no cancellation). Runs the AVX2 build of the
/// same code when the CPU has it (no contraction into FMA, so both builds give the same
/// bits).
fn norm_row(xs: &[f32], y: &mut [f32], eps: f32, centered: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { norm_row_avx2(xs, y, eps, centered) };
            return;
        }
    }
    norm_row_body(xs, y, eps, centered);
}

/// [`norm_row_body`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn norm_row_avx2(xs: &[f32], y: &mut [f32], eps: f32, centered: bool) {
    norm_row_body(xs, y, eps, centered);
}

#[inline(always)]
fn norm_row_body(xs: &[f32], y: &mut [f32], eps: f32, centered: bool) {
    let n = xs.len().max(1) as f64;
    let mean = if centered {
        (lane_sum(xs, |v| v) / n) as f32
    } else {
        0.0
    };
    let var = lane_sum(xs, |v| {
        let d = v - mean;
        d * d
    }) / n;
    let inv = (1.0 / (var + f64::from(eps)).sqrt()) as f32;
    for (o, &v) in y.iter_mut().zip(xs) {
        *o = (v - mean) * inv;
    }
}

/// `Σ f(x)` over `xs`: sixteen f32 partial sums (independent, so the adds pipeline and
/// vectorize), combined in f64.
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    acc.iter().map(|&a| f64::from(a)).sum()
}

/// Run a compiled epilogue over output elements `[o0, o1)` reading `aux`.
///
/// # Safety
/// `aux` holds `o1 - o0` values of the epilogue's Acc kind; run_kernel's contract.
unsafe fn call_epi(
    f: ExprFn,
    a: ArgsPtr,
    o0: u64,
    o1: u64,
    aux: *mut u8,
) -> Result<(), jit::Fault> {
    // SAFETY: forwarded.
    unsafe { jit::call(f, a.get(), o0 as i64, o1 as i64, aux) }
}
