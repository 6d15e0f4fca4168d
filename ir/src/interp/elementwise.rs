//! Elementwise ops: unary functions, binary ops with numpy broadcasting, `where`, casts,
//! adaLN modulation and the activations GELU and SiLU.
//!
//! Floats are decoded to f32 and each result is rounded once into the output dtype
//! (transcendental functions are evaluated in f64 and rounded to f32 first). Integers are
//! computed in i64 and wrapped to the width of their dtype; bool ops work on 0/1.

use super::util::{
    broadcast_map, broadcast_shapes, codes, erf, erfc, from_codes, from_f64, require_float,
    require_same_dtype, wrap_int,
};
use super::{InterpError, op_err};
use crate::DType;
use crate::op::{BinaryOp, GeluApprox, UnaryOp};
use crate::tensor::Tensor;

/// `f(x)` elementwise. Floats: every [`UnaryOp`] but `Not`. Integers: `Neg`, `Abs`
/// (wrapping), `Relu`, `Sign`, and `Floor`/`Ceil`/`Round` (identities). Bool: `Not` only.
pub(super) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor, InterpError> {
    let dt = x.dtype();
    let shape = x.shape().to_vec();
    let refuse = || {
        Err(op_err(format!(
            "{} is not defined on dtype {dt}",
            op.name()
        )))
    };
    if dt == DType::Bool {
        return match op {
            UnaryOp::Not => {
                let v: Vec<i64> = x.to_i64_vec().iter().map(|&b| i64::from(b == 0)).collect();
                Ok(Tensor::from_i64(dt, shape, &v)?)
            }
            _ => refuse(),
        };
    }
    if dt.is_int() {
        let f: fn(i64) -> i64 = match op {
            UnaryOp::Neg => i64::wrapping_neg,
            UnaryOp::Abs => i64::wrapping_abs,
            UnaryOp::Relu => |v| v.max(0),
            UnaryOp::Sign => i64::signum,
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => |v| v,
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
            | UnaryOp::Not => return refuse(),
        };
        let v: Vec<i64> = x
            .to_i64_vec()
            .into_iter()
            .map(|v| wrap_int(f(v), dt))
            .collect();
        return Ok(Tensor::from_i64(dt, shape, &v)?);
    }
    if op == UnaryOp::Not {
        return refuse();
    }
    let v: Vec<f32> = x
        .to_f32_vec()
        .into_iter()
        .map(|v| unary_f32(op, v))
        .collect();
    Ok(Tensor::from_f32(dt, shape, &v)?)
}

/// One float unary function; transcendental ones in f64, rounded to f32.
fn unary_f32(op: UnaryOp, x: f32) -> f32 {
    let d = f64::from(x);
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => d.exp() as f32,
        UnaryOp::Log => d.ln() as f32,
        UnaryOp::Sqrt => d.sqrt() as f32,
        UnaryOp::Rsqrt => (1.0 / d.sqrt()) as f32,
        UnaryOp::Reciprocal => (1.0 / d) as f32,
        UnaryOp::Tanh => d.tanh() as f32,
        UnaryOp::Sigmoid => sigmoid(d) as f32,
        UnaryOp::Erf => erf(d) as f32,
        UnaryOp::Sin => d.sin() as f32,
        UnaryOp::Cos => d.cos() as f32,
        UnaryOp::Softplus => softplus(d) as f32,
        UnaryOp::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Sign => {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        // `unary` refuses Not on floats before getting here; keep NaN as a visible marker.
        UnaryOp::Not => f32::NAN,
    }
}

/// `1/(1+e^-x)` without overflow for large |x|.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1+e^x)` without overflow: `max(x,0) + ln(1+e^{-|x|})`.
fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `f(a, b)` with numpy broadcasting. Both operands must have the same dtype. Arithmetic
/// on integers wraps to the dtype's width; `Div` truncates toward zero and `Mod` takes the
/// divisor's sign (both refuse a zero divisor). `And`/`Or`/`Xor` need bool; comparisons
/// return bool; arithmetic on bool is refused (except `Max`/`Min`). Float `Max`/`Min`
/// propagate NaN.
pub(super) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    require_same_dtype(a, b, op.name())?;
    let dt = a.dtype();
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    let ma = broadcast_map(a.shape(), &shape)?;
    let mb = broadcast_map(b.shape(), &shape)?;
    let logical = matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor);
    let bool_ok = logical || is_comparison(op) || matches!(op, BinaryOp::Max | BinaryOp::Min);
    if (logical && dt != DType::Bool) || (dt == DType::Bool && !bool_ok) {
        return Err(op_err(format!(
            "{} is not defined on dtype {dt}{}",
            op.name(),
            if logical { " (it needs bool)" } else { "" }
        )));
    }
    if dt.is_float() {
        let (va, vb) = (a.to_f32_vec(), b.to_f32_vec());
        let pairs = ma.iter().zip(&mb).map(|(&i, &j)| (va[i], vb[j]));
        if op.returns_bool() {
            let v: Vec<i64> = pairs
                .map(|(x, y)| i64::from(compare_f32(op, x, y)))
                .collect();
            return Ok(Tensor::from_i64(DType::Bool, shape, &v)?);
        }
        let v: Vec<f32> = pairs.map(|(x, y)| arith_f32(op, x, y)).collect();
        return Ok(Tensor::from_f32(dt, shape, &v)?);
    }
    let (va, vb) = (a.to_i64_vec(), b.to_i64_vec());
    let mut out = Vec::with_capacity(ma.len());
    for (&i, &j) in ma.iter().zip(&mb) {
        out.push(int_op(op, va[i], vb[j], dt)?);
    }
    let odt = if op.returns_bool() { DType::Bool } else { dt };
    Ok(Tensor::from_i64(odt, shape, &out)?)
}

fn is_comparison(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterEqual
    )
}

/// Comparisons and logical ops on floats (logical ops never reach here: they need bool).
fn compare_f32(op: BinaryOp, x: f32, y: f32) -> bool {
    match op {
        BinaryOp::Equal => x == y,
        BinaryOp::Less => x < y,
        BinaryOp::LessEqual => x <= y,
        BinaryOp::Greater => x > y,
        BinaryOp::GreaterEqual => x >= y,
        BinaryOp::And => x != 0.0 && y != 0.0,
        BinaryOp::Or => x != 0.0 || y != 0.0,
        BinaryOp::Xor => (x != 0.0) != (y != 0.0),
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Mod => false,
    }
}

/// Float arithmetic in f32 (`Pow` in f64, rounded).
fn arith_f32(op: BinaryOp, x: f32, y: f32) -> f32 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Pow => f64::from(x).powf(f64::from(y)) as f32,
        BinaryOp::Max => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.max(y)
            }
        }
        BinaryOp::Min => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.min(y)
            }
        }
        BinaryOp::Mod => {
            let r = x % y;
            if r != 0.0 && (r < 0.0) != (y < 0.0) {
                r + y
            } else {
                r
            }
        }
        // Comparisons return bool and are handled by `compare_f32`.
        BinaryOp::Equal
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor => f32::from(u8::from(compare_f32(op, x, y))),
    }
}

/// Integer (and bool) ops in i64, wrapped to `dt`'s width.
fn int_op(op: BinaryOp, x: i64, y: i64, dt: DType) -> Result<i64, InterpError> {
    let zero_div = || {
        Err(op_err(format!(
            "{}: integer division by zero ({x} / 0)",
            op.name()
        )))
    };
    let r = match op {
        BinaryOp::Add => x.wrapping_add(y),
        BinaryOp::Sub => x.wrapping_sub(y),
        BinaryOp::Mul => x.wrapping_mul(y),
        BinaryOp::Div => {
            if y == 0 {
                return zero_div();
            }
            x.wrapping_div(y)
        }
        BinaryOp::Mod => {
            if y == 0 {
                return zero_div();
            }
            let r = x.wrapping_rem(y);
            if r != 0 && (r < 0) != (y < 0) {
                r.wrapping_add(y)
            } else {
                r
            }
        }
        BinaryOp::Pow => int_pow(x, y)
            .ok_or_else(|| op_err(format!("pow: 0 raised to the negative integer power {y}")))?,
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
        BinaryOp::Equal => i64::from(x == y),
        BinaryOp::Less => i64::from(x < y),
        BinaryOp::LessEqual => i64::from(x <= y),
        BinaryOp::Greater => i64::from(x > y),
        BinaryOp::GreaterEqual => i64::from(x >= y),
        BinaryOp::And => i64::from(x != 0 && y != 0),
        BinaryOp::Or => i64::from(x != 0 || y != 0),
        BinaryOp::Xor => i64::from((x != 0) != (y != 0)),
    };
    Ok(if op.returns_bool() {
        r
    } else {
        wrap_int(r, dt)
    })
}

/// `x^y` on integers with wrapping multiplication. A negative exponent gives the
/// truncated value of `1/x^|y|` (±1 for x = ±1, else 0); `None` for `0^negative`.
fn int_pow(x: i64, y: i64) -> Option<i64> {
    if y < 0 {
        return match x {
            0 => None,
            1 => Some(1),
            -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
            _ => Some(0),
        };
    }
    let (mut base, mut e, mut acc) = (x, y as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    Some(acc)
}

/// `where(c, a, b)`: `c` bool, `a` and `b` of one dtype, all three broadcast together.
/// Elements are copied bit for bit.
pub(super) fn select(c: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    if c.dtype() != DType::Bool {
        return Err(op_err(format!(
            "where: the condition must be bool, got {}",
            c.dtype()
        )));
    }
    require_same_dtype(a, b, "where")?;
    let shape = broadcast_shapes(&broadcast_shapes(c.shape(), a.shape())?, b.shape())?;
    let (mc, ma, mb) = (
        broadcast_map(c.shape(), &shape)?,
        broadcast_map(a.shape(), &shape)?,
        broadcast_map(b.shape(), &shape)?,
    );
    let (cc, ca, cb) = (codes(c), codes(a), codes(b));
    let out: Vec<u64> = mc
        .iter()
        .zip(ma.iter().zip(&mb))
        .map(|(&k, (&i, &j))| if cc[k] != 0 { ca[i] } else { cb[j] })
        .collect();
    from_codes(a.dtype(), shape, &out)
}

/// Convert to `to` as [`crate::op::Op::Cast`] specifies. Casting to the same dtype copies
/// the bits unchanged.
pub(super) fn cast(x: &Tensor, to: DType) -> Result<Tensor, InterpError> {
    let from = x.dtype();
    let shape = x.shape().to_vec();
    if from == to {
        return Ok(x.clone());
    }
    if to == DType::Bool {
        let v: Vec<i64> = if from.is_float() {
            x.to_f32_vec()
                .iter()
                .map(|&f| i64::from(f != 0.0))
                .collect()
        } else {
            x.to_i64_vec().iter().map(|&i| i64::from(i != 0)).collect()
        };
        return Ok(Tensor::from_i64(to, shape, &v)?);
    }
    if from.is_float() {
        if to.is_float() {
            return Ok(Tensor::from_f32(to, shape, &x.to_f32_vec())?);
        }
        // truncation toward zero (NaN → 0), then saturation by `from_i64`
        return Ok(Tensor::from_i64(to, shape, &x.to_i64_vec())?);
    }
    // integer or bool source
    let v = x.to_i64_vec();
    if to == DType::BF16 {
        // Round once, to bf16's 8 significant bits: going through f32 (24 bits) first
        // could land on a tie and round a second time.
        let f: Vec<f32> = v.iter().map(|&i| round_int_to_bits(i, 8)).collect();
        return Ok(Tensor::from_f32(to, shape, &f)?);
    }
    if to.is_float() {
        // i64 → f32 rounds once; every other float target is exact or saturates within
        // f32's 24 bits.
        return Ok(Tensor::from_i64(to, shape, &v)?);
    }
    let w: Vec<i64> = v.into_iter().map(|i| wrap_int(i, to)).collect();
    Ok(Tensor::from_i64(to, shape, &w)?)
}

/// `v` rounded to `bits` significant bits (ties to even), as an f32 that holds it exactly
/// (`bits` ≤ 24).
fn round_int_to_bits(v: i64, bits: u32) -> f32 {
    let a = v.unsigned_abs();
    let len = u64::BITS - a.leading_zeros();
    let r = if len <= bits {
        a
    } else {
        let shift = len - bits;
        let (q, rem, half) = (a >> shift, a & ((1u64 << shift) - 1), 1u64 << (shift - 1));
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        // q ≤ 2^bits, so q · 2^shift is exact in f32
        return (q as f32 * 2f32.powi(shift as i32)).copysign(v as f32);
    };
    (r as f32).copysign(v as f32)
}

/// `x·(1 + scale) + shift` with `x: [B, …, C]` and `shift`, `scale: [B, C]` broadcast over
/// the middle axes; all three of float dtypes (the result has `x`'s), computed in f32.
pub(super) fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor, InterpError> {
    require_float(x, "modulate x")?;
    require_float(shift, "modulate shift")?;
    require_float(scale, "modulate scale")?;
    let s = x.shape();
    let (Some(&bsz), Some(&c)) = (s.first(), s.last()) else {
        return Err(op_err(format!(
            "modulate: x must have rank ≥ 2 ([B, …, C]), got shape {s:?}"
        )));
    };
    if s.len() < 2 {
        return Err(op_err(format!(
            "modulate: x must have rank ≥ 2 ([B, …, C]), got shape {s:?}"
        )));
    }
    for (t, name) in [(shift, "shift"), (scale, "scale")] {
        if t.shape() != [bsz, c] {
            return Err(op_err(format!(
                "modulate: {name} must have shape [{bsz}, {c}] ([B, C] of x {s:?}), got {:?}",
                t.shape()
            )));
        }
    }
    let (vx, vsh, vsc) = (x.to_f32_vec(), shift.to_f32_vec(), scale.to_f32_vec());
    let c = c as usize;
    let per_batch = if bsz == 0 { 0 } else { vx.len() / bsz as usize };
    let out: Vec<f32> = vx
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = (i / per_batch) * c + i % c;
            v * (1.0 + vsc[k]) + vsh[k]
        })
        .collect();
    Ok(Tensor::from_f32(x.dtype(), s.to_vec(), &out)?)
}

/// GELU on a float tensor (formula per [`GeluApprox`]), evaluated in f64; the erf form
/// uses `0.5·x·erfc(-x/√2)` so that the far negative tail keeps its relative accuracy.
pub(super) fn gelu(x: &Tensor, approx: GeluApprox) -> Result<Tensor, InterpError> {
    require_float(x, "gelu x")?;
    let v: Vec<f64> = x
        .to_f32_vec()
        .into_iter()
        .map(|v| {
            let d = f64::from(v);
            match approx {
                GeluApprox::Erf => 0.5 * d * erfc(-d * std::f64::consts::FRAC_1_SQRT_2),
                GeluApprox::Tanh => {
                    let k = (2.0 / std::f64::consts::PI).sqrt();
                    0.5 * d * (1.0 + (k * (d + 0.044715 * d * d * d)).tanh())
                }
            }
        })
        .collect();
    from_f64(x.dtype(), x.shape().to_vec(), &v)
}

/// `x · sigmoid(x)` on a float tensor, evaluated in f64.
pub(super) fn silu(x: &Tensor) -> Result<Tensor, InterpError> {
    require_float(x, "silu x")?;
    let v: Vec<f64> = x
        .to_f32_vec()
        .into_iter()
        .map(|v| f64::from(v) * sigmoid(f64::from(v)))
        .collect();
    from_f64(x.dtype(), x.shape().to_vec(), &v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use proptest::prelude::*;

    fn f32t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run1(op: Op, inputs: &[Tensor]) -> Tensor {
        let mut out = eval_op(&op, inputs, &Bindings::new()).unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn try1(op: Op, inputs: &[Tensor]) -> Result<Tensor, InterpError> {
        eval_op(&op, inputs, &Bindings::new()).map(|mut v| v.remove(0))
    }

    #[test]
    fn unary_float_hand_values() {
        let x = f32t(&[5], &[-2.5, -0.5, 0.5, 1.5, 2.5]);
        let r = run1(Op::Unary(UnaryOp::Round), std::slice::from_ref(&x));
        assert_eq!(r.to_f32_vec(), vec![-2.0, -0.0, 0.0, 2.0, 2.0]);
        let r = run1(Op::Unary(UnaryOp::Sign), &[f32t(&[3], &[-3.0, 0.0, 7.0])]);
        assert_eq!(r.to_f32_vec(), vec![-1.0, 0.0, 1.0]);
        let r = run1(Op::Unary(UnaryOp::Floor), std::slice::from_ref(&x));
        assert_eq!(r.to_f32_vec(), vec![-3.0, -1.0, 0.0, 1.0, 2.0]);
        let r = run1(Op::Unary(UnaryOp::Relu), &[x]);
        assert_eq!(r.to_f32_vec(), vec![0.0, 0.0, 0.5, 1.5, 2.5]);
        let r = run1(Op::Unary(UnaryOp::Rsqrt), &[f32t(&[2], &[4.0, 0.25])]);
        assert_eq!(r.to_f32_vec(), vec![0.5, 2.0]);
        let r = run1(Op::Unary(UnaryOp::Sigmoid), &[f32t(&[1], &[0.0])]);
        assert_eq!(r.to_f32_vec(), vec![0.5]);
        // softplus(0) = ln 2; no overflow far out
        let r = run1(Op::Unary(UnaryOp::Softplus), &[f32t(&[2], &[0.0, 1000.0])]);
        assert_eq!(r.to_f32_vec(), vec![std::f32::consts::LN_2, 1000.0]);
        let r = run1(Op::Unary(UnaryOp::Erf), &[f32t(&[3], &[0.5, 1.0, -3.0])]);
        assert_eq!(
            r.to_f32_vec(),
            vec![0.520_499_9_f32, 0.842_700_8, -0.999_977_9]
        );
    }

    #[test]
    fn unary_nan_propagates() {
        for op in UnaryOp::ALL {
            if op == UnaryOp::Not {
                continue;
            }
            let r = run1(Op::Unary(op), &[f32t(&[1], &[f32::NAN])]);
            assert!(r.to_f32_vec()[0].is_nan(), "{}", op.name());
        }
    }

    #[test]
    fn unary_dtype_rules() {
        let b = Tensor::from_i64(DType::Bool, vec![2], &[0, 1]).unwrap();
        assert_eq!(
            run1(Op::Unary(UnaryOp::Not), std::slice::from_ref(&b)).to_i64_vec(),
            vec![1, 0]
        );
        assert!(try1(Op::Unary(UnaryOp::Neg), &[b]).is_err());
        assert!(try1(Op::Unary(UnaryOp::Not), &[f32t(&[1], &[1.0])]).is_err());
        let i = Tensor::from_i64(DType::I8, vec![3], &[-128, -3, 5]).unwrap();
        assert_eq!(
            run1(Op::Unary(UnaryOp::Neg), std::slice::from_ref(&i)).to_i64_vec(),
            vec![-128, 3, -5]
        );
        assert_eq!(
            run1(Op::Unary(UnaryOp::Abs), std::slice::from_ref(&i)).to_i64_vec(),
            vec![-128, 3, 5]
        );
        assert!(try1(Op::Unary(UnaryOp::Exp), &[i]).is_err());
    }

    #[test]
    fn f16_rounding_of_one_third() {
        let one = Tensor::from_f32(DType::F16, vec![1], &[1.0]).unwrap();
        let three = Tensor::from_f32(DType::F16, vec![1], &[3.0]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Div), &[one, three]);
        assert_eq!(r.dtype(), DType::F16);
        // 1/3 in f16: 0x3555 = 0.333251953125 (nearest of the 2^-12 grid below 0.5)
        assert_eq!(r.bytes(), &[0x55, 0x35]);
        assert_eq!(r.to_f32_vec(), vec![0.333_251_95]);
    }

    #[test]
    fn int8_add_wraps_and_div_mod_rules() {
        let a = Tensor::from_i64(DType::I8, vec![4], &[100, -100, 7, -7]).unwrap();
        let b = Tensor::from_i64(DType::I8, vec![4], &[100, -100, 2, 2]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Add), &[a.clone(), b.clone()]);
        assert_eq!(r.to_i64_vec(), vec![-56, 56, 9, -5]);
        let r = run1(Op::Binary(BinaryOp::Div), &[a.clone(), b.clone()]);
        assert_eq!(r.to_i64_vec(), vec![1, 1, 3, -3]);
        let r = run1(Op::Binary(BinaryOp::Mod), &[a.clone(), b.clone()]);
        assert_eq!(r.to_i64_vec(), vec![0, 0, 1, 1]);
        let neg = Tensor::from_i64(DType::I8, vec![1], &[-2]).unwrap();
        let seven = Tensor::from_i64(DType::I8, vec![1], &[7]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Mod), &[seven, neg]);
        assert_eq!(r.to_i64_vec(), vec![-1]);
        let z = Tensor::from_i64(DType::I8, vec![1], &[0]).unwrap();
        let e = try1(Op::Binary(BinaryOp::Div), &[a.clone(), z.clone()]).unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
        assert!(try1(Op::Binary(BinaryOp::Mod), &[a, z]).is_err());
        let u = Tensor::from_i64(DType::U8, vec![1], &[3]).unwrap();
        let v = Tensor::from_i64(DType::U8, vec![1], &[5]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Sub), &[u, v]);
        assert_eq!(r.to_i64_vec(), vec![254]);
        let p = Tensor::from_i64(DType::I32, vec![3], &[2, 3, -2]).unwrap();
        let q = Tensor::from_i64(DType::I32, vec![3], &[10, 3, 3]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Pow), &[p, q]);
        assert_eq!(r.to_i64_vec(), vec![1024, 27, -8]);
    }

    #[test]
    fn float_mod_takes_divisor_sign() {
        let a = f32t(&[4], &[7.5, -7.5, 7.5, -7.5]);
        let b = f32t(&[4], &[2.0, 2.0, -2.0, -2.0]);
        let r = run1(Op::Binary(BinaryOp::Mod), &[a, b]);
        assert_eq!(r.to_f32_vec(), vec![1.5, 0.5, -0.5, -1.5]);
    }

    #[test]
    fn comparisons_and_logic() {
        let a = f32t(&[3], &[1.0, f32::NAN, 3.0]);
        let b = f32t(&[1], &[2.0]);
        let r = run1(Op::Binary(BinaryOp::Less), &[a.clone(), b.clone()]);
        assert_eq!(r.dtype(), DType::Bool);
        assert_eq!(r.to_i64_vec(), vec![1, 0, 0]);
        let r = run1(Op::Binary(BinaryOp::Max), &[a, b]);
        let v = r.to_f32_vec();
        assert_eq!(v[0], 2.0);
        assert!(v[1].is_nan());
        let t = Tensor::from_i64(DType::Bool, vec![4], &[0, 0, 1, 1]).unwrap();
        let u = Tensor::from_i64(DType::Bool, vec![4], &[0, 1, 0, 1]).unwrap();
        let xor = run1(Op::Binary(BinaryOp::Xor), &[t.clone(), u.clone()]);
        assert_eq!(xor.to_i64_vec(), vec![0, 1, 1, 0]);
        assert!(try1(Op::Binary(BinaryOp::Add), &[t.clone(), u]).is_err());
        assert!(
            try1(
                Op::Binary(BinaryOp::And),
                &[f32t(&[1], &[1.0]), f32t(&[1], &[1.0])]
            )
            .is_err()
        );
        // i64 beyond 2^53 compares exactly
        let big = Tensor::from_i64(DType::I64, vec![1], &[(1 << 53) + 1]).unwrap();
        let big2 = Tensor::from_i64(DType::I64, vec![1], &[1 << 53]).unwrap();
        let r = run1(Op::Binary(BinaryOp::Greater), &[big, big2]);
        assert_eq!(r.to_i64_vec(), vec![1]);
    }

    #[test]
    fn binary_refuses_mismatches() {
        let a = f32t(&[2], &[1.0, 2.0]);
        let b = f32t(&[3], &[1.0, 2.0, 3.0]);
        let e = try1(Op::Binary(BinaryOp::Add), &[a.clone(), b]).unwrap_err();
        assert!(
            e.to_string().contains("[2]") && e.to_string().contains("[3]"),
            "{e}"
        );
        let h = Tensor::from_f32(DType::F16, vec![2], &[1.0, 2.0]).unwrap();
        let e = try1(Op::Binary(BinaryOp::Add), &[a, h]).unwrap_err();
        assert!(e.to_string().contains("f16"), "{e}");
    }

    #[test]
    fn empty_and_scalar_broadcast() {
        let e = f32t(&[0, 3], &[]);
        let s = f32t(&[], &[2.0]);
        let r = run1(Op::Binary(BinaryOp::Mul), &[e, s.clone()]);
        assert_eq!(r.shape(), &[0, 3]);
        let r = run1(Op::Binary(BinaryOp::Mul), &[s.clone(), s]);
        assert_eq!(r.shape(), &[] as &[u64]);
        assert_eq!(r.to_f32_vec(), vec![4.0]);
    }

    #[test]
    fn where_broadcasts_and_keeps_bits() {
        let c = Tensor::from_i64(DType::Bool, vec![2, 1], &[1, 0]).unwrap();
        // f8e4m3 NaN with the sign bit set must come through unchanged
        let a = Tensor::from_bytes(DType::F8E4M3, vec![3], vec![0xff, 0x38, 0x40].into()).unwrap();
        let b = Tensor::from_bytes(DType::F8E4M3, vec![1], vec![0x00].into()).unwrap();
        let r = run1(Op::Where, &[c, a, b]);
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.bytes(), &[0xff, 0x38, 0x40, 0, 0, 0]);
        let bad = f32t(&[1], &[1.0]);
        assert!(try1(Op::Where, &[bad.clone(), bad.clone(), bad]).is_err());
    }

    #[test]
    fn cast_rules() {
        let x = f32t(&[6], &[2.7, -2.7, 1e10, -1e10, f32::NAN, 0.4]);
        let r = run1(Op::Cast { to: DType::I8 }, std::slice::from_ref(&x));
        assert_eq!(r.to_i64_vec(), vec![2, -2, 127, -128, 0, 0]);
        let r = run1(Op::Cast { to: DType::Bool }, std::slice::from_ref(&x));
        assert_eq!(r.to_i64_vec(), vec![1, 1, 1, 1, 1, 1]);
        let r = run1(Op::Cast { to: DType::F8E4M3 }, &[x]);
        let v = r.to_f32_vec();
        assert_eq!(v[2], 448.0);
        assert_eq!(v[3], -448.0);
        assert!(v[4].is_nan());
        let i = Tensor::from_i64(DType::I32, vec![2], &[300, -129]).unwrap();
        let r = run1(Op::Cast { to: DType::I8 }, std::slice::from_ref(&i));
        assert_eq!(r.to_i64_vec(), vec![44, 127]);
        let r = run1(Op::Cast { to: DType::U8 }, &[i]);
        assert_eq!(r.to_i64_vec(), vec![44, 127]);
        let r = run1(
            Op::Cast { to: DType::F16 },
            &[Tensor::from_i64(DType::I64, vec![1], &[70000]).unwrap()],
        );
        assert_eq!(r.to_f32_vec(), vec![f32::INFINITY]);
        // 2^32 + 2^24 + 1 is just above a bf16 tie: it must round up to 2^32 + 2^25
        // (via f32 it would become the tie 2^32 + 2^24 and round down to 2^32)
        let r = run1(
            Op::Cast { to: DType::BF16 },
            &[Tensor::from_i64(DType::I64, vec![2], &[(1 << 32) + (1 << 24) + 1, -3]).unwrap()],
        );
        assert_eq!(r.to_f32_vec(), vec![4_328_521_728.0, -3.0]);
        let same = Tensor::from_bytes(DType::F8E5M2, vec![1], vec![0x7e].into()).unwrap();
        assert!(run1(Op::Cast { to: DType::F8E5M2 }, std::slice::from_ref(&same)).bit_eq(&same));
    }

    #[test]
    fn modulate_broadcasts_over_middle_axes() {
        // x: [2, 2, 2]; shift/scale: [2, 2]
        let x = f32t(&[2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let shift = f32t(&[2, 2], &[10.0, 20.0, 30.0, 40.0]);
        let scale = f32t(&[2, 2], &[0.0, 1.0, -1.0, 0.5]);
        let r = run1(Op::Modulate, &[x, shift, scale.clone()]);
        // batch 0: x·(1,2)+(10,20); batch 1: x·(0,1.5)+(30,40)
        assert_eq!(
            r.to_f32_vec(),
            vec![11.0, 24.0, 13.0, 28.0, 30.0, 49.0, 30.0, 52.0]
        );
        let bad = f32t(&[2, 3], &[0.0; 6]);
        let e = try1(Op::Modulate, &[f32t(&[2, 1, 2], &[0.0; 4]), bad, scale]).unwrap_err();
        assert!(e.to_string().contains("[2, 2]"), "{e}");
    }

    #[test]
    fn gelu_and_silu_values() {
        let x = f32t(&[3], &[0.0, 1.0, -1.0]);
        let r = run1(
            Op::Gelu {
                approx: GeluApprox::Erf,
            },
            std::slice::from_ref(&x),
        );
        // 0.5·x·(1+erf(x/√2)): gelu(1) = 0.8413447460685429
        assert_eq!(
            r.to_f32_vec(),
            vec![
                0.0,
                0.841_344_746_068_542_9_f64 as f32,
                -0.158_655_253_931_457_07_f64 as f32
            ]
        );
        let r = run1(
            Op::Gelu {
                approx: GeluApprox::Tanh,
            },
            std::slice::from_ref(&x),
        );
        let v = r.to_f32_vec();
        assert!((v[1] - 0.841_192).abs() < 1e-6, "{v:?}");
        let r = run1(Op::Silu, &[x]);
        let v = r.to_f32_vec();
        assert!((v[1] - 0.731_058_6).abs() < 1e-7, "{v:?}");
        // far tail keeps relative accuracy: gelu(-10) ≈ -7.62e-23
        let r = run1(
            Op::Gelu {
                approx: GeluApprox::Erf,
            },
            &[f32t(&[1], &[-10.0])],
        );
        let g = r.to_f32_vec()[0];
        assert!((g / -7.619_853e-23 - 1.0).abs() < 1e-5, "{g}");
    }

    fn naive_broadcast_add(a: &[f32], sa: &[u64], b: &[f32], sb: &[u64]) -> (Vec<u64>, Vec<f32>) {
        // both shapes rank 3 here; explicit nested loops
        let shape: Vec<u64> = (0..3).map(|i| sa[i].max(sb[i])).collect();
        let mut out = Vec::new();
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                for k in 0..shape[2] {
                    let ia = (i % sa[0]) * sa[1] * sa[2] + (j % sa[1]) * sa[2] + k % sa[2];
                    let ib = (i % sb[0]) * sb[1] * sb[2] + (j % sb[1]) * sb[2] + k % sb[2];
                    out.push(a[ia as usize] - b[ib as usize]);
                }
            }
        }
        (shape, out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn broadcasting_sub_matches_nested_loops(
            dims in proptest::collection::vec(1u64..4, 3),
            ma in proptest::collection::vec(any::<bool>(), 3),
            mb in proptest::collection::vec(any::<bool>(), 3),
            seed in -100i32..100,
        ) {
            let sa: Vec<u64> = dims.iter().zip(&ma).map(|(&d, &m)| if m { 1 } else { d }).collect();
            let sb: Vec<u64> = dims.iter().zip(&mb).map(|(&d, &m)| if m { 1 } else { d }).collect();
            let na: u64 = sa.iter().product();
            let nb: u64 = sb.iter().product();
            let a: Vec<f32> = (0..na).map(|i| (i as i32 * 7 + seed) as f32 * 0.25).collect();
            let b: Vec<f32> = (0..nb).map(|i| (i as i32 * 3 - seed) as f32 * 0.5).collect();
            let (shape, want) = naive_broadcast_add(&a, &sa, &b, &sb);
            let r = run1(Op::Binary(BinaryOp::Sub), &[f32t(&sa, &a), f32t(&sb, &b)]);
            prop_assert_eq!(r.shape(), &shape[..]);
            prop_assert_eq!(r.to_f32_vec(), want);
        }

        #[test]
        fn i4_add_wraps_like_reference(a in -8i64..8, b in -8i64..8) {
            let ta = Tensor::from_i64(DType::I4, vec![1], &[a]).unwrap();
            let tb = Tensor::from_i64(DType::I4, vec![1], &[b]).unwrap();
            let r = run1(Op::Binary(BinaryOp::Add), &[ta, tb]);
            let want = ((a + b + 8).rem_euclid(16)) - 8;
            prop_assert_eq!(r.to_i64_vec(), vec![want]);
        }
    }
}
