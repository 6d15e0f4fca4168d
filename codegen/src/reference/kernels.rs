//! Execution of each kernel family.

use super::eval::{Ctx, Space, eval, offsets};
use super::{ArgData, ReferenceError, malformed};
use crate::spec::{
    Attention, Conv, Elementwise, Gemm, HeadsView, Kernel, KernelSpec, MatOperand, RowOp,
    RowReduce, SelectiveScan, Term, eval_poly,
};
use dqc_ir::interp::eval_op;
use dqc_ir::op::Op;
use dqc_ir::{DType, Dim, Shape, Tensor};
use std::collections::BTreeMap;

type Written = Vec<(u32, Vec<u8>)>;

/// Run one kernel; returns the bytes of every argument it writes.
pub(crate) fn run_kernel(
    k: &KernelSpec,
    args: &[ArgData],
    bindings: &BTreeMap<String, u64>,
) -> Result<Written, ReferenceError> {
    let empty = crate::spec::Exprs::new();
    let exprs = match &k.body {
        Kernel::Elementwise(e) => &e.exprs,
        Kernel::RowReduce(r) => &r.exprs,
        Kernel::Gemm(g) => &g.exprs,
        Kernel::Conv(c) => &c.exprs,
        Kernel::Attention(_) | Kernel::SelectiveScan(_) => &empty,
    };
    let ctx = Ctx {
        kernel: &k.name,
        exprs,
        args,
        bindings,
    };
    match &k.body {
        Kernel::Elementwise(e) => elementwise(&ctx, e),
        Kernel::RowReduce(r) => row_reduce(&ctx, r),
        Kernel::Gemm(g) => gemm(&ctx, g),
        Kernel::Attention(a) => attention(&ctx, a),
        Kernel::Conv(c) => conv(&ctx, c),
        Kernel::SelectiveScan(s) => scan(&ctx, s),
    }
}

fn dims(ctx: &Ctx, s: &Shape) -> Result<Vec<u64>, ReferenceError> {
    s.eval(ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, format!("shape {s} is unbound")))
}

fn dim(ctx: &Ctx, d: &Dim) -> Result<u64, ReferenceError> {
    d.eval(ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, format!("dimension {d} is unbound")))
}

fn term(ctx: &Ctx, t: &Term) -> Result<i64, ReferenceError> {
    t.eval(ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, format!("term {}·{} unbound", t.coeff, t.dim)))
}

fn arg<'a>(ctx: &'a Ctx, a: u32) -> Result<&'a ArgData, ReferenceError> {
    ctx.args
        .get(a as usize)
        .ok_or_else(|| malformed(ctx.kernel, format!("no argument {a}")))
}

/// Check that the stored value fits argument `a` and return its bytes.
fn store(ctx: &Ctx, a: u32, t: &Tensor) -> Result<(u32, Vec<u8>), ReferenceError> {
    let ad = arg(ctx, a)?;
    if ad.dtype != t.dtype() || ad.numel() != t.numel() {
        return Err(malformed(
            ctx.kernel,
            format!(
                "stores {}×{} into argument {a} of {}{:?}",
                t.dtype(),
                t.numel(),
                ad.dtype,
                ad.shape
            ),
        ));
    }
    Ok((a, t.bytes().to_vec()))
}

/// Argument `a` as a dense tensor of `shape` (same element count).
fn dense(ctx: &Ctx, a: u32, shape: Vec<u64>) -> Result<Tensor, ReferenceError> {
    let ad = arg(ctx, a)?;
    let bytes = ad
        .bytes
        .clone()
        .ok_or_else(|| malformed(ctx.kernel, format!("argument {a} is not written")))?;
    Tensor::from_bytes(ad.dtype, ad.shape.clone(), bytes)
        .and_then(|t| t.reshaped(shape))
        .map_err(|e| malformed(ctx.kernel, format!("argument {a}: {e}")))
}

fn interp(ctx: &Ctx, op: Op, inputs: &[Tensor]) -> Result<Tensor, ReferenceError> {
    eval_op(&op, inputs, ctx.bindings)
        .map_err(|e| ReferenceError::Op {
            kernel: ctx.kernel.to_string(),
            message: e.to_string(),
        })?
        .pop()
        .ok_or_else(|| malformed(ctx.kernel, "the interpreter gave no result".into()))
}

fn flat(ctx: &Ctx, t: Tensor) -> Result<Tensor, ReferenceError> {
    let n = t.numel() as u64;
    t.reshaped(vec![n])
        .map_err(|e| malformed(ctx.kernel, e.to_string()))
}

fn elementwise(ctx: &Ctx, e: &Elementwise) -> Result<Written, ReferenceError> {
    let space = Space::all(&dims(ctx, &e.shape)?);
    let mut out = Vec::new();
    for &(a, x) in &e.outputs {
        let v = eval(ctx, x, &space, None)?;
        out.push(store(ctx, a, &v)?);
    }
    Ok(out)
}

fn row_reduce(ctx: &Ctx, r: &RowReduce) -> Result<Written, ReferenceError> {
    let shape = dims(ctx, &r.shape)?;
    let axis = r.axis as usize;
    if axis > shape.len() {
        return Err(malformed(ctx.kernel, format!("row axis {axis}")));
    }
    let rows: u64 = shape[..axis].iter().product();
    let len: u64 = shape[axis..].iter().product();
    let x = eval(ctx, r.input, &Space::all(&shape), None)?
        .reshaped(vec![rows, len])
        .map_err(|e| malformed(ctx.kernel, e.to_string()))?;
    let acc = match r.op {
        RowOp::LayerNorm { eps } => interp(
            ctx,
            Op::LayerNorm {
                axis: 1,
                eps,
                affine: false,
            },
            &[x],
        )?,
        RowOp::RmsNorm { eps } => interp(
            ctx,
            Op::RmsNorm {
                axis: 1,
                eps,
                affine: false,
            },
            &[x],
        )?,
        RowOp::Softmax => interp(ctx, Op::Softmax { axis: 1 }, &[x])?,
        RowOp::LogSoftmax => log_softmax(ctx, &x, rows as usize, len as usize)?,
        RowOp::Reduce(op) => interp(
            ctx,
            Op::Reduce {
                op,
                axes: vec![1],
                keepdims: false,
            },
            &[x],
        )?,
        RowOp::ArgReduce { max } => interp(
            ctx,
            Op::ArgReduce {
                max,
                axis: 1,
                keepdims: false,
            },
            &[x],
        )?,
        RowOp::CumSum { exclusive, reverse } => interp(
            ctx,
            Op::CumSum {
                axis: 1,
                exclusive,
                reverse,
            },
            &[x],
        )?,
    };
    let out_shape = if r.op.reduces() {
        shape[..axis].to_vec()
    } else {
        shape
    };
    let acc = flat(ctx, acc)?;
    let v = eval(ctx, r.epilogue, &Space::all(&out_shape), Some(&acc))?;
    Ok(vec![store(ctx, r.out, &v)?])
}

fn log_softmax(ctx: &Ctx, x: &Tensor, rows: usize, len: usize) -> Result<Tensor, ReferenceError> {
    let v = x.to_f32_vec();
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        let row = &v[r * len..(r + 1) * len];
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &e| m.max(f64::from(e)));
        let lse = row
            .iter()
            .map(|&e| (f64::from(e) - max).exp())
            .sum::<f64>()
            .ln();
        for (k, &e) in row.iter().enumerate() {
            out[r * len + k] = (f64::from(e) - max - lse) as f32;
        }
    }
    Tensor::from_f32(x.dtype(), vec![(rows * len) as u64], &out)
        .map_err(|e| malformed(ctx.kernel, e.to_string()))
}

/// Element offsets of a matrix operand for every (batch, row, col).
fn mat_offsets(
    ctx: &Ctx,
    m: &MatOperand,
    batch: &[u64],
) -> Result<(Vec<i64>, i64, i64), ReferenceError> {
    if m.batch_strides.len() != batch.len() {
        return Err(malformed(ctx.kernel, "batch strides vs batch rank".into()));
    }
    let base = eval_poly(&m.offset, ctx.bindings)
        .ok_or_else(|| malformed(ctx.kernel, "operand offset unbound".into()))?;
    let bs: Vec<i64> = m
        .batch_strides
        .iter()
        .map(|t| term(ctx, t))
        .collect::<Result<_, _>>()?;
    let batch_space = Space::all(batch);
    let map = crate::spec::IndexMap {
        offset: vec![Term::constant(base)],
        strides: bs.iter().map(|&s| Term::constant(s)).collect(),
    };
    let bo = offsets(ctx, &map, &batch_space)?;
    Ok((bo, term(ctx, &m.row_stride)?, term(ctx, &m.col_stride)?))
}

fn gemm(ctx: &Ctx, g: &Gemm) -> Result<Written, ReferenceError> {
    let batch = dims(ctx, &g.batch)?;
    let (m, n, k) = (dim(ctx, &g.m)?, dim(ctx, &g.n)?, dim(ctx, &g.k)?);
    let (ao, ars, acs) = mat_offsets(ctx, &g.a, &batch)?;
    let (bo, brs, bcs) = mat_offsets(ctx, &g.b, &batch)?;
    let av = decode(ctx, g.a.arg, g.in_dtype)?;
    let bv = decode(ctx, g.b.arg, g.in_dtype)?;
    let at = |v: &Vec<f64>, o: i64, a: u32| -> Result<f64, ReferenceError> {
        usize::try_from(o)
            .ok()
            .and_then(|i| v.get(i).copied())
            .ok_or_else(|| ReferenceError::OutOfRange {
                kernel: ctx.kernel.to_string(),
                arg: a,
                offset: o,
                len: v.len(),
            })
    };
    let nb = bo.len();
    let mut sums = Vec::with_capacity(nb * (m * n) as usize);
    for z in 0..nb {
        for i in 0..m as i64 {
            for j in 0..n as i64 {
                let mut s = 0f64;
                for p in 0..k as i64 {
                    let x = at(&av, ao[z] + i * ars + p * acs, g.a.arg)?;
                    let y = at(&bv, bo[z] + p * brs + j * bcs, g.b.arg)?;
                    s += x * y;
                }
                sums.push(s * f64::from(g.alpha));
            }
        }
    }
    let len = vec![sums.len() as u64];
    let acc = if g.acc_dtype.is_float() {
        let f: Vec<f32> = sums.iter().map(|&s| s as f32).collect();
        Tensor::from_f32(g.acc_dtype, len, &f)
    } else {
        let f: Vec<i64> = sums
            .iter()
            .map(|&s| s.clamp(i64::MIN as f64, i64::MAX as f64) as i64)
            .collect();
        Tensor::from_i64(g.acc_dtype, len, &f)
    }
    .map_err(|e| malformed(ctx.kernel, e.to_string()))?;
    let mut space = batch;
    space.extend([m, n]);
    let v = eval(ctx, g.epilogue, &Space::all(&space), Some(&acc))?;
    Ok(vec![store(ctx, g.out, &v)?])
}

/// Every element of argument `a` as f64 (integers exactly), checking its dtype.
fn decode(ctx: &Ctx, a: u32, want: DType) -> Result<Vec<f64>, ReferenceError> {
    let ad = arg(ctx, a)?;
    if ad.dtype != want {
        return Err(malformed(
            ctx.kernel,
            format!("argument {a} is {}, the kernel says {want}", ad.dtype),
        ));
    }
    let t = dense(ctx, a, ad.shape.clone())?;
    Ok(if want.is_float() {
        t.to_f32_vec().into_iter().map(f64::from).collect()
    } else {
        t.to_i64_vec().into_iter().map(|x| x as f64).collect()
    })
}

/// Gather a heads view into a dense `[b, s, heads·d]` tensor.
fn heads(ctx: &Ctx, h: &HeadsView, dt: DType, shape: [u64; 4]) -> Result<Tensor, ReferenceError> {
    let map = crate::spec::IndexMap {
        offset: h.offset.clone(),
        strides: vec![
            h.batch_stride.clone(),
            h.seq_stride.clone(),
            h.head_stride.clone(),
            Term::constant(1),
        ],
    };
    let offs = offsets(ctx, &map, &Space::all(&shape))?;
    let t = super::eval::load(ctx, h.arg, &offs)?;
    if t.dtype() != dt {
        return Err(malformed(
            ctx.kernel,
            format!("attention operand is {}", t.dtype()),
        ));
    }
    t.reshaped(vec![shape[0], shape[1], shape[2] * shape[3]])
        .map_err(|e| malformed(ctx.kernel, e.to_string()))
}

fn attention(ctx: &Ctx, a: &Attention) -> Result<Written, ReferenceError> {
    let (b, sq, sk) = (dim(ctx, &a.batch)?, dim(ctx, &a.sq)?, dim(ctx, &a.sk)?);
    let q = heads(ctx, &a.q, a.dtype, [b, sq, a.heads, a.head_dim])?;
    let k = heads(ctx, &a.k, a.dtype, [b, sk, a.kv_heads, a.head_dim])?;
    let v = heads(ctx, &a.v, a.dtype, [b, sk, a.kv_heads, a.v_head_dim])?;
    let mut inputs = vec![q, k, v];
    if let Some((m, map, dt)) = &a.mask {
        let shape = [b, a.heads, sq, sk];
        let offs = offsets(ctx, map, &Space::all(&shape))?;
        let t = super::eval::load(ctx, *m, &offs)?;
        if t.dtype() != *dt {
            return Err(malformed(ctx.kernel, "mask dtype".into()));
        }
        inputs.push(
            t.reshaped(shape.to_vec())
                .map_err(|e| malformed(ctx.kernel, e.to_string()))?,
        );
    }
    let out = interp(
        ctx,
        Op::Attention {
            heads: a.heads,
            kv_heads: a.kv_heads,
            scale: Some(a.scale),
            causal: a.causal,
            has_mask: a.mask.is_some(),
        },
        &inputs,
    )?;
    Ok(vec![store(ctx, a.out, &out)?])
}

fn conv(ctx: &Ctx, c: &Conv) -> Result<Written, ReferenceError> {
    let x = dense(ctx, c.x, dims(ctx, &c.x_shape)?)?;
    let w = dense(ctx, c.w, dims(ctx, &c.w_shape)?)?;
    let acc = interp(
        ctx,
        Op::Conv {
            strides: c.strides.clone(),
            pads: c.pads.clone(),
            dilations: c.dilations.clone(),
            groups: c.groups,
            has_bias: false,
        },
        &[x, w],
    )?;
    let out_shape = dims(ctx, &c.out_shape)?;
    if acc.shape() != out_shape.as_slice() || acc.dtype() != c.dtype {
        return Err(malformed(ctx.kernel, "conv output shape".into()));
    }
    let acc = flat(ctx, acc)?;
    let v = eval(ctx, c.epilogue, &Space::all(&out_shape), Some(&acc))?;
    Ok(vec![store(ctx, c.out, &v)?])
}

fn scan(ctx: &Ctx, s: &SelectiveScan) -> Result<Written, ReferenceError> {
    let (b, d, l, n) = (
        dim(ctx, &s.batch)?,
        dim(ctx, &s.channels)?,
        dim(ctx, &s.len)?,
        dim(ctx, &s.state)?,
    );
    let mut inputs = vec![
        dense(ctx, s.u, vec![b, d, l])?,
        dense(ctx, s.delta, vec![b, d, l])?,
        dense(ctx, s.a, vec![d, n])?,
        dense(ctx, s.bm, vec![b, n, l])?,
        dense(ctx, s.cm, vec![b, n, l])?,
    ];
    if let Some(a) = s.d {
        inputs.push(dense(ctx, a, vec![d])?);
    }
    if let Some(a) = s.z {
        inputs.push(dense(ctx, a, vec![b, d, l])?);
    }
    let out = interp(
        ctx,
        Op::SelectiveScan {
            delta_softplus: s.delta_softplus,
            has_d: s.d.is_some(),
            has_z: s.z.is_some(),
        },
        &inputs,
    )?;
    Ok(vec![store(ctx, s.out, &out)?])
}
