//! dqc-runtime: plan files and their execution.
//!
//! - [`plan`]: the plan file format v1 — [`write_plan`], [`Plan::load`] (which validates
//!   every byte and id before anything runs) and the header types;
//! - [`Session`]: runs a plan — checks the inputs against the signature, binds the
//!   symbolic dimensions, executes the kernels with the CPU executor and returns the
//!   outputs;
//! - with the `cuda` feature, the CUDA executor: GPU plans' PTX run through the CUDA
//!   driver API (cudarc, loaded at run time; see `docs/gpu.md`); [`gpu`] says which GPUs
//!   can run which plans;
//! - the `dqc-run` binary (`run`, `bench`, `inspect`, `check`).
//!
//! It stays small: `dqc-ir` for types, `dqc-codegen` for the program types and the CPU
//! backend; never LLVM, egg or the frontend.
#![warn(missing_docs)]

pub mod align;
mod bind;
mod error;
mod exec;
pub mod gpu;
pub mod plan;
mod session;
pub mod sizes;

pub use error::RuntimeError;
pub use plan::{Plan, PlanError, PlanParts, Provenance, PtxModule, Signature, write_plan};
pub use session::{Device, Session};

/// For command-line binaries: let a closed output pipe end the process quietly, as other
/// Unix tools do (`dqc inspect big.onnx | head`), instead of Rust's default of ignoring
/// `SIGPIPE` and panicking on the next failed `println!`. Call once at the start of `main`;
/// a no-op elsewhere than Unix.
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting one signal's disposition to the default before any other thread
    // exists; no handler code is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
