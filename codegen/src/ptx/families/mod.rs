//! One generator per kernel family. Each takes a [`Kb`] positioned at the start of the
//! kernel's entry and emits the whole body, ending with `ret`.

mod attention;
mod conv;
mod elementwise;
mod gemm;
mod row_reduce;
mod scan;

use super::builder::{Kb, R};
use crate::spec::Kernel;

/// Generate the body of the kernel `kb` was created for.
pub(crate) fn generate(kb: &mut Kb<'_, '_>) -> R<()> {
    let spec = kb.spec;
    match &spec.body {
        Kernel::Elementwise(e) => elementwise::generate(kb, e),
        Kernel::RowReduce(r) => row_reduce::generate(kb, r),
        Kernel::Gemm(g) => gemm::generate(kb, g),
        Kernel::Attention(a) => attention::generate(kb, a),
        Kernel::Conv(c) => conv::generate(kb, c),
        Kernel::SelectiveScan(s) => scan::generate(kb, s),
    }
}
