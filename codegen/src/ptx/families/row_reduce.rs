//! Row reductions: norms, softmax, reductions, arg-reductions and running sums over the
//! trailing axes `axis..` of the iteration space.
//!
//! Mapping: one block of [`ROW_THREADS`] threads per row, a grid-stride loop over rows
//! (`row = ctaid.x, ctaid.x + nctaid.x, …`, uniform within a block, so the barriers inside
//! are reached by every thread). Row `row` has coordinates `unravel(row, shape[..axis])`;
//! its element `k ∈ [0, len)` has the row coordinates followed by
//! `unravel(k, shape[axis..])`. Per-element outputs go to `out[row · len + k]`, per-row
//! outputs to `out[row]` (dense, as the spec says).
//!
//! Each pass over a row lets thread `t` visit `k = t, t + 256, …` (coalesced when the
//! reduced axis is contiguous), then combines the per-thread partials with
//! [`Kb::block_reduce`] (warp butterfly + one shared slot per warp). The prologue is
//! **recomputed** in every pass rather than cached: rows have arbitrary length, and a
//! second read mostly hits L2. Passes per op: layer norm 3 (mean, centered variance,
//! output), RMS norm 2, softmax / log-softmax 3 (max, Σ e^(x−max), output), reductions 1,
//! running sums 2.
//!
//! Numerics (the CPU backend accumulates in f64): float sums are Kahan-compensated per
//! thread (the compensation is dropped once the running sum is not finite, so ±inf and NaN
//! propagate as in a plain sum), then summed by the butterfly tree; the variance is the
//! two-pass centered one. Max / min propagate NaN (`llvm.maximum` / `minimum`). Integer
//! reductions are i64 with wrapping arithmetic, wrapped to the input dtype at the end,
//! as the CPU backend does. Arg-reductions return the first index of the maximum /
//! minimum (a NaN counts as larger and smaller than everything, so the first NaN wins).
//! Running sums: thread `t` owns the contiguous chunk `[t·c, min((t+1)·c, len))` of the
//! scan order (`c = ⌈len / 256⌉`); pass 1 sums each chunk, thread 0 turns the 256 chunk
//! sums into exclusive prefixes in shared memory (keeping the Kahan state), pass 2
//! rescans each chunk from its prefix and stores.

use super::elementwise::unravel;
use crate::ptx::block::{Combine, Var};
use crate::ptx::builder::{Kb, R, Val};
use crate::ptx::expr::At;
use crate::ptx::tiles::ROW_THREADS;
use crate::spec::{RowOp, RowReduce};
use dqc_ir::DType;
use dqc_ir::op::ReduceOp;
use inkwell::values::{FloatValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};

/// Bytes per chunk slot of a running sum in shared memory (f32 sum + f32 compensation, or
/// one i64).
const SCAN_SLOT: i64 = 16;

/// What the generators of one row need.
struct Row<'ctx, 'r> {
    r: &'r RowReduce,
    /// Sizes of the row axes `shape[axis..]`.
    inner: Vec<IntValue<'ctx>>,
    /// Elements per row.
    len: IntValue<'ctx>,
    /// The row index (grid-stride loop variable).
    row: IntValue<'ctx>,
    /// Coordinates of the row (`shape[..axis]`).
    rc: Vec<IntValue<'ctx>>,
    /// This thread's index in the block.
    tid: IntValue<'ctx>,
    /// Input dtype.
    in_dt: DType,
}

/// Reject what the CPU backend rejects (the same messages' content).
fn check_op(kb: &Kb<'_, '_>, op: RowOp, in_dt: DType) -> R<()> {
    match op {
        RowOp::LayerNorm { .. } | RowOp::RmsNorm { .. } | RowOp::Softmax | RowOp::LogSoftmax => {
            if !in_dt.is_float() {
                return Err(kb.malformed(format!("{op:?} of a {in_dt} row")));
            }
        }
        RowOp::Reduce(r) => {
            if in_dt == DType::Bool {
                return Err(kb.malformed(format!("{} of a bool row", r.name())));
            }
            if !in_dt.is_float() && r == ReduceOp::L2 {
                return Err(kb.malformed(format!("l2 of a {in_dt} row (cast first)")));
            }
        }
        RowOp::CumSum { .. } => {
            if in_dt == DType::Bool {
                return Err(kb.malformed("cumsum of a bool row"));
            }
        }
        RowOp::ArgReduce { .. } => {}
    }
    Ok(())
}

/// Generate a row-reduction kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, r: &RowReduce) -> R<()> {
    let axis = r.axis as usize;
    let all = r.shape.dims();
    if axis > all.len() {
        return Err(kb.malformed(format!("reduce axis {axis} beyond rank {}", all.len())));
    }
    let in_dt = r
        .exprs
        .get(r.input)
        .map(|n| n.dtype)
        .ok_or_else(|| kb.malformed(format!("input expression {} does not exist", r.input)))?;
    check_op(kb, r.op, in_dt)?;
    let epi_dt = r.exprs.get(r.epilogue).map(|n| n.dtype).ok_or_else(|| {
        kb.malformed(format!("epilogue expression {} does not exist", r.epilogue))
    })?;
    let out_dt = kb.arg_dtype(r.out)?;
    if out_dt != epi_dt {
        return Err(kb.malformed(format!(
            "output argument {} is {out_dt} but the epilogue is {epi_dt}",
            r.out
        )));
    }
    // Statically empty rows where the CPU backend refuses them.
    let fixed_len: Option<u64> = all[axis..]
        .iter()
        .try_fold(1u64, |a, d| d.as_fixed().map(|v| a.saturating_mul(v)));
    let empty_refused = match r.op {
        RowOp::ArgReduce { .. } => true,
        RowOp::Reduce(op) => {
            !in_dt.is_float() && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::Mean)
        }
        _ => false,
    };
    if empty_refused && fixed_len == Some(0) {
        return Err(kb.malformed(format!("{:?} over empty {in_dt} rows", r.op)));
    }
    let dims: Vec<IntValue> = all.iter().map(|d| kb.dim(d)).collect::<R<_>>()?;
    let (outer, inner) = dims.split_at(axis);
    let mut rows = kb.i64c(1);
    for &d in outer {
        rows = kb.mul(rows, d)?;
    }
    let mut len = kb.i64c(1);
    for &d in inner {
        len = kb.mul(len, d)?;
    }
    let tid = kb.sreg64("tid.x")?;
    let ctaid = kb.sreg64("ctaid.x")?;
    let nctaid = kb.sreg64("nctaid.x")?;
    let outer = outer.to_vec();
    let inner = inner.to_vec();
    kb.for_loop(ctaid, rows, nctaid, |kb, row| {
        let rc = unravel(kb, row, &outer)?;
        let w = Row {
            r,
            inner: inner.clone(),
            len,
            row,
            rc,
            tid,
            in_dt,
        };
        match r.op {
            RowOp::LayerNorm { eps } => layer_norm(kb, &w, eps),
            RowOp::RmsNorm { eps } => rms_norm(kb, &w, eps),
            RowOp::Softmax => softmax(kb, &w, false),
            RowOp::LogSoftmax => softmax(kb, &w, true),
            RowOp::Reduce(op) => {
                if in_dt.is_float() {
                    reduce_f(kb, &w, op)
                } else {
                    reduce_i(kb, &w, op)
                }
            }
            RowOp::ArgReduce { max } => arg_reduce(kb, &w, max),
            RowOp::CumSum { exclusive, reverse } => cumsum(kb, &w, exclusive, reverse),
        }
    })?;
    kb.ret()
}

// ---- element access ------------------------------------------------------------------

/// Coordinates of element `k` of the row.
fn coords<'ctx>(kb: &Kb<'ctx, '_>, w: &Row<'ctx, '_>, k: IntValue<'ctx>) -> R<Vec<IntValue<'ctx>>> {
    let mut c = w.rc.clone();
    c.extend(unravel(kb, k, &w.inner)?);
    Ok(c)
}

/// The prologue at element `k` of the row.
fn elem<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, k: IntValue<'ctx>) -> R<Val<'ctx>> {
    let coords = coords(kb, w, k)?;
    kb.eval(&w.r.exprs, w.r.input, &At { coords, acc: None })
}

/// The prologue at element `k` as f32.
fn elem_f<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    w: &Row<'ctx, '_>,
    k: IntValue<'ctx>,
) -> R<FloatValue<'ctx>> {
    let v = elem(kb, w, k)?;
    kb.as_f(v)
}

/// Store the epilogue of result `acc` for element `k` (`out[row · len + k]`).
fn store_elem<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    w: &Row<'ctx, '_>,
    k: IntValue<'ctx>,
    acc: Val<'ctx>,
) -> R<()> {
    let coords = coords(kb, w, k)?;
    let v = kb.eval(
        &w.r.exprs,
        w.r.epilogue,
        &At {
            coords,
            acc: Some(acc),
        },
    )?;
    let idx = kb.add(kb.mul(w.row, w.len)?, k)?;
    kb.store(w.r.out, idx, v)
}

/// Store the epilogue of the row's result (`out[row]`).
fn store_row<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, acc: Val<'ctx>) -> R<()> {
    let v = kb.eval(
        &w.r.exprs,
        w.r.epilogue,
        &At {
            coords: w.rc.clone(),
            acc: Some(acc),
        },
    )?;
    kb.store(w.r.out, w.row, v)
}

/// `for k in tid, tid + 256, … < len`.
fn each<'ctx, 'a>(
    kb: &mut Kb<'ctx, 'a>,
    w: &Row<'ctx, '_>,
    mut body: impl FnMut(&mut Kb<'ctx, 'a>, IntValue<'ctx>) -> R<()>,
) -> R<()> {
    let step = kb.i64c(i64::from(ROW_THREADS));
    kb.for_loop(w.tid, w.len, step, |kb, k| body(kb, k))
}

/// The row length as f32.
fn len_f<'ctx>(kb: &Kb<'ctx, '_>, w: &Row<'ctx, '_>) -> R<FloatValue<'ctx>> {
    kb.as_f(Val::I(w.len))
}

// ---- compensated sums ------------------------------------------------------------------

/// A Kahan sum `s − c` in two f32 variables.
struct Kahan<'ctx> {
    s: Var<'ctx>,
    c: Var<'ctx>,
}

impl<'ctx> Kahan<'ctx> {
    /// A sum starting at `(s, c)`.
    fn from(kb: &Kb<'ctx, '_>, s: FloatValue<'ctx>, c: FloatValue<'ctx>) -> R<Kahan<'ctx>> {
        Ok(Kahan {
            s: kb.var_f(s)?,
            c: kb.var_f(c)?,
        })
    }

    /// An empty sum.
    fn new(kb: &Kb<'ctx, '_>) -> R<Kahan<'ctx>> {
        Kahan::from(kb, kb.f32c(0.0), kb.f32c(0.0))
    }

    /// Add `x`: `y = x − c; t = s + y; c = (t − s) − y; s = t`, with `c = 0` once `t` is
    /// not finite (so infinities and NaN propagate like in a plain sum).
    fn add(&self, kb: &Kb<'ctx, '_>, x: FloatValue<'ctx>) -> R<()> {
        let s = kb.get_f(self.s)?;
        let c = kb.get_f(self.c)?;
        let y = kb.fsub(x, c)?;
        let t = kb.fadd(s, y)?;
        let nc = kb.fsub(kb.fsub(t, s)?, y)?;
        let finite = kb.fcmp(FloatPredicate::OLT, kb.fabs(t)?, kb.f32c(f32::INFINITY))?;
        let nc = kb.fsel(finite, nc, kb.f32c(0.0))?;
        kb.set(self.c, Val::F(nc))?;
        kb.set(self.s, Val::F(t))
    }

    /// The compensated value `s − c`.
    fn value(&self, kb: &Kb<'ctx, '_>) -> R<FloatValue<'ctx>> {
        let s = kb.get_f(self.s)?;
        let c = kb.get_f(self.c)?;
        kb.fsub(s, c)
    }
}

// ---- combiners for block_reduce ---------------------------------------------------------

fn first<'ctx>(kb: &Kb<'ctx, '_>, v: &[Val<'ctx>]) -> R<Val<'ctx>> {
    v.first()
        .copied()
        .ok_or_else(|| kb.malformed("empty reduction tuple"))
}

/// A combiner on one f32 component.
fn comb_f<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: &[Val<'ctx>],
    b: &[Val<'ctx>],
    f: fn(&Kb<'ctx, '_>, FloatValue<'ctx>, FloatValue<'ctx>) -> R<FloatValue<'ctx>>,
) -> R<Vec<Val<'ctx>>> {
    let x = kb.as_f(first(kb, a)?)?;
    let y = kb.as_f(first(kb, b)?)?;
    Ok(vec![Val::F(f(kb, x, y)?)])
}

/// A combiner on one i64 component.
fn comb_i<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: &[Val<'ctx>],
    b: &[Val<'ctx>],
    op: ReduceOp,
) -> R<Vec<Val<'ctx>>> {
    let x = kb.as_i(first(kb, a)?)?;
    let y = kb.as_i(first(kb, b)?)?;
    Ok(vec![Val::I(int_op(kb, op, x, y)?)])
}

/// `x op y` for an integer reduction (wrapping sum and product, signed max / min).
fn int_op<'ctx>(
    kb: &Kb<'ctx, '_>,
    op: ReduceOp,
    x: IntValue<'ctx>,
    y: IntValue<'ctx>,
) -> R<IntValue<'ctx>> {
    match op {
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => kb.add(x, y),
        ReduceOp::Prod => kb.mul(x, y),
        ReduceOp::Max => kb.isel(kb.icmp(IntPredicate::SGT, x, y)?, x, y),
        ReduceOp::Min => kb.isel(kb.icmp(IntPredicate::SLT, x, y)?, x, y),
    }
}

/// Sum an f32 over the block.
fn block_sum<'ctx>(kb: &mut Kb<'ctx, '_>, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
    let r = kb.block_reduce(vec![Val::F(v)], ROW_THREADS, &|kb, a, b| {
        comb_f(kb, a, b, |kb, x, y| kb.fadd(x, y))
    })?;
    kb.as_f(first(kb, &r)?)
}

// ---- the ops ----------------------------------------------------------------------------

/// Kahan sum of `f(x)` over this thread's elements, then over the block.
fn sum_of<'ctx, 'a>(
    kb: &mut Kb<'ctx, 'a>,
    w: &Row<'ctx, '_>,
    f: impl Fn(&Kb<'ctx, 'a>, FloatValue<'ctx>) -> R<FloatValue<'ctx>>,
) -> R<FloatValue<'ctx>> {
    let acc = Kahan::new(kb)?;
    each(kb, w, |kb, k| {
        let x = elem_f(kb, w, k)?;
        let y = f(kb, x)?;
        acc.add(kb, y)
    })?;
    let part = acc.value(kb)?;
    block_sum(kb, part)
}

/// `1 / √(v + eps)` (IEEE square root and division).
fn inv_sqrt<'ctx>(kb: &Kb<'ctx, '_>, v: FloatValue<'ctx>, eps: f32) -> R<FloatValue<'ctx>> {
    let s = kb.fcall("llvm.sqrt.f32", &[kb.fadd(v, kb.f32c(eps))?])?;
    kb.fdiv(kb.f32c(1.0), s)
}

fn layer_norm<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, eps: f32) -> R<()> {
    let n = len_f(kb, w)?;
    let sum = sum_of(kb, w, |_, x| Ok(x))?;
    let mean = kb.fdiv(sum, n)?;
    let ss = sum_of(kb, w, |kb, x| {
        let d = kb.fsub(x, mean)?;
        kb.fmul(d, d)
    })?;
    let var = kb.fdiv(ss, n)?;
    let inv = inv_sqrt(kb, var, eps)?;
    each(kb, w, |kb, k| {
        let x = elem_f(kb, w, k)?;
        let y = kb.fmul(kb.fsub(x, mean)?, inv)?;
        store_elem(kb, w, k, Val::F(y))
    })
}

fn rms_norm<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, eps: f32) -> R<()> {
    let n = len_f(kb, w)?;
    let ss = sum_of(kb, w, |kb, x| kb.fmul(x, x))?;
    let inv = inv_sqrt(kb, kb.fdiv(ss, n)?, eps)?;
    each(kb, w, |kb, k| {
        let x = elem_f(kb, w, k)?;
        let y = kb.fmul(x, inv)?;
        store_elem(kb, w, k, Val::F(y))
    })
}

/// Softmax (`log` false) or log-softmax.
fn softmax<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, log: bool) -> R<()> {
    let m = kb.var_f(kb.f32c(f32::NEG_INFINITY))?;
    each(kb, w, |kb, k| {
        let x = elem_f(kb, w, k)?;
        let cur = kb.get_f(m)?;
        kb.set(m, Val::F(kb.fmax(cur, x)?))
    })?;
    let part = kb.get(m)?;
    let r = kb.block_reduce(vec![part], ROW_THREADS, &|kb, a, b| {
        comb_f(kb, a, b, |kb, x, y| kb.fmax(x, y))
    })?;
    let max = kb.as_f(first(kb, &r)?)?;
    let sum = sum_of(kb, w, |kb, x| kb.exp(kb.fsub(x, max)?))?;
    let lse = kb.log(sum)?;
    each(kb, w, |kb, k| {
        let x = elem_f(kb, w, k)?;
        let d = kb.fsub(x, max)?;
        let y = if log {
            kb.fsub(d, lse)?
        } else {
            kb.fdiv(kb.exp(d)?, sum)?
        };
        store_elem(kb, w, k, Val::F(y))
    })
}

fn reduce_f<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, op: ReduceOp) -> R<()> {
    let v = match op {
        ReduceOp::Sum => sum_of(kb, w, |_, x| Ok(x))?,
        ReduceOp::Mean => {
            let s = sum_of(kb, w, |_, x| Ok(x))?;
            kb.fdiv(s, len_f(kb, w)?)?
        }
        ReduceOp::L2 => {
            let s = sum_of(kb, w, |kb, x| kb.fmul(x, x))?;
            kb.fcall("llvm.sqrt.f32", &[s])?
        }
        ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min => {
            let (init, f): (f32, Combine<'_, '_, '_>) = match op {
                ReduceOp::Prod => (1.0, &|kb, a, b| comb_f(kb, a, b, |kb, x, y| kb.fmul(x, y))),
                ReduceOp::Max => (f32::NEG_INFINITY, &|kb, a, b| {
                    comb_f(kb, a, b, |kb, x, y| kb.fmax(x, y))
                }),
                _ => (f32::INFINITY, &|kb, a, b| {
                    comb_f(kb, a, b, |kb, x, y| kb.fmin(x, y))
                }),
            };
            let acc = kb.var_f(kb.f32c(init))?;
            each(kb, w, |kb, k| {
                let x = elem(kb, w, k)?;
                let cur = kb.get(acc)?;
                let n = f(kb, &[cur], &[Val::F(kb.as_f(x)?)])?;
                kb.set(acc, first(kb, &n)?)
            })?;
            let part = kb.get(acc)?;
            let r = kb.block_reduce(vec![part], ROW_THREADS, f)?;
            kb.as_f(first(kb, &r)?)?
        }
    };
    store_row(kb, w, Val::F(v))
}

fn reduce_i<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, op: ReduceOp) -> R<()> {
    let init = match op {
        ReduceOp::Prod => 1,
        ReduceOp::Max => i64::MIN,
        ReduceOp::Min => i64::MAX,
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::L2 => 0,
    };
    let acc = kb.var_i(kb.i64c(init))?;
    each(kb, w, |kb, k| {
        let x = elem(kb, w, k)?;
        let x = kb.as_i(x)?;
        let cur = kb.get_i(acc)?;
        kb.set(acc, Val::I(int_op(kb, op, cur, x)?))
    })?;
    let part = kb.get(acc)?;
    let r = kb.block_reduce(vec![part], ROW_THREADS, &|kb, a, b| comb_i(kb, a, b, op))?;
    let mut v = kb.as_i(first(kb, &r)?)?;
    if op == ReduceOp::Mean {
        // truncating division; an empty row keeps 0 (the CPU backend refuses it)
        let zero = kb.icmp(IntPredicate::EQ, w.len, kb.i64c(0))?;
        let d = kb.isel(zero, kb.i64c(1), w.len)?;
        v = kb.b.build_int_signed_div(v, d, "").map_err(|e| kb.e(e))?;
    }
    let v = kb.wrap(w.in_dt, v)?;
    store_row(kb, w, Val::I(v))
}

/// Combine two `(value, index)` candidates of an arg-reduction: `b` wins when it is set
/// (index ≠ i64::MAX) and `a` is not, or `b` is strictly better (a NaN beats any number,
/// else larger for `max` / smaller for min), or they tie and `b` has the smaller index.
fn arg_comb<'ctx>(
    kb: &Kb<'ctx, '_>,
    a: &[Val<'ctx>],
    b: &[Val<'ctx>],
    max: bool,
) -> R<Vec<Val<'ctx>>> {
    let (&[va, ia], &[vb, ib]) = (a, b) else {
        return Err(kb.malformed("arg-reduction tuples have two components"));
    };
    let ia = kb.as_i(ia)?;
    let ib = kb.as_i(ib)?;
    let unset = kb.i64c(i64::MAX);
    let (better, equal) = match (va, vb) {
        (Val::F(x), Val::F(y)) => {
            let xn = kb.fcmp(FloatPredicate::UNO, x, x)?;
            let yn = kb.fcmp(FloatPredicate::UNO, y, y)?;
            let p = if max {
                FloatPredicate::OGT
            } else {
                FloatPredicate::OLT
            };
            let gt = kb.fcmp(p, y, x)?;
            let gt = kb.b.build_or(yn, gt, "").map_err(|e| kb.e(e))?;
            let xnot = kb.b.build_not(xn, "").map_err(|e| kb.e(e))?;
            let better = kb.b.build_and(xnot, gt, "").map_err(|e| kb.e(e))?;
            let both_nan = kb.b.build_and(xn, yn, "").map_err(|e| kb.e(e))?;
            let eq = kb.fcmp(FloatPredicate::OEQ, x, y)?;
            let equal = kb.b.build_or(both_nan, eq, "").map_err(|e| kb.e(e))?;
            (better, equal)
        }
        (Val::I(x), Val::I(y)) => {
            let p = if max {
                IntPredicate::SGT
            } else {
                IntPredicate::SLT
            };
            (kb.icmp(p, y, x)?, kb.icmp(IntPredicate::EQ, x, y)?)
        }
        _ => return Err(kb.malformed("arg-reduction candidates of different kinds")),
    };
    let a_unset = kb.icmp(IntPredicate::EQ, ia, unset)?;
    let b_set = kb.icmp(IntPredicate::NE, ib, unset)?;
    let earlier = kb.icmp(IntPredicate::SLT, ib, ia)?;
    let tie = kb.b.build_and(equal, earlier, "").map_err(|e| kb.e(e))?;
    let wins = kb.b.build_or(a_unset, better, "").map_err(|e| kb.e(e))?;
    let wins = kb.b.build_or(wins, tie, "").map_err(|e| kb.e(e))?;
    let take = kb.b.build_and(b_set, wins, "").map_err(|e| kb.e(e))?;
    let v = match (va, vb) {
        (Val::F(x), Val::F(y)) => Val::F(kb.fsel(take, y, x)?),
        (Val::I(x), Val::I(y)) => Val::I(kb.isel(take, y, x)?),
        _ => return Err(kb.malformed("arg-reduction candidates of different kinds")),
    };
    Ok(vec![v, Val::I(kb.isel(take, ib, ia)?)])
}

fn arg_reduce<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, max: bool) -> R<()> {
    let float = w.in_dt.is_float();
    let init = if float {
        Val::F(kb.f32c(if max {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }))
    } else {
        Val::I(kb.i64c(if max { i64::MIN } else { i64::MAX }))
    };
    let bv = kb.var(init)?;
    let bi = kb.var_i(kb.i64c(i64::MAX))?;
    each(kb, w, |kb, k| {
        let x = elem(kb, w, k)?;
        let x = if float {
            Val::F(kb.as_f(x)?)
        } else {
            Val::I(kb.as_i(x)?)
        };
        let cur = [kb.get(bv)?, kb.get(bi)?];
        let n = arg_comb(kb, &cur, &[x, Val::I(k)], max)?;
        if let [v, i] = n.as_slice() {
            kb.set(bv, *v)?;
            kb.set(bi, *i)?;
        }
        Ok(())
    })?;
    let part = vec![kb.get(bv)?, kb.get(bi)?];
    let r = kb.block_reduce(part, ROW_THREADS, &|kb, a, b| arg_comb(kb, a, b, max))?;
    let idx = r
        .get(1)
        .copied()
        .ok_or_else(|| kb.malformed("arg-reduction result without an index"))?;
    store_row(kb, w, idx)
}

fn cumsum<'ctx>(kb: &mut Kb<'ctx, '_>, w: &Row<'ctx, '_>, exclusive: bool, reverse: bool) -> R<()> {
    let float = w.in_dt.is_float();
    let threads = kb.i64c(i64::from(ROW_THREADS));
    let chunk = kb.udiv(kb.add(w.len, kb.i64c(i64::from(ROW_THREADS) - 1))?, threads)?;
    let min = |kb: &Kb<'ctx, '_>, a: IntValue<'ctx>, b: IntValue<'ctx>| {
        kb.isel(kb.icmp(IntPredicate::SLT, a, b)?, a, b)
    };
    let lo = min(kb, kb.mul(w.tid, chunk)?, w.len)?;
    let hi = min(kb, kb.add(lo, chunk)?, w.len)?;
    // element of scan step k
    let pos = |kb: &Kb<'ctx, '_>, k: IntValue<'ctx>| -> R<IntValue<'ctx>> {
        if reverse {
            kb.sub(kb.sub(w.len, kb.i64c(1))?, k)
        } else {
            Ok(k)
        }
    };
    let one = kb.i64c(1);
    let slot = kb.mul(w.tid, kb.i64c(SCAN_SLOT))?;
    // pass 1: the chunk's sum into slot tid
    if float {
        let acc = Kahan::new(kb)?;
        kb.for_loop(lo, hi, one, |kb, k| {
            let p = pos(kb, k)?;
            let x = elem_f(kb, w, p)?;
            acc.add(kb, x)
        })?;
        let v = acc.value(kb)?;
        kb.smem_store(slot, Val::F(v))?;
    } else {
        let acc = kb.var_i(kb.i64c(0))?;
        kb.for_loop(lo, hi, one, |kb, k| {
            let p = pos(kb, k)?;
            let x = elem(kb, w, p)?;
            let x = kb.as_i(x)?;
            let cur = kb.get_i(acc)?;
            kb.set(acc, Val::I(kb.add(cur, x)?))
        })?;
        let v = kb.get(acc)?;
        kb.smem_store(slot, v)?;
    }
    kb.barrier()?;
    // thread 0: exclusive prefixes of the chunk sums, in place (float: the Kahan state
    // (s, c) before the chunk at +0 / +4)
    let t0 = kb.icmp(IntPredicate::EQ, w.tid, kb.i64c(0))?;
    kb.if_then(t0, |kb| {
        if float {
            let acc = Kahan::new(kb)?;
            kb.for_loop(kb.i64c(0), threads, one, |kb, j| {
                let off = kb.mul(j, kb.i64c(SCAN_SLOT))?;
                let v = kb.smem_load(off, true)?;
                let s = kb.get(acc.s)?;
                let c = kb.get(acc.c)?;
                kb.smem_store(off, s)?;
                kb.smem_store(kb.add(off, kb.i64c(4))?, c)?;
                acc.add(kb, kb.as_f(v)?)
            })
        } else {
            let acc = kb.var_i(kb.i64c(0))?;
            kb.for_loop(kb.i64c(0), threads, one, |kb, j| {
                let off = kb.mul(j, kb.i64c(SCAN_SLOT))?;
                let v = kb.smem_load(off, false)?;
                let s = kb.get_i(acc)?;
                kb.smem_store(off, Val::I(s))?;
                kb.set(acc, Val::I(kb.add(s, kb.as_i(v)?)?))
            })
        }
    })?;
    kb.barrier()?;
    // pass 2: rescan the chunk from its prefix
    if float {
        let s0 = kb.smem_load(slot, true)?;
        let c0 = kb.smem_load(kb.add(slot, kb.i64c(4))?, true)?;
        let acc = Kahan::from(kb, kb.as_f(s0)?, kb.as_f(c0)?)?;
        kb.for_loop(lo, hi, one, |kb, k| {
            let p = pos(kb, k)?;
            let x = elem_f(kb, w, p)?;
            if exclusive {
                let y = acc.value(kb)?;
                acc.add(kb, x)?;
                store_elem(kb, w, p, Val::F(y))
            } else {
                acc.add(kb, x)?;
                let y = acc.value(kb)?;
                store_elem(kb, w, p, Val::F(y))
            }
        })?;
    } else {
        let s0 = kb.smem_load(slot, false)?;
        let acc = kb.var(s0)?;
        kb.for_loop(lo, hi, one, |kb, k| {
            let p = pos(kb, k)?;
            let x = elem(kb, w, p)?;
            let x = kb.as_i(x)?;
            let before = kb.get_i(acc)?;
            let after = kb.add(before, x)?;
            kb.set(acc, Val::I(after))?;
            let y = kb.wrap(w.in_dt, if exclusive { before } else { after })?;
            store_elem(kb, w, p, Val::I(y))
        })?;
    }
    // the slots are rewritten by the next row's pass 1
    kb.barrier()
}
