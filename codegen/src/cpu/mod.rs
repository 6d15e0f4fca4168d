//! The Cranelift backend: JIT-compiles every kernel of a [`Program`] for the host CPU.
//!
//! INTERFACE SKELETON — the implementation is being written; every compile currently fails
//! with [`CpuError::Unsupported`].

use crate::spec::Program;
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
}

/// A [`Program`] compiled for the host CPU under fixed symbol bindings.
pub struct CpuProgram {
    kernels: usize,
}

impl CpuProgram {
    /// Compile every kernel of `program` with the symbols bound to `bindings`.
    pub fn compile(program: &Program, bindings: &Bindings) -> Result<CpuProgram, CpuError> {
        let _ = bindings;
        match program.kernels.first() {
            None => Ok(CpuProgram { kernels: 0 }),
            Some(k) => Err(CpuError::Unsupported {
                kernel: k.name.clone(),
                what: k.body.family().to_string(),
            }),
        }
    }

    /// Number of kernels.
    pub fn len(&self) -> usize {
        self.kernels
    }

    /// True if the program has no kernels.
    pub fn is_empty(&self) -> bool {
        self.kernels == 0
    }

    /// Run kernel `index`.
    ///
    /// # Safety
    /// `args[i]` must point to the first byte of the buffer bound to argument `i` of that
    /// kernel, sized for the bindings given to [`CpuProgram::compile`] and suitably aligned
    /// for its dtype (at least 64 bytes is always enough); written arguments must not alias
    /// read ones.
    pub unsafe fn run_kernel(&self, index: usize, args: &[*mut u8]) -> Result<(), CpuError> {
        let _ = args;
        Err(CpuError::Unsupported {
            kernel: format!("#{index}"),
            what: "execution".into(),
        })
    }
}
