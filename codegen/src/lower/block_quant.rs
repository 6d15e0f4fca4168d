//! NVFP4 `Quantize`: two kernels, bit-exact with the interpreter (`ir::interp::quant`).
//!
//! 1. **Block scale** (output 1) — a `RowReduce` max over blocks of 16: the iteration space
//!    is `x`'s shape with the blocked axis `a` replaced by the block count `nb` and a
//!    trailing block axis of 16, so the rows (`shape[..r]`) are exactly the scale's shape.
//!    The prologue reads `|x|` at `16·block + j` along `a` (NaN read as 0, which the
//!    interpreter's `f32::max` ignores; a ragged last block re-reads the axis' last element
//!    through a clamping table, which leaves the maximum unchanged); the epilogue is
//!    `e4m3((amax / 6) / tensor_scale)` in f32.
//! 2. **Codes** (output 0) — an elementwise kernel: `s = decode(block_scale) · tensor_scale`
//!    (the block scale gathered through a coordinate → block table), `q = e2m1(x / s)`, or
//!    0 where `s = 0`.
//!
//! MX quantize is not lowered: its E8M0 exponent is `floor(log2 amax)`, which no
//! expression node computes exactly (`Log` and `Pow` are approximations on the GPU).

use super::emit::KCtx;
use super::indexed::Remap;
use super::view::{CMap, add_axis, identity, scale_axis};
use super::{LowerError, Lowerer};
use crate::spec::{
    BufferId, Elementwise, Expr, Kernel, KernelSpec, RowOp, RowReduce, Scalar, Term,
};
use dqc_ir::graph::Value;
use dqc_ir::op::{BinaryOp, ReduceOp, UnaryOp};
use dqc_ir::quant::NVFP4_BLOCK;
use dqc_ir::{DType, Dim, NodeId, Op, QuantScheme, Shape};

impl Lowerer<'_> {
    /// The blocked axis of an NVFP4 quantize node, its extent and block count.
    pub(crate) fn nvfp4_axis(&self, n: NodeId) -> Result<(usize, u64, u64), LowerError> {
        let Op::Quantize {
            scheme: QuantScheme::Nvfp4 { axis },
            ..
        } = self.g.node(n).op
        else {
            return Err(self.malformed(n, "not an NVFP4 quantize"));
        };
        let xs = self.shape(self.input(n, 0)?)?;
        let a = xs
            .axis(axis)
            .ok_or_else(|| self.malformed(n, format!("axis {axis} out of range")))?;
        let d = xs.dims()[a].as_fixed().ok_or_else(|| {
            self.unsupported(n, "NVFP4 quantize along an axis of symbolic extent")
        })?;
        Ok((a, d, d.div_ceil(NVFP4_BLOCK)))
    }

    /// True if the last NVFP4 block of node `n` is ragged (its input is then read through a
    /// table and must be a view of a buffer).
    pub(crate) fn nvfp4_ragged(&self, n: NodeId) -> bool {
        self.nvfp4_axis(n)
            .is_ok_and(|(_, d, _)| !d.is_multiple_of(NVFP4_BLOCK))
    }

    /// The kernel writing output `v` (0: codes, 1: block scales) of NVFP4 quantize node `n`
    /// into buffer `b`. Output 1 must be built first.
    pub(crate) fn nvfp4_quantize(&mut self, v: Value, b: BufferId) -> Result<(), LowerError> {
        let n = v.node;
        let (a, d, nb) = self.nvfp4_axis(n)?;
        let x = self.input(n, 0)?;
        let ts = self.input(n, 1)?;
        let xs = self.shape(x)?;
        let xd = self.ty(x)?.dtype;
        let td = self.ty(ts)?.dtype;
        let r = xs.rank();
        let as_f32 = |k: &mut KCtx, e, d: DType| {
            if d == DType::F32 {
                e
            } else {
                k.push(DType::F32, Expr::Cast { x: e })
            }
        };
        if v.output == 1 {
            // [.., nb, .., 16]; x's axis a = 16·it[a] + it[r].
            let mut it: Vec<Dim> = xs.dims().to_vec();
            it[a] = Dim::fixed(nb);
            it.push(Dim::fixed(NVFP4_BLOCK));
            let id = identity(r + 1);
            let mut xm: CMap = id[..r].to_vec();
            let block = scale_axis(&id[a], &Term::constant(NVFP4_BLOCK as i64))
                .ok_or_else(|| self.malformed(n, "block map"))?;
            xm[a] = add_axis(&block, &id[r]);
            let mut k = KCtx::new(r + 1);
            let xe = if d.is_multiple_of(NVFP4_BLOCK) {
                self.emit(&mut k, x, &xm)?
            } else {
                let table: Vec<i64> = (0..nb * NVFP4_BLOCK).map(|c| c.min(d - 1) as i64).collect();
                let remap = Remap {
                    axis: a,
                    coord: xm[a].clone(),
                    table,
                };
                self.remapped_read(&mut k, n, x, &xm, &[remap])?
            };
            let xf = as_f32(&mut k, xe, xd);
            let ax = k.push(
                DType::F32,
                Expr::Unary {
                    op: UnaryOp::Abs,
                    x: xf,
                },
            );
            let not_nan = k.push(
                DType::Bool,
                Expr::Binary {
                    op: BinaryOp::Equal,
                    a: ax,
                    b: ax,
                },
            );
            let zero = k.push(DType::F32, Expr::Const(Scalar::F(0.0)));
            let input = k.push(
                DType::F32,
                Expr::Select {
                    cond: not_nan,
                    a: ax,
                    b: zero,
                },
            );
            k.set_space(r);
            let acc = k.push(DType::F32, Expr::Acc);
            let six = k.push(DType::F32, Expr::Const(Scalar::F(6.0)));
            let q = bin(&mut k, BinaryOp::Div, acc, six);
            let te = self.emit(&mut k, ts, &vec![])?;
            let tf = as_f32(&mut k, te, td);
            let raw = bin(&mut k, BinaryOp::Div, q, tf);
            let epi = k.push(DType::F8E4M3, Expr::Cast { x: raw });
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
            return Err(self.malformed(n, "NVFP4 codes built before the block scales"));
        }
        let mut k = KCtx::new(r);
        let id = identity(r);
        let xe = self.emit(&mut k, x, &id)?;
        let xf = as_f32(&mut k, xe, xd);
        let scheme = QuantScheme::Nvfp4 { axis: a as i64 };
        let be = self.scale_read(&mut k, n, bs, &scheme, &xs, &id)?;
        let bf = k.push(DType::F32, Expr::Cast { x: be });
        let te = self.emit(&mut k, ts, &vec![])?;
        let tf = as_f32(&mut k, te, td);
        let s = bin(&mut k, BinaryOp::Mul, bf, tf);
        let zero = k.push(DType::F32, Expr::Const(Scalar::F(0.0)));
        let is_zero = k.push(
            DType::Bool,
            Expr::Binary {
                op: BinaryOp::Equal,
                a: s,
                b: zero,
            },
        );
        let quot = bin(&mut k, BinaryOp::Div, xf, s);
        let sel = k.push(
            DType::F32,
            Expr::Select {
                cond: is_zero,
                a: zero,
                b: quot,
            },
        );
        let e = k.push(DType::Fp4E2M1, Expr::Cast { x: sel });
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
}

/// `a op b` in f32.
fn bin(k: &mut KCtx, op: BinaryOp, a: u32, b: u32) -> u32 {
    k.push(DType::F32, Expr::Binary { op, a, b })
}
