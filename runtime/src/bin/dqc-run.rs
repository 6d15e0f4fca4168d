//! `dqc-run`: run, benchmark or inspect a dqc plan, with nothing but the runtime.
//!
//! ```text
//! dqc-run run PLAN --inputs in.npz --outputs out.npz
//! dqc-run bench PLAN --inputs in.npz [--iters N] [--warmup W]
//! dqc-run inspect PLAN
//! ```
//! Errors print one `error: …` line and exit with status 1.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dqc_ir::npz::{read_npz, write_npz};
use dqc_runtime::{Plan, Session};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "dqc-run", version, about = "Run dqc plans")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plan on the arrays of an .npz file and write its outputs to another.
    Run {
        /// The plan file.
        plan: PathBuf,
        /// Inputs, one array per plan input, named as the plan's inputs.
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write the outputs (.npz).
        #[arg(long)]
        outputs: PathBuf,
    },
    /// Time repeated runs and print the median, p10 and p90 in milliseconds.
    Bench {
        /// The plan file.
        plan: PathBuf,
        /// Inputs (.npz).
        #[arg(long)]
        inputs: PathBuf,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Untimed runs first (the first run also compiles the kernels).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// Print the plan's kernels, buffers, peak memory, precision table and provenance.
    Inspect {
        /// The plan file.
        plan: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            plan,
            inputs,
            outputs,
        } => {
            let plan = Plan::load(&plan)?;
            let session = Session::new(&plan)?;
            let ins = read_npz(&inputs)?;
            let outs = session.run_named(&ins)?;
            write_npz(&outputs, &outs)?;
            for (name, t) in &outs {
                println!("{name}: {}{:?}", t.dtype(), t.shape());
            }
            println!("wrote {}", outputs.display());
        }
        Command::Bench {
            plan,
            inputs,
            iters,
            warmup,
        } => {
            if iters == 0 {
                bail!("--iters must be at least 1");
            }
            let plan = Plan::load(&plan)?;
            let session = Session::new(&plan)?;
            let ins = read_npz(&inputs)?;
            for _ in 0..warmup {
                session.run_named(&ins).context("warm-up run")?;
            }
            let mut ms = Vec::with_capacity(iters);
            for _ in 0..iters {
                let t0 = Instant::now();
                session.run_named(&ins)?;
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{} iterations: median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms",
                iters,
                percentile(&ms, 50.0),
                percentile(&ms, 10.0),
                percentile(&ms, 90.0)
            );
        }
        Command::Inspect { plan } => {
            let plan = Plan::load(&plan)?;
            print!("{}", plan.describe());
        }
    }
    Ok(())
}
