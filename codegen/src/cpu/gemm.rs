//! (Batched) matrix products: floats through the blocked microkernel GEMM
//! ([`blocked`](super::blocked)) on AVX2 + FMA CPUs and the `gemm` crate elsewhere, in
//! parallel tiles with one single-threaded product each (threads are not oversubscribed);
//! an exact loop for integers. The compiled epilogue runs over each cache block of the
//! product as soon as it is computed. A `B` operand bound to a weight buffer is packed into
//! panels once and reused by later runs when the program was told that weights are constant
//! ([`CpuProgram::set_weights_constant`](super::CpuProgram::set_weights_constant)).

use super::activation::BlockAct;
use super::blocked::{self, Aligned, BSource, Block, PackedB, View};
use super::exprgen::{self, AccKind, ExprKernel, Store};
use super::io::{read_f32, read_i64};
use super::jit::{self, ExprFn, Jit, JitCode};
use super::microkernel::Micro;
use super::par::ArgsPtr;
use super::resolve::Ctx;
use super::with_scratch;
use super::{CpuError, fault_error};
use crate::spec::{Expr, ExprNode, Gemm, MatOperand};
use cranelift_module::FuncId;
use dqc_ir::DType;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

thread_local! {
    /// The accumulator tile of the running task (reused, so tasks do not allocate).
    static TILE: RefCell<Aligned> = RefCell::new(Aligned::default());
}

/// One resolved operand.
#[derive(Clone, Debug)]
pub(super) struct Operand {
    pub arg: u32,
    pub dtype: DType,
    pub numel: u64,
    pub offset: i64,
    pub batch_strides: Vec<i64>,
    pub rs: i64,
    pub cs: i64,
}

/// Columns a task multiplies and finishes (epilogue) at a time on CPUs without AVX2 + FMA
/// (the `gemm` crate path; the blocked path finishes each cache block instead).
const EPI_COLS: u64 = 256;

/// A compiled GEMM.
pub(super) struct GemmKernel {
    epilogue: FuncId,
    /// An activation at the head of the epilogue, applied to each finished block before
    /// the compiled rest of it (see [`BlockAct`]).
    act: Option<BlockAct>,
    batch: Vec<u64>,
    m: u64,
    n: u64,
    k: u64,
    a: Operand,
    b: Operand,
    alpha: f32,
    int: bool,
    acc_i64: bool,
    /// The output is packed 4-bit: tasks run one after another (rows of an odd width
    /// would share bytes between workers).
    serial: bool,
    /// `B` is a weight buffer and the same matrix for every batch entry: it may be packed
    /// once (see `packed`).
    b_weight: bool,
    /// `B` packed into panels, with the address of the buffer it was packed from and a
    /// [`fingerprint`] of its bytes then.
    packed: Mutex<Option<(usize, u64, Arc<PackedB>)>>,
    /// The output argument when the product may be computed in place in it: a dense f32
    /// buffer that neither operand nor the epilogue reads. The epilogue then runs over
    /// each finished block where it lies, instead of over a copy in a per-thread buffer
    /// (one pass less over the product; 4–5 % of a chain of DiT-S/2 products).
    direct: Option<u32>,
    /// The epilogue (after the block activation, if any) stores the f32 value unchanged:
    /// with the product made in place there is nothing left for it to do.
    stores_acc: bool,
}

fn operand(
    ctx: &Ctx,
    op: &MatOperand,
    nb: usize,
    rows: u64,
    cols: u64,
    batch: &[u64],
    what: &str,
) -> Result<Operand, CpuError> {
    if op.batch_strides.len() != nb {
        return Err(ctx.malformed(format!(
            "operand {what} has {} batch strides for {nb} batch axes",
            op.batch_strides.len()
        )));
    }
    let info = ctx.arg(op.arg)?;
    let o = Operand {
        arg: op.arg,
        dtype: info.dtype,
        numel: info.numel,
        offset: ctx.poly(&op.offset)?,
        batch_strides: op
            .batch_strides
            .iter()
            .map(|t| ctx.term(t))
            .collect::<Result<_, _>>()?,
        rs: ctx.term(&op.row_stride)?,
        cs: ctx.term(&op.col_stride)?,
    };
    let mut strides = o.batch_strides.clone();
    strides.extend([o.rs, o.cs]);
    let mut ranges: Vec<(i64, i64)> = batch.iter().map(|&d| (0, d as i64)).collect();
    ranges.extend([(0, rows as i64), (0, cols as i64)]);
    ctx.check_bounds(
        op.arg,
        o.offset,
        &strides,
        &ranges,
        &format!("operand {what}"),
    )?;
    Ok(o)
}

/// Check the operands and generate the epilogue. `weight_args[i]` tells whether argument
/// `i` is bound to a weight buffer.
pub(super) fn compile(
    jit: &mut Jit,
    ctx: &Ctx,
    spec: &Gemm,
    weight_args: &[bool],
) -> Result<GemmKernel, CpuError> {
    let batch = ctx.shape(&spec.batch)?;
    let (m, n, k) = (ctx.dim(&spec.m)?, ctx.dim(&spec.n)?, ctx.dim(&spec.k)?);
    let a = operand(ctx, &spec.a, batch.len(), m, k, &batch, "A")?;
    let b = operand(ctx, &spec.b, batch.len(), k, n, &batch, "B")?;
    for o in [&a, &b] {
        if o.dtype != spec.in_dtype {
            return Err(ctx.malformed(format!(
                "argument {} has dtype {}, the GEMM's input dtype is {}",
                o.arg, o.dtype, spec.in_dtype
            )));
        }
    }
    let int = !spec.in_dtype.is_float();
    if int {
        if spec.in_dtype == DType::Bool {
            return Err(ctx.unsupported("a GEMM of bool operands"));
        }
        if !matches!(spec.acc_dtype, DType::I32 | DType::I64) {
            return Err(ctx.malformed(format!("integer GEMM with accumulator {}", spec.acc_dtype)));
        }
        if spec.alpha != 1.0 {
            return Err(ctx.unsupported(format!("an integer GEMM with alpha {}", spec.alpha)));
        }
    } else if spec.acc_dtype != DType::F32 {
        return Err(ctx.unsupported(format!("a float GEMM accumulating in {}", spec.acc_dtype)));
    }
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    // The epilogue sees the full [batch…, m, n] coordinates; the product may run as one
    // taller GEMM (see `fold_batch`), which leaves the dense output layout unchanged.
    let split = if int {
        None
    } else {
        BlockAct::split(ctx, &spec.exprs, spec.epilogue, &out_shape)?
    };
    let (act, exprs) = match split {
        Some((act, rest)) => (Some(act), std::borrow::Cow::Owned(rest)),
        None => (None, std::borrow::Cow::Borrowed(&spec.exprs)),
    };
    let (batch, m, a, b) = fold_batch(batch, m, a, b);
    let epilogue = exprgen::compile(
        jit,
        ctx,
        &ExprKernel {
            exprs: &exprs,
            shape: out_shape,
            stores: vec![Store::Arg {
                arg: spec.out,
                expr: spec.epilogue,
            }],
            acc: Some(if int { AccKind::I64 } else { AccKind::F32 }),
        },
    )?;
    let b_weight = !int
        && weight_args
            .get(spec.b.arg as usize)
            .copied()
            .unwrap_or(false)
        && b.batch_strides.iter().all(|&s| s == 0);
    let reads_out = spec.exprs.nodes.iter().any(
        |x| matches!(x.expr, Expr::Load { arg, .. } | Expr::Gather { arg, .. } if arg == spec.out),
    );
    let direct = (!int
        && ctx.arg(spec.out)?.dtype == DType::F32
        && spec.a.arg != spec.out
        && spec.b.arg != spec.out
        && !reads_out)
        .then_some(spec.out);
    let stores_acc = matches!(
        exprs.get(spec.epilogue),
        Some(ExprNode {
            dtype: DType::F32,
            expr: Expr::Acc
        })
    );
    Ok(GemmKernel {
        direct,
        stores_acc,
        b_weight,
        packed: Mutex::new(None),
        epilogue,
        act,
        batch,
        m,
        n,
        k,
        a,
        b,
        alpha: spec.alpha,
        int,
        acc_i64: spec.acc_dtype == DType::I64,
        serial: ctx.arg(spec.out)?.dtype.is_packed(),
    })
}

/// When B is the same matrix for every batch entry (all batch strides 0) and A's rows run
/// on contiguously from one batch entry to the next (A's batch strides are those of a
/// dense `[batch…, m]` row index), the batched product is one `(Πbatch·m) × k` by `k × n`
/// product: B is packed once instead of once per entry, and the taller M splits better
/// across threads. The output is dense `[batch…, m, n]` either way.
fn fold_batch(
    batch: Vec<u64>,
    m: u64,
    mut a: Operand,
    mut b: Operand,
) -> (Vec<u64>, u64, Operand, Operand) {
    if batch.is_empty() || b.batch_strides.iter().any(|&s| s != 0) {
        return (batch, m, a, b);
    }
    let mut expect = i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(a.rs);
    for (&d, &s) in batch.iter().zip(&a.batch_strides).rev() {
        if d > 1 && s != expect {
            return (batch, m, a, b);
        }
        expect = expect.saturating_mul(i64::try_from(d).unwrap_or(i64::MAX));
    }
    let rows = batch.iter().product::<u64>().saturating_mul(m);
    a.batch_strides.clear();
    b.batch_strides.clear();
    (Vec::new(), rows, a, b)
}

/// A cheap check that a weight buffer still holds the bytes its panels were packed from:
/// a hash of up to 64 eight-byte windows spread evenly over `bytes` (and its length). It
/// catches a buffer freed and another allocated at the same address (the contract of
/// constant weights forbids that, tests are apt to do it); it is not a full comparison.
fn fingerprint(bytes: &[u8]) -> u64 {
    const WINDOWS: usize = 64;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let step = (bytes.len() / WINDOWS).max(1);
    for start in (0..bytes.len()).step_by(step).take(WINDOWS + 1) {
        for &b in bytes
            .get(start..(start + 8).min(bytes.len()))
            .unwrap_or(&[])
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Element offset of batch entry `bi` (row-major over `batch`).
pub(super) fn batch_offset(batch: &[u64], strides: &[i64], mut bi: u64) -> i64 {
    let mut off = 0i64;
    for (d, &s) in batch.iter().zip(strides).rev() {
        let c = bi % d.max(&1);
        bi /= d.max(&1);
        off += c as i64 * s;
    }
    off
}

/// Run the epilogue over `rows` rows of `cols` accumulator values: row `r` finishes the
/// output elements `lin + r·n ..` (linear, row-major over the output) from the values at
/// `acc + r·ld`.
///
/// # Safety
/// `args` are the kernel's arguments; `acc` addresses `rows` rows of `cols` values `ld`
/// apart, in the epilogue's accumulator representation; the elements are inside the
/// output.
#[allow(clippy::too_many_arguments)]
unsafe fn epilogue_rows<T>(
    epi: ExprFn,
    args: ArgsPtr,
    lin: u64,
    n: u64,
    rows: usize,
    cols: usize,
    acc: *mut T,
    ld: usize,
) -> Result<(), jit::Fault> {
    for r in 0..rows {
        let l = lin + r as u64 * n;
        // SAFETY: forwarded contract; the epilogue reads `cols` values and writes its own
        // outputs.
        unsafe {
            jit::call(
                epi,
                args.get(),
                l as i64,
                (l + cols as u64) as i64,
                acc.add(r * ld).cast(),
            )
        }?;
    }
    Ok(())
}

/// A tiling of `batch × m × n` into parallel tasks.
pub(super) struct Tiles {
    pub mb: u64,
    pub nb: u64,
    pub mt: u64,
    pub nt: u64,
}

/// Choose tiles so there are about two tasks per thread while keeping the operand
/// re-packing small: each task packs its `mb × k` slice of A and `k × nb` slice of B, so
/// the tiling minimises `nt·m + mt·n` (the packed traffic over `k`) among tilings with
/// enough tasks (rows in blocks of ≥ 16, columns in blocks of ≥ 64).
pub(super) fn tiles(batches: u64, m: u64, n: u64) -> Tiles {
    let threads = rayon::current_num_threads() as u64;
    let want = (2 * threads).div_ceil(batches.max(1)).max(1);
    let max_mt = m.div_ceil(16).max(1);
    let max_nt = n.div_ceil(64).max(1);
    let (mut best, mut best_cost) = ((1, 1), u128::MAX);
    for mt in 1..=max_mt.min(want) {
        let nt = want.div_ceil(mt).min(max_nt);
        let short = u128::from(want.saturating_sub(mt * nt));
        let cost = u128::from(nt) * u128::from(m) + u128::from(mt) * u128::from(n);
        // fewer tasks than wanted only when the matrix is too small to split further
        let cost = cost + short * (u128::from(m) + u128::from(n)) * 4;
        if cost < best_cost {
            best_cost = cost;
            best = (mt, nt);
        }
    }
    let mb = m.div_ceil(best.0).max(1);
    let nb = n
        .div_ceil(best.1)
        .div_ceil(16)
        .saturating_mul(16)
        .clamp(1, n.max(1));
    Tiles {
        mb,
        nb,
        mt: m.div_ceil(mb),
        nt: n.div_ceil(nb),
    }
}

/// `dst[m×n] (row-major, row stride ldd) = alpha · A·B`: the blocked microkernel GEMM on
/// AVX2 + FMA CPUs, the `gemm` crate elsewhere. Single-threaded.
///
/// # Safety
/// The pointers address every element the strides reach; `dst` aliases neither operand.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: isize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    alpha: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let micro = Micro::detect();
    if micro != Micro::Portable && ldd >= 0 {
        let (a, b) = (
            View {
                ptr: a,
                rs: a_rs,
                cs: a_cs,
            },
            View {
                ptr: b,
                rs: b_rs,
                cs: b_cs,
            },
        );
        // SAFETY: forwarded contract; `micro` was detected on this CPU.
        unsafe {
            blocked::gemm(
                micro,
                m,
                n,
                k,
                a,
                BSource::View(b),
                alpha,
                dst,
                ldd as usize,
            )
        };
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of dst has n elements.
            unsafe { std::slice::from_raw_parts_mut(dst.offset(i as isize * ldd), n).fill(0.0) };
        }
        return;
    }
    // SAFETY: forwarded contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ldd,
            false,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            0.0f32,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

impl GemmKernel {
    /// Run the product and epilogue. With `constant_weights` a weight `B` is packed on the
    /// first run and the panels are reused while the buffer's address stays the same.
    ///
    /// # Safety
    /// `run_kernel`'s contract; with `constant_weights`, that of
    /// [`CpuProgram::set_weights_constant`](super::CpuProgram::set_weights_constant).
    pub unsafe fn run(
        &self,
        code: &JitCode,
        name: &str,
        args: &[*mut u8],
        constant_weights: bool,
        release: Option<&super::WeightRelease>,
    ) -> Result<(), CpuError> {
        let epi = code.expr_fn(self.epilogue).ok_or_else(|| CpuError::Jit {
            kernel: name.to_string(),
            message: "function missing after finalization".into(),
        })?;
        let (pa, pb) = (args[self.a.arg as usize], args[self.b.arg as usize]);
        let r = if self.int {
            // SAFETY: the buffers hold numel elements (checked at compile time).
            let av = unsafe { read_i64(self.a.dtype, pa, self.a.numel as usize) };
            // SAFETY: as above.
            let bv = unsafe { read_i64(self.b.dtype, pb, self.b.numel as usize) };
            self.run_int(epi, ArgsPtr(args.as_ptr()), &av, &bv)
        } else {
            let micro = Micro::detect();
            // SAFETY: as above.
            let av = unsafe { read_f32(self.a.dtype, pa, self.a.numel as usize) };
            let packed = if constant_weights && self.b_weight && micro != Micro::Portable {
                // SAFETY: as above.
                Some(unsafe { self.packed_b(pb, release) })
            } else {
                None
            };
            let bv = match packed {
                Some(_) => std::borrow::Cow::Borrowed(&[][..]),
                // SAFETY: as above.
                None => unsafe { read_f32(self.b.dtype, pb, self.b.numel as usize) },
            };
            self.run_float(
                micro,
                epi,
                ArgsPtr(args.as_ptr()),
                &av,
                &bv,
                packed.as_deref(),
            )
        };
        r.map_err(|f| fault_error(name, f))
    }

    /// `B` packed into panels: the cached copy if it was packed from the buffer at `pb`,
    /// else packed now (and cached). With `release` (weights fixed for the program's life,
    /// [`CpuProgram::set_weight_release`](super::CpuProgram::set_weight_release)) the cache
    /// is keyed by the address alone and the buffer is handed to `release` once packed.
    ///
    /// # Safety
    /// `pb` addresses B's buffer (`numel` elements of its dtype).
    unsafe fn packed_b(
        &self,
        pb: *const u8,
        release: Option<&super::WeightRelease>,
    ) -> Arc<PackedB> {
        let bytes = self.b.dtype.storage_bytes(self.b.numel as usize);
        let print = match release {
            Some(_) => 0,
            // SAFETY: forwarded contract.
            None => fingerprint(unsafe { std::slice::from_raw_parts(pb, bytes) }),
        };
        let mut slot = self.packed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((addr, fp, p)) = slot.as_ref()
            && *addr == pb as usize
            && *fp == print
        {
            return Arc::clone(p);
        }
        // SAFETY: forwarded contract.
        let bv = unsafe { read_f32(self.b.dtype, pb, self.b.numel as usize) };
        let view = View {
            // SAFETY: the offset is inside the buffer (checked at compile time).
            ptr: unsafe { bv.as_ptr().offset(self.b.offset as isize) },
            rs: self.b.rs as isize,
            cs: self.b.cs as isize,
        };
        // SAFETY: the k × n view stays inside the buffer (checked at compile time); B has no
        // batch offset (`b_weight`).
        let p = Arc::new(unsafe { PackedB::pack(self.k as usize, self.n as usize, view) });
        drop(bv);
        *slot = Some((pb as usize, print, Arc::clone(&p)));
        if let Some(release) = release {
            release(pb, bytes);
        }
        p
    }

    fn run_float(
        &self,
        micro: Micro,
        epi: ExprFn,
        args: ArgsPtr,
        av: &[f32],
        bv: &[f32],
        packed: Option<&PackedB>,
    ) -> Result<(), jit::Fault> {
        let batches: u64 = self.batch.iter().product();
        let (m, n, k) = (self.m, self.n, self.k);
        if batches == 0 || m == 0 || n == 0 {
            return Ok(());
        }
        let t = tiles(batches, m, n);
        let tasks = batches * t.mt * t.nt;
        (0..(tasks) as usize)
            .into_par_iter()
            .with_min_len(if self.serial { usize::MAX } else { 1 })
            .map(|t| t as u64)
            .try_for_each(|task| {
                let bi = task / (t.mt * t.nt);
                let rest = task % (t.mt * t.nt);
                let (mi, ni) = (rest / t.nt, rest % t.nt);
                let (m0, n0) = (mi * t.mb, ni * t.nb);
                let (mc, nc) = ((m - m0).min(t.mb), (n - n0).min(t.nb));
                let aoff = self.a.offset
                    + batch_offset(&self.batch, &self.a.batch_strides, bi)
                    + m0 as i64 * self.a.rs;
                // SAFETY: the offset is inside A (checked at compile time).
                let a = unsafe { av.as_ptr().offset(aoff as isize) };
                if micro == Micro::Portable {
                    return self.task_portable(epi, args, bv, (bi, m0, n0, mc, nc), a);
                }
                let aview = View {
                    ptr: a,
                    rs: self.a.rs as isize,
                    cs: self.a.cs as isize,
                };
                let bsrc = match packed {
                    // `tiles` makes n0 a multiple of 16 (or 0).
                    Some(pb) => BSource::Packed(pb, n0 as usize),
                    None => {
                        let boff = self.b.offset
                            + batch_offset(&self.batch, &self.b.batch_strides, bi)
                            + n0 as i64 * self.b.cs;
                        BSource::View(View {
                            // SAFETY: inside B (checked at compile time).
                            ptr: unsafe { bv.as_ptr().offset(boff as isize) },
                            rs: self.b.rs as isize,
                            cs: self.b.cs as isize,
                        })
                    }
                };
                // The task's window of the output, when the product is made in place there.
                let dest = self.direct.map(|out| {
                    let lin = (bi * m + m0) * n + n0;
                    // SAFETY: the output holds batches × m × n f32 (checked at compile
                    // time); this task's window starts at `lin`, row stride n.
                    let p = unsafe { (*args.get().add(out as usize)).cast::<f32>() };
                    (p.wrapping_add(lin as usize), n as usize)
                });
                // Each finished block of the product goes through the epilogue while it is
                // in cache.
                let mut finish = |blk: Block| -> Result<(), jit::Fault> {
                    let lin = (bi * m + m0 + blk.row as u64) * n + n0 + blk.col as u64;
                    // SAFETY: the block holds rows × cols values, `ld` apart, of the
                    // product's rows and columns from `lin` on.
                    unsafe {
                        self.finish_f32(
                            epi,
                            args,
                            lin,
                            (blk.rows, blk.cols, blk.data, blk.ld),
                            dest.is_some(),
                        )
                    }
                };
                // SAFETY: A and B address the task's mc × k and k × nc operands (checked
                // at compile time); `micro` was detected on this CPU.
                unsafe {
                    blocked::gemm_blocks(
                        micro,
                        mc as usize,
                        nc as usize,
                        k as usize,
                        aview,
                        bsrc,
                        self.alpha,
                        dest,
                        &mut finish,
                    )
                }
            })
    }

    /// Finish `rows × cols` f32 values of the product (`ld` apart) whose first is element
    /// `lin` of the output (linear, row-major): the block activation, if any, in place, then
    /// the compiled epilogue — unless the values already lie in the output (`in_place`)
    /// and the epilogue would store them unchanged.
    ///
    /// # Safety
    /// As [`epilogue_rows`]; the values are writable; with `in_place` they are the
    /// output's own elements.
    unsafe fn finish_f32(
        &self,
        epi: ExprFn,
        args: ArgsPtr,
        lin: u64,
        (rows, cols, data, ld): (usize, usize, *mut f32, usize),
        in_place: bool,
    ) -> Result<(), jit::Fault> {
        if let Some(act) = &self.act {
            // SAFETY: forwarded; the values are columns `lin % n ..` of the product.
            unsafe { act.apply(args, lin % self.n.max(1), rows, cols, data, ld) };
        }
        if in_place && self.stores_acc {
            return Ok(());
        }
        // SAFETY: forwarded contract.
        unsafe { epilogue_rows(epi, args, lin, self.n, rows, cols, data, ld) }
    }

    /// One task on CPUs without AVX2 + FMA: the `gemm` crate into a per-thread tile, a
    /// column chunk at a time, each finished by the epilogue while it is in cache.
    /// `(bi, m0, n0, mc, nc)` is the task's batch entry and window; `a` its first row of A.
    fn task_portable(
        &self,
        epi: ExprFn,
        args: ArgsPtr,
        bv: &[f32],
        (bi, m0, n0, mc, nc): (u64, u64, u64, u64, u64),
        a: *const f32,
    ) -> Result<(), jit::Fault> {
        let (m, n, k) = (self.m, self.n, self.k);
        with_scratch(&TILE, |tile| {
            tile.resize((mc * nc.min(EPI_COLS)) as usize);
            let tile = tile.get_mut();
            let mut c0 = 0;
            while c0 < nc {
                let (cn0, cw) = (n0 + c0, (nc - c0).min(EPI_COLS));
                let boff = self.b.offset
                    + batch_offset(&self.batch, &self.b.batch_strides, bi)
                    + cn0 as i64 * self.b.cs;
                // SAFETY: offsets and strides stay inside the operands (checked at compile
                // time); the tile holds mc × cw elements.
                unsafe {
                    sgemm(
                        mc as usize,
                        cw as usize,
                        k as usize,
                        tile.as_mut_ptr(),
                        cw as isize,
                        a,
                        self.a.rs as isize,
                        self.a.cs as isize,
                        bv.as_ptr().offset(boff as isize),
                        self.b.rs as isize,
                        self.b.cs as isize,
                        self.alpha,
                    )
                }
                let (rows, cols) = (mc as usize, cw as usize);
                let lin = (bi * m + m0) * n + cn0;
                // SAFETY: the tile holds mc × cw values, cw apart, of the product from `lin`.
                unsafe {
                    self.finish_f32(epi, args, lin, (rows, cols, tile.as_mut_ptr(), cols), false)
                }?;
                c0 += cw;
            }
            Ok(())
        })
    }

    fn run_int(
        &self,
        epi: ExprFn,
        args: ArgsPtr,
        av: &[i64],
        bv: &[i64],
    ) -> Result<(), jit::Fault> {
        let batches: u64 = self.batch.iter().product();
        let (m, n, k) = (self.m, self.n, self.k);
        if batches == 0 || m == 0 || n == 0 {
            return Ok(());
        }
        let (lo, hi) = if self.acc_i64 {
            (i64::MIN as i128, i64::MAX as i128)
        } else {
            (i32::MIN as i128, i32::MAX as i128)
        };
        (0..(batches * m) as usize)
            .into_par_iter()
            .with_min_len(if self.serial { usize::MAX } else { 1 })
            .map(|t| t as u64)
            .try_for_each(|row| {
                let (bi, i) = (row / m, row % m);
                let aoff = self.a.offset
                    + batch_offset(&self.batch, &self.a.batch_strides, bi)
                    + i as i64 * self.a.rs;
                let boff = self.b.offset + batch_offset(&self.batch, &self.b.batch_strides, bi);
                let mut acc = vec![0i128; n as usize];
                for p in 0..k as i64 {
                    let x = i128::from(av[(aoff + p * self.a.cs) as usize]);
                    if x == 0 {
                        continue;
                    }
                    let brow = boff + p * self.b.rs;
                    for (j, s) in acc.iter_mut().enumerate() {
                        *s += x * i128::from(bv[(brow + j as i64 * self.b.cs) as usize]);
                    }
                }
                let mut out: Vec<i64> = acc.iter().map(|&s| s.clamp(lo, hi) as i64).collect();
                // SAFETY: `out` holds the n values of output row `row`.
                unsafe { epilogue_rows(epi, args, row * n, n, 1, n as usize, out.as_mut_ptr(), 0) }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{Operand, fold_batch, tiles};
    use dqc_ir::DType;

    fn op(batch_strides: Vec<i64>, rs: i64, cs: i64) -> Operand {
        Operand {
            arg: 0,
            dtype: DType::F32,
            numel: 0,
            offset: 0,
            batch_strides,
            rs,
            cs,
        }
    }

    #[test]
    fn batch_folds_only_for_shared_b_and_contiguous_a_rows() {
        // A [2,3,16,8] dense, B [8,4] shared: one 96 × 8 by 8 × 4 product.
        let (batch, m, a, b) = fold_batch(
            vec![2, 3],
            16,
            op(vec![384, 128], 8, 1),
            op(vec![0, 0], 4, 1),
        );
        assert_eq!((batch.len(), m), (0, 96));
        assert!(a.batch_strides.is_empty() && b.batch_strides.is_empty());
        // B differs per batch entry: no fold.
        let (batch, m, ..) = fold_batch(vec![2], 16, op(vec![128], 8, 1), op(vec![32], 4, 1));
        assert_eq!((batch, m), (vec![2], 16));
        // A transposed (rows are columns in memory): no fold.
        let (batch, m, ..) = fold_batch(vec![2], 16, op(vec![128], 1, 16), op(vec![0], 4, 1));
        assert_eq!((batch, m), (vec![2], 16));
        // A broadcast over the batch: no fold.
        let (batch, m, ..) = fold_batch(vec![2], 16, op(vec![0], 8, 1), op(vec![0], 4, 1));
        assert_eq!((batch, m), (vec![2], 16));
        // Size-1 batch axes do not constrain the stride.
        let (batch, m, ..) =
            fold_batch(vec![1, 2], 16, op(vec![7, 128], 8, 1), op(vec![0, 0], 4, 1));
        assert_eq!((batch.len(), m), (0, 32));
    }

    #[test]
    fn tiles_cover_the_matrix_and_split_both_ways() {
        for (b, m, n) in [
            (1, 512, 1536),
            (1, 2, 384),
            (12, 256, 64),
            (1, 1, 1),
            (3, 17, 1000),
        ] {
            let t = tiles(b, m, n);
            assert!(
                t.mb * t.mt >= m && t.mb * (t.mt - 1) < m.max(1),
                "{b} {m} {n}"
            );
            assert!(
                t.nb * t.nt >= n && t.nb * (t.nt - 1) < n.max(1),
                "{b} {m} {n}"
            );
        }
    }
}
