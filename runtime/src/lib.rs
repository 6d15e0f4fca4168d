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
