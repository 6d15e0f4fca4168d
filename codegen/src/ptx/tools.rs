//! Finding NVIDIA's `ptxas` on this machine (no LLVM needed): the tests and the device
//! scripts assemble generated PTX with it when it is present.

use std::path::PathBuf;
use std::process::Command;

/// Where `ptxas` is looked for after `$PTXAS`: the wheel `scripts/setup.sh` installs, then
/// the usual CUDA toolkit folder.
pub const PTXAS_CANDIDATES: [&str; 2] = [
    "/opt/cuda-nvcc/nvidia/cu13/bin/ptxas",
    "/usr/local/cuda/bin/ptxas",
];

/// `ptxas`, if this machine has one: `$PTXAS` when set (taken as given), else the first
/// of [`PTXAS_CANDIDATES`] that is a file, else `ptxas` on the `PATH` when it runs.
pub fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PTXAS") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = PTXAS_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    {
        return Some(p);
    }
    Command::new("ptxas")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("ptxas"))
}
