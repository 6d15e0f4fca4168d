//! The conv family (not generated yet).

use crate::ptx::builder::{Kb, R};
use crate::spec::Conv;

/// Generate a conv kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, _k: &Conv) -> R<()> {
    Err(kb.unsupported("convolution (not generated yet)"))
}
