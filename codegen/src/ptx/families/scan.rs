//! The scan family (not generated yet).

use crate::ptx::builder::{Kb, R};
use crate::spec::SelectiveScan;

/// Generate a scan kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, _k: &SelectiveScan) -> R<()> {
    Err(kb.unsupported("the selective scan (not generated yet)"))
}
