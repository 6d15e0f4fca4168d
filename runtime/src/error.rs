//! Errors of running a plan.

use dqc_codegen::cpu::CpuError;
use dqc_ir::{DType, Shape};

/// Why a [`crate::Session`] could not be created or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The plan is for a GPU, and this runtime was built without the CUDA executor.
    #[error(
        "the plan targets `{target}` (a GPU); this dqc-runtime was built without the `cuda` feature: rebuild with `cargo build --release -p dqc-runtime --features cuda`"
    )]
    UnsupportedTarget {
        /// The plan's target.
        target: String,
    },
    /// A `cpu` plan was asked to run on the GPU (it carries no PTX).
    #[error("the plan targets `cpu` and carries no PTX: it cannot run on the GPU")]
    NotGpuPlan,
    /// The CUDA driver library could not be loaded or lacks an entry point.
    #[error("no usable CUDA driver: {detail}")]
    NoDriver {
        /// What is missing (library or entry point names).
        detail: String,
    },
    /// A CUDA driver call failed outside a kernel launch.
    #[error("CUDA: {call} failed: {message}")]
    Driver {
        /// What was being done (`cuInit`, `allocating the activation arena`, …).
        call: String,
        /// The driver's error name and description.
        message: String,
    },
    /// The GPU cannot run code compiled for the plan's architecture.
    #[error("plan targets {plan} but the GPU is {device} ({name}): {reason}")]
    ArchMismatch {
        /// The plan's target (`sm_100`).
        plan: String,
        /// The device's architecture (`sm_90`).
        device: String,
        /// The device's name.
        name: String,
        /// The rule that refuses it.
        reason: String,
    },
    /// The plan has no PTX module for a kernel's family.
    #[error("kernel #{index} `{kernel}`: the plan has no PTX module `{module}`")]
    MissingModule {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        kernel: String,
        /// The module its family needs.
        module: String,
    },
    /// The driver could not load (JIT-compile) a PTX module or find an entry in it.
    #[error("loading PTX module `{module}` failed: {message}{log}")]
    PtxLoad {
        /// Module name.
        module: String,
        /// The driver's error.
        message: String,
        /// The JIT error log, prefixed with a newline (empty if the driver wrote none).
        log: String,
    },
    /// A kernel's launch configuration could not be computed or exceeds the device.
    #[error("kernel #{index} `{name}` ({family}): {problem}")]
    LaunchConfig {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        name: String,
        /// Kernel family.
        family: String,
        /// What is wrong.
        problem: String,
    },
    /// A kernel launch (or its execution, when it is attributed) failed.
    #[error("launching kernel #{index} `{name}` ({family}, {config}) failed: {message}")]
    Launch {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        name: String,
        /// Kernel family.
        family: String,
        /// The launch configuration (grid, block, shared memory).
        config: String,
        /// The driver's error.
        message: String,
    },
    /// Kernels ran, and the GPU reported an error when the run was synchronized.
    #[error(
        "running the kernels on the GPU failed: {message} (set DQC_CUDA_SYNC=1 to synchronize after every kernel and name the one that fails)"
    )]
    Execution {
        /// The driver's error.
        message: String,
    },
    /// A kernel met bad data (the fault word the GPU kernels set).
    #[error("{message}")]
    Fault {
        /// The fault, as `dqc_codegen::ptx::abi::describe_fault` describes it.
        message: String,
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
