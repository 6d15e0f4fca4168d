//! Byte sizes of buffers under symbol bindings, and alias resolution.

use dqc_codegen::spec::{BufferId, BufferKind, Program};
use dqc_ir::{DType, Shape};
use std::collections::BTreeMap;

/// Bytes of a dense `dtype` tensor of `shape` with the symbols bound to `bindings`;
/// `None` if a symbol is unbound or the size overflows.
pub fn tensor_bytes(dtype: DType, shape: &Shape, bindings: &BTreeMap<String, u64>) -> Option<u64> {
    let dims = shape.eval(bindings)?;
    let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    if dtype.is_packed() {
        Some(n.div_ceil(2))
    } else {
        n.checked_mul(dtype.bits() as u64 / 8)
    }
}

/// The buffer whose storage `id` shares (following `Alias` links), or `None` if an id is
/// out of range or the links form a cycle.
pub fn root_of(program: &Program, id: BufferId) -> Option<BufferId> {
    let mut cur = id;
    for _ in 0..=program.buffers.len() {
        match &program.buffers.get(cur as usize)?.kind {
            BufferKind::Alias { base } => cur = *base,
            BufferKind::Input { .. }
            | BufferKind::Output { .. }
            | BufferKind::Weight { .. }
            | BufferKind::Activation { .. } => return Some(cur),
        }
    }
    None
}

/// The declared maxima of the program's symbols.
pub fn maxima(program: &Program) -> BTreeMap<String, u64> {
    program
        .symbols
        .iter()
        .map(|s| (s.name.clone(), s.max))
        .collect()
}
