//! `dqc bench PLAN [--inputs in.npz] [--iters N]`: time a plan's forward pass.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dqc_ir::npz::{read_npz, write_npz};
use dqc_ir::{DType, Tensor};
use dqc_runtime::{Plan, Session};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::compile::parse_dims;
use super::ensure_parent;
use super::run::set_threads;

/// Arguments of `dqc bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The plan file (`.dqcplan`).
    pub plan: PathBuf,
    /// Inputs (`.npz`); without it, seeded random inputs are made from the signature
    /// (floats normal, integers 0), with symbolic dimensions from `--dim` (default 1).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Symbol values for made-up inputs, `NAME=N` (repeatable).
    #[arg(long, value_name = "NAME=N")]
    pub dim: Vec<String>,
    /// Timed iterations.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Untimed warm-up iterations (the first also JIT-compiles the kernels).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the time spent per kernel family and the slowest kernels (timed runs only).
    #[arg(long)]
    pub profile: bool,
    /// With `--profile`: how many of the slowest kernels to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Also write the last run's outputs here.
    #[arg(long)]
    pub outputs: Option<PathBuf>,
    /// For harnesses that interleave engines: after the warm-up print `ready`, then before
    /// each timed run wait for a line on stdin and after it print `ms <time>` (flushed), so
    /// another engine can run between two of ours on the same machine state.
    #[arg(long)]
    pub lockstep: bool,
}

/// Run the command.
pub fn run(a: Args) -> Result<()> {
    if a.iters == 0 {
        bail!("--iters must be at least 1");
    }
    set_threads(a.threads)?;
    let plan = Plan::load(&a.plan)?;
    let mut session = Session::new(&plan)?;
    let inputs = match &a.inputs {
        Some(p) => read_npz(p)?,
        None => made_up_inputs(&plan, &parse_dims(&a.dim, "--dim")?)?,
    };
    let t0 = Instant::now();
    let mut last = session.run_named(&inputs).context("first run")?;
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    for _ in 1..a.warmup {
        session.run_named(&inputs).context("warm-up run")?;
    }
    if a.profile {
        session.enable_profiling();
    }
    let mut ms = Vec::with_capacity(a.iters);
    let mut step = a.lockstep.then(Lockstep::new).transpose()?;
    for i in 0..a.iters {
        if let Some(l) = &mut step {
            l.wait(i, a.iters)?;
        }
        let t = Instant::now();
        last = session.run_named(&inputs)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(l) = &mut step {
            l.say(&format!("ms {:.3}", ms[i]))?;
        }
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((p / 100.0) * (ms.len() - 1) as f64).round() as usize];
    println!(
        "{}: {} iterations after {} warm-up: median {:.3} ms, p10 {:.3} ms, p90 {:.3} ms \
         (first run incl. JIT {:.1} ms, {} threads)",
        a.plan.display(),
        a.iters,
        a.warmup.max(1),
        pct(50.0),
        pct(10.0),
        pct(90.0),
        first_ms,
        rayon::current_num_threads()
    );
    if let Some(prof) = session.profile() {
        print_profile(&plan, &prof, a.top);
    }
    if let Some(path) = &a.outputs {
        ensure_parent(path)?;
        write_npz(path, &last)?;
    }
    Ok(())
}

/// The `--lockstep` protocol on stdin/stdout.
struct Lockstep {
    input: std::io::StdinLock<'static>,
    line: String,
}

impl Lockstep {
    /// Announce that the warm-up is done.
    fn new() -> Result<Lockstep> {
        let mut l = Lockstep {
            input: std::io::stdin().lock(),
            line: String::new(),
        };
        l.say("ready")?;
        Ok(l)
    }

    /// Wait for the go-ahead of timed run `i` (of `n`).
    fn wait(&mut self, i: usize, n: usize) -> Result<()> {
        use std::io::BufRead;
        self.line.clear();
        let got = self
            .input
            .read_line(&mut self.line)
            .context("--lockstep: reading stdin")?;
        if got == 0 {
            bail!("--lockstep: stdin closed before timed run {} of {n}", i + 1);
        }
        Ok(())
    }

    /// One line on stdout, flushed.
    fn say(&mut self, msg: &str) -> Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{msg}")
            .and_then(|()| out.flush())
            .context("--lockstep: writing stdout")
    }
}

/// Time per family and the `top` slowest kernels, per run.
fn print_profile(plan: &Plan, prof: &[(std::time::Duration, u64)], top: usize) {
    let kernels = &plan.program().kernels;
    let per_run = |(d, n): (std::time::Duration, u64)| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    let total: f64 = prof.iter().map(|&p| per_run(p)).sum();
    let mut fam: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for (k, &p) in kernels.iter().zip(prof) {
        let e = fam.entry(k.body.family()).or_default();
        e.0 += per_run(p);
        e.1 += 1;
    }
    println!("profile (ms per run, kernels only: {total:.3} ms):");
    for (f, (ms, n)) in &fam {
        println!(
            "  {f:<15} {ms:>9.3} ms {:>5.1}%  ({n} kernels)",
            100.0 * ms / total.max(1e-12)
        );
    }
    let mut order: Vec<usize> = (0..kernels.len().min(prof.len())).collect();
    order.sort_by(|&a, &b| per_run(prof[b]).total_cmp(&per_run(prof[a])));
    println!("  slowest kernels:");
    for &i in order.iter().take(top) {
        println!(
            "  #{i:<4} {:<15} {:>9.3} ms  {}",
            kernels[i].body.family(),
            per_run(prof[i]),
            kernels[i].name
        );
    }
}

/// Seeded inputs for the plan's signature.
fn made_up_inputs(
    plan: &Plan,
    dims: &std::collections::BTreeMap<String, u64>,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut out = Vec::new();
    for sig in &plan.signature().inputs {
        let mut shape = Vec::new();
        for d in sig.shape.dims() {
            let mut bindings = dims.clone();
            for (s, _) in d.symbols() {
                bindings.entry(s.clone()).or_insert(1);
            }
            shape.push(d.eval(&bindings).with_context(|| {
                format!("input `{}`: dimension {d} does not evaluate", sig.name)
            })?);
        }
        let n: u64 = shape.iter().product();
        let n = usize::try_from(n).context("input too large")?;
        let t = if sig.dtype.is_float() {
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    // Box–Muller normal samples.
                    let u1: f32 = rng.random_range(1e-7f32..1.0);
                    let u2: f32 = rng.random_range(0f32..1.0);
                    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect();
            Tensor::from_f32(sig.dtype, shape, &v)?
        } else if sig.dtype == DType::Bool {
            Tensor::from_i64(DType::Bool, shape, &vec![1; n])?
        } else {
            Tensor::from_i64(sig.dtype, shape, &vec![0; n])?
        };
        out.push((sig.name.clone(), t));
    }
    Ok(out)
}
