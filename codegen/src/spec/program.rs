//! `Program`: a whole graph lowered to buffers and kernels, in execution order.

use super::KernelSpec;
use dqc_ir::{DType, Shape};
use serde::{Deserialize, Serialize};

/// Index of a buffer in [`Program::buffers`].
pub type BufferId = u32;

/// A symbolic dimension of the program's inputs and the largest value a run may bind it to
/// (the activation arena is laid out for these maxima).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Name as in the shapes (`batch`).
    pub name: String,
    /// Largest value a run may use.
    pub max: u64,
}

/// Where a buffer's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufferKind {
    /// The graph input at this position, provided by the caller.
    Input {
        /// Position in the signature.
        index: u32,
    },
    /// The graph output at this position, allocated per run and returned.
    Output {
        /// Position in the signature.
        index: u32,
    },
    /// A constant stored in the plan under this name.
    Weight {
        /// Name in the weights section.
        name: String,
    },
    /// An intermediate in the activation arena at this byte offset (set by memory
    /// planning; sizes at the symbols' maxima).
    Activation {
        /// Byte offset in the arena.
        offset: u64,
    },
    /// The same bytes as `base`, seen with this buffer's shape (a free reshape).
    Alias {
        /// The buffer whose storage is shared.
        base: BufferId,
    },
}

/// A dense row-major tensor buffer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Buffer {
    /// Readable name (the IR value it holds).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape (symbolic dims allowed).
    pub shape: Shape,
    /// Storage.
    pub kind: BufferKind,
}

/// A lowered graph: run `kernels` in order.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Program {
    /// Symbols of the input shapes with their maxima.
    pub symbols: Vec<Symbol>,
    /// Every buffer.
    pub buffers: Vec<Buffer>,
    /// Buffers of the graph inputs, in signature order.
    pub inputs: Vec<BufferId>,
    /// Buffers of the graph outputs, in signature order.
    pub outputs: Vec<BufferId>,
    /// Kernels in execution order.
    pub kernels: Vec<KernelSpec>,
    /// Size of the activation arena in bytes at the symbols' maxima.
    pub arena_bytes: u64,
}
