//! NVFP4 and MX `Quantize`: two kernels each, bit-exact with the interpreter
//! (`ir::interp::quant`).
//!
//! 1. **Block scale** (output 1) — a `RowReduce` max over blocks (16 for NVFP4, 32 for
//!    MX): the iteration space is `x`'s shape with the blocked axis `a` replaced by the
//!    block count `nb` and a trailing block axis, so the rows (`shape[..r]`) are exactly
//!    the scale's shape. The prologue reads `|x|` at `block·size + j` along `a` (a ragged
//!    last block re-reads the axis' last element through a clamping table, which leaves
//!    the maximum unchanged). NVFP4 reads NaN as 0 (the interpreter's `f32::max` ignores
//!    it) and its epilogue is `e4m3((amax / 6) / tensor_scale)` in f32. MX reads NaN as
//!    +inf, so a block holding a non-finite value has `amax = inf` and gets the NaN scale
//!    `0xff`; otherwise `E = floor(log2 amax) − emax` clamped to `[−127, 127]` (`−127` for
//!    `amax = 0`), stored as `E + 127`. `floor(log2)` is exact: an estimate
//!    `floor(log(amax)/ln 2)` (off by at most one) corrected both ways against exact powers
//!    of two from a table.
//! 2. **Codes** (output 0) — an elementwise kernel reading the block scale back through a
//!    coordinate → block table. NVFP4: `s = decode(block_scale) · tensor_scale`,
//!    `q = e2m1(x / s)`, or 0 where `s = 0`. MX: `x · 2^(127 − code)` (exact; NaN for the
//!    NaN scale) encoded to the element type, MXINT8 as `sat(rne(64·v))`.

use super::emit::KCtx;
use super::indexed::Remap;
use super::view::{CMap, add_axis, identity, scale_axis};
use super::{LowerError, Lowerer};
use crate::spec::{
    BufferId, Elementwise, Expr, ExprId, Kernel, KernelSpec, RowOp, RowReduce, Scalar, Term,
};
use dqc_ir::graph::Value;
use dqc_ir::op::{BinaryOp, ReduceOp, UnaryOp};
use dqc_ir::{DType, Dim, NodeId, Op, QuantScheme, Shape};

/// Smallest exponent of the power-of-two table (f32's smallest subnormal is 2^-149).
const POW2_MIN: i64 = -149;
/// Largest exponent of the power-of-two table (2^128 is +inf in f32).
const POW2_MAX: i64 = 128;

/// `emax` of an MX element type (the OCP MX v1.0 values the interpreter uses).
fn mx_emax(d: DType) -> Option<i64> {
    match d {
        DType::Fp4E2M1 => Some(2),
        DType::F8E4M3 => Some(8),
        DType::F8E5M2 => Some(15),
        DType::I8 => Some(0),
        _ => None,
    }
}

/// Builders of the nodes this file uses a lot.
trait Nodes {
    fn f(&mut self, v: f64) -> ExprId;
    fn i(&mut self, v: i64) -> ExprId;
    fn bin(&mut self, dt: DType, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId;
    fn cmp(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId;
    fn sel(&mut self, dt: DType, cond: ExprId, a: ExprId, b: ExprId) -> ExprId;
    fn un(&mut self, dt: DType, op: UnaryOp, x: ExprId) -> ExprId;
    fn cast(&mut self, to: DType, x: ExprId) -> ExprId;
}

impl Nodes for KCtx {
    fn f(&mut self, v: f64) -> ExprId {
        self.push(DType::F32, Expr::Const(Scalar::F(v)))
    }
    fn i(&mut self, v: i64) -> ExprId {
        self.push(DType::I64, Expr::Const(Scalar::I(v)))
    }
    fn bin(&mut self, dt: DType, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        self.push(dt, Expr::Binary { op, a, b })
    }
    fn cmp(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        self.push(DType::Bool, Expr::Binary { op, a, b })
    }
    fn sel(&mut self, dt: DType, cond: ExprId, a: ExprId, b: ExprId) -> ExprId {
        self.push(dt, Expr::Select { cond, a, b })
    }
    fn un(&mut self, dt: DType, op: UnaryOp, x: ExprId) -> ExprId {
        self.push(dt, Expr::Unary { op, x })
    }
    fn cast(&mut self, to: DType, x: ExprId) -> ExprId {
        self.push(to, Expr::Cast { x })
    }
}

/// `x` (of dtype `d`) as f32.
fn as_f32(k: &mut KCtx, x: ExprId, d: DType) -> ExprId {
    if d == DType::F32 {
        x
    } else {
        k.cast(DType::F32, x)
    }
}

impl Lowerer<'_> {
    /// The scheme, blocked axis, its extent and the block count of a block quantize node.
    pub(crate) fn block_quant_axis(
        &self,
        n: NodeId,
    ) -> Result<(QuantScheme, usize, u64, u64), LowerError> {
        let Op::Quantize { scheme, .. } = self.g.node(n).op else {
            return Err(self.malformed(n, "not a quantize"));
        };
        let (axis, size) = match (scheme.axis(), scheme.block_size()) {
            (Some(a), Some(s)) if s > 0 => (a, s),
            _ => return Err(self.malformed(n, format!("{scheme} is not a block scheme"))),
        };
        let xs = self.shape(self.input(n, 0)?)?;
        let a = xs
            .axis(axis)
            .ok_or_else(|| self.malformed(n, format!("axis {axis} out of range")))?;
        let d = xs.dims()[a].as_fixed().ok_or_else(|| {
            self.unsupported(
                n,
                format!("quantize ({scheme}) along an axis of symbolic extent"),
            )
        })?;
        Ok((scheme, a, d, d.div_ceil(size)))
    }

    /// True if the last block of block quantize node `n` is ragged (its input is then read
    /// through a table and must be a view of a buffer).
    pub(crate) fn block_quant_ragged(&self, n: NodeId) -> bool {
        self.block_quant_axis(n)
            .is_ok_and(|(s, _, d, _)| s.block_size().is_some_and(|size| !d.is_multiple_of(size)))
    }

    /// `2^e` for an i64 exponent `e` in `[POW2_MIN, POW2_MAX]`, exactly (a table).
    fn pow2(&mut self, k: &mut KCtx, n: NodeId, e: ExprId) -> Result<ExprId, LowerError> {
        let values: Vec<f32> = (POW2_MIN..=POW2_MAX)
            .map(|p| 2f64.powi(p as i32) as f32)
            .collect();
        let off = k.i(-POW2_MIN);
        let idx = k.bin(DType::I64, BinaryOp::Add, e, off);
        self.lookup_f32(k, n, "pow2_values", &values, idx)
    }

    /// The kernel writing output `v` (0: codes, 1: block scales) of NVFP4 or MX quantize
    /// node `n` into buffer `b`. Output 1 must be built first.
    pub(crate) fn block_quantize(&mut self, v: Value, b: BufferId) -> Result<(), LowerError> {
        let n = v.node;
        let (scheme, a, d, nb) = self.block_quant_axis(n)?;
        let Op::Quantize { dtype: qd, .. } = self.g.node(n).op else {
            return Err(self.malformed(n, "not a quantize"));
        };
        let size = scheme.block_size().unwrap_or(1);
        let nvfp4 = matches!(scheme, QuantScheme::Nvfp4 { .. });
        let emax = if nvfp4 {
            0
        } else {
            mx_emax(qd).ok_or_else(|| self.malformed(n, format!("MX element type {qd}")))?
        };
        let x = self.input(n, 0)?;
        let xs = self.shape(x)?;
        let xd = self.ty(x)?.dtype;
        let r = xs.rank();
        let ts = if nvfp4 {
            let t = self.input(n, 1)?;
            Some((t, self.ty(t)?.dtype))
        } else {
            None
        };
        if v.output == 1 {
            // [.., nb, .., size]; x's axis a = size·it[a] + it[r].
            let mut it: Vec<Dim> = xs.dims().to_vec();
            it[a] = Dim::fixed(nb);
            it.push(Dim::fixed(size));
            let id = identity(r + 1);
            let mut xm: CMap = id[..r].to_vec();
            let block = scale_axis(&id[a], &Term::constant(size as i64))
                .ok_or_else(|| self.malformed(n, "block map"))?;
            xm[a] = add_axis(&block, &id[r]);
            let mut k = KCtx::new(r + 1);
            let xe = if d.is_multiple_of(size) {
                self.emit(&mut k, x, &xm)?
            } else {
                let table: Vec<i64> = (0..nb * size).map(|c| c.min(d - 1) as i64).collect();
                let remap = Remap {
                    axis: a,
                    coord: xm[a].clone(),
                    table,
                };
                self.remapped_read(&mut k, n, x, &xm, &[remap])?
            };
            let xf = as_f32(&mut k, xe, xd);
            let ax = k.un(DType::F32, UnaryOp::Abs, xf);
            let not_nan = k.cmp(BinaryOp::Equal, ax, ax);
            let nan_as = k.f(if nvfp4 { 0.0 } else { f64::INFINITY });
            let input = k.sel(DType::F32, not_nan, ax, nan_as);
            k.set_space(r);
            let acc = k.push(DType::F32, Expr::Acc);
            let epi = if let Some((t, td)) = ts {
                let six = k.f(6.0);
                let q = k.bin(DType::F32, BinaryOp::Div, acc, six);
                let te = self.emit(&mut k, t, &vec![])?;
                let tf = as_f32(&mut k, te, td);
                let raw = k.bin(DType::F32, BinaryOp::Div, q, tf);
                k.cast(DType::F8E4M3, raw)
            } else {
                self.mx_scale_code(&mut k, n, acc, emax)?
            };
            let out = k.arg(b);
            self.push_kernel(KernelSpec {
                name: self.g.value_name(v).to_string(),
                args: k.args,
                writes: vec![out],
                body: Kernel::RowReduce(RowReduce {
                    shape: Shape(it),
                    axis: r as u32,
                    op: RowOp::Reduce(ReduceOp::Max),
                    exprs: k.exprs,
                    input,
                    epilogue: epi,
                    out,
                }),
            });
            return Ok(());
        }
        let bs = Value::new(n, 1);
        if !self.bufs.contains_key(&bs) {
            return Err(self.malformed(n, "quantized codes built before the block scales"));
        }
        let mut k = KCtx::new(r);
        let id = identity(r);
        let xe = self.emit(&mut k, x, &id)?;
        let xf = as_f32(&mut k, xe, xd);
        let be = self.scale_read(&mut k, n, bs, &scheme, &xs, &id)?;
        let e = if let Some((t, td)) = ts {
            let bf = k.cast(DType::F32, be);
            let te = self.emit(&mut k, t, &vec![])?;
            let tf = as_f32(&mut k, te, td);
            let s = k.bin(DType::F32, BinaryOp::Mul, bf, tf);
            let zero = k.f(0.0);
            let is_zero = k.cmp(BinaryOp::Equal, s, zero);
            let quot = k.bin(DType::F32, BinaryOp::Div, xf, s);
            let sel = k.sel(DType::F32, is_zero, zero, quot);
            k.cast(qd, sel)
        } else {
            // x · 2^(127 − code), NaN for the NaN scale.
            let code = k.cast(DType::I64, be);
            let c127 = k.i(127);
            let ex = k.bin(DType::I64, BinaryOp::Sub, c127, code);
            let p = self.pow2(&mut k, n, ex)?;
            let scaled = k.bin(DType::F32, BinaryOp::Mul, xf, p);
            let c255 = k.i(0xff);
            let bad = k.cmp(BinaryOp::Equal, code, c255);
            let nan = k.f(f64::NAN);
            let v = k.sel(DType::F32, bad, nan, scaled);
            if qd == DType::I8 {
                let s64 = k.f(64.0);
                let m = k.bin(DType::F32, BinaryOp::Mul, v, s64);
                let rr = k.un(DType::F32, UnaryOp::Round, m);
                let ok = k.cmp(BinaryOp::Equal, rr, rr);
                let zero = k.f(0.0);
                let rr = k.sel(DType::F32, ok, rr, zero);
                k.cast(DType::I8, rr)
            } else {
                k.cast(qd, v)
            }
        };
        let out = k.arg(b);
        self.push_kernel(KernelSpec {
            name: self.g.value_name(v).to_string(),
            args: k.args,
            writes: vec![out],
            body: Kernel::Elementwise(Elementwise {
                shape: xs,
                exprs: k.exprs,
                outputs: vec![(out, e)],
            }),
        });
        Ok(())
    }

    /// The E8M0 code (u8) of a block whose `|x|` maximum is `acc` (+inf if the block holds
    /// a non-finite value): `0xff` for non-finite, else `clamp(floor(log2 acc) − emax,
    /// −127, 127) + 127`, with `floor(log2 0)` taken as `−127 + emax`.
    fn mx_scale_code(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        acc: ExprId,
        emax: i64,
    ) -> Result<ExprId, LowerError> {
        let inf = k.f(f64::INFINITY);
        let bad = k.cmp(BinaryOp::Equal, acc, inf);
        let zero = k.f(0.0);
        let is_zero = k.cmp(BinaryOp::Equal, acc, zero);
        // estimate: floor(ln(acc) / ln 2), clamped into the table
        let l = k.un(DType::F32, UnaryOp::Log, acc);
        let inv_ln2 = k.f(std::f64::consts::LOG2_E);
        let l2 = k.bin(DType::F32, BinaryOp::Mul, l, inv_ln2);
        let fl = k.un(DType::F32, UnaryOp::Floor, l2);
        let lo = k.f((POW2_MIN + 1) as f64);
        let hi = k.f((POW2_MAX - 1) as f64);
        let fl = k.bin(DType::F32, BinaryOp::Max, fl, lo);
        let fl = k.bin(DType::F32, BinaryOp::Min, fl, hi);
        let ok = k.cmp(BinaryOp::Equal, fl, fl);
        let zf = k.f(0.0);
        let fl = k.sel(DType::F32, ok, fl, zf);
        let e0 = k.cast(DType::I64, fl);
        // correct downwards: 2^e0 > acc → e0 − 1
        let p0 = self.pow2(k, n, e0)?;
        let over = k.cmp(BinaryOp::Greater, p0, acc);
        let one = k.i(1);
        let e0m = k.bin(DType::I64, BinaryOp::Sub, e0, one);
        let e1 = k.sel(DType::I64, over, e0m, e0);
        // correct upwards: 2^(e1+1) ≤ acc → e1 + 1
        let e1p = k.bin(DType::I64, BinaryOp::Add, e1, one);
        let p1 = self.pow2(k, n, e1p)?;
        let under = k.cmp(BinaryOp::LessEqual, p1, acc);
        let e = k.sel(DType::I64, under, e1p, e1);
        let em = k.i(emax);
        let e = k.bin(DType::I64, BinaryOp::Sub, e, em);
        let m127 = k.i(-127);
        let p127 = k.i(127);
        let e = k.bin(DType::I64, BinaryOp::Max, e, m127);
        let e = k.bin(DType::I64, BinaryOp::Min, e, p127);
        let e = k.sel(DType::I64, is_zero, m127, e);
        let code = k.bin(DType::I64, BinaryOp::Add, e, p127);
        let c255 = k.i(0xff);
        let code = k.sel(DType::I64, bad, c255, code);
        Ok(k.cast(DType::U8, code))
    }
}
