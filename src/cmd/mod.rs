//! One module per subcommand, each with its clap `Args` and a `run` function.

pub mod bench;
pub mod compile;
pub mod eval;
pub mod import;
pub mod inspect;
pub mod make_inputs;
pub mod new_model;
pub mod run;

use std::path::Path;

use anyhow::{Context, Result};
use dqc_ir::Graph;

/// Read and verify a model file (see [`dqc::driver::load_model`]).
pub fn load_model(path: &Path) -> Result<Graph> {
    dqc::driver::load_model(path)
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

pub use dqc_runtime::plan::human_bytes;
