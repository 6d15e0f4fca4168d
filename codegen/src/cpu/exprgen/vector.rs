//! The f32x4 loop of expression kernels and the inline `exp`-based activations that both
//! loops use.

use super::{AccKind, ExprKernel, Gen, Store};
use crate::cpu::CpuError;
use crate::cpu::resolve::{Ctx, Map};
use crate::spec::{Expr, ExprId, Scalar};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Value, types};
use dqc_ir::DType;
use dqc_ir::op::{BinaryOp, GeluApprox, UnaryOp};
use std::collections::HashMap;

/// Lanes of the vector loop.
pub(super) const LANES: i64 = 4;

/// True when every reachable node is f32 arithmetic the vector loop supports, every load
/// is an f32 load contiguous (stride 1) or broadcast (stride 0) along the last axis, and
/// every store is f32.
pub(super) fn vectorizable(
    ctx: &Ctx,
    k: &ExprKernel,
    maps: &HashMap<ExprId, Map>,
    reach: &[bool],
) -> bool {
    for (i, n) in k.exprs.nodes.iter().enumerate() {
        if !reach[i] {
            continue;
        }
        if n.dtype != DType::F32 {
            return false;
        }
        let ok = match &n.expr {
            Expr::Load { arg, .. } => {
                ctx.arg(*arg).is_ok_and(|a| a.dtype == DType::F32)
                    && maps
                        .get(&(i as ExprId))
                        .and_then(|m| m.strides.last())
                        .is_some_and(|&s| s == 0 || s == 1)
            }
            Expr::Const(_) => true,
            Expr::Acc => k.acc == Some(AccKind::F32),
            Expr::Unary { op, x } => {
                matches!(
                    op,
                    UnaryOp::Neg
                        | UnaryOp::Abs
                        | UnaryOp::Sqrt
                        | UnaryOp::Reciprocal
                        | UnaryOp::Sigmoid
                ) && k.exprs.get(*x).is_some_and(|x| x.dtype == DType::F32)
            }
            Expr::Binary { op, a, b } => {
                matches!(
                    op,
                    BinaryOp::Add
                        | BinaryOp::Sub
                        | BinaryOp::Mul
                        | BinaryOp::Div
                        | BinaryOp::Max
                        | BinaryOp::Min
                ) && k.exprs.get(*a).is_some_and(|x| x.dtype == DType::F32)
                    && k.exprs.get(*b).is_some_and(|x| x.dtype == DType::F32)
            }
            Expr::Gelu {
                approx: GeluApprox::Tanh,
                x,
            }
            | Expr::Silu { x } => k.exprs.get(*x).is_some_and(|x| x.dtype == DType::F32),
            Expr::Gather { .. }
            | Expr::Coord { .. }
            | Expr::Select { .. }
            | Expr::Cast { .. }
            | Expr::Gelu { .. }
            | Expr::Piecewise { .. } => false,
        };
        if !ok {
            return false;
        }
    }
    k.stores.iter().all(|s| match *s {
        Store::Arg { arg, .. } => ctx.arg(arg).is_ok_and(|a| a.dtype == DType::F32),
        Store::Aux { kind, .. } => kind == AccKind::F32,
    })
}

impl Gen<'_, '_> {
    /// f32x4 value of node `id` for lanes `i..i+4` (only for kernels `vectorizable`
    /// accepts).
    pub(super) fn vval(
        &mut self,
        id: ExprId,
        memo: &mut HashMap<ExprId, Value>,
    ) -> Result<Value, CpuError> {
        if let Some(v) = memo.get(&id) {
            return Ok(*v);
        }
        let ctx = self.ctx;
        let node = self
            .k
            .exprs
            .get(id)
            .ok_or_else(|| ctx.malformed(format!("expression {id} does not exist")))?;
        let v4 = types::F32X4;
        let v = match &node.expr {
            Expr::Load { arg, .. } => {
                let m = &self.maps[&id];
                ctx.check_bounds(
                    *arg,
                    m.offset,
                    &m.strides,
                    &self.ranges,
                    &format!("load {id}"),
                )?;
                let off = self.offset(id)?;
                let p = self.argptr[arg];
                let a = self.addr(p, off, 4);
                if m.strides.last().copied().unwrap_or(0) == 0 {
                    let x = self.b.ins().load(types::F32, MemFlagsData::trusted(), a, 0);
                    self.b.ins().splat(v4, x)
                } else {
                    self.b
                        .ins()
                        .load(v4, MemFlagsData::new().with_notrap(), a, 0)
                }
            }
            Expr::Const(c) => {
                let x = match *c {
                    Scalar::F(x) => x as f32,
                    Scalar::I(x) => x as f32,
                    Scalar::B(x) => f32::from(u8::from(x)),
                };
                let x = self.b.ins().f32const(x);
                self.b.ins().splat(v4, x)
            }
            Expr::Acc => {
                let off = self.b.ins().isub(self.lin, self.start);
                let a = self.addr(self.aux, off, 4);
                self.b
                    .ins()
                    .load(v4, MemFlagsData::new().with_notrap(), a, 0)
            }
            Expr::Unary { op, x } => {
                let x = self.vval(*x, memo)?;
                match op {
                    UnaryOp::Neg => self.b.ins().fneg(x),
                    UnaryOp::Abs => self.b.ins().fabs(x),
                    UnaryOp::Sqrt => self.b.ins().sqrt(x),
                    UnaryOp::Sigmoid => self.sigmoid_inline(x, true),
                    _ => {
                        let one = self.b.ins().f32const(1.0);
                        let one = self.b.ins().splat(v4, one);
                        self.b.ins().fdiv(one, x)
                    }
                }
            }
            Expr::Binary { op, a, b } => {
                let x = self.vval(*a, memo)?;
                let y = self.vval(*b, memo)?;
                match op {
                    BinaryOp::Add => self.b.ins().fadd(x, y),
                    BinaryOp::Sub => self.b.ins().fsub(x, y),
                    BinaryOp::Mul => self.b.ins().fmul(x, y),
                    BinaryOp::Div => self.b.ins().fdiv(x, y),
                    BinaryOp::Max => self.b.ins().fmax(x, y),
                    _ => self.b.ins().fmin(x, y),
                }
            }
            Expr::Silu { x } => {
                let x = self.vval(*x, memo)?;
                let sg = self.sigmoid_inline(x, true);
                self.b.ins().fmul(x, sg)
            }
            Expr::Gelu { x, .. } => {
                let x = self.vval(*x, memo)?;
                self.gelu_tanh_inline(x, true)
            }
            _ => {
                return Err(
                    ctx.malformed(format!("expression {id} is not vectorizable (internal)"))
                );
            }
        };
        memo.insert(id, v);
        Ok(v)
    }

    /// An f32 constant, splatted for vectors.
    fn fconst(&mut self, c: f32, vector: bool) -> Value {
        let x = self.b.ins().f32const(c);
        if vector {
            self.b.ins().splat(types::F32X4, x)
        } else {
            x
        }
    }

    /// `x < lo ? lo : x` (a compare and a select, so NaN passes through; x86 lowers the
    /// IEEE `fmax` to a much longer sequence).
    fn floor_at(&mut self, x: Value, lo: f32, vector: bool) -> Value {
        let l = self.fconst(lo, vector);
        let below = self.b.ins().fcmp(FloatCC::LessThan, x, l);
        self.pick(below, l, x, vector)
    }

    /// `c ? a : b` for a comparison result `c` (a lane mask for vectors).
    fn pick(&mut self, c: Value, a: Value, b: Value, vector: bool) -> Value {
        if vector {
            let le = MemFlagsData::new().with_endianness(Endianness::Little);
            let m = self.b.ins().bitcast(types::F32X4, le, c);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(c, a, b)
        }
    }

    /// `a·b + c`: one fused multiply-add where the target has it (a shorter dependency
    /// chain and one rounding), else a multiply and an add.
    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `e^x` for `x ≤ 0`, with `x` below −87 taken as −87 (so the result, ≥ 1.6e-38, is
    /// never subnormal: subnormal arithmetic is slow): reduction by ln 2 (with a fused
    /// multiply-add one constant, whose rounding error 2e-9·|n|, |n| ≤ 126, stays below 3e-7
    /// of the result; without, Cody–Waite's two), a
    /// degree-5 polynomial on `|r| ≤ ln2/2` fitted for relative error (2e-7 in f32)
    /// evaluated in Estrin form with multiply-adds (a short dependency chain), and `2^n`
    /// built from the bits of the rounding sum. NaN propagates.
    fn exp_nonpositive(&mut self, x: Value, vector: bool) -> Value {
        let x = self.floor_at(x, -87.0, vector);
        let log2e = self.fconst(std::f32::consts::LOG2_E, vector);
        // Round x·log2(e) to nearest by adding 1.5·2^23 (|x·log2 e| < 2^22): the low bits
        // of `e` hold n.
        const MAGIC: f32 = 12_582_912.0;
        let magic = self.fconst(MAGIC, vector);
        let e = self.mul_add(x, log2e, magic);
        let n = self.b.ins().fsub(e, magic);
        let r = if self.fma {
            // The product n·ln2 is exact inside the fused multiply-add.
            let ln2 = self.fconst(-std::f32::consts::LN_2, vector);
            self.mul_add(n, ln2, x)
        } else {
            // Without it, ln2 in a short high part (n·hi exact) and the rest.
            let hi = self.fconst(-0.693_359_4, vector);
            let lo = self.fconst(2.121_944_4e-4, vector);
            let r = self.mul_add(n, hi, x);
            self.mul_add(n, lo, r)
        };
        // e^r = 1 + r + r²·P(r), P(r) = (c0 + c1 r) + r²(c2 + c3 r) (minimax fit).
        let c = [0.499_992_3f32, 0.166_671_14, 4.189_009_6e-2, 8.312_506e-3];
        let r2 = self.b.ins().fmul(r, r);
        let pair = |g: &mut Self, lo: f32, hi: f32| {
            let h = g.fconst(hi, vector);
            let l = g.fconst(lo, vector);
            g.mul_add(h, r, l)
        };
        let p01 = pair(self, c[0], c[1]);
        let p23 = pair(self, c[2], c[3]);
        let p = self.mul_add(r2, p23, p01);
        let one = self.fconst(1.0, vector);
        let r1 = self.b.ins().fadd(r, one);
        let y = self.mul_add(p, r2, r1);
        // 2^n: (bits(e) − bits(MAGIC) + 127) << 23, all in integer lanes.
        let (ity, fty) = if vector {
            (types::I32X4, types::F32X4)
        } else {
            (types::I32, types::F32)
        };
        let le = MemFlagsData::new().with_endianness(Endianness::Little);
        let eb = self.b.ins().bitcast(ity, le, e);
        let k = self.b.ins().iconst(
            types::I32,
            i64::from(127i32.wrapping_sub(MAGIC.to_bits() as i32)),
        );
        let k = if vector {
            self.b.ins().splat(types::I32X4, k)
        } else {
            k
        };
        let bits = self.b.ins().iadd(eb, k);
        let bits = self.b.ins().ishl_imm_s(bits, 23);
        let scale = self.b.ins().bitcast(fty, le, bits);
        self.b.ins().fmul(y, scale)
    }

    /// `1/(1+e^-x)` as `num/(1+e)` with `e = e^-|x|` and `num = 1` for `x ≥ 0`, `e` below:
    /// the exponential never overflows and the negative tail keeps its relative accuracy
    /// (down to 1.6e-38 at x ≤ −87, never subnormal); one division, NaN propagates.
    pub(super) fn sigmoid_inline(&mut self, x: Value, vector: bool) -> Value {
        // −|x|: the sign bit set.
        let sign = self.fconst(-0.0, vector);
        let nx = self.b.ins().bor(x, sign);
        let e = self.exp_nonpositive(nx, vector);
        let one = self.fconst(1.0, vector);
        let d = self.b.ins().fadd(one, e);
        let zero = self.fconst(0.0, vector);
        let neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        let num = self.pick(neg, e, one, vector);
        self.b.ins().fdiv(num, d)
    }

    /// GELU, tanh form: `0.5·x·(1 + tanh(u)) = x·sigmoid(2u)`, `u = √(2/π)·(x + 0.044715x³)`,
    /// with `2u = x·(k + k·0.044715·x²)`, `k = 2√(2/π)`.
    pub(super) fn gelu_tanh_inline(&mut self, x: Value, vector: bool) -> Value {
        const K: f32 = 0.797_884_6 * 2.0;
        let k = self.fconst(K, vector);
        let kc = self.fconst(K * 0.044_715, vector);
        let x2 = self.b.ins().fmul(x, x);
        let inner = self.mul_add(x2, kc, k);
        let u2 = self.b.ins().fmul(x, inner);
        let s = self.sigmoid_inline(u2, vector);
        self.b.ins().fmul(x, s)
    }
}
