//! dqc-codegen: kernel generation.
//!
//! This crate will own `KernelSpec` (a small set of parameterized kernel families: fused
//! elementwise, row reduction, GEMM with epilogue, attention, selective scan, convolution,
//! quantize/pack) and its two backends: `cpu` (Cranelift) and `ptx` (inkwell → LLVM NVPTX).
//! It depends only on `dqc-ir`.
