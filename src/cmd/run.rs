//! `dqc run PLAN --inputs in.npz --outputs out.npz`: execute a plan with the runtime.

use std::path::PathBuf;

use anyhow::{Context, Result};
use dqc_ir::npz::{read_npz, write_npz};
use dqc_runtime::{Plan, Session};

use super::{checksum, ensure_parent};

/// Arguments of `dqc run`.
#[derive(clap::Args)]
pub struct Args {
    /// The plan file (`.dqcplan`).
    pub plan: PathBuf,
    /// Inputs, one array per graph input, by name.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write the outputs (`.npz`, written atomically).
    #[arg(long)]
    pub outputs: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Size the global thread pool the CPU kernels use.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot size the thread pool")?;
    }
    Ok(())
}

/// Run the command.
pub fn run(a: Args) -> Result<()> {
    set_threads(a.threads)?;
    let plan = Plan::load(&a.plan)?;
    let session = Session::new(&plan)?;
    let inputs = read_npz(&a.inputs)?;
    let outputs = session
        .run_named(&inputs)
        .with_context(|| format!("running {}", a.plan.display()))?;
    for (name, t) in &outputs {
        println!(
            "{name}: {}{:?} checksum {:016x}",
            t.dtype(),
            t.shape(),
            checksum(t.bytes())
        );
    }
    if let Some(path) = &a.outputs {
        ensure_parent(path)?;
        write_npz(path, &outputs)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
