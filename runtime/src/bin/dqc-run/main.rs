//! `dqc-run`: run, benchmark, inspect or check a dqc plan, with nothing but the runtime.
//!
//! ```text
//! dqc-run run PLAN --inputs in.npz --outputs out.npz [--cpu | --device N]
//! dqc-run bench PLAN --inputs in.npz [--iters N] [--warmup W] [--graph] [--cpu]
//! dqc-run inspect PLAN
//! dqc-run check PLAN [--dim N=V ...] [--seed S] [--rtol R] [--inputs in.npz]
//! dqc-run compare OUT.npz REF.npz [--rtol R]
//! dqc-run ptx PLAN DIR
//! ```
//! GPU plans run on the GPU when `dqc-run` is built with `--features cuda`. Errors print
//! one `error: …` line and exit with status 1; `check` and `compare` exit with status 2
//! when the results differ.

mod compare;
mod inputs;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use compare::compare;
use dqc_ir::npz::{read_npz, write_npz};
use dqc_ir::{DType, Tensor};
use dqc_runtime::{Device, Plan, Session};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "dqc-run", version, about = "Run dqc plans")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to run.
#[derive(clap::Args, Clone, Copy)]
struct Where {
    /// Run on the CPU even if the plan targets a GPU (its program is target independent).
    #[arg(long, conflicts_with = "device")]
    cpu: bool,
    /// The CUDA device ordinal for GPU plans (default 0).
    #[arg(long)]
    device: Option<usize>,
}

impl Where {
    fn device(self) -> Device {
        match (self.cpu, self.device) {
            (true, _) => Device::Cpu,
            (false, Some(n)) => Device::Cuda(n),
            (false, None) => Device::Auto,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a plan on the arrays of an .npz file and write its outputs to another.
    Run {
        /// The plan file.
        plan: PathBuf,
        /// Inputs, one array per plan input, named as the plan's inputs (f32 arrays are
        /// converted for bf16/f8 inputs, which numpy cannot store).
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write the outputs (.npz; bf16/f8 outputs are written as f32).
        #[arg(long)]
        outputs: PathBuf,
        #[command(flatten)]
        at: Where,
    },
    /// Time repeated runs and print the median, p10 and p90 in milliseconds. On a GPU,
    /// each forward is timed with CUDA events, inputs already on the device.
    Bench {
        /// The plan file.
        plan: PathBuf,
        /// Inputs (.npz); random ones (seed 0, symbols at their maxima) if absent.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Untimed runs first (the first run also compiles or loads the kernels).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// On a GPU: capture the kernels into a CUDA graph and time graph launches.
        #[arg(long)]
        graph: bool,
        /// Symbol values for random inputs, `NAME=N` (repeatable).
        #[arg(long = "dim", value_name = "NAME=N")]
        dims: Vec<String>,
        /// Then run ITERS more times timing every kernel (CUDA events on a GPU) and print
        /// the kernels by time.
        #[arg(long)]
        profile: bool,
        #[command(flatten)]
        at: Where,
    },
    /// Print the plan's kernels, buffers, peak memory, precision table and provenance.
    Inspect {
        /// The plan file.
        plan: PathBuf,
    },
    /// Run a GPU plan's program on the CPU (Cranelift) and on the GPU with the same inputs
    /// and compare every output; exit status 2 on a mismatch.
    Check {
        /// The plan file (a GPU plan).
        plan: PathBuf,
        /// Symbol values, `NAME=N` (repeatable; default: each symbol's maximum).
        #[arg(long = "dim", value_name = "NAME=N")]
        dims: Vec<String>,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Relative tolerance (default 1e-3; 2e-2 when an output is bf16 or f16).
        #[arg(long)]
        rtol: Option<f64>,
        /// Absolute tolerance (default rtol · max|reference|, a max-norm relative error).
        #[arg(long)]
        atol: Option<f64>,
        /// Integer inputs are drawn from [0, INT_MAX).
        #[arg(long, default_value_t = 4)]
        int_max: u64,
        /// Use these inputs instead of random ones.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// The CUDA device ordinal (default 0).
        #[arg(long)]
        device: Option<usize>,
    },
    /// Write each PTX module of a GPU plan to `DIR/PREFIX.MODULE.TARGET.ptx` and print the
    /// paths (for `ptxas`).
    Ptx {
        /// The plan file.
        plan: PathBuf,
        /// Output folder (created).
        dir: PathBuf,
        /// File name prefix (default: the plan's file stem).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Compare the arrays of two .npz files (outputs against references); exit status 2
    /// on a mismatch.
    Compare {
        /// The outputs to check.
        outputs: PathBuf,
        /// The references (every array here must be in OUTPUTS).
        reference: PathBuf,
        /// Relative tolerance.
        #[arg(long, default_value_t = 1e-3)]
        rtol: f64,
        /// Absolute tolerance (default rtol · max|reference|, a max-norm relative error).
        #[arg(long)]
        atol: Option<f64>,
    },
}

/// The exit status of a completed comparison that found differences.
const MISMATCH: u8 = 2;

fn main() -> ExitCode {
    dqc_runtime::default_sigpipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(MISMATCH),
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

/// Parse `NAME=N` pairs.
fn parse_dims(items: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            bail!("--dim `{item}`: expected NAME=N, e.g. B=2");
        };
        let v: u64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .with_context(|| format!("--dim `{item}`: `{value}` is not a positive integer"))?;
        out.insert(name.trim().to_string(), v);
    }
    Ok(out)
}

fn open(plan: &PathBuf, device: Device) -> Result<(Plan, Session)> {
    let plan = Plan::load(plan)?;
    let session = Session::on_device(&plan, device)?;
    Ok((plan, session))
}

/// Run a command; `Ok(false)` when a comparison found differences.
fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Run {
            plan,
            inputs,
            outputs,
            at,
        } => {
            let (plan, session) = open(&plan, at.device())?;
            let ins = inputs::adapt_inputs(&plan, read_npz(&inputs)?)?;
            let outs = session.run_named(&ins)?;
            write_npz(&outputs, &inputs::storable(&outs)?)?;
            for (name, t) in &outs {
                println!("{name}: {}{:?}", t.dtype(), t.shape());
            }
            println!("ran on {}", session.device_description());
            println!("wrote {}", outputs.display());
        }
        Command::Bench {
            plan,
            inputs,
            iters,
            warmup,
            graph,
            dims,
            profile,
            at,
        } => {
            if iters == 0 {
                bail!("--iters must be at least 1");
            }
            let (plan, mut session) = open(&plan, at.device())?;
            let ins = match &inputs {
                Some(p) => inputs::adapt_inputs(&plan, read_npz(p)?)?,
                None => inputs::random_inputs(&plan, &parse_dims(&dims)?, 0, 4)?,
            };
            let refs: Vec<(&str, &Tensor)> = ins.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let mut ms = match session.time_device(&refs, warmup, iters, graph)? {
                Some(ms) => ms,
                None => {
                    if graph {
                        bail!("--graph needs a GPU session");
                    }
                    for _ in 0..warmup {
                        session.run(&refs).context("warm-up run")?;
                    }
                    let mut ms = Vec::with_capacity(iters);
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        session.run(&refs)?;
                        ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    ms
                }
            };
            ms.sort_by(f64::total_cmp);
            println!(
                "{} iterations: median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms",
                iters,
                percentile(&ms, 50.0),
                percentile(&ms, 10.0),
                percentile(&ms, 90.0)
            );
            println!(
                "on {}{}",
                session.device_description(),
                if session.is_gpu() {
                    if graph {
                        " (CUDA graph launches, CUDA-event timing, no copies)"
                    } else {
                        " (kernel launches, CUDA-event timing, no copies)"
                    }
                } else {
                    " (wall clock per run)"
                }
            );
            if profile {
                session.enable_profiling();
                for _ in 0..iters {
                    session.run(&refs).context("profiled run")?;
                }
                if let Some(p) = session.profile() {
                    print_profile(&plan, &p);
                }
            }
        }
        Command::Inspect { plan } => {
            let plan = Plan::load(&plan)?;
            print!("{}", plan.describe());
        }
        Command::Check {
            plan,
            dims,
            seed,
            rtol,
            atol,
            int_max,
            inputs,
            device,
        } => {
            let plan = Plan::load(&plan)?;
            if plan.target().is_cpu() {
                bail!("`check` compares the GPU with the CPU: the plan targets `cpu`");
            }
            let ins = match &inputs {
                Some(p) => inputs::adapt_inputs(&plan, read_npz(p)?)?,
                None => inputs::random_inputs(&plan, &parse_dims(&dims)?, seed, int_max.max(1))?,
            };
            let cpu = Session::on_device(&plan, Device::Cpu)?;
            let want = cpu.run_named(&ins).context("running on the CPU")?;
            let gpu = Session::on_device(&plan, Device::Cuda(device.unwrap_or(0)))?;
            let got = gpu.run_named(&ins).context("running on the GPU")?;
            println!(
                "check {} on {}",
                plan.path().display(),
                gpu.device_description()
            );
            return Ok(report(&got, &want, rtol, atol));
        }
        Command::Ptx { plan, dir, prefix } => {
            let prefix = prefix.unwrap_or_else(|| {
                plan.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "plan".into())
            });
            let plan = Plan::load(&plan)?;
            if plan.ptx_modules().is_empty() {
                bail!(
                    "{} has no PTX modules (target `{}`)",
                    plan.path().display(),
                    plan.target().name
                );
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for m in plan.ptx_modules() {
                let path = dir.join(format!("{prefix}.{}.{}.ptx", m.name, m.target));
                std::fs::write(&path, &m.text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
        }
        Command::Compare {
            outputs,
            reference,
            rtol,
            atol,
        } => {
            let got = read_npz(&outputs)?;
            let want = read_npz(&reference)?;
            return Ok(report(&got, &want, Some(rtol), atol));
        }
    }
    Ok(true)
}

/// Print the kernels by accumulated time: milliseconds per run, share, name, family.
fn print_profile(plan: &Plan, prof: &[(std::time::Duration, u64)]) {
    let kernels = &plan.program().kernels;
    let per_run: Vec<(usize, f64)> = prof
        .iter()
        .enumerate()
        .map(|(i, (t, n))| (i, t.as_secs_f64() * 1e3 / (*n).max(1) as f64))
        .collect();
    let total: f64 = per_run.iter().map(|(_, ms)| ms).sum();
    let mut sorted = per_run.clone();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("profile (ms per run, kernels only: {total:.3} ms):");
    for (i, ms) in sorted {
        let (name, family) = kernels
            .get(i)
            .map_or(("?", "?"), |k| (k.name.as_str(), k.body.family()));
        let share = if total > 0.0 { 100.0 * ms / total } else { 0.0 };
        println!("  {ms:9.3} ms {share:5.1}%  #{i} {name} ({family})");
    }
}

/// Print one line per reference array; true when all agree.
fn report(
    got: &[(String, Tensor)],
    want: &[(String, Tensor)],
    rtol: Option<f64>,
    atol: Option<f64>,
) -> bool {
    let mut ok = true;
    for (name, w) in want {
        let Some((_, g)) = got.iter().find(|(n, _)| n == name) else {
            println!("FAIL {name}: missing from the outputs");
            ok = false;
            continue;
        };
        let low = [g.dtype(), w.dtype()]
            .iter()
            .any(|&d| matches!(d, DType::BF16 | DType::F16) || d.is_low_precision_float());
        let r = rtol.unwrap_or(if low { 2e-2 } else { 1e-3 });
        match compare(g, w, r, atol) {
            Ok(d) => {
                println!(
                    "{} {name}: {}{:?} max abs {:.3e}, max rel {:.3e}, {} of {} outside rtol {r:e} (scale {:.3e})",
                    if d.ok() { "ok  " } else { "FAIL" },
                    g.dtype(),
                    g.shape(),
                    d.max_abs,
                    d.max_rel,
                    d.bad,
                    d.len,
                    d.scale
                );
                if let Some((i, a, b)) = d.first_bad {
                    let at = g
                        .shape()
                        .iter()
                        .rev()
                        .scan(i, |rest, &n| {
                            let n = n.max(1) as usize;
                            let c = *rest % n;
                            *rest /= n;
                            Some(c)
                        })
                        .collect::<Vec<_>>();
                    let at: Vec<usize> = at.into_iter().rev().collect();
                    println!("     first outside tolerance at {at:?}: {a} vs reference {b}");
                }
                ok &= d.ok();
            }
            Err(e) => {
                println!("FAIL {name}: {e}");
                ok = false;
            }
        }
    }
    ok
}
