//! The attention family (not generated yet).

use crate::ptx::builder::{Kb, R};
use crate::spec::Attention;

/// Generate a attention kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, _k: &Attention) -> R<()> {
    Err(kb.unsupported("attention (not generated yet)"))
}
