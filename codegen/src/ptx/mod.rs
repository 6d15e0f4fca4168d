//! The PTX backend: every kernel of a [`Program`] becomes an entry of a PTX module, built as
//! LLVM IR with inkwell and turned into PTX by LLVM's NVPTX backend for the target's
//! architecture (`sm_80` … `sm_120`). See `docs/codegen.md`.
//!
//! - [`abi`] and [`tiles`] (no LLVM): entry names, parameters, launch configurations, fault
//!   codes and tile tables shared by the generator and the CUDA executor in `dqc-runtime`.
//! - With the `ptx` feature: [`compile_program`] and one generator file per family.

pub mod abi;
pub mod tiles;
pub mod tools;

#[cfg(feature = "ptx")]
mod attention_ops;
#[cfg(feature = "ptx")]
mod block;
#[cfg(feature = "ptx")]
mod builder;
#[cfg(feature = "ptx")]
mod compile;
#[cfg(feature = "ptx")]
mod expr;
#[cfg(feature = "ptx")]
mod families;
#[cfg(all(test, feature = "ptx"))]
mod hostcheck;
#[cfg(feature = "ptx")]
mod mma;
#[cfg(feature = "ptx")]
mod values;

#[cfg(feature = "ptx")]
pub use compile::{PtxText, compile_kernel, compile_program};

/// Errors of the PTX backend.
#[derive(Debug, thiserror::Error)]
pub enum PtxError {
    /// The target is not a GPU architecture.
    #[error("target `{target}` is not a GPU architecture (PTX needs sm_80 … sm_120)")]
    NotGpu {
        /// Target name.
        target: String,
    },
    /// A kernel uses something this backend does not generate yet.
    #[error("kernel `{kernel}`: the PTX backend does not support {what}")]
    Unsupported {
        /// Kernel name.
        kernel: String,
        /// What is missing.
        what: String,
    },
    /// The kernel spec is inconsistent.
    #[error("kernel `{kernel}`: malformed spec: {what}")]
    Malformed {
        /// Kernel name.
        kernel: String,
        /// What is wrong.
        what: String,
    },
    /// A size uses a symbol that is not bound (launch) or not a program symbol (codegen).
    #[error("kernel `{kernel}`: size `{dim}` uses a symbol that is not bound")]
    Unbound {
        /// Kernel name.
        kernel: String,
        /// The size.
        dim: String,
    },
    /// A kernel index out of range.
    #[error("kernel index {index} out of range (the program has {len} kernels)")]
    NoSuchKernel {
        /// Index asked for.
        index: usize,
        /// Kernels in the program.
        len: usize,
    },
    /// LLVM refused the module or failed to write PTX.
    #[error("module `{module}`: LLVM failed: {message}")]
    Llvm {
        /// Module name.
        module: String,
        /// LLVM's message.
        message: String,
    },
}
