//! Which values get a buffer: fusion decisions before any kernel is built.

use super::view::{View, dense_strides, simplify};
use super::{LowerError, Lowerer};
use crate::spec::Term;
use dqc_ir::graph::Value;
use dqc_ir::{Dim, NodeId, Op, QuantScheme, Shape};
use std::collections::HashSet;

/// How an op is lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Input or constant.
    Source,
    /// An expression node.
    Elementwise,
    /// An index map of its consumers.
    Movement,
    /// A kernel of its own.
    Heavy,
    /// No lowering.
    Unsupported,
}

/// The class of `op`.
pub(crate) fn class(op: &Op) -> Class {
    match op {
        Op::Input { .. } | Op::Constant(_) => Class::Source,
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Modulate
        | Op::Gelu { .. }
        | Op::Silu => Class::Elementwise,
        Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Gather { .. }
        | Op::Expand { .. } => Class::Movement,
        Op::Pad { .. } => Class::Movement,
        Op::Resize { .. } => Class::Elementwise,
        Op::MatMul
        | Op::QMatMul { .. }
        | Op::Gemm { .. }
        | Op::Conv { .. }
        | Op::LayerNorm { .. }
        | Op::RmsNorm { .. }
        | Op::GroupNorm { .. }
        | Op::Softmax { .. }
        | Op::Attention { .. }
        | Op::SelectiveScan { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::CumSum { .. } => Class::Heavy,
        Op::Dequantize { .. } => Class::Elementwise,
        Op::Quantize { scheme, .. } => match scheme {
            QuantScheme::PerTensor
            | QuantScheme::PerChannel { .. }
            | QuantScheme::PerGroup { .. } => Class::Elementwise,
            QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. } => Class::Heavy,
        },
        Op::CacheRead { .. } | Op::CacheWrite { .. } | Op::StepGate { .. } => Class::Unsupported,
    }
}

/// What a consumer needs of an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Any strided view of a buffer.
    View,
    /// A view whose last axis has stride 1 (attention heads).
    Heads,
    /// The dense row-major layout at offset 0.
    Dense,
}

/// Start of a slice along an axis of extent `n` (ONNX clamping), as a polynomial.
pub(crate) fn slice_start(n: &Dim, start: i64, step: i64) -> Option<Vec<Term>> {
    if let Some(n) = n.as_fixed() {
        let n = i64::try_from(n).ok()?;
        let s = if start < 0 {
            start.saturating_add(n)
        } else {
            start
        };
        let s = if step > 0 {
            s.clamp(0, n)
        } else {
            s.clamp(-1, n - 1)
        };
        return Some(if s == 0 {
            vec![]
        } else {
            vec![Term::constant(s)]
        });
    }
    let nt = super::view::dim_term(n)?;
    Some(if step < 0 && start >= i64::from(i32::MAX) {
        vec![nt, Term::constant(-1)]
    } else if start < 0 {
        vec![nt, Term::constant(start)]
    } else if start == 0 {
        vec![]
    } else {
        vec![Term::constant(start)]
    })
}

/// Groups of a reshape that only splits axes: for each axis of `from`, the axes of `to`
/// whose coordinates combine into it (`None` if some axes are merged).
pub(crate) fn split_groups(from: &Shape, to: &Shape) -> Option<Vec<(usize, Vec<usize>)>> {
    let one = Dim::fixed(1);
    let mut out_axes = to
        .dims()
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != one)
        .peekable();
    let mut groups = Vec::new();
    for (i, d) in from.dims().iter().enumerate() {
        if *d == one {
            continue;
        }
        let mut prod = Dim::fixed(1);
        let mut axes = Vec::new();
        while prod != *d {
            let (j, dj) = out_axes.next()?;
            prod = prod.checked_mul(dj)?;
            d.checked_div(&prod)?;
            axes.push(j);
        }
        groups.push((i, axes));
    }
    if out_axes.next().is_some() {
        return None;
    }
    Some(groups)
}

impl Lowerer<'_> {
    /// Class of node `n`.
    pub fn class_of(&self, n: NodeId) -> Class {
        class(&self.g.node(n).op)
    }

    /// True if `v` is a graph output.
    pub fn is_output(&self, v: Value) -> bool {
        self.g.outputs().contains(&v)
    }

    /// Decide materialization and epilogue fusion.
    pub fn plan(&mut self) -> Result<(), LowerError> {
        // Live nodes (reachable backwards from the outputs).
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = self.g.outputs().iter().map(|v| v.node).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g.node(n).inputs().iter().map(|v| v.node));
            }
        }
        self.order.retain(|n| live.contains(n));
        for &n in &self.order {
            for v in self.g.node(n).inputs() {
                *self.uses.entry(*v).or_insert(0) += 1;
            }
        }
        for v in self.g.outputs() {
            *self.uses.entry(*v).or_insert(0) += 1;
        }
        let order = self.order.clone();
        for &n in &order {
            let node = self.g.node(n);
            match self.class_of(n) {
                Class::Unsupported => {
                    return Err(self.unsupported(n, unsupported_reason(&node.op)));
                }
                Class::Source => {}
                Class::Heavy => {
                    for o in 0..node.op.num_outputs() {
                        self.mat.insert(Value::new(n, o as u32));
                    }
                }
                Class::Elementwise => {
                    let v = Value::new(n, 0);
                    if self.uses.get(&v).copied().unwrap_or(0) != 1 || self.is_output(v) {
                        self.mat.insert(v);
                    }
                }
                Class::Movement => {
                    for o in 0..node.op.num_outputs() {
                        let v = Value::new(n, o as u32);
                        let many = self.uses.get(&v).copied().unwrap_or(0) > 1;
                        let lazy_below = node.inputs().iter().any(|i| self.has_lazy_work(*i));
                        if self.is_output(v) || (many && lazy_below) {
                            self.mat.insert(v);
                        }
                    }
                }
            }
        }
        // Operand requirements, to a fixpoint (materializing only ever adds buffers).
        loop {
            let mut changed = false;
            for &n in &order {
                for (slot, need) in self.needs(n)? {
                    let v = self.input(n, slot)?;
                    if !self.satisfies(v, need)? {
                        if !self.mat.insert(v) {
                            return Err(self.unsupported(
                                n,
                                format!("operand {slot} in the layout the kernel needs ({need:?})"),
                            ));
                        }
                        changed = true;
                    }
                }
                // A reshape that merges axes reads its input through a view.
                // (A reshape that splits axes of computed concat/pad work would read a
                // piecewise axis along several iteration axes: materialize that work.)
                if let Op::Reshape { shape } = &self.g.node(n).op {
                    let x = self.input(n, 0)?;
                    let merges = split_groups(&self.shape(x)?, shape).is_none();
                    if (merges || self.lazy_piecewise(x, 0))
                        && self.derived_view(Value::new(n, 0))?.is_none()
                        && self.mat.insert(x)
                    {
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        self.plan_epilogues()
    }

    /// True if `v` stands for elementwise work that is not in a buffer.
    fn has_lazy_work(&self, v: Value) -> bool {
        if self.mat.contains(&v) {
            return false;
        }
        let node = self.g.node(v.node);
        match self.class_of(v.node) {
            Class::Elementwise | Class::Heavy => true,
            Class::Movement => node.inputs().iter().any(|i| self.has_lazy_work(*i)),
            Class::Source | Class::Unsupported => false,
        }
    }

    /// True if un-materialized work behind `v` contains a concat or pad.
    fn lazy_piecewise(&self, v: Value, depth: usize) -> bool {
        if self.mat.contains(&v) || depth > 64 {
            return depth > 64;
        }
        let node = self.g.node(v.node);
        if let Op::Concat { .. } | Op::Pad { .. } = node.op {
            return true;
        }
        match self.class_of(v.node) {
            Class::Elementwise | Class::Movement => node
                .inputs()
                .iter()
                .any(|i| self.lazy_piecewise(*i, depth + 1)),
            Class::Source | Class::Heavy | Class::Unsupported => false,
        }
    }

    fn needs(&self, n: NodeId) -> Result<Vec<(usize, Need)>, LowerError> {
        let node = self.g.node(n);
        Ok(match &node.op {
            Op::MatMul | Op::Gemm { .. } => vec![(0, Need::View), (1, Need::View)],
            Op::Gather { .. } => vec![(0, Need::View)],
            Op::Attention { has_mask, .. } => {
                let mut v = vec![(0, Need::Heads), (1, Need::Heads), (2, Need::Heads)];
                if *has_mask {
                    v.push((3, Need::View));
                }
                v
            }
            Op::Conv { .. } => vec![(0, Need::Dense), (1, Need::Dense)],
            Op::SelectiveScan { .. } => {
                (0..node.inputs().len()).map(|i| (i, Need::Dense)).collect()
            }
            // Gathered operands: the resized input, block scales and zero points.
            Op::Resize { .. } => vec![(0, Need::View)],
            Op::Dequantize {
                scheme,
                has_zero_point,
                ..
            } => block_operands(scheme, *has_zero_point, 1)
                .into_iter()
                .map(|s| (s, Need::View))
                .collect(),
            Op::Quantize {
                scheme,
                has_zero_point,
                ..
            } => match scheme {
                // NVFP4 and MX quantize read a ragged input through a clamping table.
                QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. } => {
                    if self.block_quant_ragged(n) {
                        vec![(0, Need::View)]
                    } else {
                        vec![]
                    }
                }
                QuantScheme::PerTensor
                | QuantScheme::PerChannel { .. }
                | QuantScheme::PerGroup { .. } => block_operands(scheme, *has_zero_point, 1)
                    .into_iter()
                    .map(|s| (s, Need::View))
                    .collect(),
            },
            Op::QMatMul {
                a_scheme, b_scheme, ..
            } => {
                let b_slot = 1 + a_scheme
                    .as_ref()
                    .map_or(0, dqc_ir::op::dequant_extra_inputs);
                let mut v = a_scheme
                    .as_ref()
                    .map(|s| block_operands(s, false, 1))
                    .unwrap_or_default();
                v.extend(block_operands(b_scheme, false, b_slot + 1));
                v.into_iter().map(|s| (s, Need::View)).collect()
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
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::GroupNorm { .. }
            | Op::Softmax { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::CumSum { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::CacheRead { .. }
            | Op::CacheWrite { .. }
            | Op::StepGate { .. } => vec![],
        })
    }

    fn satisfies(&self, v: Value, need: Need) -> Result<bool, LowerError> {
        let Some(view) = self.view_of(v)? else {
            return Ok(false);
        };
        Ok(match need {
            Need::View => true,
            Need::Heads => view
                .strides
                .last()
                .is_some_and(|t| simplify(&vec![t.clone()]) == vec![Term::constant(1)]),
            Need::Dense => view.is_dense(&self.shape(v)?),
        })
    }

    /// The layout a materialized value (or source) has in its own buffer.
    pub fn natural_view(&self, v: Value) -> Result<View, LowerError> {
        let shape = self.shape(v)?;
        if let Some(perm) = self.row_perm(v.node)? {
            // Written densely with the row axis moved last.
            let pshape = Shape(perm.iter().map(|&p| shape.dims()[p].clone()).collect());
            let ds =
                dense_strides(&pshape).ok_or_else(|| self.malformed(v.node, "shape overflows"))?;
            let mut strides = vec![Term::constant(0); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                strides[p] = ds[j].clone();
            }
            return Ok(View {
                offset: vec![],
                strides,
            });
        }
        View::dense(&shape).ok_or_else(|| self.malformed(v.node, "shape overflows"))
    }

    /// For per-element row ops along a non-last axis: the permutation putting it last.
    pub fn row_perm(&self, n: NodeId) -> Result<Option<Vec<usize>>, LowerError> {
        let axis = if let Op::Softmax { axis } | Op::CumSum { axis, .. } = &self.g.node(n).op {
            *axis
        } else {
            return Ok(None);
        };
        let x = self.input(n, 0)?;
        let rank = self.shape(x)?.rank();
        let a = dqc_ir::shape::normalize_axis(axis, rank)
            .ok_or_else(|| self.malformed(n, format!("axis {axis} out of range")))?;
        if a + 1 == rank {
            return Ok(None);
        }
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != a).collect();
        perm.push(a);
        Ok(Some(perm))
    }

    /// The strided view `v` is, over the buffer of a materialized value or source, under
    /// the current decisions (`None` if `v` needs computing).
    pub fn view_of(&self, v: Value) -> Result<Option<View>, LowerError> {
        let n = v.node;
        let node = self.g.node(n);
        if self.mat.contains(&v) || matches!(node.op, Op::Input { .. } | Op::Constant(_)) {
            return self.natural_view(v).map(Some);
        }
        self.derived_view(v)
    }

    /// The view a movement value is of its input's view (ignoring any buffer of its own).
    pub fn derived_view(&self, v: Value) -> Result<Option<View>, LowerError> {
        let n = v.node;
        let node = self.g.node(n);
        let x = match node.inputs().first() {
            Some(x) => *x,
            None => return Ok(None),
        };
        if !is_view_movement(&node.op) {
            return Ok(None);
        }
        let Some(base) = self.view_of(x)? else {
            return Ok(None);
        };
        let xs = self.shape(x)?;
        let out = self.shape(v)?;
        let bad = || self.malformed(n, "view arithmetic overflows");
        Ok(match &node.op {
            Op::Transpose { perm } => Some(View {
                offset: base.offset.clone(),
                strides: perm
                    .iter()
                    .map(|&p| base.strides.get(p).cloned().ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            }),
            Op::Slice {
                axes,
                starts,
                ends: _,
                steps,
            } => {
                let mut view = base.clone();
                for (i, &a) in axes.iter().enumerate() {
                    let a = xs.axis(a).ok_or_else(|| self.malformed(n, "slice axis"))?;
                    let step = steps.get(i).copied().unwrap_or(1);
                    let start = slice_start(&xs.dims()[a], starts[i], step).ok_or_else(bad)?;
                    let s = view.strides[a].clone();
                    view.offset
                        .extend(super::view::mul_poly(&start, &s).ok_or_else(bad)?);
                    view.strides[a] =
                        super::view::mul_term(&s, &Term::constant(step)).ok_or_else(bad)?;
                }
                view.offset = simplify(&view.offset);
                Some(view)
            }
            Op::Expand { .. } => {
                let shift = out.rank() - xs.rank();
                let mut strides = vec![Term::constant(0); out.rank()];
                for (d, dim) in xs.dims().iter().enumerate() {
                    if *dim == out.dims()[d + shift] {
                        strides[d + shift] = base.strides[d].clone();
                    }
                }
                Some(View {
                    offset: base.offset.clone(),
                    strides,
                })
            }
            Op::Reshape { .. } => base.reshape(&xs, &out),
            Op::Split { axis, sizes } => {
                let a = xs
                    .axis(*axis)
                    .ok_or_else(|| self.malformed(n, "split axis"))?;
                let before: u64 = sizes.iter().take(v.output as usize).sum();
                let mut view = base.clone();
                view.offset.extend(
                    super::view::mul_poly(&vec![Term::constant(before as i64)], &base.strides[a])
                        .ok_or_else(bad)?,
                );
                view.offset = simplify(&view.offset);
                Some(view)
            }
            Op::Input { .. }
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Modulate
            | Op::MatMul
            | Op::Gemm { .. }
            | Op::Conv { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::GroupNorm { .. }
            | Op::Softmax { .. }
            | Op::Gelu { .. }
            | Op::Silu
            | Op::Attention { .. }
            | Op::SelectiveScan { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::CumSum { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
            | Op::Pad { .. }
            | Op::Resize { .. }
            | Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::QMatMul { .. }
            | Op::CacheRead { .. }
            | Op::CacheWrite { .. }
            | Op::StepGate { .. } => None,
        })
    }

    /// Epilogue fusion: a heavy value used once by an elementwise chain of its own shape
    /// is computed by the kernel of the chain's materialized root.
    fn plan_epilogues(&mut self) -> Result<(), LowerError> {
        let order = self.order.clone();
        for &h in &order {
            let hv = Value::new(h, 0);
            if self.class_of(h) != Class::Heavy
                || self.uses.get(&hv).copied() != Some(1)
                || self.is_output(hv)
                || !self.epilogue_is_identity(h)?
            {
                continue;
            }
            let shape = self.shape(hv)?;
            let mut cur = hv;
            let root = loop {
                let users = self.g.uses(cur);
                let [(c, slot)] = users.as_slice() else {
                    break None;
                };
                let (c, slot) = (*c, *slot);
                if self.class_of(c) != Class::Elementwise {
                    break None;
                }
                let cv = Value::new(c, 0);
                if self.shape(cv)? != shape || self.shape(cur)? != shape {
                    break None;
                }
                if matches!(self.g.node(c).op, Op::Modulate) && slot != 0 {
                    break None;
                }
                if self.mat.contains(&cv) {
                    break Some(cv);
                }
                if self.uses.get(&cv).copied() != Some(1) {
                    break None;
                }
                cur = cv;
            };
            if let Some(r) = root
                && !self.absorbs.contains_key(&r)
            {
                self.absorbs.insert(r, h);
                self.absorbed.insert(h);
                self.mat.remove(&hv);
            }
        }
        Ok(())
    }

    /// True if the kernel of heavy node `h` evaluates its epilogue at exactly the
    /// coordinates of `h`'s output shape.
    fn epilogue_is_identity(&self, h: NodeId) -> Result<bool, LowerError> {
        let node = self.g.node(h);
        Ok(match &node.op {
            Op::MatMul => {
                self.shape(self.input(h, 0)?)?.rank() >= 2
                    && self.shape(self.input(h, 1)?)?.rank() >= 2
            }
            Op::QMatMul { .. } => self.shape(self.input(h, 0)?)?.rank() >= 2,
            Op::Gemm { .. } | Op::Conv { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. } => true,
            Op::Softmax { .. } | Op::CumSum { .. } => self.row_perm(h)?.is_none(),
            Op::Reduce { .. } | Op::ArgReduce { .. } => {
                let (kept, _) = self.reduce_axes(h)?;
                let xs = self.shape(self.input(h, 0)?)?;
                let kept_shape = Shape(kept.iter().map(|&a| xs.dims()[a].clone()).collect());
                kept_shape == self.shape(Value::new(h, 0))?
            }
            Op::GroupNorm { .. } | Op::Attention { .. } | Op::SelectiveScan { .. } => false,
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
            | Op::StepGate { .. } => false,
        })
    }

    /// Kept and reduced axes of a `Reduce` or `ArgReduce` node.
    pub fn reduce_axes(&self, n: NodeId) -> Result<(Vec<usize>, Vec<usize>), LowerError> {
        let rank = self.shape(self.input(n, 0)?)?.rank();
        let op = &self.g.node(n).op;
        let axes: Vec<i64> = if let Op::Reduce { axes, .. } = op {
            axes.clone()
        } else if let Op::ArgReduce { axis, .. } = op {
            vec![*axis]
        } else {
            return Err(self.malformed(n, "not a reduction"));
        };
        let mut red: Vec<usize> = if axes.is_empty() {
            (0..rank).collect()
        } else {
            axes.iter()
                .map(|&a| {
                    dqc_ir::shape::normalize_axis(a, rank)
                        .ok_or_else(|| self.malformed(n, format!("axis {a} out of range")))
                })
                .collect::<Result<_, _>>()?
        };
        red.sort_unstable();
        red.dedup();
        let kept = (0..rank).filter(|a| !red.contains(a)).collect();
        Ok((kept, red))
    }
}

/// Operand slots of a quantized tensor's scale (at `first`) and zero point that are read
/// per block, through a gather: the scale and zero point of the block schemes.
fn block_operands(scheme: &QuantScheme, has_zero_point: bool, first: usize) -> Vec<usize> {
    match scheme {
        QuantScheme::PerTensor | QuantScheme::PerChannel { .. } => vec![],
        QuantScheme::PerGroup { .. } if has_zero_point => vec![first, first + 1],
        QuantScheme::PerGroup { .. } | QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. } => {
            vec![first]
        }
    }
}

/// Why an op of class [`Class::Unsupported`] is not lowered.
fn unsupported_reason(op: &Op) -> String {
    if let Op::CacheRead { .. } | Op::CacheWrite { .. } | Op::StepGate { .. } = op {
        "step caching (cache slots and step gates are a later issue)".into()
    } else {
        format!("op {}", op.name())
    }
}

/// Movement ops that are views of their input's buffer when the input is one.
pub(crate) fn is_view_movement(op: &Op) -> bool {
    match op {
        Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Expand { .. }
        | Op::Reshape { .. }
        | Op::Split { .. } => true,
        Op::Input { .. }
        | Op::Constant(_)
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Modulate
        | Op::MatMul
        | Op::Gemm { .. }
        | Op::Conv { .. }
        | Op::LayerNorm { .. }
        | Op::RmsNorm { .. }
        | Op::GroupNorm { .. }
        | Op::Softmax { .. }
        | Op::Gelu { .. }
        | Op::Silu
        | Op::Attention { .. }
        | Op::SelectiveScan { .. }
        | Op::Reduce { .. }
        | Op::ArgReduce { .. }
        | Op::CumSum { .. }
        | Op::Concat { .. }
        | Op::Gather { .. }
        | Op::Pad { .. }
        | Op::Resize { .. }
        | Op::Quantize { .. }
        | Op::Dequantize { .. }
        | Op::QMatMul { .. }
        | Op::CacheRead { .. }
        | Op::CacheWrite { .. }
        | Op::StepGate { .. } => false,
    }
}
