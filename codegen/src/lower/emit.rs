//! Building expressions: a value read at some coordinates of a kernel's iteration space,
//! inlining un-materialized elementwise and movement producers.

use super::plan::{Class, is_view_movement, slice_start, split_groups};
use super::view::{
    AxisMap, CMap, View, add_axis, as_const, broadcast, const_axis, dim_term, identity, scale_axis,
    simplify,
};
use super::{LowerError, Lowerer, SMALL_CONST};
use crate::spec::{BufferId, Expr, ExprId, Exprs, Poly, Scalar, Term};
use dqc_ir::graph::Value;
use dqc_ir::op::PadMode;
use dqc_ir::{DType, Dim, Op, Shape};
use std::collections::HashMap;

/// Builds piece `p` of a piecewise expression at the given coordinates.
type PieceBody<'a, L> = dyn Fn(&mut L, &mut KCtx, usize, &CMap) -> Result<ExprId, LowerError> + 'a;

/// The expression arena and argument list of the kernel being built.
pub(crate) struct KCtx {
    /// Expressions.
    pub exprs: Exprs,
    /// Buffers bound to the arguments.
    pub args: Vec<BufferId>,
    /// Rank of the current iteration space.
    pub rank: usize,
    /// The heavy value computed by this kernel and its expression (epilogue fusion).
    pub epi: Option<(Value, ExprId)>,
    memo: HashMap<(Value, CMap), ExprId>,
}

impl KCtx {
    /// A new context over a rank-`rank` space.
    pub fn new(rank: usize) -> KCtx {
        KCtx {
            exprs: Exprs::new(),
            args: Vec::new(),
            rank,
            epi: None,
            memo: HashMap::new(),
        }
    }

    /// Switch to another iteration space (prologue → epilogue).
    pub fn set_space(&mut self, rank: usize) {
        self.rank = rank;
        self.memo.clear();
    }

    /// The argument index of buffer `b` (bound on first use).
    pub fn arg(&mut self, b: BufferId) -> u32 {
        if let Some(i) = self.args.iter().position(|&x| x == b) {
            return i as u32;
        }
        self.args.push(b);
        (self.args.len() - 1) as u32
    }

    /// Append an expression node.
    pub fn push(&mut self, dtype: DType, e: Expr) -> ExprId {
        self.exprs.push(dtype, e)
    }

    /// A literal of `dtype`.
    pub fn constant(&mut self, dtype: DType, v: f64) -> ExprId {
        let s = if dtype.is_float() {
            Scalar::F(v)
        } else if dtype == DType::Bool {
            Scalar::B(v != 0.0)
        } else {
            Scalar::I(v as i64)
        };
        self.push(dtype, Expr::Const(s))
    }
}

impl Lowerer<'_> {
    /// The value a movement chain reads, ending at a buffer or a constant.
    fn view_root(&self, mut v: Value) -> Value {
        loop {
            if self.bufs.contains_key(&v) || self.mat.contains(&v) {
                return v;
            }
            let node = self.g.node(v.node);
            if !is_view_movement(&node.op) {
                return v;
            }
            match node.inputs().first() {
                Some(x) => v = *x,
                None => return v,
            }
        }
    }

    /// Buffer and view of `v`, if it is a view of a buffer (creating a weight buffer for a
    /// constant).
    pub fn buffer_view(&mut self, v: Value) -> Result<Option<(BufferId, View)>, LowerError> {
        if let Some(bv) = self.bufs.get(&v) {
            return Ok(Some(bv.clone()));
        }
        let Some(view) = self.view_of(v)? else {
            return Ok(None);
        };
        let root = self.view_root(v);
        let buf = if let Some((b, _)) = self.bufs.get(&root) {
            *b
        } else if matches!(self.g.node(root.node).op, Op::Constant(_)) {
            self.weight(root.node)?
        } else {
            return Ok(None);
        };
        Ok(Some((buf, view)))
    }

    /// Load `v` through `view` of buffer `b` at `cm`.
    fn load(
        &mut self,
        k: &mut KCtx,
        v: Value,
        b: BufferId,
        view: &View,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let map = view
            .index_map(cm, k.rank)
            .ok_or_else(|| self.unsupported(v.node, "an index map that is not affine"))?;
        let dtype = self.ty(v)?.dtype;
        let arg = k.arg(b);
        Ok(k.push(dtype, Expr::Load { arg, map }))
    }

    /// The expression of value `v` at the coordinates `cm` of the kernel's space.
    pub fn emit(&mut self, k: &mut KCtx, v: Value, cm: &CMap) -> Result<ExprId, LowerError> {
        if let Some(&id) = k.memo.get(&(v, cm.clone())) {
            return Ok(id);
        }
        if let Some((h, id)) = k.epi
            && h == v
        {
            if *cm != identity(k.rank) {
                return Err(self.malformed(v.node, "epilogue value read off its coordinates"));
            }
            return Ok(id);
        }
        let id = if let Some((b, view)) = self.bufs.get(&v).cloned() {
            self.load(k, v, b, &view, cm)?
        } else {
            self.emit_node(k, v, cm)?
        };
        k.memo.insert((v, cm.clone()), id);
        Ok(id)
    }

    /// The expression computing `v` itself (ignoring any buffer of `v`).
    pub fn emit_node(&mut self, k: &mut KCtx, v: Value, cm: &CMap) -> Result<ExprId, LowerError> {
        let n = v.node;
        let node = self.g.node(n);
        let out = self.shape(v)?;
        let dtype = self.ty(v)?.dtype;
        if let Op::Constant(t) = &node.op {
            let vals = t.to_f32_vec();
            if t.numel() <= SMALL_CONST
                && !vals.is_empty()
                && vals.iter().all(|x| x.to_bits() == vals[0].to_bits())
                && (dtype.is_float() || t.to_i64_vec().iter().all(|&i| i == t.to_i64_vec()[0]))
            {
                let s = if dtype.is_float() {
                    Scalar::F(f64::from(vals[0]))
                } else if dtype == DType::Bool {
                    Scalar::B(vals[0] != 0.0)
                } else {
                    Scalar::I(t.to_i64_vec()[0])
                };
                return Ok(k.push(dtype, Expr::Const(s)));
            }
        }
        if let Op::Constant(_) = &node.op {
            let b = self.weight(n)?;
            let view = self.natural_view(v)?;
            return self.load(k, v, b, &view, cm);
        }
        if self.class_of(n) == Class::Movement
            && let Some(view) = self.derived_view(v)?
            && let Some(x) = node.inputs().first()
        {
            let root = self.view_root(*x);
            let b = if let Some((b, _)) = self.bufs.get(&root) {
                Some(*b)
            } else if matches!(self.g.node(root.node).op, Op::Constant(_)) {
                Some(self.weight(root.node)?)
            } else {
                None
            };
            if let Some(b) = b {
                return self.load(k, v, b, &view, cm);
            }
        }
        let operand =
            |s: &Self, k: &mut KCtx, slot: usize, cm: &CMap| -> Result<(Value, CMap), LowerError> {
                let _ = k;
                let x = s.input(n, slot)?;
                let xs = s.shape(x)?;
                let m = broadcast(cm, &xs, &out)
                    .ok_or_else(|| s.malformed(n, format!("operand {slot} does not broadcast")))?;
                Ok((x, m))
            };
        let op = node.op.clone();
        match &op {
            Op::Unary(u) => {
                let (x, m) = operand(self, k, 0, cm)?;
                let x = self.emit(k, x, &m)?;
                Ok(k.push(dtype, Expr::Unary { op: *u, x }))
            }
            Op::Binary(bop) => {
                let (a, ma) = operand(self, k, 0, cm)?;
                let (b, mb) = operand(self, k, 1, cm)?;
                let a = self.emit(k, a, &ma)?;
                let b = self.emit(k, b, &mb)?;
                Ok(k.push(dtype, Expr::Binary { op: *bop, a, b }))
            }
            Op::Where => {
                let (c, mc) = operand(self, k, 0, cm)?;
                let (a, ma) = operand(self, k, 1, cm)?;
                let (b, mb) = operand(self, k, 2, cm)?;
                let cond = self.emit(k, c, &mc)?;
                let a = self.emit(k, a, &ma)?;
                let b = self.emit(k, b, &mb)?;
                Ok(k.push(dtype, Expr::Select { cond, a, b }))
            }
            Op::Cast { to } => {
                let (x, m) = operand(self, k, 0, cm)?;
                let xd = self.ty(x)?.dtype;
                let x = self.emit(k, x, &m)?;
                if xd == *to {
                    return Ok(x);
                }
                Ok(k.push(*to, Expr::Cast { x }))
            }
            Op::Gelu { approx } => {
                let (x, m) = operand(self, k, 0, cm)?;
                let x = self.emit(k, x, &m)?;
                Ok(k.push(dtype, Expr::Gelu { approx: *approx, x }))
            }
            Op::Silu => {
                let (x, m) = operand(self, k, 0, cm)?;
                let x = self.emit(k, x, &m)?;
                Ok(k.push(dtype, Expr::Silu { x }))
            }
            Op::Modulate => {
                let x = self.emit(k, self.input(n, 0)?, cm)?;
                let (first, last) = match (cm.first(), cm.last()) {
                    (Some(f), Some(l)) if cm.len() >= 2 => (f.clone(), l.clone()),
                    _ => return Err(self.malformed(n, "modulate needs rank ≥ 2")),
                };
                let bc = vec![first, last];
                let shift = self.emit(k, self.input(n, 1)?, &bc)?;
                let scale = self.emit(k, self.input(n, 2)?, &bc)?;
                let one = k.constant(dtype, 1.0);
                let s1 = k.push(
                    dtype,
                    Expr::Binary {
                        op: dqc_ir::op::BinaryOp::Add,
                        a: one,
                        b: scale,
                    },
                );
                let m = k.push(
                    dtype,
                    Expr::Binary {
                        op: dqc_ir::op::BinaryOp::Mul,
                        a: x,
                        b: s1,
                    },
                );
                Ok(k.push(
                    dtype,
                    Expr::Binary {
                        op: dqc_ir::op::BinaryOp::Add,
                        a: m,
                        b: shift,
                    },
                ))
            }
            Op::Dequantize { .. } => self.emit_dequantize(k, n, cm),
            Op::Quantize { .. } => self.emit_quantize(k, n, cm),
            Op::Transpose { perm } => {
                let mut m = vec![const_axis(0); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    *m.get_mut(p).ok_or_else(|| self.malformed(n, "perm"))? = cm[i].clone();
                }
                self.emit(k, self.input(n, 0)?, &m)
            }
            Op::Slice {
                axes,
                starts,
                ends: _,
                steps,
            } => {
                let x = self.input(n, 0)?;
                let xs = self.shape(x)?;
                let mut m = cm.clone();
                for (i, &a) in axes.iter().enumerate() {
                    let a = xs.axis(a).ok_or_else(|| self.malformed(n, "slice axis"))?;
                    let step = steps.get(i).copied().unwrap_or(1);
                    let start = slice_start(&xs.dims()[a], starts[i], step)
                        .ok_or_else(|| self.malformed(n, "slice start"))?;
                    let scaled = scale_axis(&cm[a], &Term::constant(step))
                        .ok_or_else(|| self.malformed(n, "slice step"))?;
                    m[a] = add_axis(
                        &scaled,
                        &AxisMap {
                            off: start,
                            terms: vec![],
                        },
                    );
                }
                self.emit(k, x, &m)
            }
            Op::Expand { .. } => {
                let x = self.input(n, 0)?;
                let m = broadcast(cm, &self.shape(x)?, &out)
                    .ok_or_else(|| self.malformed(n, "expand"))?;
                self.emit(k, x, &m)
            }
            Op::Split { axis, sizes } => {
                let x = self.input(n, 0)?;
                let xs = self.shape(x)?;
                let a = xs
                    .axis(*axis)
                    .ok_or_else(|| self.malformed(n, "split axis"))?;
                let before: u64 = sizes.iter().take(v.output as usize).sum();
                let mut m = cm.clone();
                m[a] = add_axis(&cm[a], &const_axis(before as i64));
                self.emit(k, x, &m)
            }
            Op::Reshape { shape } => {
                let x = self.input(n, 0)?;
                let xs = self.shape(x)?;
                let groups = split_groups(&xs, shape).ok_or_else(|| {
                    self.unsupported(n, "a reshape of a computed value that merges axes")
                })?;
                let mut m = vec![const_axis(0); xs.rank()];
                for (i, axes) in groups {
                    let mut acc = const_axis(0);
                    let mut mult = Dim::fixed(1);
                    for &j in axes.iter().rev() {
                        let t = dim_term(&mult).ok_or_else(|| self.malformed(n, "reshape"))?;
                        let s =
                            scale_axis(&cm[j], &t).ok_or_else(|| self.malformed(n, "reshape"))?;
                        acc = add_axis(&acc, &s);
                        mult = mult
                            .checked_mul(&shape.dims()[j])
                            .ok_or_else(|| self.malformed(n, "reshape"))?;
                    }
                    m[i] = acc;
                }
                self.emit(k, x, &m)
            }
            Op::Concat { axis } => {
                let a = out
                    .axis(*axis)
                    .ok_or_else(|| self.malformed(n, "concat axis"))?;
                let mut starts: Vec<Poly> = Vec::new();
                let mut acc: Poly = vec![];
                for slot in 0..node.inputs().len() {
                    starts.push(simplify(&acc));
                    let d = self.shape(self.input(n, slot)?)?.dims()[a].clone();
                    acc.push(dim_term(&d).ok_or_else(|| self.malformed(n, "concat"))?);
                }
                let pieces: Vec<(Poly, usize)> = starts
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, s)| (s, i))
                    .collect();
                self.piecewise(k, v, cm, a, &pieces, &|s, k, slot, m| {
                    let x = s.input(n, slot)?;
                    // Coordinates of the piece: the concat coordinate minus its start.
                    let neg: Poly = starts[slot]
                        .iter()
                        .map(|t| Term {
                            coeff: -t.coeff,
                            dim: t.dim.clone(),
                        })
                        .collect();
                    let mut mx = m.clone();
                    mx[a] = add_axis(
                        &m[a],
                        &AxisMap {
                            off: neg,
                            terms: vec![],
                        },
                    );
                    s.emit(k, x, &mx)
                })
            }
            Op::Pad { pads, mode } => {
                let x = self.input(n, 0)?;
                let xs = self.shape(x)?;
                if pads.len() != 2 * xs.rank() {
                    return Err(self.malformed(n, "pad needs a begin and an end per axis"));
                }
                if !matches!(mode, PadMode::Constant(_)) {
                    // Reflect and edge read x at a mirrored or clamped coordinate: the
                    // extent must be known to be large enough.
                    for (a, d) in xs.dims().iter().enumerate() {
                        let (lo, hi) = (pads[a], pads[a + xs.rank()]);
                        if lo.max(hi) == 0 {
                            continue;
                        }
                        let ok = d.as_fixed().is_some_and(|d| match mode {
                            PadMode::Reflect => lo.max(hi) < d,
                            PadMode::Edge | PadMode::Constant(_) => d > 0,
                        });
                        if !ok {
                            return Err(self.unsupported(
                                n,
                                format!(
                                    "{mode:?} padding ({lo}, {hi}) of an axis of extent {d} \
                                     (needs a fixed extent above the pads)"
                                ),
                            ));
                        }
                    }
                }
                self.emit_pad(k, v, x, &xs, pads, *mode, cm, 0)
            }
            Op::Gather { axis } => {
                let data = self.input(n, 0)?;
                let idx = self.input(n, 1)?;
                let ds = self.shape(data)?;
                let is = self.shape(idx)?;
                let a = ds
                    .axis(*axis)
                    .ok_or_else(|| self.malformed(n, "gather axis"))?;
                let (b, view) = self
                    .buffer_view(data)?
                    .ok_or_else(|| self.malformed(n, "gather data is not a view"))?;
                let mut dm = Vec::with_capacity(ds.rank());
                for d in 0..ds.rank() {
                    dm.push(if d < a {
                        cm[d].clone()
                    } else if d == a {
                        const_axis(0)
                    } else {
                        cm[d + is.rank() - 1].clone()
                    });
                }
                let im: CMap = cm[a..a + is.rank()].to_vec();
                let index = self.emit(k, idx, &im)?;
                let map = view
                    .index_map(&dm, k.rank)
                    .ok_or_else(|| self.unsupported(n, "a gather map that is not affine"))?;
                let arg = k.arg(b);
                Ok(k.push(
                    dtype,
                    Expr::Gather {
                        arg,
                        map,
                        index,
                        axis_stride: view.strides[a].clone(),
                        axis_len: ds.dims()[a].clone(),
                    },
                ))
            }
            Op::Input { .. } | Op::Constant(_) => Err(self.malformed(n, "source without a buffer")),
            Op::MatMul
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
            | Op::CumSum { .. }
            | Op::QMatMul { .. } => {
                Err(self.malformed(n, "kernel result read before it is computed"))
            }
            Op::Resize { .. } => self.emit_resize(k, n, cm),
            Op::CacheRead { .. } | Op::CacheWrite { .. } | Op::StepGate { .. } => {
                Err(self.unsupported(n, "this op"))
            }
        }
    }

    /// Pad, one padded axis at a time from `from`.
    #[allow(clippy::too_many_arguments)]
    fn emit_pad(
        &mut self,
        k: &mut KCtx,
        v: Value,
        x: Value,
        xs: &Shape,
        pads: &[u64],
        mode: PadMode,
        cm: &CMap,
        from: usize,
    ) -> Result<ExprId, LowerError> {
        let r = xs.rank();
        let Some(a) = (from..r).find(|&a| pads[a] != 0 || pads[a + r] != 0) else {
            // Every padded axis is resolved: read x at the shifted coordinates.
            let mut m = cm.clone();
            for (a, ma) in m.iter_mut().enumerate() {
                *ma = add_axis(ma, &const_axis(-(pads[a] as i64)));
            }
            return self.emit(k, x, &m);
        };
        let dtype = self.ty(v)?.dtype;
        let begin = pads[a] as i64;
        let inner_end: Poly = simplify(&vec![
            Term::constant(begin),
            dim_term(&xs.dims()[a]).ok_or_else(|| self.malformed(v.node, "pad"))?,
        ]);
        let pieces = vec![
            (vec![], 0usize),
            (vec![Term::constant(begin)], 1),
            (inner_end, 2),
        ];
        let n_term = dim_term(&xs.dims()[a]).ok_or_else(|| self.malformed(v.node, "pad"))?;
        self.piecewise(k, v, cm, a, &pieces, &|s, k, piece, m| {
            if piece == 1 {
                return s.emit_pad(k, v, x, xs, pads, mode, m, a + 1);
            }
            // Value coordinate c of the border, as the value coordinate whose shifted
            // position (c − begin) is the element read: edge clamps to begin or
            // begin + n − 1; reflect mirrors to 2·begin − c or 2·begin + 2·n − 2 − c.
            let border = match mode {
                PadMode::Constant(c) => return Ok(k.constant(dtype, f64::from(c))),
                PadMode::Edge if piece == 0 => const_axis(begin),
                PadMode::Edge => AxisMap {
                    off: simplify(&vec![Term::constant(begin - 1), n_term.clone()]),
                    terms: vec![],
                },
                PadMode::Reflect => {
                    let neg = scale_axis(&m[a], &Term::constant(-1))
                        .ok_or_else(|| s.malformed(v.node, "pad"))?;
                    let off = if piece == 0 {
                        vec![Term::constant(2 * begin)]
                    } else {
                        let two_n = super::view::mul_term(&n_term, &Term::constant(2))
                            .ok_or_else(|| s.malformed(v.node, "pad"))?;
                        simplify(&vec![Term::constant(2 * begin - 2), two_n])
                    };
                    add_axis(&neg, &AxisMap { off, terms: vec![] })
                }
            };
            let mut mm = m.clone();
            mm[a] = border;
            s.emit_pad(k, v, x, xs, pads, mode, &mm, a + 1)
        })
    }

    /// A piecewise expression along value axis `a`: piece `p` covers value coordinates
    /// from `pieces[p].0`; `body(piece, cm)` builds it.
    fn piecewise(
        &mut self,
        k: &mut KCtx,
        v: Value,
        cm: &CMap,
        a: usize,
        pieces: &[(Poly, usize)],
        body: &PieceBody<'_, Self>,
    ) -> Result<ExprId, LowerError> {
        let n = v.node;
        let am = &cm[a];
        let dtype = self.ty(v)?.dtype;
        // A constant coordinate picks one piece statically.
        if am.terms.is_empty() {
            let c = as_const(&am.off).ok_or_else(|| {
                self.unsupported(n, "a symbolic constant coordinate of a concat/pad axis")
            })?;
            let mut pick = 0;
            for (p, (s, _)) in pieces.iter().enumerate() {
                let s = as_const(s).ok_or_else(|| self.unsupported(n, "symbolic piece bounds"))?;
                if s <= c {
                    pick = p;
                }
            }
            return body(self, k, pieces[pick].1, cm);
        }
        let [(it, coef)] = am.terms.as_slice() else {
            return Err(self.unsupported(n, "a concat/pad axis read along several axes"));
        };
        let coef_c = as_const(&vec![coef.clone()]);
        let all_const: Option<Vec<i64>> = pieces.iter().map(|(s, _)| as_const(s)).collect();
        if let (Some(m), Some(off), Some(starts)) = (coef_c, as_const(&am.off), all_const)
            && m != 0
        {
            // Value coordinate c = off + m·it; piece p covers starts[p] ≤ c < starts[p+1].
            let mut ranges: Vec<(i64, usize)> = Vec::new();
            for (p, &sp) in starts.iter().enumerate() {
                let next = starts.get(p + 1).copied();
                let (lo, hi) = if m > 0 {
                    (
                        (sp - off).div_euclid(m) + i64::from((sp - off).rem_euclid(m) != 0),
                        next.map(|e| {
                            (e - off).div_euclid(m) + i64::from((e - off).rem_euclid(m) != 0)
                        }),
                    )
                } else {
                    let am_ = -m;
                    (
                        next.map_or(i64::MIN / 4, |e| (off - e).div_euclid(am_) + 1),
                        Some((off - sp).div_euclid(am_) + 1),
                    )
                };
                let lo = lo.max(0);
                if hi.is_some_and(|h| h <= lo) {
                    continue;
                }
                ranges.push((lo, pieces[p].1));
            }
            ranges.sort_by_key(|r| r.0);
            let Some(first) = ranges.first_mut() else {
                return Err(self.malformed(n, "no piece is read"));
            };
            first.0 = 0;
            if ranges.len() == 1 {
                return body(self, k, ranges[0].1, cm);
            }
            let mut ids = Vec::new();
            let mut bounds = Vec::new();
            for (lo, piece) in &ranges {
                ids.push(body(self, k, *piece, cm)?);
                bounds.push(if *lo == 0 {
                    vec![]
                } else {
                    vec![Term::constant(*lo)]
                });
            }
            return Ok(k.push(
                dtype,
                Expr::Piecewise {
                    axis: *it,
                    bounds,
                    pieces: ids,
                },
            ));
        }
        if simplify(&vec![coef.clone()]) != vec![Term::constant(1)] {
            return Err(self.unsupported(n, "a concat/pad axis read with a symbolic stride"));
        }
        // Iteration bounds: value bound − offset.
        let mut bounds: Vec<(Poly, usize)> = Vec::new();
        let off_c = as_const(&am.off);
        for (p, (s, piece)) in pieces.iter().enumerate() {
            let mut b = s.clone();
            b.extend(am.off.iter().map(|t| Term {
                coeff: -t.coeff,
                dim: t.dim.clone(),
            }));
            let b = simplify(&b);
            match (off_c, as_const(&b)) {
                (Some(_), Some(bc)) => {
                    // Drop pieces that end before 0.
                    let next = pieces.get(p + 1).and_then(|(ns, _)| {
                        let mut e = ns.clone();
                        e.extend(am.off.iter().map(|t| Term {
                            coeff: -t.coeff,
                            dim: t.dim.clone(),
                        }));
                        as_const(&simplify(&e))
                    });
                    if next.is_some_and(|e| e <= 0) {
                        continue;
                    }
                    let start = if bc < 0 { vec![] } else { b };
                    bounds.push((start, *piece));
                }
                (Some(0), None) => bounds.push((b, *piece)),
                _ => {
                    if p == 0 && as_const(&b) == Some(0) {
                        bounds.push((vec![], *piece));
                    } else if am.off.is_empty() {
                        bounds.push((b, *piece));
                    } else {
                        return Err(self.unsupported(n, "a symbolic offset into a concat/pad"));
                    }
                }
            }
        }
        let Some(first) = bounds.first_mut() else {
            return Err(self.malformed(n, "no piece is read"));
        };
        first.0 = vec![];
        if bounds.len() == 1 {
            return body(self, k, bounds[0].1, cm);
        }
        let mut ids = Vec::new();
        let mut starts = Vec::new();
        for (b, piece) in &bounds {
            ids.push(body(self, k, *piece, cm)?);
            starts.push(b.clone());
        }
        Ok(k.push(
            dtype,
            Expr::Piecewise {
                axis: *it,
                bounds: starts,
                pieces: ids,
            },
        ))
    }
}
