//! Expression arenas in generated PTX: every [`Exprs`] node (loads through index maps,
//! gathers, literals, coordinates, `Acc`, unary and binary functions, select, cast, GELU,
//! SiLU, piecewise) evaluated at one iteration coordinate, with the interpreter's dtype
//! rules (floats rounded to their dtype after each node, integers wrapped).

use super::abi::{FAULT_DIV_ZERO, FAULT_GATHER, FAULT_POW};
use super::builder::{Kb, R, Val};
use crate::spec::{Expr, ExprId, Exprs, IndexMap, Scalar};
use dqc_ir::DType;
use dqc_ir::op::{BinaryOp, GeluApprox, UnaryOp};
use inkwell::values::IntValue;
use inkwell::{FloatPredicate, IntPredicate};
use std::collections::HashMap;

/// Where an arena is evaluated: the iteration coordinates (i64) and the kernel's result.
pub(crate) struct At<'ctx> {
    /// One coordinate per iteration axis.
    pub coords: Vec<IntValue<'ctx>>,
    /// The value of [`Expr::Acc`], if the arena is an epilogue.
    pub acc: Option<Val<'ctx>>,
}

type Memo<'ctx> = HashMap<ExprId, Val<'ctx>>;

impl<'ctx> Kb<'ctx, '_> {
    /// Element offset `offset + Σ coord[d]·strides[d]` of an index map (i64).
    pub fn map_offset(&self, m: &IndexMap, coords: &[IntValue<'ctx>]) -> R<IntValue<'ctx>> {
        if m.strides.len() != coords.len() {
            return Err(self.malformed(format!(
                "index map has {} strides for a {}-axis iteration space",
                m.strides.len(),
                coords.len()
            )));
        }
        let mut off = self.poly(&m.offset)?;
        for (t, &c) in m.strides.iter().zip(coords) {
            if t.coeff == 0 {
                continue;
            }
            let s = self.term(t)?;
            let p = self.mul(c, s)?;
            off = self.add(off, p)?;
        }
        Ok(off)
    }

    /// Evaluate node `id` of `exprs` at `at`.
    pub fn eval(&mut self, exprs: &Exprs, id: ExprId, at: &At<'ctx>) -> R<Val<'ctx>> {
        let mut memo = Memo::new();
        self.eval_memo(exprs, id, at, &mut memo)
    }

    fn eval_memo(
        &mut self,
        exprs: &Exprs,
        id: ExprId,
        at: &At<'ctx>,
        memo: &mut Memo<'ctx>,
    ) -> R<Val<'ctx>> {
        if let Some(v) = memo.get(&id) {
            return Ok(*v);
        }
        let node = exprs
            .get(id)
            .ok_or_else(|| self.malformed(format!("expression {id} does not exist")))?;
        let dt = node.dtype;
        let operand_dtype = |o: ExprId| -> R<DType> {
            if o >= id {
                return Err(self.malformed(format!(
                    "expression {id} uses {o}, which does not precede it"
                )));
            }
            exprs
                .get(o)
                .map(|n| n.dtype)
                .ok_or_else(|| self.malformed(format!("expression {o} does not exist")))
        };
        let v = match &node.expr {
            Expr::Load { arg, map } => {
                let off = self.map_offset(map, &at.coords)?;
                self.load_as(*arg, off, dt)?
            }
            Expr::Gather {
                arg,
                map,
                index,
                axis_stride,
                axis_len,
            } => {
                operand_dtype(*index)?;
                let iv = self.eval_memo(exprs, *index, at, memo)?;
                let i = self.as_i(iv)?;
                let len = self.dim(axis_len)?;
                let neg = self.icmp(IntPredicate::SLT, i, self.i64c(0))?;
                let wrapped = self.add(i, len)?;
                let i = self.isel(neg, wrapped, i)?;
                let lo = self.icmp(IntPredicate::SLT, i, self.i64c(0))?;
                let hi = self.icmp(IntPredicate::SGE, i, len)?;
                let bad = self.b.build_or(lo, hi, "").map_err(|e| self.e(e))?;
                self.fault_if(bad, FAULT_GATHER)?;
                let i = self.isel(bad, self.i64c(0), i)?;
                let base = self.map_offset(map, &at.coords)?;
                let s = self.term(axis_stride)?;
                let off = self.add(base, self.mul(i, s)?)?;
                self.load_as(*arg, off, dt)?
            }
            Expr::Const(s) => match (s, dt.is_float()) {
                (Scalar::F(f), true) => Val::F(self.round_to(dt, self.f32c(*f as f32))?),
                (Scalar::I(i), false) => Val::I(self.wrap(dt, self.i64c(*i))?),
                (Scalar::B(b), false) => Val::I(self.i64c(i64::from(*b))),
                (Scalar::I(i), true) => Val::F(self.round_to(dt, self.f32c(*i as f32))?),
                (Scalar::F(f), false) => Val::I(self.wrap(dt, self.i64c(*f as i64))?),
                (Scalar::B(b), true) => Val::F(self.f32c(if *b { 1.0 } else { 0.0 })),
            },
            Expr::Coord { axis } => {
                let c = at.coords.get(*axis as usize).copied().ok_or_else(|| {
                    self.malformed(format!(
                        "expression {id}: coordinate axis {axis} out of range"
                    ))
                })?;
                self.fix(dt, Val::I(c))?
            }
            Expr::Acc => {
                let a = at.acc.ok_or_else(|| {
                    self.malformed(format!("expression {id}: Acc outside an epilogue"))
                })?;
                self.fix(dt, a)?
            }
            Expr::Unary { op, x } => {
                let xd = operand_dtype(*x)?;
                let xv = self.eval_memo(exprs, *x, at, memo)?;
                self.unary(id, *op, xd, dt, xv)?
            }
            Expr::Binary { op, a, b } => {
                let ad = operand_dtype(*a)?;
                operand_dtype(*b)?;
                let av = self.eval_memo(exprs, *a, at, memo)?;
                let bv = self.eval_memo(exprs, *b, at, memo)?;
                self.binary(id, *op, ad, dt, av, bv)?
            }
            Expr::Select { cond, a, b } => {
                operand_dtype(*cond)?;
                operand_dtype(*a)?;
                operand_dtype(*b)?;
                let c = self.eval_memo(exprs, *cond, at, memo)?;
                let av = self.eval_memo(exprs, *a, at, memo)?;
                let bv = self.eval_memo(exprs, *b, at, memo)?;
                let ci = self.as_i(c)?;
                let cb = self.icmp(IntPredicate::NE, ci, self.i64c(0))?;
                match (av, bv) {
                    (Val::F(x), Val::F(y)) => Val::F(self.fsel(cb, x, y)?),
                    (Val::I(x), Val::I(y)) => Val::I(self.isel(cb, x, y)?),
                    _ => {
                        return Err(self.malformed(format!(
                            "expression {id}: select of a float and an integer"
                        )));
                    }
                }
            }
            Expr::Cast { x } => {
                let xd = operand_dtype(*x)?;
                let xv = self.eval_memo(exprs, *x, at, memo)?;
                self.cast(xd, dt, xv)?
            }
            Expr::Gelu { approx, x } => {
                operand_dtype(*x)?;
                let xv = self.eval_memo(exprs, *x, at, memo)?;
                let x = self.as_f(xv)?;
                let r = match approx {
                    GeluApprox::Erf => {
                        let half_x = self.fmul(x, self.f32c(0.5))?;
                        let inner =
                            self.erf(self.fmul(x, self.f32c(std::f32::consts::FRAC_1_SQRT_2))?)?;
                        self.fmul(half_x, self.fadd(self.f32c(1.0), inner)?)?
                    }
                    GeluApprox::Tanh => {
                        // ½x(1 + tanh u) = x·σ(2u) = x / (1 + 2^(−2u·log₂e)): one exp2 and
                        // one division, and no cancellation in 1 + tanh u for negative u
                        let x3 = self.fmul(self.fmul(x, x)?, x)?;
                        let u = self.fma(x3, self.f32c(0.044_715), x)?;
                        let t =
                            self.fmul(u, self.f32c(-2.0 * 0.797_884_6 * std::f32::consts::LOG2_E))?;
                        let d = self.fadd(self.f32c(1.0), self.exp2_approx(t)?)?;
                        self.div_approx(x, d)?
                    }
                };
                Val::F(self.round_to(dt, r)?)
            }
            Expr::Silu { x } => {
                operand_dtype(*x)?;
                let xv = self.eval_memo(exprs, *x, at, memo)?;
                let x = self.as_f(xv)?;
                let r = self.fmul(x, self.sigmoid(x)?)?;
                Val::F(self.round_to(dt, r)?)
            }
            Expr::Piecewise {
                axis,
                bounds,
                pieces,
            } => {
                if bounds.len() != pieces.len() || pieces.is_empty() {
                    return Err(self.malformed(format!(
                        "expression {id}: piecewise with {} bounds and {} pieces",
                        bounds.len(),
                        pieces.len()
                    )));
                }
                for &p in pieces {
                    operand_dtype(p)?;
                }
                let c = *at.coords.get(*axis as usize).ok_or_else(|| {
                    self.malformed(format!(
                        "expression {id}: piecewise axis {axis} out of range"
                    ))
                })?;
                self.piecewise(exprs, dt, c, bounds, pieces, at, memo)?
            }
        };
        memo.insert(id, v);
        Ok(v)
    }

    fn load_as(&self, arg: u32, off: IntValue<'ctx>, dt: DType) -> R<Val<'ctx>> {
        let ad = self.arg_dtype(arg)?;
        let v = self.load(arg, off)?;
        if ad.is_float() != dt.is_float() {
            return Err(self.malformed(format!("load of argument {arg} ({ad}) as {dt}")));
        }
        Ok(v)
    }

    #[allow(clippy::too_many_arguments)]
    fn piecewise(
        &mut self,
        exprs: &Exprs,
        dt: DType,
        c: IntValue<'ctx>,
        bounds: &[crate::spec::Poly],
        pieces: &[ExprId],
        at: &At<'ctx>,
        memo: &mut Memo<'ctx>,
    ) -> R<Val<'ctx>> {
        let join = self.block("pw_join");
        let mut incoming: Vec<(Val<'ctx>, inkwell::basic_block::BasicBlock<'ctx>)> = Vec::new();
        let n = pieces.len();
        // test from the last piece down: coord >= bounds[i] picks piece i
        for i in (0..n).rev() {
            let this = self.block("pw_piece");
            if i > 0 {
                let next = self.block("pw_test");
                let lo = self.poly(&bounds[i])?;
                let ge = self.icmp(IntPredicate::SGE, c, lo)?;
                self.cond_br(ge, this, next)?;
                self.b.position_at_end(this);
                let mut m = memo.clone();
                let v = self.eval_memo(exprs, pieces[i], at, &mut m)?;
                incoming.push((v, self.current()?));
                self.br(join)?;
                self.b.position_at_end(next);
            } else {
                self.br(this)?;
                self.b.position_at_end(this);
                let mut m = memo.clone();
                let v = self.eval_memo(exprs, pieces[i], at, &mut m)?;
                incoming.push((v, self.current()?));
                self.br(join)?;
            }
        }
        self.b.position_at_end(join);
        if dt.is_float() {
            let phi = self
                .b
                .build_phi(self.cx.f32_type(), "pw")
                .map_err(|e| self.e(e))?;
            for (v, bb) in &incoming {
                let f = match v {
                    Val::F(f) => *f,
                    Val::I(_) => {
                        return Err(self.malformed("piecewise mixes float and integer pieces"));
                    }
                };
                phi.add_incoming(&[(&f, *bb)]);
            }
            Ok(Val::F(phi.as_basic_value().into_float_value()))
        } else {
            let phi = self
                .b
                .build_phi(self.cx.i64_type(), "pw")
                .map_err(|e| self.e(e))?;
            for (v, bb) in &incoming {
                let i = match v {
                    Val::I(i) => *i,
                    Val::F(_) => {
                        return Err(self.malformed("piecewise mixes float and integer pieces"));
                    }
                };
                phi.add_incoming(&[(&i, *bb)]);
            }
            Ok(Val::I(phi.as_basic_value().into_int_value()))
        }
    }

    fn unary(
        &mut self,
        id: ExprId,
        op: UnaryOp,
        xd: DType,
        dt: DType,
        v: Val<'ctx>,
    ) -> R<Val<'ctx>> {
        let refuse = |kb: &Self| {
            Err(kb.malformed(format!(
                "expression {id}: {} is not defined on dtype {xd}",
                op.name()
            )))
        };
        if xd == DType::Bool {
            return match op {
                UnaryOp::Not => {
                    let x = self.as_i(v)?;
                    let c = self.icmp(IntPredicate::EQ, x, self.i64c(0))?;
                    Ok(Val::I(self.bool64(c)?))
                }
                _ => refuse(self),
            };
        }
        if let Val::I(x) = v {
            let r = match op {
                UnaryOp::Neg => self.sub(self.i64c(0), x)?,
                UnaryOp::Abs => {
                    let n = self.sub(self.i64c(0), x)?;
                    let neg = self.icmp(IntPredicate::SLT, x, self.i64c(0))?;
                    self.isel(neg, n, x)?
                }
                UnaryOp::Relu => {
                    let neg = self.icmp(IntPredicate::SLT, x, self.i64c(0))?;
                    self.isel(neg, self.i64c(0), x)?
                }
                UnaryOp::Sign => {
                    let p = self.icmp(IntPredicate::SGT, x, self.i64c(0))?;
                    let n = self.icmp(IntPredicate::SLT, x, self.i64c(0))?;
                    self.sub(self.bool64(p)?, self.bool64(n)?)?
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
            return self.fix(dt, Val::I(r));
        }
        let x = self.as_f(v)?;
        let r = match op {
            UnaryOp::Neg => self.b.build_float_neg(x, "").map_err(|e| self.e(e))?,
            UnaryOp::Abs => self.fabs(x)?,
            UnaryOp::Exp => self.exp(x)?,
            UnaryOp::Log => self.log(x)?,
            UnaryOp::Tanh => self.tanh(x)?,
            UnaryOp::Sigmoid => self.sigmoid(x)?,
            UnaryOp::Erf => self.erf(x)?,
            UnaryOp::Sin => self.sincos(x, false)?,
            UnaryOp::Cos => self.sincos(x, true)?,
            UnaryOp::Softplus => {
                // max(x, 0) + ln(1 + e^{−|x|})
                let ax = self.fabs(x)?;
                let nax = self.b.build_float_neg(ax, "").map_err(|e| self.e(e))?;
                let l = self.log(self.fadd(self.f32c(1.0), self.exp(nax)?)?)?;
                self.fadd(self.fmax(x, self.f32c(0.0))?, l)?
            }
            UnaryOp::Sqrt => self.fcall("llvm.sqrt.f32", &[x])?,
            UnaryOp::Rsqrt => {
                let s = self.fcall("llvm.sqrt.f32", &[x])?;
                self.fdiv(self.f32c(1.0), s)?
            }
            UnaryOp::Reciprocal => self.fdiv(self.f32c(1.0), x)?,
            UnaryOp::Relu => {
                let neg = self.fcmp(FloatPredicate::OLT, x, self.f32c(0.0))?;
                self.fsel(neg, self.f32c(0.0), x)?
            }
            UnaryOp::Floor => self.fcall("llvm.floor.f32", &[x])?,
            UnaryOp::Ceil => self.fcall("llvm.ceil.f32", &[x])?,
            UnaryOp::Round => self.fcall("llvm.rint.f32", &[x])?,
            UnaryOp::Sign => {
                let p = self.fcmp(FloatPredicate::OGT, x, self.f32c(0.0))?;
                let n = self.fcmp(FloatPredicate::OLT, x, self.f32c(0.0))?;
                let t = self.fsel(n, self.f32c(-1.0), self.f32c(0.0))?;
                let t = self.fsel(p, self.f32c(1.0), t)?;
                let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
                self.fsel(nan, x, t)?
            }
            UnaryOp::Not => return refuse(self),
        };
        self.fix(dt, Val::F(r))
    }

    fn binary(
        &mut self,
        id: ExprId,
        op: BinaryOp,
        ad: DType,
        dt: DType,
        a: Val<'ctx>,
        b: Val<'ctx>,
    ) -> R<Val<'ctx>> {
        if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            let nz = |kb: &Self, v: Val<'ctx>| -> R<IntValue<'ctx>> {
                match v {
                    Val::F(f) => kb.fcmp(FloatPredicate::UNE, f, kb.f32c(0.0)),
                    Val::I(i) => kb.icmp(IntPredicate::NE, i, kb.i64c(0)),
                }
            };
            let x = nz(self, a)?;
            let y = nz(self, b)?;
            let r = match op {
                BinaryOp::And => self.b.build_and(x, y, ""),
                BinaryOp::Or => self.b.build_or(x, y, ""),
                _ => self.b.build_xor(x, y, ""),
            }
            .map_err(|e| self.e(e))?;
            return Ok(Val::I(self.bool64(r)?));
        }
        if op.returns_bool() {
            let r = match (a, b) {
                (Val::F(x), Val::F(y)) => {
                    let p = match op {
                        BinaryOp::Equal => FloatPredicate::OEQ,
                        BinaryOp::Less => FloatPredicate::OLT,
                        BinaryOp::LessEqual => FloatPredicate::OLE,
                        BinaryOp::Greater => FloatPredicate::OGT,
                        _ => FloatPredicate::OGE,
                    };
                    self.fcmp(p, x, y)?
                }
                (Val::I(x), Val::I(y)) => {
                    let p = match op {
                        BinaryOp::Equal => IntPredicate::EQ,
                        BinaryOp::Less => IntPredicate::SLT,
                        BinaryOp::LessEqual => IntPredicate::SLE,
                        BinaryOp::Greater => IntPredicate::SGT,
                        _ => IntPredicate::SGE,
                    };
                    self.icmp(p, x, y)?
                }
                _ => return Err(self.malformed(format!("expression {id}: mixed operand kinds"))),
            };
            return Ok(Val::I(self.bool64(r)?));
        }
        if ad == DType::Bool && !matches!(op, BinaryOp::Max | BinaryOp::Min) {
            return Err(self.malformed(format!(
                "expression {id}: {} is not defined on bool",
                op.name()
            )));
        }
        match (a, b) {
            (Val::F(x), Val::F(y)) => {
                let r = match op {
                    BinaryOp::Add => self.fadd(x, y)?,
                    BinaryOp::Sub => self.fsub(x, y)?,
                    BinaryOp::Mul => self.fmul(x, y)?,
                    BinaryOp::Div => self.fdiv(x, y)?,
                    BinaryOp::Pow => self.powf(x, y)?,
                    BinaryOp::Max => self.fmax(x, y)?,
                    BinaryOp::Min => self.fmin(x, y)?,
                    BinaryOp::Mod => self.b.build_float_rem(x, y, "").map_err(|e| self.e(e))?,
                    _ => return Err(self.malformed(format!("expression {id}: bad op"))),
                };
                self.fix(dt, Val::F(r))
            }
            (Val::I(x), Val::I(y)) => {
                let r = match op {
                    BinaryOp::Add => self.add(x, y)?,
                    BinaryOp::Sub => self.sub(x, y)?,
                    BinaryOp::Mul => self.mul(x, y)?,
                    BinaryOp::Div | BinaryOp::Mod => {
                        let zero = self.icmp(IntPredicate::EQ, y, self.i64c(0))?;
                        self.fault_if(zero, FAULT_DIV_ZERO)?;
                        let m1 = self.icmp(IntPredicate::EQ, y, self.i64c(-1))?;
                        let bad = self.b.build_or(zero, m1, "").map_err(|e| self.e(e))?;
                        let safe = self.isel(bad, self.i64c(1), y)?;
                        if op == BinaryOp::Div {
                            let q = self
                                .b
                                .build_int_signed_div(x, safe, "")
                                .map_err(|e| self.e(e))?;
                            let nx = self.sub(self.i64c(0), x)?;
                            let q = self.isel(m1, nx, q)?;
                            self.isel(zero, self.i64c(0), q)?
                        } else {
                            let r = self
                                .b
                                .build_int_signed_rem(x, safe, "")
                                .map_err(|e| self.e(e))?;
                            let rnz = self.icmp(IntPredicate::NE, r, self.i64c(0))?;
                            let rneg = self.icmp(IntPredicate::SLT, r, self.i64c(0))?;
                            let yneg = self.icmp(IntPredicate::SLT, y, self.i64c(0))?;
                            let differ = self.b.build_xor(rneg, yneg, "").map_err(|e| self.e(e))?;
                            let fixup = self.b.build_and(rnz, differ, "").map_err(|e| self.e(e))?;
                            let ry = self.add(r, y)?;
                            self.isel(fixup, ry, r)?
                        }
                    }
                    BinaryOp::Pow => self.ipow(x, y)?,
                    BinaryOp::Max => {
                        let c = self.icmp(IntPredicate::SGT, x, y)?;
                        self.isel(c, x, y)?
                    }
                    BinaryOp::Min => {
                        let c = self.icmp(IntPredicate::SLT, x, y)?;
                        self.isel(c, x, y)?
                    }
                    _ => return Err(self.malformed(format!("expression {id}: bad op"))),
                };
                self.fix(dt, Val::I(r))
            }
            _ => Err(self.malformed(format!("expression {id}: mixed operand kinds"))),
        }
    }

    /// Integer power with wrapping multiplication (square and multiply); a negative
    /// exponent truncates `1/x^|y|`; `0^negative` faults.
    fn ipow(&mut self, x: IntValue<'ctx>, y: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let yneg = self.icmp(IntPredicate::SLT, y, self.i64c(0))?;
        let xz = self.icmp(IntPredicate::EQ, x, self.i64c(0))?;
        let bad = self.b.build_and(yneg, xz, "").map_err(|e| self.e(e))?;
        self.fault_if(bad, FAULT_POW)?;
        // positive exponent: at most 63 square-and-multiply rounds
        let pre = self.current()?;
        let head = self.block("ipow");
        let body = self.block("ipow_body");
        let exit = self.block("ipow_exit");
        let e0 = self.isel(yneg, self.i64c(0), y)?;
        self.br(head)?;
        self.b.position_at_end(head);
        let i64t = self.cx.i64_type();
        let acc = self.b.build_phi(i64t, "acc").map_err(|e| self.e(e))?;
        let base = self.b.build_phi(i64t, "base").map_err(|e| self.e(e))?;
        let e = self.b.build_phi(i64t, "e").map_err(|e| self.e(e))?;
        acc.add_incoming(&[(&self.i64c(1), pre)]);
        base.add_incoming(&[(&x, pre)]);
        e.add_incoming(&[(&e0, pre)]);
        let (av, bv, ev) = (
            acc.as_basic_value().into_int_value(),
            base.as_basic_value().into_int_value(),
            e.as_basic_value().into_int_value(),
        );
        let more = self.icmp(IntPredicate::SGT, ev, self.i64c(0))?;
        self.cond_br(more, body, exit)?;
        self.b.position_at_end(body);
        let odd = self
            .b
            .build_and(ev, self.i64c(1), "")
            .map_err(|e| self.e(e))?;
        let odd = self.icmp(IntPredicate::NE, odd, self.i64c(0))?;
        let ab = self.mul(av, bv)?;
        let na = self.isel(odd, ab, av)?;
        let nb = self.mul(bv, bv)?;
        let ne = self
            .b
            .build_right_shift(ev, self.i64c(1), false, "")
            .map_err(|e| self.e(e))?;
        acc.add_incoming(&[(&na, body)]);
        base.add_incoming(&[(&nb, body)]);
        e.add_incoming(&[(&ne, body)]);
        self.br(head)?;
        self.b.position_at_end(exit);
        // negative exponent: 1 for x = 1, ±1 for x = −1, else 0
        let x1 = self.icmp(IntPredicate::EQ, x, self.i64c(1))?;
        let xm1 = self.icmp(IntPredicate::EQ, x, self.i64c(-1))?;
        let yodd = self
            .b
            .build_and(y, self.i64c(1), "")
            .map_err(|e| self.e(e))?;
        let yodd = self.icmp(IntPredicate::NE, yodd, self.i64c(0))?;
        let m1v = self.isel(yodd, self.i64c(-1), self.i64c(1))?;
        let negr = self.isel(xm1, m1v, self.i64c(0))?;
        let negr = self.isel(x1, self.i64c(1), negr)?;
        self.isel(yneg, negr, av)
    }

    /// Conversion with the semantics of `ir::Op::Cast`.
    pub fn cast(&self, from: DType, to: DType, v: Val<'ctx>) -> R<Val<'ctx>> {
        if from == to {
            return Ok(v);
        }
        if to == DType::Bool {
            let c = match v {
                Val::F(f) => self.fcmp(FloatPredicate::UNE, f, self.f32c(0.0))?,
                Val::I(i) => self.icmp(IntPredicate::NE, i, self.i64c(0))?,
            };
            return Ok(Val::I(self.bool64(c)?));
        }
        match v {
            Val::F(f) => {
                if to.is_float() {
                    return Ok(Val::F(self.round_to(to, f)?));
                }
                // truncate toward zero (NaN → 0), saturate to i64, then to the target range
                let t = self.as_i(Val::F(f))?;
                let (lo, hi) = to.int_range().unwrap_or((i64::MIN, i64::MAX));
                let c = self.icmp(IntPredicate::SLT, t, self.i64c(lo))?;
                let t = self.isel(c, self.i64c(lo), t)?;
                let c = self.icmp(IntPredicate::SGT, t, self.i64c(hi))?;
                Ok(Val::I(self.isel(c, self.i64c(hi), t)?))
            }
            Val::I(i) => {
                if to.is_float() {
                    // i64 → f32 rounds once; bf16/f16 round again from f32 (the CPU
                    // backend rounds i64 → bf16 directly; the two differ only for integers
                    // beyond 2^24, where f32 itself is inexact)
                    let f = self
                        .b
                        .build_signed_int_to_float(i, self.cx.f32_type(), "")
                        .map_err(|e| self.e(e))?;
                    return Ok(Val::F(self.round_to(to, f)?));
                }
                Ok(Val::I(self.wrap(to, i)?))
            }
        }
    }
}
