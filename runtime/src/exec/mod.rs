//! Executors: the code that runs a validated program on a device.

pub(crate) mod arch;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod device_layout;

/// Output `pos` of `plan` (program buffer `id`) as the named tensor a run returns: its
/// shape evaluated under `bindings`, its bytes from `storage` (called with the buffer, for
/// error messages), its name from the signature. Both executors finish a run with it.
pub(crate) fn output_tensor(
    plan: &crate::plan::Plan,
    pos: usize,
    id: dqc_codegen::spec::BufferId,
    bindings: &std::collections::BTreeMap<String, u64>,
    storage: impl FnOnce(
        &dqc_codegen::spec::Buffer,
    ) -> Result<dqc_ir::tensor::Storage, crate::RuntimeError>,
) -> Result<(String, dqc_ir::Tensor), crate::RuntimeError> {
    let b = plan
        .program()
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
    let t = dqc_ir::Tensor::from_storage(b.dtype, shape, storage(b)?).map_err(|e| {
        crate::RuntimeError::Size {
            buffer: b.name.clone(),
            problem: e.to_string(),
        }
    })?;
    let name = plan
        .signature()
        .outputs
        .get(pos)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| b.name.clone());
    Ok((name, t))
}
