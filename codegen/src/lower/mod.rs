//! Lowering: `ir::Graph` → [`Program`] (kernel selection, elementwise fusion into
//! expression arenas, movement folded into index maps, memory planning).
//!
//! How a graph becomes kernels:
//! - **Sources.** Graph inputs are `Input` buffers. Constants become `Weight` buffers
//!   (named after a sanitized node name, created only when a kernel reads them) unless all
//!   their elements are equal and they have at most [`SMALL_CONST`] elements: those are
//!   inlined as [`crate::spec::Expr::Const`].
//! - **Elementwise ops** (unary, binary, where, cast, modulate, GELU, SiLU, dequantize of
//!   every scheme and affine quantize — see `quant.rs` —, and resize — see `resize.rs`)
//!   are expression nodes; reads no affine map expresses go through lookup tables and
//!   gathers (`indexed.rs`). One used exactly once is inlined into its user's expression;
//!   one used several times (or a graph output) is materialized once into a buffer — never
//!   recomputed.
//! - **Movement ops** (reshape, transpose, slice, expand, split, concat, pad of every
//!   mode, gather) are index maps of their consumers: views of a buffer (strides, offsets,
//!   stride 0), `Piecewise` (concat, pad) or `Gather`. A movement used several times over
//!   un-materialized elementwise work is materialized, so that work is not repeated; a
//!   reshape that no view can express materializes its input; a movement that is a graph
//!   output is copied into the output buffer.
//! - **Heavy ops** (matmul, gemm, conv, norms, softmax, reductions, running sums,
//!   attention, selective scan; qmatmul, see `qmatmul.rs`) are one kernel each.
//!   Elementwise work on their result used
//!   only by a single elementwise chain of the same shape becomes their epilogue (bias,
//!   activation, gate, residual); elementwise work on their inputs becomes the prologue of
//!   row reductions. Operands a family needs as strided views (GEMM, attention) or dense
//!   buffers (conv, scan) are materialized when their producer cannot provide one.
//! - **NVFP4 and MX quantize** are a block-max row reduction (the block scales) and an
//!   elementwise kernel (the codes), see `block_quant.rs`.
//! - **Not lowered** (an [`LowerError::Unsupported`] naming the node): cache reads/writes
//!   and step gates.
//! - **Memory**: see [`memory`].

mod block_quant;
mod emit;
mod indexed;
mod kernels;
pub mod listing;
pub mod memory;
mod plan;
mod qmatmul;
mod quant;
mod resize;
mod view;

pub use listing::listing;

use crate::spec::{Buffer, BufferId, BufferKind, KernelSpec, Program, Symbol};
use dqc_ir::graph::Value;
use dqc_ir::{Graph, NodeId, Op, Shape, Tensor, TensorType};
use std::collections::{BTreeMap, HashMap, HashSet};
use view::View;

/// Options of lowering.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// Largest value of each symbolic dimension a run may use (the arena is laid out for
    /// these). Symbols not listed get [`DEFAULT_SYMBOL_MAX`].
    pub symbol_max: BTreeMap<String, u64>,
}

/// Default maximum of a symbolic dimension not given in [`LowerOptions::symbol_max`].
pub const DEFAULT_SYMBOL_MAX: u64 = 16;

/// Constants with at most this many elements, all equal, are inlined into expressions.
pub const SMALL_CONST: usize = 16;

/// A lowered graph and the constants its `Weight` buffers name.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// Buffers and kernels.
    pub program: Program,
    /// `(name, tensor)` for every `BufferKind::Weight` buffer, in buffer order.
    pub weights: Vec<(String, Tensor)>,
    /// Peak activation bytes at the symbols' maxima (= `program.arena_bytes`).
    pub peak_bytes: u64,
}

/// Errors of lowering.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// A node whose op has no lowering yet.
    #[error("node `{node}` ({op}): no kernel lowering for {what}")]
    Unsupported {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What is missing.
        what: String,
    },
    /// The graph is not verified or is malformed (missing types, cycle, bad operands).
    #[error("node `{node}`: {what}")]
    Malformed {
        /// Node name (or the graph's).
        node: String,
        /// What is wrong.
        what: String,
    },
    /// A buffer size overflows at the symbols' maxima.
    #[error("buffer `{buffer}`: size overflows at the symbols' maxima")]
    TooLarge {
        /// Buffer name.
        buffer: String,
    },
}

/// The lowering state of one graph.
pub(crate) struct Lowerer<'g> {
    pub g: &'g Graph,
    /// Nodes in topological order.
    pub order: Vec<NodeId>,
    /// Number of uses of each value (operand slots and graph outputs).
    pub uses: HashMap<Value, usize>,
    /// Values that own a buffer written by a kernel.
    pub mat: HashSet<Value>,
    /// Epilogue fusion: root value → the heavy node whose kernel computes it.
    pub absorbs: HashMap<Value, NodeId>,
    /// Heavy nodes absorbed into a root's kernel.
    pub absorbed: HashSet<NodeId>,
    /// Storage of materialized values and sources.
    pub bufs: HashMap<Value, (BufferId, View)>,
    /// Weight buffers by constant node.
    pub weight_bufs: HashMap<NodeId, BufferId>,
    pub program: Program,
    pub weights: Vec<(String, Tensor)>,
    used_weight_names: HashSet<String>,
    /// Lookup tables the lowering added as weights, by (dtype, shape, bytes).
    tables: HashMap<TableKey, BufferId>,
}

/// Identity of a lookup table: dtype, shape and bytes.
type TableKey = (dqc_ir::DType, Vec<u64>, Vec<u8>);

impl<'g> Lowerer<'g> {
    /// Name of a node.
    pub fn name(&self, n: NodeId) -> String {
        self.g.node(n).name().to_string()
    }

    /// The type of a value.
    pub fn ty(&self, v: Value) -> Result<&TensorType, LowerError> {
        self.g.value_type(v).ok_or_else(|| LowerError::Malformed {
            node: self.g.value_name(v).to_string(),
            what: "value has no type (verify the graph first)".into(),
        })
    }

    /// The shape of a value.
    pub fn shape(&self, v: Value) -> Result<Shape, LowerError> {
        Ok(self.ty(v)?.shape.clone())
    }

    /// Operand `slot` of node `n`.
    pub fn input(&self, n: NodeId, slot: usize) -> Result<Value, LowerError> {
        self.g
            .node(n)
            .inputs()
            .get(slot)
            .copied()
            .ok_or_else(|| LowerError::Malformed {
                node: self.name(n),
                what: format!("missing operand {slot}"),
            })
    }

    /// An error naming node `n`.
    pub fn unsupported(&self, n: NodeId, what: impl Into<String>) -> LowerError {
        LowerError::Unsupported {
            node: self.name(n),
            op: self.g.node(n).op.name().to_string(),
            what: what.into(),
        }
    }

    /// A malformed-graph error naming node `n`.
    pub fn malformed(&self, n: NodeId, what: impl Into<String>) -> LowerError {
        LowerError::Malformed {
            node: self.name(n),
            what: what.into(),
        }
    }

    /// Add a buffer.
    pub fn add_buffer(&mut self, name: &str, ty: &TensorType, kind: BufferKind) -> BufferId {
        self.program.buffers.push(Buffer {
            name: name.to_string(),
            dtype: ty.dtype,
            shape: ty.shape.clone(),
            kind,
        });
        (self.program.buffers.len() - 1) as BufferId
    }

    /// The weight buffer of constant node `n`, created on first use.
    pub fn weight(&mut self, n: NodeId) -> Result<BufferId, LowerError> {
        if let Some(&b) = self.weight_bufs.get(&n) {
            return Ok(b);
        }
        let Op::Constant(t) = &self.g.node(n).op else {
            return Err(self.malformed(n, "not a constant"));
        };
        let t = t.clone();
        let base: String = self
            .name(n)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = base.trim_matches('_').to_string();
        let base = if base.is_empty() {
            "w".to_string()
        } else {
            base
        };
        let mut name = base.clone();
        let mut i = 1;
        while !self.used_weight_names.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        let id = self.add_buffer(&name, &t.ty(), BufferKind::Weight { name: name.clone() });
        self.weights.push((name, t));
        self.weight_bufs.insert(n, id);
        Ok(id)
    }

    /// Append a kernel.
    pub fn push_kernel(&mut self, k: KernelSpec) {
        self.program.kernels.push(k);
    }
}

/// Lower `graph` (verified: every value has a type) to a program.
pub fn lower(graph: &Graph, options: &LowerOptions) -> Result<Lowered, LowerError> {
    let order = graph.topo_order().map_err(|e| LowerError::Malformed {
        node: graph.name.clone(),
        what: e.to_string(),
    })?;
    let mut lw = Lowerer {
        g: graph,
        order,
        uses: HashMap::new(),
        mat: HashSet::new(),
        absorbs: HashMap::new(),
        absorbed: HashSet::new(),
        bufs: HashMap::new(),
        weight_bufs: HashMap::new(),
        program: Program::default(),
        weights: Vec::new(),
        used_weight_names: HashSet::new(),
        tables: HashMap::new(),
    };
    // Symbols of the input shapes.
    let mut symbols: BTreeMap<String, u64> = BTreeMap::new();
    for (index, &id) in graph.inputs().iter().enumerate() {
        let v = Value::new(id, 0);
        let ty = lw.ty(v)?.clone();
        for d in ty.shape.dims() {
            for (s, _) in d.symbols() {
                let max = options
                    .symbol_max
                    .get(s)
                    .copied()
                    .unwrap_or(DEFAULT_SYMBOL_MAX);
                symbols.insert(s.clone(), max);
            }
        }
        let name = lw.name(id);
        let b = lw.add_buffer(
            &name,
            &ty,
            BufferKind::Input {
                index: index as u32,
            },
        );
        let view = View::dense(&ty.shape).ok_or_else(|| lw.malformed(id, "shape overflows"))?;
        lw.bufs.insert(v, (b, view));
        lw.program.inputs.push(b);
    }
    lw.program.symbols = symbols
        .iter()
        .map(|(name, &max)| Symbol {
            name: name.clone(),
            max,
        })
        .collect();
    lw.plan()?;
    lw.generate()?;
    let peak = memory::plan_memory(&mut lw.program, &symbols)?;
    Ok(Lowered {
        program: lw.program,
        weights: lw.weights,
        peak_bytes: peak,
    })
}
