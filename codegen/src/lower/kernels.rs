//! Kernel construction per family, in topological order.

use super::emit::KCtx;
use super::plan::Class;
use super::view::{CMap, add_axis, const_axis, dim_term, identity, scale_axis, simplify};
use super::{LowerError, Lowerer};
use crate::spec::{
    Attention, BufferId, BufferKind, Conv, Elementwise, Expr, ExprId, Gemm, HeadsView, Kernel,
    KernelSpec, MatOperand, RowOp, RowReduce, SelectiveScan, Term,
};
use dqc_ir::graph::Value;
use dqc_ir::op::BinaryOp;
use dqc_ir::{DType, Dim, NodeId, Op, Shape, TensorType};

/// A matrix operand: a view of a buffer, with the operand's shape and dtype.
pub(crate) struct MatSrc {
    /// The buffer.
    pub buf: BufferId,
    /// How the operand lies in it.
    pub view: super::view::View,
    /// The operand's shape.
    pub shape: Shape,
    /// Its element type.
    pub dtype: DType,
}

impl Lowerer<'_> {
    /// Build every kernel, then the output copies.
    pub fn generate(&mut self) -> Result<(), LowerError> {
        let order = self.order.clone();
        let mut claimed: Vec<bool> = vec![false; self.g.outputs().len()];
        for &n in &order {
            if self.absorbed.contains(&n) {
                continue;
            }
            let op = &self.g.node(n).op;
            let mut outs: Vec<u32> = (0..op.num_outputs() as u32).collect();
            let block_quant = matches!(
                op,
                Op::Quantize {
                    scheme: dqc_ir::QuantScheme::Nvfp4 { .. } | dqc_ir::QuantScheme::Mx { .. },
                    ..
                }
            );
            if block_quant {
                // The codes read the block scales.
                outs.reverse();
            }
            for o in outs {
                let v = Value::new(n, o);
                if !self.mat.contains(&v) || self.bufs.contains_key(&v) {
                    continue;
                }
                let ty = self.ty(v)?.clone();
                let view = self.natural_view(v)?;
                let dense = view.is_dense(&ty.shape);
                let out_index = self
                    .g
                    .outputs()
                    .iter()
                    .enumerate()
                    .position(|(i, &x)| x == v && !claimed[i]);
                let kind = match out_index {
                    Some(i) if dense => {
                        claimed[i] = true;
                        BufferKind::Output { index: i as u32 }
                    }
                    _ => BufferKind::Activation { offset: 0 },
                };
                let name = self.g.value_name(v).to_string();
                let buf_shape = if dense {
                    ty.shape.clone()
                } else {
                    self.row_perm_shape(n, &ty.shape)?
                };
                let b = self.add_buffer(&name, &TensorType::new(ty.dtype, buf_shape), kind);
                if let Some(&h) = self.absorbs.get(&v) {
                    self.heavy_kernel(h, Some(v), b)?;
                } else if block_quant {
                    self.block_quantize(v, b)?;
                } else if self.class_of(n) == Class::Heavy {
                    self.heavy_kernel(n, None, b)?;
                } else {
                    self.elementwise_kernel(v, b)?;
                }
                self.bufs.insert(v, (b, view));
            }
        }
        let outputs = self.g.outputs().to_vec();
        self.program.outputs = vec![0; outputs.len()];
        for (i, &v) in outputs.iter().enumerate() {
            let found = self.program.buffers.iter().position(
                |b| matches!(b.kind, BufferKind::Output { index } if index as usize == i),
            );
            let b = match found {
                Some(b) => b as BufferId,
                None => {
                    let ty = self.ty(v)?.clone();
                    let name = format!("{}_out{i}", self.g.value_name(v));
                    let b = self.add_buffer(&name, &ty, BufferKind::Output { index: i as u32 });
                    self.elementwise_kernel(v, b)?;
                    b
                }
            };
            self.program.outputs[i] = b;
        }
        Ok(())
    }

    fn row_perm_shape(&self, n: NodeId, shape: &Shape) -> Result<Shape, LowerError> {
        let perm = self
            .row_perm(n)?
            .unwrap_or_else(|| (0..shape.rank()).collect());
        Ok(Shape(
            perm.iter().map(|&p| shape.dims()[p].clone()).collect(),
        ))
    }

    /// An elementwise kernel storing `v` (computed or copied) into buffer `b`.
    fn elementwise_kernel(&mut self, v: Value, b: BufferId) -> Result<(), LowerError> {
        let shape = self.shape(v)?;
        let mut k = KCtx::new(shape.rank());
        let id = identity(shape.rank());
        let e = if self.bufs.contains_key(&v) {
            self.emit(&mut k, v, &id)?
        } else {
            self.emit_node(&mut k, v, &id)?
        };
        let out = k.arg(b);
        let name = self.g.value_name(v).to_string();
        self.push_kernel(KernelSpec {
            name,
            args: k.args,
            writes: vec![out],
            body: Kernel::Elementwise(Elementwise {
                shape,
                exprs: k.exprs,
                outputs: vec![(out, e)],
            }),
        });
        Ok(())
    }

    /// The epilogue: `h_val` (the heavy value as an expression), then the root's tree if
    /// the kernel carries one.
    fn epilogue(
        &mut self,
        k: &mut KCtx,
        h: NodeId,
        h_val: ExprId,
        root: Option<Value>,
    ) -> Result<ExprId, LowerError> {
        match root {
            None => Ok(h_val),
            Some(r) => {
                k.epi = Some((Value::new(h, 0), h_val));
                let rank = k.rank;
                let e = self.emit_node(k, r, &identity(rank))?;
                k.epi = None;
                Ok(e)
            }
        }
    }

    /// Cast `x` (of `from`) to `to` if they differ.
    fn cast(k: &mut KCtx, x: ExprId, from: DType, to: DType) -> ExprId {
        if from == to {
            x
        } else {
            k.push(to, Expr::Cast { x })
        }
    }

    fn bin(k: &mut KCtx, dt: DType, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        k.push(dt, Expr::Binary { op, a, b })
    }

    fn finish(&mut self, h: NodeId, k: KCtx, out: u32, body: Kernel) {
        let name = self.name(h);
        self.push_kernel(KernelSpec {
            name,
            args: k.args,
            writes: vec![out],
            body,
        });
    }

    /// The kernel of heavy node `h`, writing `root` (if fused) or `h` into `b`.
    fn heavy_kernel(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
    ) -> Result<(), LowerError> {
        let op = self.g.node(h).op.clone();
        match &op {
            Op::MatMul => self.matmul(h, root, b, 1.0, false, false, None),
            Op::QMatMul { .. } => self.qmatmul(h, root, b),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
                has_c,
            } => self.matmul(
                h,
                root,
                b,
                *alpha,
                *trans_a,
                *trans_b,
                has_c.then_some(*beta),
            ),
            Op::Conv {
                strides,
                pads,
                dilations,
                groups,
                has_bias,
            } => {
                let x = self.input(h, 0)?;
                let w = self.input(h, 1)?;
                let out_shape = self.shape(Value::new(h, 0))?;
                let dtype = self.ty(x)?.dtype;
                let mut k = KCtx::new(out_shape.rank());
                let xb = self.dense_arg(&mut k, x)?;
                let wb = self.dense_arg(&mut k, w)?;
                let acc = k.push(dtype, Expr::Acc);
                let mut hv = acc;
                if *has_bias {
                    let mut m = vec![const_axis(0)];
                    m[0] = identity(out_shape.rank())[1].clone();
                    let bias = self.emit(&mut k, self.input(h, 2)?, &m)?;
                    hv = Self::bin(&mut k, dtype, BinaryOp::Add, acc, bias);
                }
                let epi = self.epilogue(&mut k, h, hv, root)?;
                let out = k.arg(b);
                let body = Kernel::Conv(Conv {
                    x: xb,
                    w: wb,
                    x_shape: self.shape(x)?,
                    w_shape: self.shape(w)?,
                    out_shape,
                    strides: strides.clone(),
                    pads: pads.clone(),
                    dilations: dilations.clone(),
                    groups: *groups,
                    dtype,
                    exprs: std::mem::take(&mut k.exprs),
                    epilogue: epi,
                    out,
                });
                self.finish(h, k, out, body);
                Ok(())
            }
            Op::LayerNorm { axis, eps, affine } => {
                let op = RowOp::LayerNorm { eps: *eps };
                self.norm(h, root, b, *axis, op, *affine, *affine)
            }
            Op::RmsNorm { axis, eps, affine } => self.norm(
                h,
                root,
                b,
                *axis,
                RowOp::RmsNorm { eps: *eps },
                *affine,
                false,
            ),
            Op::GroupNorm {
                groups,
                eps,
                affine,
            } => self.group_norm(h, b, *groups, *eps, *affine),
            Op::Softmax { .. } => self.row_elementwise(h, root, b, RowOp::Softmax),
            Op::CumSum {
                exclusive, reverse, ..
            } => self.row_elementwise(
                h,
                root,
                b,
                RowOp::CumSum {
                    exclusive: *exclusive,
                    reverse: *reverse,
                },
            ),
            Op::Reduce { op, .. } => self.reduce(h, root, b, RowOp::Reduce(*op)),
            Op::ArgReduce { max, .. } => self.reduce(h, root, b, RowOp::ArgReduce { max: *max }),
            Op::Attention {
                heads,
                kv_heads,
                scale,
                causal,
                has_mask,
            } => self.attention(h, b, *heads, *kv_heads, *scale, *causal, *has_mask),
            Op::SelectiveScan {
                delta_softplus,
                has_d,
                has_z,
            } => {
                let mut k = KCtx::new(0);
                let mut a = Vec::new();
                for slot in 0..self.g.node(h).inputs().len() {
                    a.push(self.dense_arg(&mut k, self.input(h, slot)?)?);
                }
                let us = self.shape(self.input(h, 0)?)?;
                let as_ = self.shape(self.input(h, 2)?)?;
                let d_at = 5;
                let z_at = 5 + usize::from(*has_d);
                let out = k.arg(b);
                let body = Kernel::SelectiveScan(SelectiveScan {
                    batch: us.dims()[0].clone(),
                    channels: us.dims()[1].clone(),
                    len: us.dims()[2].clone(),
                    state: as_.dims()[1].clone(),
                    delta_softplus: *delta_softplus,
                    u: a[0],
                    delta: a[1],
                    a: a[2],
                    bm: a[3],
                    cm: a[4],
                    d: has_d.then(|| a[d_at]),
                    z: has_z.then(|| a[z_at]),
                    out,
                });
                self.finish(h, k, out, body);
                Ok(())
            }
            Op::Input { .. }
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Modulate
            | Op::Gelu { .. }
            | Op::Silu
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Gather { .. }
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Resize { .. }
            | Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::CacheRead { .. }
            | Op::CacheWrite { .. }
            | Op::StepGate { .. } => Err(self.unsupported(h, format!("{} as a kernel", op.name()))),
        }
    }

    /// Argument of `v` as a dense buffer of its own shape (an alias if the bytes are a
    /// dense buffer of another shape).
    fn dense_arg(&mut self, k: &mut KCtx, v: Value) -> Result<u32, LowerError> {
        let (b, view) = self
            .buffer_view(v)?
            .ok_or_else(|| self.malformed(v.node, "operand is not in a buffer"))?;
        let ty = self.ty(v)?.clone();
        if !view.is_dense(&ty.shape) {
            return Err(self.malformed(v.node, "operand is not dense"));
        }
        let b = if self.program.buffers[b as usize].shape == ty.shape {
            b
        } else {
            let name = format!("{}_view", self.g.value_name(v));
            self.add_buffer(&name, &ty, BufferKind::Alias { base: b })
        };
        Ok(k.arg(b))
    }

    /// The buffer, view, shape and dtype of matrix operand `v`.
    pub(crate) fn mat_src(&mut self, v: Value) -> Result<MatSrc, LowerError> {
        let (buf, view) = self
            .buffer_view(v)?
            .ok_or_else(|| self.malformed(v.node, "matrix operand is not a view"))?;
        let ty = self.ty(v)?;
        Ok(MatSrc {
            buf,
            view,
            shape: ty.shape.clone(),
            dtype: ty.dtype,
        })
    }

    /// A matrix operand of shape `[..batch, rows, cols]` (after 1-D promotion) from a view.
    fn mat_operand(
        &mut self,
        k: &mut KCtx,
        src: &MatSrc,
        batch_rank: usize,
        promote_front: bool,
        trans: bool,
    ) -> Result<(MatOperand, Vec<Dim>), LowerError> {
        let (b, view, shape) = (src.buf, &src.view, &src.shape);
        let mut dims = shape.dims().to_vec();
        let mut strides = view.strides.clone();
        if dims.len() == 1 {
            if promote_front {
                dims.insert(0, Dim::fixed(1));
                strides.insert(0, Term::constant(0));
            } else {
                dims.push(Dim::fixed(1));
                strides.push(Term::constant(0));
            }
        }
        let r = dims.len();
        let (mut rs, mut cs) = (strides[r - 2].clone(), strides[r - 1].clone());
        let (mut rows, mut cols) = (dims[r - 2].clone(), dims[r - 1].clone());
        if trans {
            std::mem::swap(&mut rs, &mut cs);
            std::mem::swap(&mut rows, &mut cols);
        }
        let own_batch = r - 2;
        let mut batch_strides = vec![Term::constant(0); batch_rank];
        for i in 0..own_batch {
            let pos = batch_rank - own_batch + i;
            if dims[i] != Dim::fixed(1) {
                batch_strides[pos] = strides[i].clone();
            }
        }
        let arg = k.arg(b);
        Ok((
            MatOperand {
                arg,
                offset: view.offset.clone(),
                batch_strides,
                row_stride: rs,
                col_stride: cs,
            },
            vec![rows, cols],
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
        alpha: f32,
        trans_a: bool,
        trans_b: bool,
        beta_c: Option<f32>,
    ) -> Result<(), LowerError> {
        let av = self.mat_src(self.input(h, 0)?)?;
        let bv = self.mat_src(self.input(h, 1)?)?;
        self.matmul_of(h, root, b, [av, bv], alpha, trans_a, trans_b, beta_c)
    }

    /// The GEMM kernel of heavy node `h` on the operands `srcs`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul_of(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
        srcs: [MatSrc; 2],
        alpha: f32,
        trans_a: bool,
        trans_b: bool,
        beta_c: Option<f32>,
    ) -> Result<(), LowerError> {
        let [av, bv] = srcs;
        let (sa, sb) = (av.shape.clone(), bv.shape.clone());
        let batch_of = |s: &Shape| -> Shape {
            if s.rank() <= 2 {
                Shape(vec![])
            } else {
                Shape(s.dims()[..s.rank() - 2].to_vec())
            }
        };
        let batch = batch_of(&sa)
            .broadcast(&batch_of(&sb))
            .map_err(|e| self.malformed(h, e.to_string()))?;
        let in_dtype = av.dtype;
        let out_dtype = self.ty(Value::new(h, 0))?.dtype;
        let acc_dtype = if in_dtype.is_float() {
            DType::F32
        } else {
            DType::I32
        };
        let mut k = KCtx::new(batch.rank() + 2);
        let (a, ad) = self.mat_operand(&mut k, &av, batch.rank(), true, trans_a)?;
        let (bm, bd) = self.mat_operand(&mut k, &bv, batch.rank(), false, trans_b)?;
        let acc = k.push(acc_dtype, Expr::Acc);
        let mut hv = Self::cast(&mut k, acc, acc_dtype, out_dtype);
        if let Some(beta) = beta_c {
            let c = self.input(h, 2)?;
            let out_shape = Shape(vec![ad[0].clone(), bd[1].clone()]);
            let m = super::view::broadcast(&identity(2), &self.shape(c)?, &out_shape)
                .ok_or_else(|| self.malformed(h, "gemm C does not broadcast"))?;
            let mut cexpr = self.emit(&mut k, c, &m)?;
            if beta != 1.0 {
                let bc = k.constant(out_dtype, f64::from(beta));
                cexpr = Self::bin(&mut k, out_dtype, BinaryOp::Mul, bc, cexpr);
            }
            if beta != 0.0 {
                hv = Self::bin(&mut k, out_dtype, BinaryOp::Add, hv, cexpr);
            }
        }
        let epi = self.epilogue(&mut k, h, hv, root)?;
        let out = k.arg(b);
        let body = Kernel::Gemm(Gemm {
            batch,
            m: ad[0].clone(),
            n: bd[1].clone(),
            k: ad[1].clone(),
            a,
            b: bm,
            in_dtype,
            acc_dtype,
            alpha,
            exprs: std::mem::take(&mut k.exprs),
            epilogue: epi,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }

    /// The prologue: `x` read at `cm`, as f32 for floats.
    fn prologue(
        &mut self,
        k: &mut KCtx,
        x: Value,
        cm: &CMap,
    ) -> Result<(ExprId, DType), LowerError> {
        let xd = self.ty(x)?.dtype;
        let e = self.emit(k, x, cm)?;
        if xd.is_float() {
            Ok((Self::cast(k, e, xd, DType::F32), DType::F32))
        } else {
            Ok((e, xd))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn norm(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
        axis: i64,
        op: RowOp,
        gamma: bool,
        beta: bool,
    ) -> Result<(), LowerError> {
        let x = self.input(h, 0)?;
        let shape = self.shape(x)?;
        let out_dtype = self.ty(Value::new(h, 0))?.dtype;
        let a = shape
            .axis(axis)
            .ok_or_else(|| self.malformed(h, format!("axis {axis} out of range")))?;
        let r = shape.rank();
        let mut k = KCtx::new(r);
        let (input, pd) = self.prologue(&mut k, x, &identity(r))?;
        k.set_space(r);
        let acc = k.push(pd, Expr::Acc);
        let mut hv = acc;
        let trailing: CMap = identity(r)[a..].to_vec();
        if gamma {
            let g = self.input(h, 1)?;
            let gd = self.ty(g)?.dtype;
            let ge = self.emit(&mut k, g, &trailing)?;
            let ge = Self::cast(&mut k, ge, gd, pd);
            hv = Self::bin(&mut k, pd, BinaryOp::Mul, hv, ge);
        }
        if beta {
            let bt = self.input(h, 2)?;
            let bd = self.ty(bt)?.dtype;
            let be = self.emit(&mut k, bt, &trailing)?;
            let be = Self::cast(&mut k, be, bd, pd);
            hv = Self::bin(&mut k, pd, BinaryOp::Add, hv, be);
        }
        let hv = Self::cast(&mut k, hv, pd, out_dtype);
        let epi = self.epilogue(&mut k, h, hv, root)?;
        let out = k.arg(b);
        let body = Kernel::RowReduce(RowReduce {
            shape,
            axis: a as u32,
            op,
            exprs: std::mem::take(&mut k.exprs),
            input,
            epilogue: epi,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }

    fn group_norm(
        &mut self,
        h: NodeId,
        b: BufferId,
        groups: u64,
        eps: f32,
        affine: bool,
    ) -> Result<(), LowerError> {
        let x = self.input(h, 0)?;
        let xs = self.shape(x)?;
        let out_dtype = self.ty(Value::new(h, 0))?.dtype;
        if xs.rank() < 2 || groups == 0 {
            return Err(self.malformed(h, "group norm needs [N, C, …] and groups ≥ 1"));
        }
        let c = xs.dims()[1].clone();
        let cg = c
            .checked_div(&Dim::fixed(groups))
            .ok_or_else(|| self.unsupported(h, "channels not divisible by groups"))?;
        // Iteration space [N, G, C/G, *spatial]; channel = g·(C/G) + cg.
        let mut it = vec![xs.dims()[0].clone(), Dim::fixed(groups), cg.clone()];
        it.extend(xs.dims()[2..].iter().cloned());
        let r = it.len();
        let id = identity(r);
        let cgt = dim_term(&cg).ok_or_else(|| self.malformed(h, "group size"))?;
        let chan = add_axis(
            &scale_axis(&id[1], &cgt).ok_or_else(|| self.malformed(h, "group map"))?,
            &id[2],
        );
        let mut xm: CMap = vec![id[0].clone(), chan.clone()];
        xm.extend(id[3..].iter().cloned());
        let mut k = KCtx::new(r);
        let (input, pd) = self.prologue(&mut k, x, &xm)?;
        k.set_space(r);
        let mut hv = k.push(pd, Expr::Acc);
        if affine {
            for (slot, op) in [(1, BinaryOp::Mul), (2, BinaryOp::Add)] {
                let p = self.input(h, slot)?;
                let d = self.ty(p)?.dtype;
                let e = self.emit(&mut k, p, &vec![chan.clone()])?;
                let e = Self::cast(&mut k, e, d, pd);
                hv = Self::bin(&mut k, pd, op, hv, e);
            }
        }
        let hv = Self::cast(&mut k, hv, pd, out_dtype);
        let out = k.arg(b);
        let body = Kernel::RowReduce(RowReduce {
            shape: Shape(it),
            axis: 2,
            op: RowOp::LayerNorm { eps },
            exprs: std::mem::take(&mut k.exprs),
            input,
            epilogue: hv,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }

    /// Softmax and running sums: per-element row ops along one axis (moved last).
    fn row_elementwise(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
        op: RowOp,
    ) -> Result<(), LowerError> {
        let x = self.input(h, 0)?;
        let xs = self.shape(x)?;
        let out_dtype = self.ty(Value::new(h, 0))?.dtype;
        let r = xs.rank();
        let perm = self.row_perm(h)?.unwrap_or_else(|| (0..r).collect());
        let shape = Shape(perm.iter().map(|&p| xs.dims()[p].clone()).collect());
        let id = identity(r);
        let mut xm: CMap = vec![const_axis(0); r];
        for (i, &p) in perm.iter().enumerate() {
            xm[p] = id[i].clone();
        }
        let mut k = KCtx::new(r);
        let (input, pd) = self.prologue(&mut k, x, &xm)?;
        k.set_space(r);
        let acc = k.push(pd, Expr::Acc);
        let hv = Self::cast(&mut k, acc, pd, out_dtype);
        let epi = self.epilogue(&mut k, h, hv, root)?;
        let out = k.arg(b);
        let body = Kernel::RowReduce(RowReduce {
            shape,
            axis: r.saturating_sub(1) as u32,
            op,
            exprs: std::mem::take(&mut k.exprs),
            input,
            epilogue: epi,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }

    fn reduce(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
        op: RowOp,
    ) -> Result<(), LowerError> {
        let x = self.input(h, 0)?;
        let xs = self.shape(x)?;
        let out_dtype = self.ty(Value::new(h, 0))?.dtype;
        let (kept, red) = self.reduce_axes(h)?;
        let r = xs.rank();
        let all: Vec<usize> = kept.iter().chain(red.iter()).copied().collect();
        let shape = Shape(all.iter().map(|&p| xs.dims()[p].clone()).collect());
        let id = identity(r);
        let mut xm: CMap = vec![const_axis(0); r];
        for (i, &p) in all.iter().enumerate() {
            xm[p] = id[i].clone();
        }
        let mut k = KCtx::new(r);
        let (input, pd) = match op {
            RowOp::Reduce(_) => self.prologue(&mut k, x, &xm)?,
            _ => {
                let xd = self.ty(x)?.dtype;
                let e = self.emit(&mut k, x, &xm)?;
                if xd.is_float() {
                    (Self::cast(&mut k, e, xd, DType::F32), DType::F32)
                } else {
                    (e, xd)
                }
            }
        };
        k.set_space(kept.len());
        let acc_dtype = match op {
            RowOp::ArgReduce { .. } => DType::I64,
            _ => pd,
        };
        let acc = k.push(acc_dtype, Expr::Acc);
        let hv = Self::cast(&mut k, acc, acc_dtype, out_dtype);
        let epi = self.epilogue(&mut k, h, hv, root)?;
        let out = k.arg(b);
        let body = Kernel::RowReduce(RowReduce {
            shape,
            axis: kept.len() as u32,
            op,
            exprs: std::mem::take(&mut k.exprs),
            input,
            epilogue: epi,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }

    fn heads_view(
        &mut self,
        k: &mut KCtx,
        v: Value,
        head_dim: &Dim,
    ) -> Result<HeadsView, LowerError> {
        let (b, view) = self
            .buffer_view(v)?
            .ok_or_else(|| self.malformed(v.node, "attention operand is not a view"))?;
        if view.strides.len() != 3 {
            return Err(self.malformed(v.node, "attention operand must be rank 3"));
        }
        let hs = super::view::mul_term(
            &view.strides[2],
            &dim_term(head_dim).ok_or_else(|| self.malformed(v.node, "head dim"))?,
        )
        .ok_or_else(|| self.malformed(v.node, "head stride"))?;
        let arg = k.arg(b);
        Ok(HeadsView {
            arg,
            offset: simplify(&view.offset),
            batch_stride: view.strides[0].clone(),
            seq_stride: view.strides[1].clone(),
            head_stride: hs,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        h: NodeId,
        b: BufferId,
        heads: u64,
        kv_heads: u64,
        scale: Option<f32>,
        causal: bool,
        has_mask: bool,
    ) -> Result<(), LowerError> {
        let (q, kk, v) = (self.input(h, 0)?, self.input(h, 1)?, self.input(h, 2)?);
        let (qs, ks, vs) = (self.shape(q)?, self.shape(kk)?, self.shape(v)?);
        if qs.rank() != 3 || ks.rank() != 3 || vs.rank() != 3 || heads == 0 || kv_heads == 0 {
            return Err(self.malformed(h, "attention operands must be [B, S, H·D]"));
        }
        let fixed = |d: &Dim, what: &str| {
            d.as_fixed()
                .ok_or_else(|| self.unsupported(h, format!("a symbolic {what}")))
        };
        let hd = fixed(&qs.dims()[2], "query width")? / heads;
        let vd = fixed(&vs.dims()[2], "value width")? / kv_heads;
        let dtype = self.ty(q)?.dtype;
        let mut k = KCtx::new(4);
        let qv = self.heads_view(&mut k, q, &Dim::fixed(hd))?;
        let kv = self.heads_view(&mut k, kk, &Dim::fixed(hd))?;
        let vv = self.heads_view(&mut k, v, &Dim::fixed(vd))?;
        let mask = if has_mask {
            let m = self.input(h, 3)?;
            let (mb, view) = self
                .buffer_view(m)?
                .ok_or_else(|| self.malformed(h, "mask is not a view"))?;
            let full = Shape(vec![
                qs.dims()[0].clone(),
                Dim::fixed(heads),
                qs.dims()[1].clone(),
                ks.dims()[1].clone(),
            ]);
            let cm = super::view::broadcast(&identity(4), &self.shape(m)?, &full)
                .ok_or_else(|| self.malformed(h, "mask does not broadcast"))?;
            let map = view
                .index_map(&cm, 4)
                .ok_or_else(|| self.unsupported(h, "a mask map that is not affine"))?;
            let arg = k.arg(mb);
            Some((arg, map, self.ty(m)?.dtype))
        } else {
            None
        };
        let out = k.arg(b);
        let body = Kernel::Attention(Attention {
            batch: qs.dims()[0].clone(),
            sq: qs.dims()[1].clone(),
            sk: ks.dims()[1].clone(),
            heads,
            kv_heads,
            head_dim: hd,
            v_head_dim: vd,
            scale: scale.unwrap_or(1.0 / (hd as f32).sqrt()),
            causal,
            q: qv,
            k: kv,
            v: vv,
            mask,
            dtype,
            out,
        });
        self.finish(h, k, out, body);
        Ok(())
    }
}
