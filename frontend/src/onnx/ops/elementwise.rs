//! Elementwise ops: unary functions, binary arithmetic and comparisons (numpy
//! broadcasting), the variadic `Max`/`Min`/`Sum`/`Mean`, and `Where`.
//!
//! Arithmetic on symbolic shape values ([`OVal::Dims`]) is folded at compile time where
//! the result is exact (products, exact quotients, sums of static entries, decidable
//! comparisons); anything else becomes a run-time node.

use dqc_ir::op::{BinaryOp, UnaryOp};
use dqc_ir::{DType, Op, Tensor};

use crate::FrontendError;
use crate::onnx::import::oval::{SymInt, SymInts};
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::unify_dtypes;

/// Register the elementwise converters.
pub fn register(r: &mut Registry) {
    for (name, since, _) in UNARY {
        r.register("", name, *since, unary);
    }
    for (name, since, _) in BINARY {
        r.register("", name, *since, binary);
    }
    r.register_many(&["Max", "Min", "Sum", "Mean"], 6, variadic);
    r.register("", "Where", 9, select);
}

/// ONNX unary ops: (op type, first supported opset, IR op).
const UNARY: &[(&str, i64, UnaryOp)] = &[
    ("Neg", 6, UnaryOp::Neg),
    ("Abs", 6, UnaryOp::Abs),
    ("Exp", 6, UnaryOp::Exp),
    ("Log", 6, UnaryOp::Log),
    ("Sqrt", 6, UnaryOp::Sqrt),
    ("Reciprocal", 6, UnaryOp::Reciprocal),
    ("Tanh", 6, UnaryOp::Tanh),
    ("Sigmoid", 6, UnaryOp::Sigmoid),
    ("Erf", 9, UnaryOp::Erf),
    ("Sin", 7, UnaryOp::Sin),
    ("Cos", 7, UnaryOp::Cos),
    ("Softplus", 1, UnaryOp::Softplus),
    ("Relu", 6, UnaryOp::Relu),
    ("Floor", 6, UnaryOp::Floor),
    ("Ceil", 6, UnaryOp::Ceil),
    ("Round", 11, UnaryOp::Round),
    ("Sign", 9, UnaryOp::Sign),
    ("Not", 1, UnaryOp::Not),
];

/// ONNX binary ops: (op type, first supported opset, IR op).
const BINARY: &[(&str, i64, BinaryOp)] = &[
    ("Add", 7, BinaryOp::Add),
    ("Sub", 7, BinaryOp::Sub),
    ("Mul", 7, BinaryOp::Mul),
    ("Div", 7, BinaryOp::Div),
    ("Pow", 7, BinaryOp::Pow),
    ("Mod", 10, BinaryOp::Mod),
    ("Equal", 7, BinaryOp::Equal),
    ("Less", 7, BinaryOp::Less),
    ("LessOrEqual", 12, BinaryOp::LessEqual),
    ("Greater", 7, BinaryOp::Greater),
    ("GreaterOrEqual", 12, BinaryOp::GreaterEqual),
    ("And", 7, BinaryOp::And),
    ("Or", 7, BinaryOp::Or),
    ("Xor", 7, BinaryOp::Xor),
];

fn unary(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let op = UNARY
        .iter()
        .find(|(n, _, _)| *n == node.op_type())
        .map(|(_, _, op)| *op)
        .ok_or_else(|| node.error("not a unary op"))?;
    let x = ctx.req(node, 0)?;
    if op == UnaryOp::Neg
        && let Some(ints) = x.sym_ints()
        && x.is_dims()
    {
        let neg: Option<Vec<SymInt>> = ints
            .vals
            .iter()
            .map(|v| v.as_int().and_then(i64::checked_neg).map(SymInt::Int))
            .collect();
        if let Some(vals) = neg {
            return Ok(vec![OVal::ints(SymInts { vals, ..ints })]);
        }
    }
    Ok(vec![ctx.emit1(Op::Unary(op), &[x], &node.name())?])
}

fn binary(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let op = BINARY
        .iter()
        .find(|(n, _, _)| *n == node.op_type())
        .map(|(_, _, op)| *op)
        .ok_or_else(|| node.error("not a binary op"))?;
    if op == BinaryOp::Mod && node.attr_i("fmod", 0)? != 0 {
        return binary_fmod(ctx, node);
    }
    let a = ctx.req(node, 0)?;
    let b = ctx.req(node, 1)?;
    if (a.is_dims() || b.is_dims())
        && let Some(v) = dims_binary(op, &a, &b)
    {
        return Ok(vec![v]);
    }
    let mut vals = [a, b];
    unify_dtypes(ctx, node, &mut vals, op == BinaryOp::Pow)?;
    Ok(vec![ctx.emit1(Op::Binary(op), &vals, &node.name())?])
}

/// `Mod` with `fmod = 1`: the remainder takes the sign of the dividend (C `fmod`):
/// `a - b·trunc(a/b)`, computed as `mod(a, b)` corrected where the signs differ.
fn binary_fmod(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let mut vals = [ctx.req(node, 0)?, ctx.req(node, 1)?];
    unify_dtypes(ctx, node, &mut vals, false)?;
    let [a, b] = vals;
    // r = mod(a, b) has the sign of b; where r ≠ 0 and sign(r) ≠ sign(a), fmod = r - b.
    let r = ctx.emit1(
        Op::Binary(BinaryOp::Mod),
        &[a.clone(), b.clone()],
        &node.sub("mod"),
    )?;
    let r_minus_b = ctx.emit1(Op::Binary(BinaryOp::Sub), &[r.clone(), b], &node.sub("adj"))?;
    let dtype = ctx.ty(&a)?.dtype;
    let zero = OVal::Const(
        Tensor::from_i64(dtype, Vec::new(), &[0]).map_err(|e| node.error(e.to_string()))?,
    );
    let a_neg = ctx.emit1(
        Op::Binary(BinaryOp::Less),
        &[a, zero.clone()],
        &node.sub("a_neg"),
    )?;
    let r_neg = ctx.emit1(
        Op::Binary(BinaryOp::Less),
        &[r.clone(), zero.clone()],
        &node.sub("r_neg"),
    )?;
    let r_nz = ctx.emit1(
        Op::Binary(BinaryOp::Equal),
        &[r.clone(), zero],
        &node.sub("r_zero"),
    )?;
    let r_nz = ctx.emit1(Op::Unary(UnaryOp::Not), &[r_nz], &node.sub("r_nonzero"))?;
    let differ = ctx.emit1(
        Op::Binary(BinaryOp::Xor),
        &[a_neg, r_neg],
        &node.sub("differ"),
    )?;
    let fix = ctx.emit1(Op::Binary(BinaryOp::And), &[differ, r_nz], &node.sub("fix"))?;
    Ok(vec![ctx.emit1(
        Op::Where,
        &[fix, r_minus_b, r],
        &node.name(),
    )?])
}

/// Entry `i` of a broadcast 0-D/1-D operand.
fn at(s: &SymInts, i: usize) -> Option<&SymInt> {
    if s.vals.len() == 1 {
        s.vals.first()
    } else {
        s.vals.get(i)
    }
}

/// The length two 0-D/1-D operands broadcast to.
fn broadcast_len(a: &SymInts, b: &SymInts) -> Option<usize> {
    let (la, lb) = (a.vals.len(), b.vals.len());
    if la == lb || lb == 1 {
        Some(la)
    } else if la == 1 {
        Some(lb)
    } else {
        None
    }
}

/// Fold `op` on shape values where exact; `None` to fall back to a run-time node.
fn dims_binary(op: BinaryOp, a: &OVal, b: &OVal) -> Option<OVal> {
    let (x, y) = (a.sym_ints()?, b.sym_ints()?);
    let n = broadcast_len(&x, &y)?;
    let scalar = x.scalar && y.scalar;
    if op == BinaryOp::Equal {
        let eq: Option<Vec<i64>> = (0..n)
            .map(|i| at(&x, i)?.equals(at(&y, i)?).map(i64::from))
            .collect();
        let shape = if scalar { Vec::new() } else { vec![n as u64] };
        return Tensor::from_i64(DType::Bool, shape, &eq?)
            .ok()
            .map(OVal::Const);
    }
    let f = match op {
        BinaryOp::Add => SymInt::add,
        BinaryOp::Sub => SymInt::sub,
        BinaryOp::Mul => SymInt::mul,
        BinaryOp::Div => SymInt::div,
        BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Mod
        | BinaryOp::Equal
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor => return None,
    };
    let vals: Option<Vec<SymInt>> = (0..n).map(|i| f(at(&x, i)?, at(&y, i)?)).collect();
    Some(OVal::ints(SymInts {
        vals: vals?,
        scalar,
        dtype: x.dtype,
    }))
}

fn variadic(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let op = match node.op_type() {
        "Max" => BinaryOp::Max,
        "Min" => BinaryOp::Min,
        "Sum" | "Mean" => BinaryOp::Add,
        other => return Err(node.error(format!("`{other}` is not a variadic op"))),
    };
    let mut vals = ctx.inputs(node)?;
    if vals.is_empty() {
        return Err(node.error("needs at least one input"));
    }
    unify_dtypes(ctx, node, &mut vals, false)?;
    let mean = node.op_type() == "Mean";
    let count = vals.len();
    let mut iter = vals.into_iter();
    let Some(mut acc) = iter.next() else {
        return Err(node.error("needs at least one input"));
    };
    let last = count.saturating_sub(1);
    for (k, v) in iter.enumerate() {
        let name = if k + 1 == last && !mean {
            node.name()
        } else {
            node.sub(&format!("acc{}", k + 1))
        };
        acc = ctx.emit1(Op::Binary(op), &[acc, v], &name)?;
    }
    if mean {
        let dtype = ctx.ty(&acc)?.dtype;
        let n = Tensor::from_f32(dtype, Vec::new(), &[count as f32])
            .map_err(|e| node.error(e.to_string()))?;
        acc = ctx.emit1(
            Op::Binary(BinaryOp::Div),
            &[acc, OVal::Const(n)],
            &node.name(),
        )?;
    }
    Ok(vec![acc])
}

fn select(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let cond = ctx.req(node, 0)?;
    let a = ctx.req(node, 1)?;
    let b = ctx.req(node, 2)?;
    if (a.is_dims() || b.is_dims())
        && let Some(c) = cond.as_const()
        && let (Some(x), Some(y)) = (a.sym_ints(), b.sym_ints())
        && c.shape().len() <= 1
    {
        let cs = c.to_i64_vec();
        let n = broadcast_len(&x, &y);
        let n = n.and_then(|n| match cs.len() {
            1 => Some(n),
            m if m == n || n == 1 => Some(m),
            _ => None,
        });
        if let Some(n) = n {
            let pick = |i: usize| -> Option<SymInt> {
                let ci = if cs.len() == 1 { cs.first() } else { cs.get(i) };
                if *ci? != 0 {
                    at(&x, i).cloned()
                } else {
                    at(&y, i).cloned()
                }
            };
            let vals: Option<Vec<SymInt>> = (0..n).map(pick).collect();
            if let Some(vals) = vals {
                return Ok(vec![OVal::ints(SymInts {
                    vals,
                    scalar: x.scalar && y.scalar && c.shape().is_empty(),
                    dtype: x.dtype,
                })]);
            }
        }
    }
    let mut ab = [a, b];
    unify_dtypes(ctx, node, &mut ab, false)?;
    let [a, b] = ab;
    Ok(vec![ctx.emit1(Op::Where, &[cond, a, b], &node.name())?])
}
