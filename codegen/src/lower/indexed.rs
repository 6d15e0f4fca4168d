//! Reads that no affine index map expresses (resize source coordinates, the group of a
//! block-quantized element, E8M0 scale values), through lookup tables the lowering
//! computes.
//!
//! A *table* is a small constant the lowering adds as a `Weight` buffer (i64 indices or
//! f32 values, identical tables shared within a program). A remapped read of a value `v`
//! at coordinates `cm` replaces the coordinate of each remapped axis `a` by `table_a[c]`,
//! where `c` is an affine coordinate of the kernel's space: the tables (pre-multiplied by
//! `v`'s constant stride along `a`) are loaded at `c` and summed into one
//! [`Expr::Gather`] index with unit stride; the other axes stay in the gather's affine map.
//! `v` must be a view of a buffer (the planner materializes it otherwise).

use super::emit::KCtx;
use super::view::{AxisMap, CMap, View, as_const, const_axis};
use super::{LowerError, Lowerer};
use crate::spec::{BufferId, BufferKind, Expr, ExprId, IndexMap, Term};
use dqc_ir::graph::Value;
use dqc_ir::{DType, Dim, NodeId, Tensor};

/// One remapped axis: value axis `axis` is read at `table[coord]`.
pub(crate) struct Remap {
    /// The axis of the read value.
    pub axis: usize,
    /// Where the table is indexed, in the kernel's space.
    pub coord: AxisMap,
    /// Source index along `axis` for each table position.
    pub table: Vec<i64>,
}

impl Lowerer<'_> {
    /// A weight buffer holding `t`, a table the lowering computed (shared when equal).
    pub fn table(&mut self, base: &str, t: Tensor) -> BufferId {
        let key = (t.dtype(), t.shape().to_vec(), t.bytes().to_vec());
        if let Some(&b) = self.tables.get(&key) {
            return b;
        }
        let mut name = base.to_string();
        let mut i = 1;
        while !self.used_weight_names.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        let id = self.add_buffer(&name, &t.ty(), BufferKind::Weight { name: name.clone() });
        self.weights.push((name, t));
        self.tables.insert(key, id);
        id
    }

    /// An i64 table of `values` loaded at the affine coordinate `coord`.
    fn load_table(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        base: &str,
        values: &[i64],
        coord: &AxisMap,
    ) -> Result<ExprId, LowerError> {
        let t = Tensor::from_i64(DType::I64, vec![values.len() as u64], values)
            .map_err(|e| self.malformed(n, e.to_string()))?;
        self.load_tensor_table(k, n, base, t, coord)
    }

    /// The one-axis constant `t`, made a table buffer, loaded at the affine coordinate
    /// `coord`.
    fn load_tensor_table(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        base: &str,
        t: Tensor,
        coord: &AxisMap,
    ) -> Result<ExprId, LowerError> {
        let dtype = t.dtype();
        let b = self.table(base, t);
        let view = View {
            offset: vec![],
            strides: vec![Term::constant(1)],
        };
        let map = view
            .index_map(&vec![coord.clone()], k.rank)
            .ok_or_else(|| self.malformed(n, "table index map"))?;
        let arg = k.arg(b);
        Ok(k.push(dtype, Expr::Load { arg, map }))
    }

    /// `v` read at `cm`, with the axes of `remaps` read through their tables (see the
    /// module docs). `n` names the node in errors.
    pub fn remapped_read(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        v: Value,
        cm: &CMap,
        remaps: &[Remap],
    ) -> Result<ExprId, LowerError> {
        if remaps.is_empty() {
            return self.emit(k, v, cm);
        }
        let (b, view) = self
            .buffer_view(v)?
            .ok_or_else(|| self.malformed(n, "an indexed operand is not a view of a buffer"))?;
        let mut dm = cm.clone();
        let mut index: Option<ExprId> = None;
        let mut max_index = 0i64;
        for r in remaps {
            let stride = view
                .strides
                .get(r.axis)
                .and_then(|s| as_const(&vec![s.clone()]))
                .ok_or_else(|| {
                    self.unsupported(n, "an indexed read along an axis of symbolic stride")
                })?;
            if stride < 0 || r.table.iter().any(|&t| t < 0) {
                return Err(self.unsupported(n, "an indexed read of a reversed view"));
            }
            let scaled: Vec<i64> = r
                .table
                .iter()
                .map(|&t| t.checked_mul(stride))
                .collect::<Option<_>>()
                .ok_or_else(|| self.malformed(n, "table index overflows"))?;
            max_index = max_index
                .checked_add(scaled.iter().copied().max().unwrap_or(0))
                .ok_or_else(|| self.malformed(n, "table index overflows"))?;
            let t = self.load_table(k, n, "index_table", &scaled, &r.coord)?;
            index = Some(match index {
                None => t,
                Some(i) => k.push(
                    DType::I64,
                    Expr::Binary {
                        op: dqc_ir::op::BinaryOp::Add,
                        a: i,
                        b: t,
                    },
                ),
            });
            *dm.get_mut(r.axis)
                .ok_or_else(|| self.malformed(n, "remapped axis out of range"))? = const_axis(0);
        }
        let index = index.ok_or_else(|| self.malformed(n, "no remapped axis"))?;
        let map: IndexMap = view
            .index_map(&dm, k.rank)
            .ok_or_else(|| self.unsupported(n, "an index map that is not affine"))?;
        let dtype = self.ty(v)?.dtype;
        let arg = k.arg(b);
        Ok(k.push(
            dtype,
            Expr::Gather {
                arg,
                map,
                index,
                axis_stride: Term::constant(1),
                axis_len: Dim::fixed(max_index as u64 + 1),
            },
        ))
    }

    /// The f32 entry `code` (an integer expression in `0..values.len()`) of an f32 table.
    pub fn lookup_f32(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        base: &str,
        values: &[f32],
        code: ExprId,
    ) -> Result<ExprId, LowerError> {
        let t = Tensor::from_f32(DType::F32, vec![values.len() as u64], values)
            .map_err(|e| self.malformed(n, e.to_string()))?;
        let b = self.table(base, t);
        let arg = k.arg(b);
        let map = IndexMap {
            offset: vec![],
            strides: vec![Term::constant(0); k.rank],
        };
        Ok(k.push(
            DType::F32,
            Expr::Gather {
                arg,
                map,
                index: code,
                axis_stride: Term::constant(1),
                axis_len: Dim::fixed(values.len() as u64),
            },
        ))
    }

    /// The f32 table `values` loaded at the affine coordinate `coord`.
    pub fn load_f32_table(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        base: &str,
        values: &[f32],
        coord: &AxisMap,
    ) -> Result<ExprId, LowerError> {
        let t = Tensor::from_f32(DType::F32, vec![values.len() as u64], values)
            .map_err(|e| self.malformed(n, e.to_string()))?;
        self.load_tensor_table(k, n, base, t, coord)
    }
}
