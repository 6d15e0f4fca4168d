//! The Cranelift backend: JIT-compiles every kernel of a [`Program`] for the host CPU.
//!
//! [`CpuProgram::compile`] resolves every symbolic size with the run's bindings, checks
//! each kernel (argument counts, one stride per iteration axis in every index map, dtypes,
//! and that every load stays inside its buffer over the coordinates where it can run) and
//! generates code into one Cranelift JIT module.
//!
//! Design, per family:
//! - **Expressions** (`exprgen`): every expression arena — elementwise kernels, prologues,
//!   epilogues — becomes one generated function `fn(args, start, end, err, aux) -> fault`
//!   that evaluates its stores over a linear range of an iteration space, row by row
//!   (coordinates unravelled once per row, loads as `row_base + i·stride`). Transcendental
//!   functions and narrow-float conversions call `extern "C"` Rust helpers registered as
//!   JIT symbols; arithmetic, comparisons, min/max, floor/ceil/round, sqrt, bf16 rounding,
//!   integer wrapping, and sigmoid / SiLU / tanh-GELU (through an inline polynomial `exp`,
//!   relative error ~1e-7) are inline. `Acc` reads, and prologue results are written to, a
//!   driver-provided f32/i64 scratch (`aux`). When every node is f32 arithmetic
//!   (+ − × ÷ min max neg abs sqrt reciprocal sigmoid SiLU tanh-GELU, constants, `Acc`) and every load is f32 and
//!   contiguous or broadcast along the last axis, each row runs an f32x4 loop first and a
//!   scalar loop for the tail.
//! - **Elementwise**: the generated function over chunks of ≥ 16k elements, in parallel
//!   with rayon.
//! - **RowReduce**: rows in parallel blocks; per block the compiled prologue fills an f32
//!   (or i64) scratch, a tight Rust loop computes the row op (f64 accumulation), and the
//!   compiled epilogue stores the results.
//! - **Gemm**: float products in parallel tiles over (batch, rows, columns), each a
//!   single-threaded cache-blocked product (`blocked`: packed 6-row strips of A, 16-column
//!   panels of B, an AVX2 + FMA 6 × 16 register-tile `microkernel` chosen at run time; the
//!   `gemm` crate on CPUs without AVX2 + FMA), each tile's epilogue run while it is hot. A
//!   weight B is packed once and kept when [`CpuProgram::set_weights_constant`] was called;
//!   integer products with an exact blocked loop saturating to i32.
//! - **Attention**: per (batch, head, query block) in parallel: `S = scale·Q·Kᵀ` by `gemm`,
//!   mask and causal limit, softmax over f32 rows, `O = P·V` by `gemm`.
//! - **Conv**: im2col per (image, group) into a scratch, `gemm`, compiled epilogue.
//! - **SelectiveScan**: a Rust loop over (batch, channel) in parallel, state in a small
//!   vector, f64 arithmetic like the interpreter.
//!
//! Packed 4-bit outputs are written with read-modify-write of bytes: elementwise and
//! row-reduce work is split at even element boundaries, GEMM and conv tasks writing such
//! outputs run one after another.
//!
//! Faults at run time (a gather index out of range, an integer division by zero) are
//! returned as [`CpuError`]s naming the kernel; generated code never reads out of bounds.

mod activation;
mod attention;

/// Run `f` on this thread's reusable scratch in `key`. A nested use on the same thread
/// (none today) finds it borrowed and gets a fresh default value instead of failing.
fn with_scratch<T: Default + 'static, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut g) => f(&mut g),
        Err(_) => f(&mut T::default()),
    })
}

mod blocked;
mod conv;
mod elementwise;
mod exprgen;
mod gemm;
mod helpers;
mod io;
mod jit;
mod microkernel;
mod par;
mod resolve;
mod row_reduce;
mod scan;
mod vexp;

use crate::spec::{BufferKind, Kernel, Program};
use jit::{FAULT_DIV_ZERO, FAULT_GATHER, FAULT_POW, Fault, Jit, JitCode};
use resolve::Ctx;
use std::collections::BTreeMap;

/// Symbol values of one run (`batch = 2`).
pub type Bindings = BTreeMap<String, u64>;

/// Errors of the CPU backend.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// A kernel uses something this backend does not generate code for.
    #[error("kernel `{kernel}`: the CPU backend does not support {what}")]
    Unsupported {
        /// Kernel name.
        kernel: String,
        /// What is missing.
        what: String,
    },
    /// A size uses a symbol the bindings do not give.
    #[error("kernel `{kernel}`: symbol `{symbol}` is not bound")]
    Unbound {
        /// Kernel name.
        kernel: String,
        /// The symbol.
        symbol: String,
    },
    /// The kernel spec is inconsistent.
    #[error("kernel `{kernel}`: malformed spec: {what}")]
    Malformed {
        /// Kernel name.
        kernel: String,
        /// What is wrong.
        what: String,
    },
    /// An access would fall outside the buffer bound to an argument.
    #[error("kernel `{kernel}`: argument {arg}: {what}")]
    OutOfBounds {
        /// Kernel name.
        kernel: String,
        /// Argument index.
        arg: u32,
        /// Details.
        what: String,
    },
    /// Cranelift refused the generated code.
    #[error("kernel `{kernel}`: code generation failed: {message}")]
    Jit {
        /// Kernel name.
        kernel: String,
        /// Cranelift's message.
        message: String,
    },
    /// `run_kernel` got the wrong number of argument pointers.
    #[error("kernel `{kernel}`: expected {expected} argument pointers, got {actual}")]
    ArgumentCount {
        /// Kernel name.
        kernel: String,
        /// Arguments of the kernel.
        expected: usize,
        /// Pointers given.
        actual: usize,
    },
    /// `run_kernel` was asked for a kernel that does not exist.
    #[error("kernel index {index} out of range (the program has {len} kernels)")]
    NoSuchKernel {
        /// Requested index.
        index: usize,
        /// Number of kernels.
        len: usize,
    },
    /// A gather index outside `[-len, len)` at run time.
    #[error("kernel `{kernel}`: gather index {index} is out of range for an axis of length {len}")]
    IndexOutOfRange {
        /// Kernel name.
        kernel: String,
        /// The bad index.
        index: i64,
        /// Extent of the gathered axis.
        len: i64,
    },
    /// An integer division or remainder by zero at run time.
    #[error("kernel `{kernel}`: integer division by zero ({dividend} / 0)")]
    DivisionByZero {
        /// Kernel name.
        kernel: String,
        /// The dividend.
        dividend: i64,
    },
    /// Integer zero raised to a negative power at run time.
    #[error("kernel `{kernel}`: 0 raised to the negative integer power {exponent}")]
    ZeroToNegativePower {
        /// Kernel name.
        kernel: String,
        /// The exponent.
        exponent: i64,
    },
}

/// Turn a fault of generated code into an error naming `kernel`.
fn fault_error(kernel: &str, f: Fault) -> CpuError {
    let kernel = kernel.to_string();
    match f.code {
        FAULT_GATHER => CpuError::IndexOutOfRange {
            kernel,
            index: f.a,
            len: f.b,
        },
        FAULT_DIV_ZERO => CpuError::DivisionByZero {
            kernel,
            dividend: f.a,
        },
        FAULT_POW => CpuError::ZeroToNegativePower {
            kernel,
            exponent: f.a,
        },
        c => CpuError::Jit {
            kernel,
            message: format!("generated code returned unknown fault code {c}"),
        },
    }
}

/// Whether buffer `id` of `program` is a weight, directly or through aliases.
fn is_weight(program: &Program, mut id: u32) -> bool {
    // An alias chain longer than the buffer list is a cycle: not a weight.
    for _ in 0..=program.buffers.len() {
        match program.buffers.get(id as usize).map(|b| &b.kind) {
            Some(BufferKind::Weight { .. }) => return true,
            Some(BufferKind::Alias { base }) => id = *base,
            _ => return false,
        }
    }
    false
}

/// One compiled kernel.
enum Compiled {
    Elementwise(elementwise::ElementwiseKernel),
    RowReduce(row_reduce::RowReduceKernel),
    Gemm(gemm::GemmKernel),
    Attention(attention::AttentionKernel),
    Conv(conv::ConvKernel),
    SelectiveScan(scan::ScanKernel),
}

struct CompiledKernel {
    name: String,
    nargs: usize,
    body: Compiled,
}

/// Called with a weight buffer's bytes once a kernel has made its own copy of them (see
/// [`CpuProgram::set_weight_release`]).
pub type WeightRelease = std::sync::Arc<dyn Fn(*const u8, usize) + Send + Sync>;

/// A [`Program`] compiled for the host CPU under fixed symbol bindings.
///
/// `Send + Sync`: the generated code is immutable once compiled; one program may run
/// kernels from several threads (on disjoint buffers).
pub struct CpuProgram {
    kernels: Vec<CompiledKernel>,
    code: JitCode,
    /// See [`CpuProgram::set_weights_constant`].
    constant_weights: bool,
    /// See [`CpuProgram::set_weight_release`].
    release: Option<WeightRelease>,
}

impl CpuProgram {
    /// Compile every kernel of `program` with the symbols bound to `bindings`.
    ///
    /// Fails with an error naming the kernel if a symbol is unbound, a spec is malformed
    /// (argument indices, index maps without one stride per axis, dtype mismatches), an
    /// access would leave its buffer, or an op is not supported.
    pub fn compile(program: &Program, bindings: &Bindings) -> Result<CpuProgram, CpuError> {
        let mut jit = Jit::new().map_err(|e| CpuError::Jit {
            kernel: program
                .kernels
                .first()
                .map_or_else(String::new, |k| k.name.clone()),
            message: e,
        })?;
        let mut kernels = Vec::with_capacity(program.kernels.len());
        for spec in &program.kernels {
            let ctx = Ctx::new(program, spec, bindings)?;
            let weight_args: Vec<bool> = spec.args.iter().map(|&b| is_weight(program, b)).collect();
            let body = match &spec.body {
                Kernel::Elementwise(e) => {
                    Compiled::Elementwise(elementwise::compile(&mut jit, &ctx, e)?)
                }
                Kernel::RowReduce(r) => {
                    Compiled::RowReduce(row_reduce::compile(&mut jit, &ctx, r)?)
                }
                Kernel::Gemm(g) => Compiled::Gemm(gemm::compile(&mut jit, &ctx, g, &weight_args)?),
                Kernel::Attention(a) => Compiled::Attention(attention::compile(&ctx, a)?),
                Kernel::Conv(c) => Compiled::Conv(conv::compile(&mut jit, &ctx, c)?),
                Kernel::SelectiveScan(s) => Compiled::SelectiveScan(scan::compile(&ctx, s)?),
            };
            kernels.push(CompiledKernel {
                name: spec.name.clone(),
                nargs: spec.args.len(),
                body,
            });
        }
        let code = jit.finish().map_err(|e| CpuError::Jit {
            kernel: program
                .kernels
                .last()
                .map_or_else(String::new, |k| k.name.clone()),
            message: e,
        })?;
        Ok(CpuProgram {
            kernels,
            code,
            constant_weights: false,
            release: None,
        })
    }

    /// Declare (or withdraw) that weights are constant: from now on, every argument bound
    /// to a [`BufferKind::Weight`](crate::spec::BufferKind::Weight) buffer (or an alias of
    /// one) holds the same bytes on every [`run_kernel`](CpuProgram::run_kernel) call that
    /// passes the same address for it — true of a plan's weights, which stay mapped and are
    /// never written. Kernels may then keep data derived from a weight across calls: a
    /// GEMM packs a weight `B` operand into its microkernel's panel layout on first use
    /// (f16/bf16/fp8 weights decoded to f32 once) and reuses the panels while the address
    /// is unchanged (and a sampled fingerprint of the bytes matches, a guard against an
    /// address reused for other bytes, not a full check), at the cost of keeping that f32
    /// copy in memory. Off after
    /// [`compile`](CpuProgram::compile); turning it off drops nothing but stops the reuse.
    pub fn set_weights_constant(&mut self, constant: bool) {
        self.constant_weights = constant;
    }

    /// With constant weights (above), declare that every weight also stays at its address,
    /// unchanged, for as long as this program lives — true of a plan's memory-mapped
    /// weights — and hand over `release`, which a kernel calls with a weight's bytes once it
    /// has made its own copy of them (a GEMM after packing `B` into panels). The callback
    /// may drop those pages from memory if reading them again gives the same bytes (a
    /// read-only file mapping refaults them from the file), so that a packed weight is held
    /// once, not twice. Packed copies are then reused by address alone: the sampled
    /// fingerprint would bring released pages back. `None` (the default) turns it off.
    pub fn set_weight_release(&mut self, release: Option<WeightRelease>) {
        self.release = release;
    }

    /// Number of kernels.
    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    /// True if the program has no kernels.
    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }

    /// Run kernel `index`.
    ///
    /// Errors: unknown index, wrong number of argument pointers, and faults at run time
    /// (a gather index out of range, integer division by zero), each naming the kernel.
    ///
    /// # Safety
    /// `args[i]` must point to the first byte of the buffer bound to argument `i` of that
    /// kernel, sized for the bindings given to [`CpuProgram::compile`] and suitably aligned
    /// for its dtype (at least 64 bytes is always enough); written arguments must not alias
    /// read ones.
    pub unsafe fn run_kernel(&self, index: usize, args: &[*mut u8]) -> Result<(), CpuError> {
        let k = self.kernels.get(index).ok_or(CpuError::NoSuchKernel {
            index,
            len: self.kernels.len(),
        })?;
        if args.len() != k.nargs {
            return Err(CpuError::ArgumentCount {
                kernel: k.name.clone(),
                expected: k.nargs,
                actual: args.len(),
            });
        }
        let code = &self.code;
        let name = k.name.as_str();
        // SAFETY: forwarded contract.
        unsafe {
            match &k.body {
                Compiled::Elementwise(e) => e.run(code, name, args),
                Compiled::RowReduce(r) => r.run(code, name, args),
                Compiled::Gemm(g) => {
                    let release = self.release.as_ref().filter(|_| self.constant_weights);
                    g.run(code, name, args, self.constant_weights, release)
                }
                Compiled::Attention(a) => a.run(name, args),
                Compiled::Conv(c) => c.run(code, name, args),
                Compiled::SelectiveScan(s) => s.run(name, args),
            }
        }
    }
}
