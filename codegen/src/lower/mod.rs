//! Lowering: `ir::Graph` → [`Program`] (kernel selection, elementwise fusion into
//! expression arenas, movement folded into index maps, memory planning).
//!
//! INTERFACE SKELETON — the implementation is being written.

use crate::spec::Program;
use dqc_ir::{Graph, Tensor};
use std::collections::BTreeMap;

/// Options of lowering.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// Largest value of each symbolic dimension a run may use (the arena is laid out for
    /// these). Symbols not listed get [`DEFAULT_SYMBOL_MAX`].
    pub symbol_max: BTreeMap<String, u64>,
}

/// Default maximum of a symbolic dimension not given in [`LowerOptions::symbol_max`].
pub const DEFAULT_SYMBOL_MAX: u64 = 16;

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
}

/// Lower `graph` to a program.
pub fn lower(graph: &Graph, options: &LowerOptions) -> Result<Lowered, LowerError> {
    let _ = options;
    Err(LowerError::Unsupported {
        node: graph.name.clone(),
        op: "graph".into(),
        what: "anything yet".into(),
    })
}
