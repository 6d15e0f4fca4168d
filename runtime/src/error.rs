//! Errors of running a plan.

use dqc_codegen::cpu::CpuError;
use dqc_ir::{DType, Shape};

/// Why a [`crate::Session`] could not be created or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The plan is for a target this runtime cannot execute yet.
    #[error(
        "the plan targets `{target}`; this runtime executes only `cpu` plans so far (the CUDA executor comes in a later release)"
    )]
    UnsupportedTarget {
        /// The plan's target.
        target: String,
    },
    /// An input of the signature was not given.
    #[error("missing input `{name}` (the plan expects {dtype}{shape})")]
    MissingInput {
        /// Input name.
        name: String,
        /// Expected dtype.
        dtype: DType,
        /// Expected shape.
        shape: Shape,
    },
    /// A name that is not an input of the plan.
    #[error("`{name}` is not an input of this plan (its inputs: {inputs})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The plan's input names, comma-separated.
        inputs: String,
    },
    /// The same input given twice.
    #[error("input `{name}` is given twice")]
    DuplicateInput {
        /// Input name.
        name: String,
    },
    /// An input of the wrong element type.
    #[error("input `{name}`: dtype {actual}, the plan expects {expected}")]
    InputDType {
        /// Input name.
        name: String,
        /// Dtype of the signature.
        expected: DType,
        /// Dtype given.
        actual: DType,
    },
    /// An input of the wrong shape.
    #[error("input `{name}`: shape {actual:?}, the plan expects {expected} ({detail})")]
    InputShape {
        /// Input name.
        name: String,
        /// Shape of the signature.
        expected: Shape,
        /// Shape given.
        actual: Vec<u64>,
        /// Which dimension disagrees and why.
        detail: String,
    },
    /// A symbol no input shape determines.
    #[error("cannot determine symbol `{symbol}` from the input shapes")]
    Unbound {
        /// The symbol.
        symbol: String,
    },
    /// A symbol bound above the maximum the plan was compiled for.
    #[error(
        "{symbol} = {value} exceeds the plan's maximum {max}; recompile with --max-dim {symbol}={value}"
    )]
    SymbolTooLarge {
        /// The symbol.
        symbol: String,
        /// Its value in this run.
        value: u64,
        /// The plan's maximum.
        max: u64,
    },
    /// A buffer's size cannot be computed or is inconsistent under this run's bindings.
    #[error("buffer `{buffer}`: {problem}")]
    Size {
        /// Buffer name.
        buffer: String,
        /// What is wrong.
        problem: String,
    },
    /// Memory could not be allocated.
    #[error("out of memory: {0}")]
    Alloc(String),
    /// The CPU backend could not compile the program.
    #[error("compiling the plan for the CPU failed: {source}")]
    Compile {
        /// The backend's error.
        source: CpuError,
    },
    /// A kernel failed while running.
    #[error("kernel #{index} `{name}` failed: {source}")]
    Kernel {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        name: String,
        /// The backend's error.
        source: CpuError,
    },
}
