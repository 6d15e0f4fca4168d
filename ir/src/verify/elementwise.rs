//! Elementwise rules: unary, binary, where, cast, modulate and the activations.
//!
//! - Unary ops keep the type. `not` takes bool; the transcendental functions (exp, log,
//!   sqrt, rsqrt, reciprocal, tanh, sigmoid, erf, sin, cos, softplus) take floats; the rest
//!   (neg, abs, relu, floor, ceil, round, sign) take floats or integers, never bool.
//! - Binary ops broadcast; both operands share one dtype. Arithmetic takes numbers, not
//!   bool; ordering comparisons take numbers; `equal` takes anything; logic takes bool.
//!   Comparisons and logic return bool.
//! - `where(cond, a, b)`: `cond` bool, `a` and `b` one dtype, all three broadcast.
//! - `cast` converts any dtype to any dtype, shape unchanged.
//! - `modulate(x, shift, scale)`: `x: [B, …, C]` float, `shift`/`scale: [B, C]` of `x`'s
//!   dtype; the result has `x`'s type.
//! - `gelu`, `silu`: float in, same type out.

use super::{
    InferError, broadcast, operand, want_dtype, want_float, want_rank, want_same_dtype, want_shape,
};
use crate::DType;
use crate::op::{BinaryOp, UnaryOp};
use crate::shape::{Shape, TensorType};

/// What dtypes a unary op accepts.
enum Accepts {
    Bool,
    Float,
    Number,
}

fn unary_accepts(u: UnaryOp) -> Accepts {
    match u {
        UnaryOp::Not => Accepts::Bool,
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
        | UnaryOp::Softplus => Accepts::Float,
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Relu
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Sign => Accepts::Number,
    }
}

/// Operand must be a number (float or integer, not bool).
fn want_number(operand: usize, ty: &TensorType) -> Result<(), InferError> {
    if ty.dtype == DType::Bool {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: "a float or integer type".to_string(),
        })
    } else {
        Ok(())
    }
}

pub(super) fn unary(u: UnaryOp, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    match unary_accepts(u) {
        Accepts::Bool => want_dtype(0, x, DType::Bool)?,
        Accepts::Float => want_float(0, x)?,
        Accepts::Number => want_number(0, x)?,
    }
    Ok(vec![x.clone()])
}

pub(super) fn binary(b: BinaryOp, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let l = operand(inputs, 0)?;
    let r = operand(inputs, 1)?;
    match b {
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => want_dtype(0, l, DType::Bool)?,
        BinaryOp::Equal => {}
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Mod
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual => want_number(0, l)?,
    }
    want_same_dtype(1, r, 0, l)?;
    let shape = broadcast(0, &l.shape, 1, &r.shape)?;
    let dtype = if b.returns_bool() {
        DType::Bool
    } else {
        l.dtype
    };
    Ok(vec![TensorType::new(dtype, shape)])
}

pub(super) fn select(inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let c = operand(inputs, 0)?;
    let a = operand(inputs, 1)?;
    let b = operand(inputs, 2)?;
    want_dtype(0, c, DType::Bool)?;
    want_same_dtype(2, b, 1, a)?;
    let ab = broadcast(1, &a.shape, 2, &b.shape)?;
    let shape = broadcast(0, &c.shape, 1, &ab)?;
    Ok(vec![TensorType::new(a.dtype, shape)])
}

pub(super) fn cast(to: DType, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    Ok(vec![TensorType::new(to, x.shape.clone())])
}

pub(super) fn modulate(inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    let (Some(b), Some(c), true) = (
        x.shape.dims().first(),
        x.shape.dims().last(),
        x.shape.rank() >= 2,
    ) else {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: "rank at least 2 ([B, …, C])".to_string(),
        });
    };
    let bc = Shape(vec![b.clone(), c.clone()]);
    for i in [1, 2] {
        let t = operand(inputs, i)?;
        want_same_dtype(i, t, 0, x)?;
        want_rank(i, t, 2, "[B, C]")?;
        want_shape(i, t, &bc, "[B, C] of operand 0")?;
    }
    Ok(vec![x.clone()])
}

/// `gelu` and `silu`: float in, same type out.
pub(super) fn activation(inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    want_float(0, x)?;
    Ok(vec![x.clone()])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, shape, ty};
    use crate::DType::{self, Bool, F16, F32, I32, I64};
    use crate::op::{BinaryOp, GeluApprox, Op, UnaryOp};

    #[test]
    fn unary_keeps_type() {
        for u in UnaryOp::ALL {
            let d = if u == UnaryOp::Not { Bool } else { F16 };
            let x = ty(d, "B,256,384");
            assert_eq!(ok1(&Op::Unary(u), &[x.clone()]), x);
        }
        assert_eq!(ok1(&Op::Unary(UnaryOp::Neg), &[ty(I64, "3")]), ty(I64, "3"));
    }

    #[test]
    fn unary_refuses_wrong_dtype() {
        let m = err(&Op::Unary(UnaryOp::Exp), &[ty(I32, "B")]);
        says(&m, &["operand 0", "i32", "float"]);
        let m = err(&Op::Unary(UnaryOp::Not), &[ty(F32, "B")]);
        says(&m, &["operand 0", "f32", "expected bool"]);
        let m = err(&Op::Unary(UnaryOp::Abs), &[ty(Bool, "B")]);
        says(&m, &["bool", "float or integer"]);
        let m = err(&Op::Unary(UnaryOp::Abs), &[ty(F32, "B"), ty(F32, "B")]);
        says(&m, &["expected 1 operands, got 2"]);
    }

    #[test]
    fn binary_broadcasts() {
        let out = ok1(
            &Op::Binary(BinaryOp::Add),
            &[ty(F32, "B,1,384"), ty(F32, "256,1")],
        );
        assert_eq!(out, ty(F32, "B,256,384"));
        let out = ok1(&Op::Binary(BinaryOp::Less), &[ty(I64, "B,4"), ty(I64, "")]);
        assert_eq!(out, ty(Bool, "B,4"));
        let out = ok1(&Op::Binary(BinaryOp::Xor), &[ty(Bool, "2"), ty(Bool, "2")]);
        assert_eq!(out, ty(Bool, "2"));
        let out = ok1(
            &Op::Binary(BinaryOp::Equal),
            &[ty(Bool, "2"), ty(Bool, "1")],
        );
        assert_eq!(out, ty(Bool, "2"));
    }

    #[test]
    fn binary_refusals() {
        let m = err(
            &Op::Binary(BinaryOp::Add),
            &[ty(F32, "B,3"), ty(F16, "B,3")],
        );
        says(&m, &["operand 1", "f16", "f32 to match operand 0"]);
        let m = err(
            &Op::Binary(BinaryOp::Mul),
            &[ty(F32, "B,3"), ty(F32, "N,3")],
        );
        says(&m, &["operands 0 and 1 do not broadcast", "[B,3]", "[N,3]"]);
        let m = err(&Op::Binary(BinaryOp::And), &[ty(F32, "3"), ty(F32, "3")]);
        says(&m, &["operand 0", "expected bool"]);
        let m = err(&Op::Binary(BinaryOp::Sub), &[ty(Bool, "3"), ty(Bool, "3")]);
        says(&m, &["operand 0", "bool"]);
    }

    #[test]
    fn where_rule() {
        let out = ok1(
            &Op::Where,
            &[ty(Bool, "1,S"), ty(F32, "B,1,S"), ty(F32, "")],
        );
        assert_eq!(out, ty(F32, "B,1,S"));
        let m = err(&Op::Where, &[ty(F32, "S"), ty(F32, "S"), ty(F32, "S")]);
        says(&m, &["operand 0", "expected bool"]);
        let m = err(&Op::Where, &[ty(Bool, "S"), ty(F32, "S"), ty(F16, "S")]);
        says(&m, &["operand 2", "f32 to match operand 1"]);
        let m = err(&Op::Where, &[ty(Bool, "3"), ty(F32, "4"), ty(F32, "4")]);
        says(&m, &["operands 0 and 1 do not broadcast"]);
    }

    #[test]
    fn cast_any_to_any() {
        for from in DType::ALL {
            for to in DType::ALL {
                assert_eq!(ok1(&Op::Cast { to }, &[ty(from, "B,2")]), ty(to, "B,2"));
            }
        }
        let m = err(&Op::Cast { to: F32 }, &[]);
        says(&m, &["expected 1 operands, got 0"]);
    }

    #[test]
    fn modulate_rule() {
        let x = ty(F32, "B,256,384");
        let s = ty(F32, "B,384");
        assert_eq!(ok1(&Op::Modulate, &[x.clone(), s.clone(), s.clone()]), x);
        let m = err(&Op::Modulate, &[x.clone(), ty(F32, "B,256"), s.clone()]);
        says(&m, &["operand 1", "[B,256]", "[B,384]"]);
        let m = err(&Op::Modulate, &[x.clone(), s.clone(), ty(F32, "B,1,384")]);
        says(&m, &["operand 2", "rank 2"]);
        let m = err(&Op::Modulate, &[x.clone(), s.clone(), ty(F16, "B,384")]);
        says(&m, &["operand 2", "f16"]);
        let m = err(&Op::Modulate, &[ty(F32, "384"), s.clone(), s]);
        says(&m, &["operand 0", "rank at least 2"]);
        assert_eq!(shape("B,384").rank(), 2);
    }

    #[test]
    fn activations_rule() {
        let x = ty(F16, "B,N,64");
        assert_eq!(ok1(&Op::Silu, &[x.clone()]), x);
        assert_eq!(
            ok1(
                &Op::Gelu {
                    approx: GeluApprox::Tanh
                },
                &[x.clone()]
            ),
            x
        );
        let m = err(&Op::Silu, &[ty(I32, "4")]);
        says(&m, &["operand 0", "i32", "float"]);
    }
}
