//! The gemm family (not generated yet).

use crate::ptx::builder::{Kb, R};
use crate::spec::Gemm;

/// Generate a gemm kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, _k: &Gemm) -> R<()> {
    Err(kb.unsupported("GEMM (not generated yet)"))
}
