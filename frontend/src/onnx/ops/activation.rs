//! Activation functions: `Gelu` maps to the IR op; the others (`LeakyRelu`, `PRelu`,
//! `Elu`, `Selu`, `Celu`, `HardSigmoid`, `HardSwish`, `Mish`, `Softsign`, `Clip`) expand
//! into elementwise IR ops named `{node}.{part}`; `Trilu` multiplies by a constant mask.

use dqc_ir::op::{BinaryOp, GeluApprox, UnaryOp};
use dqc_ir::{DType, Op};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{bin, cast, dtype_of, fscalar, iconst, shape_of, un};

/// Register the activation converters.
pub fn register(r: &mut Registry) {
    r.register("", "Gelu", 20, gelu);
    r.register("", "LeakyRelu", 6, leaky_relu);
    r.register("", "PRelu", 7, prelu);
    r.register("", "Elu", 6, elu);
    r.register("", "Selu", 6, selu);
    r.register("", "Celu", 12, celu);
    r.register("", "HardSigmoid", 6, hard_sigmoid);
    r.register("", "HardSwish", 14, hard_swish);
    r.register("", "Mish", 18, mish);
    r.register("", "Softsign", 1, softsign);
    r.register("", "Clip", 6, clip_attrs);
    r.register("", "Clip", 11, clip_inputs);
    r.register("", "Trilu", 14, trilu);
}

fn gelu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let approx = match node.attr_s("approximate", "none")?.as_str() {
        "none" => GeluApprox::Erf,
        "tanh" => GeluApprox::Tanh,
        other => {
            return Err(node.attr_error(
                "approximate",
                format!("expected `none` or `tanh`, found `{other}`"),
            ));
        }
    };
    let x = ctx.req(node, 0)?;
    Ok(vec![ctx.emit1(Op::Gelu { approx }, &[x], &node.name())?])
}

/// `where(x < 0, slope·x, x)`.
fn negative_slope(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    slope: &OVal,
) -> Result<OVal, FrontendError> {
    let dt = dtype_of(ctx, x)?;
    let zero = fscalar(node, dt, 0.0)?;
    let neg = bin(ctx, BinaryOp::Less, x, &zero, &node.sub("neg"))?;
    let scaled = bin(ctx, BinaryOp::Mul, x, slope, &node.sub("scaled"))?;
    ctx.emit1(Op::Where, &[neg, scaled, x.clone()], &node.name())
}

fn leaky_relu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let alpha = fscalar(node, dtype_of(ctx, &x)?, node.attr_f("alpha", 0.01)?)?;
    Ok(vec![negative_slope(ctx, node, &x, &alpha)?])
}

fn prelu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let slope = ctx.req(node, 1)?;
    let slope = cast(ctx, &slope, dtype_of(ctx, &x)?, &node.sub("slope"))?;
    Ok(vec![negative_slope(ctx, node, &x, &slope)?])
}

/// `where(x < 0, alpha·(exp(x) - 1), x)`, then `· gamma` if given.
fn exp_linear(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    alpha: f32,
    inner_div: Option<f32>,
    gamma: Option<f32>,
) -> Result<OVal, FrontendError> {
    let dt = dtype_of(ctx, x)?;
    let zero = fscalar(node, dt, 0.0)?;
    let one = fscalar(node, dt, 1.0)?;
    let neg = bin(ctx, BinaryOp::Less, x, &zero, &node.sub("neg"))?;
    let arg = match inner_div {
        Some(d) => bin(
            ctx,
            BinaryOp::Div,
            x,
            &fscalar(node, dt, d)?,
            &node.sub("arg"),
        )?,
        None => x.clone(),
    };
    let e = un(ctx, UnaryOp::Exp, &arg, &node.sub("exp"))?;
    let em1 = bin(ctx, BinaryOp::Sub, &e, &one, &node.sub("expm1"))?;
    let a = bin(
        ctx,
        BinaryOp::Mul,
        &em1,
        &fscalar(node, dt, alpha)?,
        &node.sub("alpha"),
    )?;
    match gamma {
        None => ctx.emit1(Op::Where, &[neg, a, x.clone()], &node.name()),
        Some(g) => {
            let w = ctx.emit1(Op::Where, &[neg, a, x.clone()], &node.sub("select"))?;
            bin(ctx, BinaryOp::Mul, &w, &fscalar(node, dt, g)?, &node.name())
        }
    }
}

fn elu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let alpha = node.attr_f("alpha", 1.0)?;
    Ok(vec![exp_linear(ctx, node, &x, alpha, None, None)?])
}

fn selu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let alpha = node.attr_f("alpha", 1.673_263_2)?;
    let gamma = node.attr_f("gamma", 1.050_701)?;
    Ok(vec![exp_linear(ctx, node, &x, alpha, None, Some(gamma))?])
}

/// `max(0, x) + min(0, alpha·(exp(x/alpha) - 1))`, i.e. Elu with `exp(x/alpha)`.
fn celu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let alpha = node.attr_f("alpha", 1.0)?;
    if alpha == 0.0 {
        return Err(node.attr_error("alpha", "must be non-zero"));
    }
    Ok(vec![exp_linear(ctx, node, &x, alpha, Some(alpha), None)?])
}

/// `max(0, min(1, alpha·x + beta))`.
fn hard_sigmoid_of(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    alpha: f32,
    beta: f32,
    name: &str,
) -> Result<OVal, FrontendError> {
    let dt = dtype_of(ctx, x)?;
    let ax = bin(
        ctx,
        BinaryOp::Mul,
        x,
        &fscalar(node, dt, alpha)?,
        &node.sub("ax"),
    )?;
    let axb = bin(
        ctx,
        BinaryOp::Add,
        &ax,
        &fscalar(node, dt, beta)?,
        &node.sub("axb"),
    )?;
    let lo = bin(
        ctx,
        BinaryOp::Min,
        &axb,
        &fscalar(node, dt, 1.0)?,
        &node.sub("min1"),
    )?;
    bin(ctx, BinaryOp::Max, &lo, &fscalar(node, dt, 0.0)?, name)
}

fn hard_sigmoid(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let alpha = node.attr_f("alpha", 0.2)?;
    let beta = node.attr_f("beta", 0.5)?;
    Ok(vec![hard_sigmoid_of(
        ctx,
        node,
        &x,
        alpha,
        beta,
        &node.name(),
    )?])
}

/// `x · hard_sigmoid(x; 1/6, 1/2)`.
fn hard_swish(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let hs = hard_sigmoid_of(ctx, node, &x, 1.0 / 6.0, 0.5, &node.sub("hard_sigmoid"))?;
    Ok(vec![bin(ctx, BinaryOp::Mul, &x, &hs, &node.name())?])
}

/// `x · tanh(softplus(x))`.
fn mish(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let sp = un(ctx, UnaryOp::Softplus, &x, &node.sub("softplus"))?;
    let t = un(ctx, UnaryOp::Tanh, &sp, &node.sub("tanh"))?;
    Ok(vec![bin(ctx, BinaryOp::Mul, &x, &t, &node.name())?])
}

/// `x / (1 + |x|)`.
fn softsign(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dt = dtype_of(ctx, &x)?;
    let a = un(ctx, UnaryOp::Abs, &x, &node.sub("abs"))?;
    let d = bin(
        ctx,
        BinaryOp::Add,
        &a,
        &fscalar(node, dt, 1.0)?,
        &node.sub("denom"),
    )?;
    Ok(vec![bin(ctx, BinaryOp::Div, &x, &d, &node.name())?])
}

/// `min(max(x, lo), hi)` with either bound optional.
fn clamp(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    lo: Option<OVal>,
    hi: Option<OVal>,
) -> Result<Vec<OVal>, FrontendError> {
    let dt = dtype_of(ctx, &x)?;
    let mut acc = x;
    let both = lo.is_some() && hi.is_some();
    if let Some(lo) = lo {
        let lo = cast(ctx, &lo, dt, &node.sub("min_cast"))?;
        let name = if both { node.sub("lo") } else { node.name() };
        acc = bin(ctx, BinaryOp::Max, &acc, &lo, &name)?;
    }
    if let Some(hi) = hi {
        let hi = cast(ctx, &hi, dt, &node.sub("max_cast"))?;
        acc = bin(ctx, BinaryOp::Min, &acc, &hi, &node.name())?;
    }
    Ok(vec![acc])
}

fn clip_attrs(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dt = dtype_of(ctx, &x)?;
    let lo = match node.attr("min") {
        Some(_) => Some(fscalar(node, dt, node.attr_f("min", f32::MIN)?)?),
        None => None,
    };
    let hi = match node.attr("max") {
        Some(_) => Some(fscalar(node, dt, node.attr_f("max", f32::MAX)?)?),
        None => None,
    };
    clamp(ctx, node, x, lo, hi)
}

fn clip_inputs(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let lo = ctx.input(node, 1)?;
    let hi = ctx.input(node, 2)?;
    clamp(ctx, node, x, lo, hi)
}

/// Keep the upper (`j - i ≥ k`) or lower (`j - i ≤ k`) triangle of the last two axes,
/// zeroing the rest: a constant `j - i` table compared with `k` (which may be a run-time
/// scalar) selects between `x` and zero. The last two dims must be static.
fn trilu(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let upper = node.attr_i("upper", 1)? != 0;
    let k = match ctx.input(node, 1)? {
        Some(v) => cast(ctx, &v, DType::I64, &node.sub("k"))?,
        None => iconst(node, DType::I64, Vec::new(), &[0])?,
    };
    let shape = shape_of(ctx, &x)?;
    let dims = shape.dims();
    let (Some(n), Some(m)) = (
        dims.len()
            .checked_sub(2)
            .and_then(|i| dims.get(i))
            .and_then(|d| d.as_fixed()),
        dims.last().and_then(|d| d.as_fixed()),
    ) else {
        return Err(node.error(format!(
            "Trilu needs a tensor of rank ≥ 2 with static last two dims, found shape {shape}"
        )));
    };
    let mut diag = Vec::new();
    for i in 0..n as i64 {
        for j in 0..m as i64 {
            diag.push(j - i);
        }
    }
    let diag = iconst(node, DType::I64, vec![n, m], &diag)?;
    let cmp = if upper {
        BinaryOp::GreaterEqual
    } else {
        BinaryOp::LessEqual
    };
    let mask = bin(ctx, cmp, &diag, &k, &node.sub("mask"))?;
    let dt = dtype_of(ctx, &x)?;
    let zero = iconst(node, dt, Vec::new(), &[0])?;
    Ok(vec![ctx.emit1(
        Op::Where,
        &[mask, x, zero],
        &node.name(),
    )?])
}
