//! Writing plans: validate everything the loader would, then replace the file atomically.

use super::error::{PlanError, ValidationError};
use super::header::{FORMAT_VERSION, PlanHeader, PlanParts, PtxModule};
use super::layout::{AssembleError, PTX, WEIGHTS, assemble};
use super::{check_ptx, floats, validate, weights};
use dqc_ir::Tensor;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// Write a plan to `path`.
///
/// `weights` holds one tensor per distinct `BufferKind::Weight` name of the program (no
/// more, no fewer); `ptx` the PTX modules (empty for `cpu` plans). The same checks as
/// [`super::Plan::load`] run first, so an invalid plan is never written. The file is
/// written to a temporary file in the same folder, synced and renamed over `path`: on any
/// error `path` is left as it was and the temporary file is removed.
pub fn write_plan(
    path: &Path,
    parts: &PlanParts,
    weights: &[(String, Tensor)],
    ptx: &[PtxModule],
) -> Result<(), PlanError> {
    let invalid = |source| PlanError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    let (header, weights_bytes, ptx_bytes) = prepare(parts, weights, ptx).map_err(invalid)?;
    let sections = [
        (WEIGHTS, weights_bytes.as_slice()),
        (PTX, ptx_bytes.as_slice()),
    ];
    write_atomic(path, |f| match assemble(header, &sections, f) {
        Ok(_) => Ok(()),
        Err(AssembleError::Io(e)) => Err(e),
        Err(AssembleError::Layout(m)) => Err(std::io::Error::other(m)),
    })
    .map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes of the plan file [`write_plan`] writes (same checks).
pub fn plan_bytes(
    parts: &PlanParts,
    weights: &[(String, Tensor)],
    ptx: &[PtxModule],
) -> Result<Vec<u8>, ValidationError> {
    let (header, weights_bytes, ptx_bytes) = prepare(parts, weights, ptx)?;
    let mut out = Vec::new();
    let sections = [
        (WEIGHTS, weights_bytes.as_slice()),
        (PTX, ptx_bytes.as_slice()),
    ];
    assemble(header, &sections, &mut out).map_err(|e| ValidationError::Layout {
        message: e.to_string(),
    })?;
    Ok(out)
}

/// Validate the parts and encode the header (without its section table) and sections.
fn prepare(
    parts: &PlanParts,
    weights: &[(String, Tensor)],
    ptx: &[PtxModule],
) -> Result<(PlanHeader, Vec<u8>, Vec<u8>), ValidationError> {
    let mut program = parts.program.clone();
    let nonfinite = floats::extract(&mut program)?;
    let header = PlanHeader {
        format_version: FORMAT_VERSION,
        target: parts.target.clone(),
        program,
        signature: parts.signature.clone(),
        precision: parts.precision.clone(),
        cache_slots: parts.cache_slots.clone(),
        schedule: parts.schedule.clone(),
        provenance: parts.provenance.clone(),
        nonfinite,
        sections: Vec::new(),
    };
    let target = validate::check_header(&header)?;
    let weights_bytes = weights::encode(weights)?;
    let entries = weights::decode(&weights_bytes)?;
    weights::check_against_program(&parts.program, &entries)?;
    check_ptx(&target, ptx)?;
    let ptx_bytes = serde_json::to_vec(ptx).map_err(|e| ValidationError::Ptx {
        message: e.to_string(),
    })?;
    Ok((header, weights_bytes, ptx_bytes))
}

/// Write `path` through a synced temporary file in the same folder and a
/// rename; the folder is synced afterwards where the platform allows.
fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(&f);
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        // Best effort: not every platform can open or sync a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
