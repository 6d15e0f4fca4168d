//! dqc-runtime: plan execution.
//!
//! This crate will own the plan file format (header, PTX sections, safetensors weights,
//! checksums), plan loading and validation, the CPU and CUDA executors, `Session` (which
//! keeps cache slots across denoising steps), the C ABI and the `dqc-run` binary. It must
//! stay small: it depends on `dqc-ir` for types only, never on LLVM, egg or the frontend.
