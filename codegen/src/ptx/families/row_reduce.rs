//! The row_reduce family (not generated yet).

use crate::ptx::builder::{Kb, R};
use crate::spec::RowReduce;

/// Generate a row_reduce kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, _k: &RowReduce) -> R<()> {
    Err(kb.unsupported("row reductions (not generated yet)"))
}
