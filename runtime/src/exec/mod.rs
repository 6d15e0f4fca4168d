//! Executors: the code that runs a validated program on a device.

pub(crate) mod arch;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod device_layout;

/// Output buffer `id` of `program` and its shape under `bindings` (both executors build
/// their result tensors from it).
pub(crate) fn output_buffer<'p>(
    program: &'p dqc_codegen::spec::Program,
    id: dqc_codegen::spec::BufferId,
    bindings: &std::collections::BTreeMap<String, u64>,
) -> Result<(&'p dqc_codegen::spec::Buffer, Vec<u64>), crate::RuntimeError> {
    let b = program
        .buffers
        .get(id as usize)
        .ok_or_else(|| crate::RuntimeError::Size {
            buffer: format!("#{id}"),
            problem: "no such output buffer".into(),
        })?;
    let shape = b
        .shape
        .eval(bindings)
        .ok_or_else(|| crate::RuntimeError::Size {
            buffer: b.name.clone(),
            problem: "shape has an unbound symbol".into(),
        })?;
    Ok((b, shape))
}
