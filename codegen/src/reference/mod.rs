//! A plain reference executor of a [`Program`]: the oracle for lowering and for backends.
//!
//! Every kernel is executed exactly as `spec` documents it, with no arena: each buffer gets
//! its own bytes (an `Alias` shares its base's bytes). Elementwise semantics (unary,
//! binary, select, cast, GELU, SiLU) are delegated to the IR interpreter's
//! [`dqc_ir::interp::eval_op`] on whole vectors of lanes, so every expression node rounds
//! to its dtype exactly as the interpreter does. Row operations, attention, convolution and
//! the selective scan gather their (prologue) operands into dense tensors and call the
//! interpreter's op on them (f64 accumulation, one rounding); GEMM is an f64 loop here.
//! Speed is not a goal.

mod eval;
mod kernels;
mod symbols;

pub use symbols::{SymbolError, bind_symbols};

use crate::spec::{BufferId, BufferKind, Program};
use dqc_ir::{DType, Tensor};
use std::collections::BTreeMap;

/// Errors of the reference executor.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Wrong number of inputs.
    #[error("the program takes {expected} inputs, {actual} were given")]
    InputCount {
        /// Inputs of the program.
        expected: usize,
        /// Inputs given.
        actual: usize,
    },
    /// An input tensor does not match its buffer.
    #[error("input {index} (`{name}`): expected {expected}, got {actual}")]
    InputType {
        /// Position.
        index: usize,
        /// Buffer name.
        name: String,
        /// Declared type with the run's bindings.
        expected: String,
        /// Given type.
        actual: String,
    },
    /// A symbol could not be resolved.
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    /// A weight buffer names a tensor that was not given.
    #[error("weight `{0}` is missing")]
    MissingWeight(String),
    /// A buffer id or argument index that does not exist, or a malformed kernel.
    #[error("kernel `{kernel}`: {what}")]
    Malformed {
        /// Kernel name.
        kernel: String,
        /// What is wrong.
        what: String,
    },
    /// A buffer was read before any kernel wrote it.
    #[error("kernel `{kernel}` reads buffer `{buffer}` before it is written")]
    Unwritten {
        /// Kernel name.
        kernel: String,
        /// Buffer name.
        buffer: String,
    },
    /// A load outside its buffer.
    #[error("kernel `{kernel}`: argument {arg} read at element {offset}, the buffer has {len}")]
    OutOfRange {
        /// Kernel name.
        kernel: String,
        /// Argument index.
        arg: u32,
        /// Element offset.
        offset: i64,
        /// Elements in the buffer.
        len: usize,
    },
    /// A gather index outside `[-len, len)`.
    #[error("kernel `{kernel}`: gather index {index} outside [-{len}, {len})")]
    GatherIndex {
        /// Kernel name.
        kernel: String,
        /// The index.
        index: i64,
        /// Axis extent.
        len: u64,
    },
    /// The interpreter refused an operation.
    #[error("kernel `{kernel}`: {message}")]
    Op {
        /// Kernel name.
        kernel: String,
        /// The interpreter's message.
        message: String,
    },
}

/// Bytes and metadata of one argument as a kernel sees it.
#[derive(Clone)]
pub(crate) struct ArgData {
    /// Element type.
    pub dtype: DType,
    /// Concrete shape of the bound buffer.
    pub shape: Vec<u64>,
    /// Its bytes (shared with the base for aliases); `None` if not yet written.
    pub bytes: Option<std::sync::Arc<[u8]>>,
}

impl ArgData {
    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }
}

/// Follow aliases to the buffer that owns the bytes.
pub(crate) fn root_of(program: &Program, mut id: BufferId) -> Option<BufferId> {
    for _ in 0..=program.buffers.len() {
        match &program.buffers.get(id as usize)?.kind {
            BufferKind::Alias { base } => id = *base,
            BufferKind::Input { .. }
            | BufferKind::Output { .. }
            | BufferKind::Weight { .. }
            | BufferKind::Activation { .. } => return Some(id),
        }
    }
    None
}

/// Run `program` on `inputs` (signature order) with the constants `weights` (by name).
/// `bindings` gives every symbol a value (see [`bind_symbols`]). Returns the outputs in
/// signature order.
pub fn run_program(
    program: &Program,
    weights: &[(String, Tensor)],
    inputs: &[Tensor],
    bindings: &BTreeMap<String, u64>,
) -> Result<Vec<Tensor>, ReferenceError> {
    if inputs.len() != program.inputs.len() {
        return Err(ReferenceError::InputCount {
            expected: program.inputs.len(),
            actual: inputs.len(),
        });
    }
    let mut store: Vec<Option<std::sync::Arc<[u8]>>> = vec![None; program.buffers.len()];
    let shape_of = |id: BufferId, kernel: &str| -> Result<Vec<u64>, ReferenceError> {
        let b = program
            .buffers
            .get(id as usize)
            .ok_or_else(|| malformed(kernel, format!("no buffer {id}")))?;
        b.shape.eval(bindings).ok_or_else(|| {
            malformed(
                kernel,
                format!("shape {} of `{}` is unbound", b.shape, b.name),
            )
        })
    };
    for (i, (&id, t)) in program.inputs.iter().zip(inputs).enumerate() {
        let b = program
            .buffers
            .get(id as usize)
            .ok_or_else(|| malformed("inputs", format!("no buffer {id}")))?;
        let shape = shape_of(id, "inputs")?;
        if b.dtype != t.dtype() || shape != t.shape() {
            return Err(ReferenceError::InputType {
                index: i,
                name: b.name.clone(),
                expected: format!("{}{:?}", b.dtype, shape),
                actual: format!("{}{:?}", t.dtype(), t.shape()),
            });
        }
        store[id as usize] = Some(t.bytes().into());
    }
    for (id, b) in program.buffers.iter().enumerate() {
        if let BufferKind::Weight { name } = &b.kind {
            let t = weights
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| ReferenceError::MissingWeight(name.clone()))?;
            let shape = shape_of(id as BufferId, "weights")?;
            if t.dtype() != b.dtype || t.shape() != shape.as_slice() {
                return Err(malformed(
                    "weights",
                    format!(
                        "weight `{name}` is {}{:?}, its buffer {}{:?}",
                        t.dtype(),
                        t.shape(),
                        b.dtype,
                        shape
                    ),
                ));
            }
            store[id] = Some(t.bytes().into());
        }
    }
    for k in &program.kernels {
        let mut args = Vec::with_capacity(k.args.len());
        for &a in &k.args {
            let root = root_of(program, a)
                .ok_or_else(|| malformed(&k.name, format!("buffer {a} has no root")))?;
            let b = &program.buffers[a as usize];
            args.push(ArgData {
                dtype: b.dtype,
                shape: shape_of(a, &k.name)?,
                bytes: store[root as usize].clone(),
            });
        }
        for (i, a) in args.iter().enumerate() {
            let written = k.writes.contains(&(i as u32));
            if !written && a.bytes.is_none() {
                return Err(ReferenceError::Unwritten {
                    kernel: k.name.clone(),
                    buffer: program.buffers[k.args[i] as usize].name.clone(),
                });
            }
        }
        let results = kernels::run_kernel(k, &args, bindings)?;
        for (arg, bytes) in results {
            let id = *k
                .args
                .get(arg as usize)
                .ok_or_else(|| malformed(&k.name, format!("no argument {arg}")))?;
            let root = root_of(program, id)
                .ok_or_else(|| malformed(&k.name, format!("buffer {id} has no root")))?;
            store[root as usize] = Some(bytes.into());
        }
    }
    program
        .outputs
        .iter()
        .map(|&id| {
            let b = program
                .buffers
                .get(id as usize)
                .ok_or_else(|| malformed("outputs", format!("no buffer {id}")))?;
            let root = root_of(program, id)
                .ok_or_else(|| malformed("outputs", format!("buffer {id} has no root")))?;
            let bytes = store[root as usize]
                .clone()
                .ok_or_else(|| ReferenceError::Unwritten {
                    kernel: "outputs".into(),
                    buffer: b.name.clone(),
                })?;
            Tensor::from_bytes(b.dtype, shape_of(id, "outputs")?, bytes)
                .map_err(|e| malformed("outputs", e.to_string()))
        })
        .collect()
}

pub(crate) fn malformed(kernel: &str, what: String) -> ReferenceError {
    ReferenceError::Malformed {
        kernel: kernel.to_string(),
        what,
    }
}
