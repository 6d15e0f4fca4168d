//! `dqc make-inputs FILE -o in.npz`: seeded random inputs for a model's signature.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use dqc_ir::{DType, Op, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Arguments of `dqc make-inputs`.
#[derive(clap::Args)]
pub struct Args {
    /// The model file (`.dqc`).
    pub file: PathBuf,
    /// Value of the symbolic batch dimension `B`.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Values of other symbolic dimensions, as `NAME=VALUE` (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE")]
    pub dims: Vec<String>,
    /// Integer inputs are drawn uniformly from `[0, int_max)`.
    #[arg(long, default_value_t = 10)]
    pub int_max: i64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output `.npz`.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let g = super::load_model(&args.file)?;
    let mut bindings = BTreeMap::new();
    bindings.insert("B".to_string(), args.batch);
    for d in &args.dims {
        let (k, v) = d
            .split_once('=')
            .ok_or_else(|| anyhow!("--dim `{d}`: expected NAME=VALUE"))?;
        let v: u64 = v.parse().with_context(|| format!("--dim `{d}`"))?;
        bindings.insert(k.to_string(), v);
    }
    if args.int_max <= 0 {
        bail!("--int-max must be positive");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut out = Vec::new();
    for id in g.inputs() {
        let node = g.node(*id);
        let Op::Input { ty, .. } = &node.op else {
            continue;
        };
        let shape = ty.shape.eval(&bindings).ok_or_else(|| {
            anyhow!(
                "input `{}` has shape {}: give every symbol a value with --batch or --dim",
                node.name(),
                ty.shape
            )
        })?;
        let n = dqc_ir::tensor::checked_numel(&shape)?;
        let t = if ty.dtype.is_float() {
            let vals: Vec<f32> = (0..n).map(|_| normal(&mut rng)).collect();
            Tensor::from_f32(ty.dtype, shape, &vals)?
        } else if ty.dtype == DType::Bool {
            let vals: Vec<i64> = (0..n).map(|_| i64::from(rng.random::<bool>())).collect();
            Tensor::from_i64(ty.dtype, shape, &vals)?
        } else {
            let vals: Vec<i64> = (0..n).map(|_| rng.random_range(0..args.int_max)).collect();
            Tensor::from_i64(ty.dtype, shape, &vals)?
        };
        out.push((node.name().to_string(), t));
    }
    super::ensure_parent(&args.output)?;
    dqc_ir::npz::write_npz(&args.output, &out)?;
    for (name, t) in &out {
        println!("{name}: {}", t.ty());
    }
    println!("wrote {}", args.output.display());
    Ok(())
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
