//! `Resize` as an expression node, with the interpreter's semantics
//! (`ir::interp::resize`).
//!
//! Axes whose size does not change are read at the output coordinate. Along every
//! resized axis (fixed extents) the lowering computes, per output coordinate, the source
//! index (nearest) or the two neighbours and the upper weight (linear) in f64 exactly as
//! the interpreter does, and stores them as tables ([`super::indexed`]):
//! - nearest: one gather of `x` at the tabled source indices (any dtype, copied exactly);
//! - linear: `Σ_corners w · x[corner]` over the `2^r` corners of the `r` resized axes, `w`
//!   the product of the per-axis weights (f32 tables of `t` and `1 − t`), a corner of
//!   weight 0 contributing exactly 0 (a non-finite neighbour does not leak in), summed in
//!   f32 and cast to the output dtype.

use super::emit::KCtx;
use super::indexed::Remap;
use super::view::CMap;
use super::{LowerError, Lowerer};
use crate::spec::{Expr, ExprId, Scalar};
use dqc_ir::graph::Value;
use dqc_ir::op::{BinaryOp, CoordTransform, NearestRounding, ResizeMode};
use dqc_ir::{DType, NodeId, Op};

/// Nearest source index of each output coordinate along one axis.
pub(crate) fn nearest_table(
    inp: u64,
    out: u64,
    coord: CoordTransform,
    r: NearestRounding,
) -> Vec<i64> {
    let last = inp.saturating_sub(1) as f64;
    (0..out)
        .map(|o| r.round(coord.source_coord(o, inp, out)).clamp(0.0, last) as i64)
        .collect()
}

/// `(lower index, upper index, upper weight)` of each output coordinate along one axis.
pub(crate) fn linear_table(inp: u64, out: u64, coord: CoordTransform) -> Vec<(i64, i64, f64)> {
    let last = inp.saturating_sub(1) as f64;
    (0..out)
        .map(|o| {
            let s = coord.source_coord(o, inp, out).clamp(0.0, last);
            let lo = s.floor();
            let hi = (lo + 1.0).min(last);
            (lo as i64, hi as i64, s - lo)
        })
        .collect()
}

impl Lowerer<'_> {
    /// A `Resize` node's value at `cm`.
    pub(crate) fn emit_resize(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let Op::Resize { mode, coord, .. } = self.g.node(n).op.clone() else {
            return Err(self.malformed(n, "not a resize"));
        };
        let x = self.input(n, 0)?;
        let xs = self.shape(x)?;
        let out = self.shape(Value::new(n, 0))?;
        let dtype = self.ty(Value::new(n, 0))?.dtype;
        if xs.rank() != out.rank() || cm.len() != out.rank() {
            return Err(self.malformed(n, "resize output rank differs from the input's"));
        }
        // (axis, input extent, output extent) of every resized axis.
        let mut changed = Vec::new();
        for (a, (i, o)) in xs.dims().iter().zip(out.dims()).enumerate() {
            if i == o {
                continue;
            }
            let (Some(i), Some(o)) = (i.as_fixed(), o.as_fixed()) else {
                return Err(self.unsupported(n, "resizing an axis of symbolic extent"));
            };
            if i == 0 || o == 0 {
                // An empty output: no element is ever computed.
                return Ok(k.constant(dtype, 0.0));
            }
            changed.push((a, i, o));
        }
        match mode {
            ResizeMode::Nearest(r) => {
                let remaps: Vec<Remap> = changed
                    .iter()
                    .map(|&(a, i, o)| Remap {
                        axis: a,
                        coord: cm[a].clone(),
                        table: nearest_table(i, o, coord, r),
                    })
                    .collect();
                self.remapped_read(k, n, x, cm, &remaps)
            }
            ResizeMode::Linear => {
                if !dtype.is_float() {
                    return Err(self.malformed(n, "linear resize of a non-float tensor"));
                }
                let tables: Vec<_> = changed
                    .iter()
                    .map(|&(a, i, o)| (a, linear_table(i, o, coord)))
                    .collect();
                let mut sum: Option<ExprId> = None;
                let zero = k.push(DType::F32, Expr::Const(Scalar::F(0.0)));
                for corner in 0u64..(1u64 << tables.len()) {
                    let mut remaps = Vec::new();
                    let mut w: Option<ExprId> = None;
                    for (bit, (a, t)) in tables.iter().enumerate() {
                        let upper = corner >> bit & 1 == 1;
                        let idx: Vec<i64> =
                            t.iter().map(|e| if upper { e.1 } else { e.0 }).collect();
                        let wt: Vec<f32> = t
                            .iter()
                            .map(|e| {
                                if upper {
                                    e.2 as f32
                                } else {
                                    (1.0 - e.2) as f32
                                }
                            })
                            .collect();
                        remaps.push(Remap {
                            axis: *a,
                            coord: cm[*a].clone(),
                            table: idx,
                        });
                        let name = if upper {
                            "resize_weight_hi"
                        } else {
                            "resize_weight_lo"
                        };
                        let we = self.load_f32_table(k, n, name, &wt, &cm[*a])?;
                        w = Some(match w {
                            None => we,
                            Some(p) => k.push(
                                DType::F32,
                                Expr::Binary {
                                    op: BinaryOp::Mul,
                                    a: p,
                                    b: we,
                                },
                            ),
                        });
                    }
                    let v = self.remapped_read(k, n, x, cm, &remaps)?;
                    let v = if dtype == DType::F32 {
                        v
                    } else {
                        k.push(DType::F32, Expr::Cast { x: v })
                    };
                    let term = match w {
                        None => v,
                        Some(w) => {
                            let wv = k.push(
                                DType::F32,
                                Expr::Binary {
                                    op: BinaryOp::Mul,
                                    a: w,
                                    b: v,
                                },
                            );
                            let nil = k.push(
                                DType::Bool,
                                Expr::Binary {
                                    op: BinaryOp::Equal,
                                    a: w,
                                    b: zero,
                                },
                            );
                            k.push(
                                DType::F32,
                                Expr::Select {
                                    cond: nil,
                                    a: zero,
                                    b: wv,
                                },
                            )
                        }
                    };
                    sum = Some(match sum {
                        None => term,
                        Some(s) => k.push(
                            DType::F32,
                            Expr::Binary {
                                op: BinaryOp::Add,
                                a: s,
                                b: term,
                            },
                        ),
                    });
                }
                let sum = sum.ok_or_else(|| self.malformed(n, "no corner"))?;
                Ok(if dtype == DType::F32 {
                    sum
                } else {
                    k.push(dtype, Expr::Cast { x: sum })
                })
            }
        }
    }
}
