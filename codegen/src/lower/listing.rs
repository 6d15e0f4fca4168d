//! A readable listing of a [`Program`]: one line per kernel with its family, name,
//! arguments and (for fused elementwise work) a compact expression such as
//! `gelu_tanh(acc + a2[j])`. Used by `dqc inspect` and golden snapshots.

use crate::spec::{
    Buffer, BufferKind, Expr, ExprId, Exprs, IndexMap, Kernel, KernelSpec, MatOperand, Program,
    RowOp, Scalar, Term, gelu_name,
};
use std::fmt::Write;

/// Longest expression text before it is cut with `…`.
const MAX_EXPR: usize = 600;

/// The listing: a header line per buffer class, then one line per kernel.
pub fn listing(program: &Program) -> String {
    let mut s = String::new();
    let count =
        |f: &dyn Fn(&BufferKind) -> bool| program.buffers.iter().filter(|b| f(&b.kind)).count();
    let _ = writeln!(
        s,
        "program: {} kernels, {} buffers ({} inputs, {} outputs, {} weights, {} activations, {} aliases), arena {} bytes",
        program.kernels.len(),
        program.buffers.len(),
        count(&|k| matches!(k, BufferKind::Input { .. })),
        count(&|k| matches!(k, BufferKind::Output { .. })),
        count(&|k| matches!(k, BufferKind::Weight { .. })),
        count(&|k| matches!(k, BufferKind::Activation { .. })),
        count(&|k| matches!(k, BufferKind::Alias { .. })),
        program.arena_bytes
    );
    for (i, k) in program.kernels.iter().enumerate() {
        let _ = writeln!(s, "{}", kernel_line(program, i, k));
    }
    s
}

fn kind_tag(b: &Buffer) -> String {
    match &b.kind {
        BufferKind::Input { index } => format!("in{index}"),
        BufferKind::Output { index } => format!("out{index}"),
        BufferKind::Weight { .. } => "w".into(),
        BufferKind::Activation { offset } => format!("@{offset}"),
        BufferKind::Alias { base } => format!("alias of #{base}"),
    }
}

fn kernel_line(p: &Program, i: usize, k: &KernelSpec) -> String {
    let args: Vec<String> = k
        .args
        .iter()
        .enumerate()
        .map(|(a, &b)| match p.buffers.get(b as usize) {
            Some(buf) => format!(
                "a{a}{}={}:{}{} ({})",
                if k.writes.contains(&(a as u32)) {
                    "*"
                } else {
                    ""
                },
                buf.name,
                buf.dtype,
                buf.shape,
                kind_tag(buf)
            ),
            None => format!("a{a}=<missing buffer {b}>"),
        })
        .collect();
    let body = match &k.body {
        Kernel::Elementwise(e) => {
            let outs: Vec<String> = e
                .outputs
                .iter()
                .map(|(a, x)| format!("a{a} = {}", expr(&e.exprs, *x)))
                .collect();
            format!("over {}: {}", e.shape, outs.join("; "))
        }
        Kernel::RowReduce(r) => format!(
            "{} over {} from axis {}: x = {}; a{} = {}",
            row_op(&r.op),
            r.shape,
            r.axis,
            expr(&r.exprs, r.input),
            r.out,
            expr(&r.exprs, r.epilogue)
        ),
        Kernel::Gemm(g) => format!(
            "batch {} m={} n={} k={} A={} B={} {}→{} alpha={}: a{} = {}",
            g.batch,
            g.m,
            g.n,
            g.k,
            mat(&g.a),
            mat(&g.b),
            g.in_dtype,
            g.acc_dtype,
            g.alpha,
            g.out,
            expr(&g.exprs, g.epilogue)
        ),
        Kernel::Attention(a) => format!(
            "b={} sq={} sk={} heads={}/{} d={}/{} scale={} causal={} mask={}: a{} = attention(a{}, a{}, a{})",
            a.batch,
            a.sq,
            a.sk,
            a.heads,
            a.kv_heads,
            a.head_dim,
            a.v_head_dim,
            a.scale,
            a.causal,
            a.mask
                .as_ref()
                .map_or("none".to_string(), |(m, map, _)| format!(
                    "a{m}[{}]",
                    index(map)
                )),
            a.out,
            a.q.arg,
            a.k.arg,
            a.v.arg
        ),
        Kernel::Conv(c) => format!(
            "x=a{} {} w=a{} {} → {} strides={:?} pads={:?} dilations={:?} groups={}: a{} = {}",
            c.x,
            c.x_shape,
            c.w,
            c.w_shape,
            c.out_shape,
            c.strides,
            c.pads,
            c.dilations,
            c.groups,
            c.out,
            expr(&c.exprs, c.epilogue)
        ),
        Kernel::SelectiveScan(s) => format!(
            "b={} d={} l={} n={} softplus={}: a{} = scan(u=a{}, delta=a{}, A=a{}, B=a{}, C=a{}, D={}, z={})",
            s.batch,
            s.channels,
            s.len,
            s.state,
            s.delta_softplus,
            s.out,
            s.u,
            s.delta,
            s.a,
            s.bm,
            s.cm,
            s.d.map_or("-".into(), |d| format!("a{d}")),
            s.z.map_or("-".into(), |d| format!("a{d}"))
        ),
    };
    format!(
        "#{i} {} {} ({}) {}",
        k.body.family(),
        k.name,
        args.join(", "),
        body
    )
}

fn row_op(op: &RowOp) -> String {
    match op {
        RowOp::LayerNorm { eps } => format!("layer_norm(eps={eps})"),
        RowOp::RmsNorm { eps } => format!("rms_norm(eps={eps})"),
        RowOp::Softmax => "softmax".into(),
        RowOp::LogSoftmax => "log_softmax".into(),
        RowOp::Reduce(r) => r.name().into(),
        RowOp::ArgReduce { max: true } => "argmax".into(),
        RowOp::ArgReduce { max: false } => "argmin".into(),
        RowOp::CumSum { exclusive, reverse } => {
            format!("cumsum(exclusive={exclusive}, reverse={reverse})")
        }
    }
}

fn mat(m: &MatOperand) -> String {
    let bs: Vec<String> = m.batch_strides.iter().map(term).collect();
    format!(
        "a{}[{}; batch {} row {} col {}]",
        m.arg,
        poly(&m.offset),
        bs.join(","),
        term(&m.row_stride),
        term(&m.col_stride)
    )
}

fn term(t: &Term) -> String {
    if t.dim.is_fixed() {
        format!("{}", t.coeff * t.dim.factor() as i64)
    } else if t.coeff == 1 {
        format!("{}", t.dim)
    } else {
        format!("{}*{}", t.coeff, t.dim)
    }
}

fn poly(p: &[Term]) -> String {
    if p.is_empty() {
        return "0".into();
    }
    p.iter().map(term).collect::<Vec<_>>().join("+")
}

fn coord(axis: usize) -> String {
    const NAMES: [&str; 8] = ["i", "j", "k", "l", "m", "n", "o", "p"];
    NAMES
        .get(axis)
        .map_or_else(|| format!("c{axis}"), |s| s.to_string())
}

/// An index map as a linear expression of the coordinates (`32*i+j`).
fn index(m: &IndexMap) -> String {
    let mut parts: Vec<String> = m.offset.iter().filter(|t| t.coeff != 0).map(term).collect();
    for (d, s) in m.strides.iter().enumerate() {
        if s.coeff == 0 {
            continue;
        }
        let st = term(s);
        parts.push(if st == "1" {
            coord(d)
        } else {
            format!("{st}*{}", coord(d))
        });
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("+")
    }
}

/// A compact rendering of expression `id`.
pub fn expr(e: &Exprs, id: ExprId) -> String {
    let mut s = render(e, id, 0);
    if s.chars().count() > MAX_EXPR {
        s = s.chars().take(MAX_EXPR).collect::<String>() + "…";
    }
    s
}

fn infix(op: dqc_ir::op::BinaryOp) -> Option<&'static str> {
    use dqc_ir::op::BinaryOp as B;
    match op {
        B::Add => Some("+"),
        B::Sub => Some("-"),
        B::Mul => Some("*"),
        B::Div => Some("/"),
        B::Pow
        | B::Max
        | B::Min
        | B::Mod
        | B::Equal
        | B::Less
        | B::LessEqual
        | B::Greater
        | B::GreaterEqual
        | B::And
        | B::Or
        | B::Xor => None,
    }
}

fn render(e: &Exprs, id: ExprId, depth: usize) -> String {
    if depth > 64 {
        return "…".into();
    }
    let Some(n) = e.get(id) else {
        return format!("<missing {id}>");
    };
    let sub = |x: ExprId| render(e, x, depth + 1);
    let wrapped = |x: ExprId| {
        let s = sub(x);
        match e.get(x).map(|n| &n.expr) {
            Some(Expr::Binary { op, .. }) if infix(*op).is_some() => format!("({s})"),
            _ => s,
        }
    };
    match &n.expr {
        Expr::Load { arg, map } => format!("a{arg}[{}]", index(map)),
        Expr::Gather {
            arg,
            map,
            index: ix,
            axis_stride,
            ..
        } => format!(
            "a{arg}[{} + {}*({})]",
            index(map),
            term(axis_stride),
            sub(*ix)
        ),
        Expr::Const(Scalar::F(v)) => format!("{v}"),
        Expr::Const(Scalar::I(v)) => format!("{v}"),
        Expr::Const(Scalar::B(v)) => format!("{v}"),
        Expr::Coord { axis } => coord(*axis as usize),
        Expr::Acc => "acc".into(),
        Expr::Unary { op, x } => format!("{}({})", op.name(), sub(*x)),
        Expr::Binary { op, a, b } => match infix(*op) {
            Some(sym) => format!("{} {sym} {}", wrapped(*a), wrapped(*b)),
            None => format!("{}({}, {})", op.name(), sub(*a), sub(*b)),
        },
        Expr::Select { cond, a, b } => format!("select({}, {}, {})", sub(*cond), sub(*a), sub(*b)),
        Expr::Cast { x } => format!("{}({})", n.dtype, sub(*x)),
        Expr::Gelu { approx, x } => format!("{}({})", gelu_name(*approx), sub(*x)),
        Expr::Silu { x } => format!("silu({})", sub(*x)),
        Expr::Piecewise {
            axis,
            bounds,
            pieces,
        } => {
            let parts: Vec<String> = bounds
                .iter()
                .zip(pieces)
                .map(|(b, p)| format!("{}≥{}: {}", coord(*axis as usize), poly(b), sub(*p)))
                .collect();
            format!("piecewise({})", parts.join(" | "))
        }
    }
}
