//! dqc-codegen: kernel generation.
//!
//! - [`spec`]: `KernelSpec`, the parameterized kernel families (fused elementwise, row
//!   reduction, GEMM with epilogue, attention, convolution, selective scan), and `Program`,
//!   a whole graph lowered to buffers and kernels.
//! - [`lower`]: `ir::Graph` → `Program` (kernel selection and elementwise fusion).
//! - [`cpu`]: the Cranelift backend, JIT-compiling a `Program` for the host CPU.
//!
//! It depends only on `dqc-ir`.
#![warn(missing_docs)]

pub mod cpu;
pub mod lower;
pub mod ptx;
pub mod reference;
pub mod spec;
