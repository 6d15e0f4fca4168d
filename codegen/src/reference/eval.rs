//! Evaluation of an expression arena over a set of iteration coordinates ("lanes").
//!
//! Every node is evaluated for all lanes at once as a 1-D tensor of the node's dtype, with
//! the interpreter's own op for unary, binary, select, cast, GELU and SiLU nodes, so the
//! rounding of every intermediate matches `dqc_ir::interp` exactly. `Piecewise` splits the
//! lanes by piece and evaluates each piece only on its own lanes.

use super::{ArgData, ReferenceError, malformed};
use crate::spec::{Expr, ExprId, Exprs, IndexMap, Scalar, Term, eval_poly};
use dqc_ir::interp::eval_op;
use dqc_ir::numeric::nibble;
use dqc_ir::op::Op;
use dqc_ir::{DType, Tensor};
use std::collections::BTreeMap;

/// A set of iteration coordinates: `len` lanes of `rank` coordinates each, row-major.
#[derive(Clone, Debug)]
pub(crate) struct Lanes {
    pub rank: usize,
    pub data: Vec<i64>,
}

impl Lanes {
    /// Every coordinate of `shape`, row-major.
    pub fn all(shape: &[u64]) -> Lanes {
        let n: u64 = shape.iter().product();
        let rank = shape.len();
        let mut data = Vec::with_capacity(n as usize * rank);
        let mut c = vec![0i64; rank];
        for _ in 0..n {
            data.extend_from_slice(&c);
            for d in (0..rank).rev() {
                c[d] += 1;
                if (c[d] as u64) < shape[d] {
                    break;
                }
                c[d] = 0;
            }
        }
        Lanes { rank, data }
    }

    fn coord(&self, lane: usize, axis: usize) -> i64 {
        self.data[lane * self.rank + axis]
    }

    fn subset(&self, lanes: &[usize]) -> Lanes {
        let mut data = Vec::with_capacity(lanes.len() * self.rank);
        for &l in lanes {
            data.extend_from_slice(&self.data[l * self.rank..(l + 1) * self.rank]);
        }
        Lanes {
            rank: self.rank,
            data,
        }
    }
}

/// What an expression is evaluated against.
pub(crate) struct Ctx<'a> {
    pub kernel: &'a str,
    pub exprs: &'a Exprs,
    pub args: &'a [ArgData],
    pub bindings: &'a BTreeMap<String, u64>,
}

/// Scalar-lane rank-0 spaces have one lane with no coordinates; `Lanes` stores them as
/// rank 0 with a count kept separately.
pub(crate) struct Space {
    pub lanes: Lanes,
    pub count: usize,
}

impl Space {
    pub fn all(shape: &[u64]) -> Space {
        let count = shape.iter().product::<u64>() as usize;
        Space {
            lanes: Lanes::all(shape),
            count,
        }
    }
    fn subset(&self, idx: &[usize]) -> Space {
        Space {
            lanes: self.lanes.subset(idx),
            count: idx.len(),
        }
    }
}

/// Evaluate node `root` on every lane of `space`; `acc` holds the value of [`Expr::Acc`]
/// per lane.
pub(crate) fn eval(
    ctx: &Ctx,
    root: ExprId,
    space: &Space,
    acc: Option<&Tensor>,
) -> Result<Tensor, ReferenceError> {
    let mut memo: Vec<Option<Tensor>> = vec![None; ctx.exprs.nodes.len()];
    eval_node(ctx, root, space, acc, &mut memo)
}

fn eval_node(
    ctx: &Ctx,
    id: ExprId,
    space: &Space,
    acc: Option<&Tensor>,
    memo: &mut Vec<Option<Tensor>>,
) -> Result<Tensor, ReferenceError> {
    if let Some(Some(t)) = memo.get(id as usize) {
        return Ok(t.clone());
    }
    let node = ctx
        .exprs
        .get(id)
        .ok_or_else(|| malformed(ctx.kernel, format!("no expression node {id}")))?;
    let n = space.count;
    let dt = node.dtype;
    let op1 = |op: Op, xs: &[Tensor]| -> Result<Tensor, ReferenceError> {
        let mut out = eval_op(&op, xs, ctx.bindings).map_err(|e| ReferenceError::Op {
            kernel: ctx.kernel.to_string(),
            message: e.to_string(),
        })?;
        out.pop()
            .ok_or_else(|| malformed(ctx.kernel, "an op gave no result".into()))
    };
    let sub = |x: ExprId, memo: &mut Vec<Option<Tensor>>| {
        if x >= id {
            return Err(malformed(
                ctx.kernel,
                format!("node {id} uses a later node {x}"),
            ));
        }
        eval_node(ctx, x, space, acc, memo)
    };
    let t = match &node.expr {
        Expr::Load { arg, map } => {
            let offs = offsets(ctx, map, space)?;
            load(ctx, *arg, &offs)?
        }
        Expr::Gather {
            arg,
            map,
            index,
            axis_stride,
            axis_len,
        } => {
            let idx = sub(*index, memo)?.to_i64_vec();
            let len = axis_len
                .eval(ctx.bindings)
                .ok_or_else(|| malformed(ctx.kernel, "gather axis length unbound".into()))?;
            let stride = term(ctx, axis_stride)?;
            let mut offs = offsets(ctx, map, space)?;
            for (o, &i) in offs.iter_mut().zip(&idx) {
                let li = len as i64;
                if i < -li || i >= li {
                    return Err(ReferenceError::GatherIndex {
                        kernel: ctx.kernel.to_string(),
                        index: i,
                        len,
                    });
                }
                let i = if i < 0 { i + li } else { i };
                *o += i * stride;
            }
            load(ctx, *arg, &offs)?
        }
        Expr::Const(s) => constant(dt, *s, n).map_err(|e| malformed(ctx.kernel, e))?,
        Expr::Coord { axis } => {
            let a = *axis as usize;
            if a >= space.lanes.rank {
                return Err(malformed(ctx.kernel, format!("coordinate {a} out of rank")));
            }
            let v: Vec<i64> = (0..n).map(|l| space.lanes.coord(l, a)).collect();
            vec_i64(&v).map_err(|e| malformed(ctx.kernel, e))?
        }
        Expr::Acc => {
            let a = acc.ok_or_else(|| malformed(ctx.kernel, "Acc outside an epilogue".into()))?;
            if a.dtype() != dt {
                return Err(malformed(
                    ctx.kernel,
                    format!("Acc is {}, node says {dt}", a.dtype()),
                ));
            }
            a.clone()
        }
        Expr::Unary { op, x } => {
            let x = sub(*x, memo)?;
            op1(Op::Unary(*op), &[x])?
        }
        Expr::Binary { op, a, b } => {
            let a = sub(*a, memo)?;
            let b = sub(*b, memo)?;
            op1(Op::Binary(*op), &[a, b])?
        }
        Expr::Select { cond, a, b } => {
            let c = sub(*cond, memo)?;
            let a = sub(*a, memo)?;
            let b = sub(*b, memo)?;
            op1(Op::Where, &[c, a, b])?
        }
        Expr::Cast { x } => {
            let x = sub(*x, memo)?;
            op1(Op::Cast { to: dt }, &[x])?
        }
        Expr::Gelu { approx, x } => {
            let x = sub(*x, memo)?;
            op1(Op::Gelu { approx: *approx }, &[x])?
        }
        Expr::Silu { x } => {
            let x = sub(*x, memo)?;
            op1(Op::Silu, &[x])?
        }
        Expr::Piecewise {
            axis,
            bounds,
            pieces,
        } => {
            if bounds.len() != pieces.len() || pieces.is_empty() {
                return Err(malformed(ctx.kernel, "piecewise: bounds/pieces".into()));
            }
            let starts: Vec<i64> = bounds
                .iter()
                .map(|b| {
                    eval_poly(b, ctx.bindings)
                        .ok_or_else(|| malformed(ctx.kernel, "piecewise bound unbound".into()))
                })
                .collect::<Result<_, _>>()?;
            let a = *axis as usize;
            if a >= space.lanes.rank {
                return Err(malformed(ctx.kernel, format!("piecewise axis {a}")));
            }
            let mut groups: Vec<Vec<usize>> = vec![Vec::new(); pieces.len()];
            for l in 0..n {
                let c = space.lanes.coord(l, a);
                let p = starts.iter().rposition(|&s| s <= c).unwrap_or(0);
                groups[p].push(l);
            }
            let mut out = vec![0u8; dt.storage_bytes(n)];
            for (p, lanes) in groups.iter().enumerate() {
                if lanes.is_empty() {
                    continue;
                }
                if pieces[p] >= id {
                    return Err(malformed(ctx.kernel, "piece after its user".into()));
                }
                let sp = space.subset(lanes);
                let sub_acc = acc.map(|a| take(a.dtype(), a.bytes(), lanes));
                let sub_acc = sub_acc
                    .map(|b| Tensor::from_bytes(dt_of(acc), vec![lanes.len() as u64], b.into()))
                    .transpose()
                    .map_err(|e| malformed(ctx.kernel, e.to_string()))?;
                let mut m2: Vec<Option<Tensor>> = vec![None; ctx.exprs.nodes.len()];
                let v = eval_node(ctx, pieces[p], &sp, sub_acc.as_ref(), &mut m2)?;
                if v.dtype() != dt {
                    return Err(malformed(ctx.kernel, "piece dtype differs".into()));
                }
                scatter(dt, &mut out, v.bytes(), lanes);
            }
            Tensor::from_bytes(dt, vec![n as u64], out.into())
                .map_err(|e| malformed(ctx.kernel, e.to_string()))?
        }
    };
    if t.dtype() != dt || t.numel() != n {
        return Err(malformed(
            ctx.kernel,
            format!(
                "node {id} gave {}{:?}, declared {dt} over {n} lanes",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    let t = t
        .reshaped(vec![n as u64])
        .map_err(|e| malformed(ctx.kernel, e.to_string()))?;
    if let Some(slot) = memo.get_mut(id as usize) {
        *slot = Some(t.clone());
    }
    Ok(t)
}

fn dt_of(acc: Option<&Tensor>) -> DType {
    acc.map(|a| a.dtype()).unwrap_or(DType::F32)
}

fn term(ctx: &Ctx, t: &Term) -> Result<i64, ReferenceError> {
    t.eval(ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, format!("term {}·{} unbound", t.coeff, t.dim)))
}

/// Element offsets of an index map on every lane.
pub(crate) fn offsets(
    ctx: &Ctx,
    map: &IndexMap,
    space: &Space,
) -> Result<Vec<i64>, ReferenceError> {
    let base = eval_poly(&map.offset, ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, "index offset unbound".into()))?;
    if map.strides.len() != space.lanes.rank {
        return Err(malformed(
            ctx.kernel,
            format!(
                "index map has {} strides for a rank-{} space",
                map.strides.len(),
                space.lanes.rank
            ),
        ));
    }
    let strides: Vec<i64> = map
        .strides
        .iter()
        .map(|t| term(ctx, t))
        .collect::<Result<_, _>>()?;
    Ok((0..space.count)
        .map(|l| {
            base + strides
                .iter()
                .enumerate()
                .map(|(d, s)| s * space.lanes.coord(l, d))
                .sum::<i64>()
        })
        .collect())
}

/// The elements of argument `arg` at `offs`, as a 1-D tensor of its dtype.
pub(crate) fn load(ctx: &Ctx, arg: u32, offs: &[i64]) -> Result<Tensor, ReferenceError> {
    let a = ctx
        .args
        .get(arg as usize)
        .ok_or_else(|| malformed(ctx.kernel, format!("no argument {arg}")))?;
    let bytes = a
        .bytes
        .as_ref()
        .ok_or_else(|| malformed(ctx.kernel, format!("argument {arg} is not written")))?;
    let len = a.numel();
    let mut idx = Vec::with_capacity(offs.len());
    for &o in offs {
        if o < 0 || o as usize >= len {
            return Err(ReferenceError::OutOfRange {
                kernel: ctx.kernel.to_string(),
                arg,
                offset: o,
                len,
            });
        }
        idx.push(o as usize);
    }
    Tensor::from_bytes(
        a.dtype,
        vec![idx.len() as u64],
        take(a.dtype, bytes, &idx).into(),
    )
    .map_err(|e| malformed(ctx.kernel, e.to_string()))
}

/// Raw elements `idx` of a dense `dtype` array.
pub(crate) fn take(dtype: DType, bytes: &[u8], idx: &[usize]) -> Vec<u8> {
    if dtype.is_packed() {
        let mut out = vec![0u8; idx.len().div_ceil(2)];
        for (k, &i) in idx.iter().enumerate() {
            out[k / 2] |= nibble(bytes, i) << (4 * (k % 2));
        }
        out
    } else {
        let w = dtype.bits() / 8;
        let mut out = Vec::with_capacity(idx.len() * w);
        for &i in idx {
            out.extend_from_slice(&bytes[i * w..(i + 1) * w]);
        }
        out
    }
}

/// Write elements of `src` (dense, in lane order) to positions `idx` of `dst`.
pub(crate) fn scatter(dtype: DType, dst: &mut [u8], src: &[u8], idx: &[usize]) {
    if dtype.is_packed() {
        for (k, &i) in idx.iter().enumerate() {
            let v = nibble(src, k);
            let sh = 4 * (i % 2);
            dst[i / 2] = (dst[i / 2] & !(0xF << sh)) | (v << sh);
        }
    } else {
        let w = dtype.bits() / 8;
        for (k, &i) in idx.iter().enumerate() {
            dst[i * w..(i + 1) * w].copy_from_slice(&src[k * w..(k + 1) * w]);
        }
    }
}

fn vec_i64(v: &[i64]) -> Result<Tensor, String> {
    Tensor::from_i64(DType::I64, vec![v.len() as u64], v).map_err(|e| e.to_string())
}

fn constant(dtype: DType, s: Scalar, n: usize) -> Result<Tensor, String> {
    let shape = vec![n as u64];
    let r = match s {
        Scalar::F(f) => Tensor::from_f32(dtype, shape, &vec![f as f32; n]),
        Scalar::I(i) => Tensor::from_i64(dtype, shape, &vec![i; n]),
        Scalar::B(b) => Tensor::from_i64(dtype, shape, &vec![i64::from(b); n]),
    };
    r.map_err(|e| e.to_string())
}
