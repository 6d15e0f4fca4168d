//! Non-finite float constants: JSON has no infinities or NaNs, so the writer replaces each
//! non-finite `Scalar::F` of an expression arena by the placeholder `0.0` and records its
//! bits in the header's `nonfinite` table; the loader puts them back.

use super::error::ValidationError;
use super::header::NonFiniteConst;
use dqc_codegen::spec::{Expr, Exprs, Kernel, Program, RowOp, Scalar};

/// The expression arena of a kernel, if its family has one.
fn exprs_mut(k: &mut Kernel) -> Option<&mut Exprs> {
    match k {
        Kernel::Elementwise(e) => Some(&mut e.exprs),
        Kernel::RowReduce(r) => Some(&mut r.exprs),
        Kernel::Gemm(g) => Some(&mut g.exprs),
        Kernel::Conv(c) => Some(&mut c.exprs),
        Kernel::Attention(_) | Kernel::SelectiveScan(_) => None,
    }
}

/// The scalar f32 parameters of a kernel, by name.
fn float_params(k: &Kernel) -> Vec<(&'static str, f32)> {
    match k {
        Kernel::RowReduce(r) => match r.op {
            RowOp::LayerNorm { eps } | RowOp::RmsNorm { eps } => vec![("eps", eps)],
            RowOp::Softmax
            | RowOp::LogSoftmax
            | RowOp::Reduce(_)
            | RowOp::ArgReduce { .. }
            | RowOp::CumSum { .. } => vec![],
        },
        Kernel::Gemm(g) => vec![("alpha", g.alpha)],
        Kernel::Attention(a) => vec![("scale", a.scale)],
        Kernel::Elementwise(_) | Kernel::Conv(_) | Kernel::SelectiveScan(_) => vec![],
    }
}

/// Replace every non-finite float constant of `program` by `0.0` and list them. Refuses a
/// non-finite kernel parameter (eps, alpha, scale), which JSON cannot hold either.
pub(crate) fn extract(program: &mut Program) -> Result<Vec<NonFiniteConst>, ValidationError> {
    let mut out = Vec::new();
    for (ki, k) in program.kernels.iter_mut().enumerate() {
        for (param, v) in float_params(&k.body) {
            if !v.is_finite() {
                return Err(ValidationError::NonFinite {
                    problem: format!("kernel #{ki} `{}` has {param} = {v}", k.name),
                });
            }
        }
        let Some(exprs) = exprs_mut(&mut k.body) else {
            continue;
        };
        for (ni, n) in exprs.nodes.iter_mut().enumerate() {
            if let Expr::Const(Scalar::F(x)) = &mut n.expr
                && !x.is_finite()
            {
                out.push(NonFiniteConst {
                    kernel: ki as u32,
                    node: ni as u32,
                    bits: x.to_bits(),
                });
                *x = 0.0;
            }
        }
    }
    Ok(out)
}

/// Put the constants listed by [`extract`] back. Each entry must name a float constant
/// placeholder (`0.0`) and hold a non-finite value.
pub(crate) fn restore(
    program: &mut Program,
    list: &[NonFiniteConst],
) -> Result<(), ValidationError> {
    let count = program.kernels.len();
    for c in list {
        let bad = |problem: String| ValidationError::NonFinite { problem };
        let k = program.kernels.get_mut(c.kernel as usize).ok_or_else(|| {
            bad(format!(
                "entry for kernel #{}, but the program has {count} kernels",
                c.kernel
            ))
        })?;
        let name = k.name.clone();
        let exprs = exprs_mut(&mut k.body).ok_or_else(|| {
            bad(format!(
                "entry for kernel #{} `{name}`, which has no expressions",
                c.kernel
            ))
        })?;
        let node = exprs.nodes.get_mut(c.node as usize).ok_or_else(|| {
            bad(format!(
                "entry for node {} of kernel #{} `{name}`, which does not exist",
                c.node, c.kernel
            ))
        })?;
        let value = f64::from_bits(c.bits);
        match &mut node.expr {
            Expr::Const(Scalar::F(x)) if *x == 0.0 && !value.is_finite() => *x = value,
            _ => {
                return Err(bad(format!(
                    "entry for node {} of kernel #{} `{name}` does not replace a 0.0 float placeholder by a non-finite value",
                    c.node, c.kernel
                )));
            }
        }
    }
    Ok(())
}
