//! One module per subcommand, each with its clap `Args` and a `run` function.

pub mod eval;
pub mod import;
pub mod inspect;
pub mod make_inputs;
pub mod new_model;

use std::path::Path;

use anyhow::{Context, Result, bail};
use dqc_ir::Graph;

/// Read and verify a model file. `.dqc` files are parsed with their weights; `.onnx`
/// files are imported (and verified) by the ONNX frontend; other extensions are refused
/// with a message that lists what is accepted.
pub fn load_model(path: &Path) -> Result<Graph> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("dqc") => {
            let mut g = dqc_ir::text::read_model(path)?;
            dqc_ir::verify::verify(&mut g).with_context(|| format!("{}", path.display()))?;
            Ok(g)
        }
        Some("onnx") => Ok(dqc_frontend::onnx::import_file(path)?),
        _ => bail!(
            "{}: unsupported model file (expected a `.dqc` IR file or an `.onnx` model)",
            path.display()
        ),
    }
}

/// Create the folder an output file goes into, if it does not exist yet.
pub fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    Ok(())
}

/// A short, stable fingerprint of a tensor's bytes (FNV-1a, 64 bit) for summaries.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
