//! Scalar unary and binary operators and casts, with the interpreter's dtype rules.

use super::{Gen, Val, fv, iv};
use crate::cpu::CpuError;
use crate::cpu::helpers::Helper;
use crate::cpu::jit::{FAULT_DIV_ZERO, FAULT_POW};
use crate::spec::ExprId;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, types};
use dqc_ir::DType;
use dqc_ir::op::{BinaryOp, UnaryOp};

impl Gen<'_, '_> {
    pub(super) fn unary(
        &mut self,
        id: ExprId,
        op: UnaryOp,
        xd: DType,
        dt: DType,
        v: Val,
    ) -> Result<Val, CpuError> {
        let refuse = |g: &Self| {
            Err(g.ctx.malformed(format!(
                "expression {id}: {} is not defined on dtype {xd}",
                op.name()
            )))
        };
        if xd == DType::Bool {
            return match op {
                UnaryOp::Not => {
                    let c = self.b.ins().icmp_imm_s(IntCC::Equal, v.v, 0);
                    Ok(iv(self.bool_of(c)))
                }
                _ => refuse(self),
            };
        }
        if !v.f {
            let x = v.v;
            let r = match op {
                UnaryOp::Neg => self.b.ins().ineg(x),
                UnaryOp::Abs => self.b.ins().iabs(x),
                UnaryOp::Relu => {
                    let z = self.b.ins().iconst(types::I64, 0);
                    self.b.ins().smax(x, z)
                }
                UnaryOp::Sign => {
                    let p = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, x, 0);
                    let n = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                    let p = self.bool_of(p);
                    let n = self.bool_of(n);
                    self.b.ins().isub(p, n)
                }
                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => x,
                UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Sqrt
                | UnaryOp::Rsqrt
                | UnaryOp::Reciprocal
                | UnaryOp::Tanh
                | UnaryOp::Sigmoid
                | UnaryOp::Erf
                | UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Softplus
                | UnaryOp::Not => return refuse(self),
            };
            return self.fix(dt, iv(r));
        }
        let x = v.v;
        let r = match op {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Exp => self.call1(Helper::Exp, &[x])?,
            UnaryOp::Log => self.call1(Helper::Log, &[x])?,
            UnaryOp::Tanh => self.call1(Helper::Tanh, &[x])?,
            UnaryOp::Sigmoid => self.sigmoid_inline(x, false),
            UnaryOp::Erf => self.call1(Helper::Erf, &[x])?,
            UnaryOp::Sin => self.call1(Helper::Sin, &[x])?,
            UnaryOp::Cos => self.call1(Helper::Cos, &[x])?,
            UnaryOp::Softplus => self.call1(Helper::Softplus, &[x])?,
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Rsqrt => {
                let d = self.b.ins().fpromote(types::F64, x);
                let s = self.b.ins().sqrt(d);
                let one = self.b.ins().f64const(1.0);
                let q = self.b.ins().fdiv(one, s);
                self.b.ins().fdemote(types::F32, q)
            }
            UnaryOp::Reciprocal => {
                let one = self.b.ins().f32const(1.0);
                self.b.ins().fdiv(one, x)
            }
            UnaryOp::Relu => {
                let z = self.b.ins().f32const(0.0);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                self.b.ins().select(neg, z, x)
            }
            UnaryOp::Floor => self.b.ins().floor(x),
            UnaryOp::Ceil => self.b.ins().ceil(x),
            UnaryOp::Round => self.b.ins().nearest(x),
            UnaryOp::Sign => {
                let z = self.b.ins().f32const(0.0);
                let one = self.b.ins().f32const(1.0);
                let m1 = self.b.ins().f32const(-1.0);
                let p = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                let n = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                let t = self.b.ins().select(n, m1, z);
                let t = self.b.ins().select(p, one, t);
                let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                self.b.ins().select(nan, x, t)
            }
            UnaryOp::Not => return refuse(self),
        };
        self.fix(dt, fv(r))
    }

    pub(super) fn binary(
        &mut self,
        id: ExprId,
        op: BinaryOp,
        ad: DType,
        dt: DType,
        a: Val,
        b: Val,
    ) -> Result<Val, CpuError> {
        let logical = matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor);
        if logical {
            let (x, y) = if a.f {
                let z = self.b.ins().f32const(0.0);
                (
                    self.b.ins().fcmp(FloatCC::NotEqual, a.v, z),
                    self.b.ins().fcmp(FloatCC::NotEqual, b.v, z),
                )
            } else {
                (
                    self.b.ins().icmp_imm_s(IntCC::NotEqual, a.v, 0),
                    self.b.ins().icmp_imm_s(IntCC::NotEqual, b.v, 0),
                )
            };
            let r = match op {
                BinaryOp::And => self.b.ins().band(x, y),
                BinaryOp::Or => self.b.ins().bor(x, y),
                _ => self.b.ins().bxor(x, y),
            };
            return Ok(iv(self.bool_of(r)));
        }
        if op.returns_bool() {
            let r = if a.f {
                let cc = match op {
                    BinaryOp::Equal => FloatCC::Equal,
                    BinaryOp::Less => FloatCC::LessThan,
                    BinaryOp::LessEqual => FloatCC::LessThanOrEqual,
                    BinaryOp::Greater => FloatCC::GreaterThan,
                    _ => FloatCC::GreaterThanOrEqual,
                };
                self.b.ins().fcmp(cc, a.v, b.v)
            } else {
                let cc = match op {
                    BinaryOp::Equal => IntCC::Equal,
                    BinaryOp::Less => IntCC::SignedLessThan,
                    BinaryOp::LessEqual => IntCC::SignedLessThanOrEqual,
                    BinaryOp::Greater => IntCC::SignedGreaterThan,
                    _ => IntCC::SignedGreaterThanOrEqual,
                };
                self.b.ins().icmp(cc, a.v, b.v)
            };
            return Ok(iv(self.bool_of(r)));
        }
        if ad == DType::Bool && !matches!(op, BinaryOp::Max | BinaryOp::Min) {
            return Err(self.ctx.malformed(format!(
                "expression {id}: {} is not defined on bool",
                op.name()
            )));
        }
        if a.f {
            let (x, y) = (a.v, b.v);
            let r = match op {
                BinaryOp::Add => self.b.ins().fadd(x, y),
                BinaryOp::Sub => self.b.ins().fsub(x, y),
                BinaryOp::Mul => self.b.ins().fmul(x, y),
                BinaryOp::Div => self.b.ins().fdiv(x, y),
                BinaryOp::Pow => self.call1(Helper::Pow, &[x, y])?,
                BinaryOp::Max => self.b.ins().fmax(x, y),
                BinaryOp::Min => self.b.ins().fmin(x, y),
                BinaryOp::Mod => self.call1(Helper::FMod, &[x, y])?,
                _ => return Err(self.ctx.malformed(format!("expression {id}: bad op"))),
            };
            return self.fix(dt, fv(r));
        }
        let (x, y) = (a.v, b.v);
        let r = match op {
            BinaryOp::Add => self.b.ins().iadd(x, y),
            BinaryOp::Sub => self.b.ins().isub(x, y),
            BinaryOp::Mul => self.b.ins().imul(x, y),
            BinaryOp::Div | BinaryOp::Mod => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
                let zv = self.b.ins().iconst(types::I64, 0);
                self.fault_if(zero, FAULT_DIV_ZERO, x, zv);
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.b.ins().iconst(types::I64, 1);
                let safe = self.b.ins().select(m1, one, y);
                if op == BinaryOp::Div {
                    let q = self.b.ins().sdiv(x, safe);
                    let nx = self.b.ins().ineg(x);
                    self.b.ins().select(m1, nx, q)
                } else {
                    let r = self.b.ins().srem(x, safe);
                    let rnz = self.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
                    let rneg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
                    let yneg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, y, 0);
                    let differ = self.b.ins().bxor(rneg, yneg);
                    let fixup = self.b.ins().band(rnz, differ);
                    let ry = self.b.ins().iadd(r, y);
                    self.b.ins().select(fixup, ry, r)
                }
            }
            BinaryOp::Pow => {
                let xz = self.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
                let yn = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, y, 0);
                let bad = self.b.ins().band(xz, yn);
                self.fault_if(bad, FAULT_POW, y, x);
                self.call1(Helper::IPow, &[x, y])?
            }
            BinaryOp::Max => self.b.ins().smax(x, y),
            BinaryOp::Min => self.b.ins().smin(x, y),
            _ => return Err(self.ctx.malformed(format!("expression {id}: bad op"))),
        };
        self.fix(dt, iv(r))
    }

    pub(super) fn cast(&mut self, from: DType, to: DType, v: Val) -> Result<Val, CpuError> {
        if from == to {
            return Ok(v);
        }
        if to == DType::Bool {
            let c = if v.f {
                let z = self.b.ins().f32const(0.0);
                self.b.ins().fcmp(FloatCC::NotEqual, v.v, z)
            } else {
                self.b.ins().icmp_imm_s(IntCC::NotEqual, v.v, 0)
            };
            return Ok(iv(self.bool_of(c)));
        }
        if v.f {
            if to.is_float() {
                let r = self.round_to(to, v.v)?;
                return Ok(fv(r));
            }
            // truncate toward zero (NaN → 0), saturate to i64, then to the target range
            let t = self.b.ins().fcvt_to_sint_sat(types::I64, v.v);
            let (lo, hi) = to.int_range().unwrap_or((i64::MIN, i64::MAX));
            let lo = self.b.ins().iconst(types::I64, lo);
            let hi = self.b.ins().iconst(types::I64, hi);
            let t = self.b.ins().smax(t, lo);
            return Ok(iv(self.b.ins().smin(t, hi)));
        }
        if to == DType::BF16 {
            return Ok(fv(self.call1(Helper::I64ToBf16, &[v.v])?));
        }
        if to.is_float() {
            let f = self.b.ins().fcvt_from_sint(types::F32, v.v);
            return Ok(fv(self.round_to(to, f)?));
        }
        Ok(iv(self.wrap(to, v.v)))
    }
}
