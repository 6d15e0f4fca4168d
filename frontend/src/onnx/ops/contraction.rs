//! Contractions: `MatMul`, `Gemm`, `MatMulInteger` (zero points subtracted in i32, then an
//! i32 matmul) and `Einsum`, whose equation is lowered to `Reduce`/`Transpose`/`Reshape`/
//! `MatMul` (see [`einsum`]).

use std::collections::BTreeSet;

use dqc_ir::op::{BinaryOp, ReduceOp};
use dqc_ir::{DType, Dim, Op};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{
    bin, cast, dim_product, dtype_of, fconst, reshape, shape_of, transpose,
};

/// Register the contraction converters.
pub fn register(r: &mut Registry) {
    r.register("", "MatMul", 1, matmul);
    r.register("", "Gemm", 7, gemm);
    r.register("", "MatMulInteger", 10, matmul_integer);
    r.register("", "Einsum", 12, einsum);
}

fn matmul(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let a = ctx.req(node, 0)?;
    let b = ctx.req(node, 1)?;
    Ok(vec![ctx.emit1(Op::MatMul, &[a, b], &node.name())?])
}

fn gemm(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let a = ctx.req(node, 0)?;
    let b = ctx.req(node, 1)?;
    let dt = dtype_of(ctx, &a)?;
    let c = match ctx.input(node, 2)? {
        Some(c) => Some(cast(ctx, &c, dt, &node.sub("c"))?),
        None => None,
    };
    let op = Op::Gemm {
        alpha: node.attr_f("alpha", 1.0)?,
        beta: node.attr_f("beta", 1.0)?,
        trans_a: node.attr_i("transA", 0)? != 0,
        trans_b: node.attr_i("transB", 0)? != 0,
        has_c: c.is_some(),
    };
    let mut ins = vec![a, b];
    ins.extend(c);
    Ok(vec![ctx.emit1(op, &ins, &node.name())?])
}

/// `(A - a_zero_point) · (B - b_zero_point)` in i32. A per-row `a_zero_point` (`[M]`) is
/// viewed as `[M, 1]`; a per-column `b_zero_point` (`[N]`) broadcasts as is.
fn matmul_integer(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let mut ops = Vec::new();
    for (i, what) in [(0, "a"), (1, "b")] {
        let x = ctx.req(node, i)?;
        let x = cast(ctx, &x, DType::I32, &node.sub(&format!("{what}_i32")))?;
        let x = match ctx.input(node, i + 2)? {
            Some(zp) => {
                let mut zp = cast(ctx, &zp, DType::I32, &node.sub(&format!("{what}_zp")))?;
                let zs = shape_of(ctx, &zp)?;
                if i == 0 && zs.rank() == 1 && zs.dims().first() != Some(&Dim::fixed(1)) {
                    let m = zs.dims().to_vec();
                    let mut d = m;
                    d.push(Dim::fixed(1));
                    zp = reshape(ctx, &zp, d, &node.sub("a_zp_rows"))?;
                }
                bin(
                    ctx,
                    BinaryOp::Sub,
                    &x,
                    &zp,
                    &node.sub(&format!("{what}_centered")),
                )?
            }
            None => x,
        };
        ops.push(x);
    }
    Ok(vec![ctx.emit1(Op::MatMul, &ops, &node.name())?])
}

/// One operand of an einsum: its value and the label of each axis.
struct Term {
    val: OVal,
    labels: Vec<char>,
}

/// Parse one side term: letters, with at most one `...` standing for `rank - letters`
/// axes, which get the labels `'0'..` (shared by all terms, right-aligned).
fn parse_term(
    node: &NodeView<'_>,
    s: &str,
    rank: Option<usize>,
) -> Result<Vec<char>, FrontendError> {
    let bad = |why: String| node.attr_error("equation", why);
    let parts: Vec<&str> = s.split("...").collect();
    if parts.len() > 2 {
        return Err(bad(format!("term `{s}` has more than one ellipsis")));
    }
    let letters: usize = parts.iter().map(|p| p.chars().count()).sum();
    for c in s.chars().filter(|&c| c != '.') {
        if !c.is_ascii_alphabetic() {
            return Err(bad(format!(
                "term `{s}` has the character `{c}`, expected letters"
            )));
        }
    }
    let Some((head, tail)) = parts.first().zip(parts.get(1)) else {
        return Ok(s.chars().collect());
    };
    let ell = match rank {
        Some(r) => r.checked_sub(letters).ok_or_else(|| {
            bad(format!(
                "term `{s}` has more labels than its operand's rank {r}"
            ))
        })?,
        None => 0,
    };
    let mut out: Vec<char> = head.chars().collect();
    // Ellipsis axes are labelled by distance from the end of the ellipsis, so that
    // operands with fewer of them align to the right (numpy broadcasting).
    for k in (0..ell).rev() {
        out.push(ellipsis_label(k));
    }
    out.extend(tail.chars());
    Ok(out)
}

fn ellipsis_label(k: usize) -> char {
    char::from_u32(0x2460 + k as u32).unwrap_or('?')
}

/// `Einsum`: the equation `in1,in2,…->out` (or implicit, output = the labels seen once,
/// sorted, ellipsis first). Operands are combined left to right; each pair is lowered to
/// sums over labels only it has, then a batched `MatMul` of
/// `[batch…, free_a, contracted] · [batch…, contracted, free_b]` through
/// `Transpose`/`Reshape`, and the result is transposed into the output order. A label
/// repeated within one term takes the diagonal (identity mask, then a sum). Refused:
/// diagonals over symbolic or unequal extents, and batch labels whose sizes differ.
fn einsum(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let eq: String = node
        .attr_s("equation", "")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let vals = ctx.inputs(node)?;
    let specs: Vec<&str> = lhs.split(',').collect();
    if specs.len() != vals.len() {
        return Err(node.attr_error(
            "equation",
            format!(
                "`{eq}` names {} operands, the node has {}",
                specs.len(),
                vals.len()
            ),
        ));
    }
    let mut terms = Vec::new();
    let mut max_ell = 0;
    for (s, v) in specs.iter().zip(vals) {
        let rank = shape_of(ctx, &v)?.rank();
        let labels = parse_term(node, s, Some(rank))?;
        max_ell = max_ell.max(labels.iter().filter(|c| !c.is_ascii_alphabetic()).count());
        let t = diagonals(ctx, node, Term { val: v, labels }, terms.len())?;
        terms.push(t);
    }
    let out_labels: Vec<char> = match rhs {
        Some(r) => {
            let parts: Vec<&str> = r.split("...").collect();
            match parts.as_slice() {
                [only] => only.chars().collect(),
                [head, tail] => {
                    let mut o: Vec<char> = head.chars().collect();
                    o.extend((0..max_ell).rev().map(ellipsis_label));
                    o.extend(tail.chars());
                    o
                }
                _ => {
                    return Err(
                        node.attr_error("equation", "the output has more than one ellipsis")
                    );
                }
            }
        }
        None => {
            let mut count = std::collections::BTreeMap::new();
            for t in &terms {
                for &c in t.labels.iter().filter(|c| c.is_ascii_alphabetic()) {
                    *count.entry(c).or_insert(0) += 1;
                }
            }
            let mut o: Vec<char> = (0..max_ell).rev().map(ellipsis_label).collect();
            o.extend(count.into_iter().filter(|&(_, n)| n == 1).map(|(c, _)| c));
            o
        }
    };
    for &c in &out_labels {
        if !terms.iter().any(|t| t.labels.contains(&c)) {
            return Err(node.attr_error("equation", format!("output label `{c}` is in no input")));
        }
    }
    let mut iter = terms.into_iter();
    let Some(mut acc) = iter.next() else {
        return Err(node.error("Einsum needs at least one operand"));
    };
    let rest: Vec<Term> = iter.collect();
    for (k, t) in rest.iter().enumerate() {
        // Labels still needed after this step: the output's and later operands'.
        let mut keep: BTreeSet<char> = out_labels.iter().copied().collect();
        for later in rest.iter().skip(k + 1) {
            keep.extend(later.labels.iter().copied());
        }
        acc = contract_pair(ctx, node, acc, t, &keep, k)?;
    }
    // Sum labels not in the output, then order.
    let keep: BTreeSet<char> = out_labels.iter().copied().collect();
    let acc = sum_out(ctx, node, acc, &keep, &node.sub("sum"))?;
    let perm: Vec<usize> = out_labels
        .iter()
        .map(|c| acc.labels.iter().position(|x| x == c))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| node.error("einsum: an output label was lost"))?;
    let out = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        acc.val
    } else {
        ctx.emit1(Op::Transpose { perm }, &[acc.val], &node.name())?
    };
    Ok(vec![out])
}

/// Take the diagonal of every label repeated within one term: multiply by an identity
/// mask over the two axes and sum the second away (static extents only).
fn diagonals(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    mut t: Term,
    index: usize,
) -> Result<Term, FrontendError> {
    loop {
        let repeat = t.labels.iter().enumerate().find_map(|(i, c)| {
            t.labels
                .iter()
                .skip(i + 1)
                .position(|x| x == c)
                .map(|j| (i, i + 1 + j))
        });
        let Some((p1, p2)) = repeat else {
            return Ok(t);
        };
        let shape = shape_of(ctx, &t.val)?;
        let n = shape.dims().get(p1).and_then(Dim::as_fixed);
        let m = shape.dims().get(p2).and_then(Dim::as_fixed);
        let n = match (n, m) {
            (Some(n), Some(m)) if n == m => n,
            _ => {
                return Err(node.attr_error(
                    "equation",
                    format!(
                        "label `{}` repeats within operand {index} (a diagonal) over axes of shape {shape}; \
                         dqc takes diagonals of equal static extents only",
                        t.labels.get(p1).copied().unwrap_or('?')
                    ),
                ));
            }
        };
        let mut dims = vec![1u64; shape.rank()];
        for p in [p1, p2] {
            if let Some(d) = dims.get_mut(p) {
                *d = n;
            }
        }
        let eye: Vec<f32> = (0..n * n)
            .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
            .collect();
        let dt = dtype_of(ctx, &t.val)?;
        let eye = fconst(node, dt, dims, &eye)?;
        let masked = bin(
            ctx,
            BinaryOp::Mul,
            &t.val,
            &eye,
            &node.sub(&format!("diag_mask{index}")),
        )?;
        let val = ctx.emit1(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![p2 as i64],
                keepdims: false,
            },
            &[masked],
            &node.sub(&format!("diag{index}")),
        )?;
        t.labels.remove(p2);
        t.val = val;
    }
}

/// Sum away the axes whose labels are not in `keep`.
fn sum_out(
    ctx: &mut Ctx<'_>,
    _node: &NodeView<'_>,
    t: Term,
    keep: &BTreeSet<char>,
    name: &str,
) -> Result<Term, FrontendError> {
    let axes: Vec<i64> = t
        .labels
        .iter()
        .enumerate()
        .filter(|(_, c)| !keep.contains(c))
        .map(|(i, _)| i as i64)
        .collect();
    if axes.is_empty() {
        return Ok(t);
    }
    let labels = t
        .labels
        .iter()
        .copied()
        .filter(|c| keep.contains(c))
        .collect();
    let val = ctx.emit1(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes,
            keepdims: false,
        },
        &[t.val],
        name,
    )?;
    Ok(Term { val, labels })
}

/// Contract `a` with `b`, keeping the labels in `keep` (plus batch labels shared by both
/// and kept).
fn contract_pair(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    a: Term,
    b: &Term,
    keep: &BTreeSet<char>,
    step: usize,
) -> Result<Term, FrontendError> {
    let p = |s: &str| node.sub(&format!("{s}{step}"));
    // Labels only one side has and nobody needs are summed first.
    let mut keep_a = keep.clone();
    keep_a.extend(b.labels.iter().copied());
    let a = sum_out(ctx, node, a, &keep_a, &p("sum_a"))?;
    let mut keep_b = keep.clone();
    keep_b.extend(a.labels.iter().copied());
    let b = sum_out(
        ctx,
        node,
        Term {
            val: b.val.clone(),
            labels: b.labels.clone(),
        },
        &keep_b,
        &p("sum_b"),
    )?;
    let in_b = |c: &char| b.labels.contains(c);
    let in_a = |c: &char| a.labels.contains(c);
    let batch: Vec<char> = a
        .labels
        .iter()
        .copied()
        .filter(|c| in_b(c) && keep.contains(c))
        .collect();
    let contracted: Vec<char> = a
        .labels
        .iter()
        .copied()
        .filter(|c| in_b(c) && !keep.contains(c))
        .collect();
    let free_a: Vec<char> = a.labels.iter().copied().filter(|c| !in_b(c)).collect();
    let free_b: Vec<char> = b.labels.iter().copied().filter(|c| !in_a(c)).collect();
    let sa = shape_of(ctx, &a.val)?;
    let sb = shape_of(ctx, &b.val)?;
    let dim_of = |labels: &[char], dims: &[Dim], c: char| -> Option<Dim> {
        labels
            .iter()
            .position(|&x| x == c)
            .and_then(|i| dims.get(i).cloned())
    };
    let dims_a = |cs: &[char]| -> Option<Vec<Dim>> {
        cs.iter()
            .map(|&c| dim_of(&a.labels, sa.dims(), c))
            .collect()
    };
    let dims_b = |cs: &[char]| -> Option<Vec<Dim>> {
        cs.iter()
            .map(|&c| dim_of(&b.labels, sb.dims(), c))
            .collect()
    };
    let lost = || node.error("einsum: a label has no axis");
    let (bd_a, bd_b) = (
        dims_a(&batch).ok_or_else(lost)?,
        dims_b(&batch).ok_or_else(lost)?,
    );
    let batch_dims: Vec<Dim> = bd_a
        .iter()
        .zip(&bd_b)
        .map(|(x, y)| {
            if x == y || *y == Dim::fixed(1) {
                Ok(x.clone())
            } else if *x == Dim::fixed(1) {
                Ok(y.clone())
            } else {
                Err(node.error(format!("einsum: batch label sizes {x} and {y} differ")))
            }
        })
        .collect::<Result<_, _>>()?;
    let fa = dims_a(&free_a).ok_or_else(lost)?;
    let fb = dims_b(&free_b).ok_or_else(lost)?;
    let kd = dims_a(&contracted).ok_or_else(lost)?;
    let prod =
        |d: &[Dim]| dim_product(d).ok_or_else(|| node.error("einsum: dimension product overflows"));
    let (m, n, k) = (prod(&fa)?, prod(&fb)?, prod(&kd)?);
    // A → [batch…, free_a…, contracted…] → [batch…, M, K].
    let order_a: Vec<char> = batch
        .iter()
        .chain(&free_a)
        .chain(&contracted)
        .copied()
        .collect();
    let perm_a = positions(&a.labels, &order_a).ok_or_else(lost)?;
    let ta = transpose(ctx, &a.val, perm_a, &p("lhs_t"))?;
    let mut ra = bd_a.clone();
    ra.push(m.clone());
    ra.push(k.clone());
    let ta = reshape_if(ctx, &ta, ra, &p("lhs_2d"))?;
    // B → [batch…, contracted…, free_b…] → [batch…, K, N].
    let order_b: Vec<char> = batch
        .iter()
        .chain(&contracted)
        .chain(&free_b)
        .copied()
        .collect();
    let perm_b = positions(&b.labels, &order_b).ok_or_else(lost)?;
    let tb = transpose(ctx, &b.val, perm_b, &p("rhs_t"))?;
    let mut rb = bd_b.clone();
    rb.push(k);
    rb.push(n);
    let tb = reshape_if(ctx, &tb, rb, &p("rhs_2d"))?;
    let mm = ctx.emit1(Op::MatMul, &[ta, tb], &p("matmul"))?;
    let mut out_dims = batch_dims;
    out_dims.extend(fa);
    out_dims.extend(fb);
    let val = reshape_if(ctx, &mm, out_dims, &p("unflat"))?;
    let labels = batch.into_iter().chain(free_a).chain(free_b).collect();
    Ok(Term { val, labels })
}

/// Index in `labels` of each of `order`.
fn positions(labels: &[char], order: &[char]) -> Option<Vec<usize>> {
    order
        .iter()
        .map(|c| labels.iter().position(|x| x == c))
        .collect()
}

/// Reshape unless `x` already has shape `dims`.
fn reshape_if(
    ctx: &mut Ctx<'_>,
    x: &OVal,
    dims: Vec<Dim>,
    name: &str,
) -> Result<OVal, FrontendError> {
    if shape_of(ctx, x)?.dims() == dims.as_slice() {
        return Ok(x.clone());
    }
    reshape(ctx, x, dims, name)
}
