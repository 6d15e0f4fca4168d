//! `dqc compile MODEL --target T [-o PLAN]`: model (`.onnx` or `.dqc`) → plan file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dqc::driver::{CompileOptions, compile_file};
use dqc_ir::Target;
use dqc_runtime::plan::write_plan;

use super::{ensure_parent, human_bytes};

/// Arguments of `dqc compile`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (`.onnx` or `.dqc`).
    pub model: PathBuf,
    /// Target: `cpu`, or a GPU architecture (`sm_80` … `sm_120`).
    #[arg(long, default_value = "cpu")]
    pub target: String,
    /// Output plan file (default: the model's file name with `.dqcplan`, in the current
    /// folder). Written atomically.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print the IR after this pass (repeatable; `canonicalize`, `recognize`, `fuse-prep`).
    #[arg(long = "dump-after", value_name = "PASS")]
    pub dump_after: Vec<String>,
    /// Skip this pass (repeatable).
    #[arg(long = "disable-pass", value_name = "PASS")]
    pub disable_pass: Vec<String>,
    /// Largest value a symbolic dimension may take at run time, `NAME=N` (repeatable;
    /// default 16). The activation arena is laid out for these maxima.
    #[arg(long = "max-dim", value_name = "NAME=N")]
    pub max_dim: Vec<String>,
}

/// Parse `NAME=N` pairs (N a positive integer).
pub fn parse_dims(items: &[String], flag: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            bail!("{flag} `{item}`: expected NAME=N, e.g. batch=8");
        };
        let v: u64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .with_context(|| format!("{flag} `{item}`: `{value}` is not a positive integer"))?;
        out.insert(name.trim().to_string(), v);
    }
    Ok(out)
}

/// Run `dqc compile`.
pub fn run(a: Args) -> Result<()> {
    let target = Target::parse(&a.target)?;
    let mut opts = CompileOptions::new(target);
    opts.symbol_max = parse_dims(&a.max_dim, "--max-dim")?;
    opts.disabled = a.disable_pass.iter().cloned().collect();
    opts.dump_after = a.dump_after.iter().cloned().collect();
    let compiled = compile_file(&a.model, &opts)?;
    for (pass, text) in &compiled.report.dumps {
        println!("// ----- IR after pass `{pass}` -----");
        print!("{text}");
    }
    let out = a.output.clone().unwrap_or_else(|| default_output(&a.model));
    ensure_parent(&out)?;
    write_plan(
        &out,
        &compiled.parts,
        &compiled.lowered.weights,
        &compiled.ptx,
    )?;

    let program = &compiled.lowered.program;
    let mut families: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &program.kernels {
        *families.entry(k.body.family()).or_default() += 1;
    }
    let fam: Vec<String> = families.iter().map(|(f, n)| format!("{n} {f}")).collect();
    let weight_bytes: u64 = compiled
        .lowered
        .weights
        .iter()
        .map(|(_, t)| t.bytes().len() as u64)
        .sum();
    let symbols = if program.symbols.is_empty() {
        "static shapes".to_string()
    } else {
        program
            .symbols
            .iter()
            .map(|s| format!("{} ≤ {}", s.name, s.max))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("plan: {}", out.display());
    println!("target: {target}");
    println!(
        "kernels: {} ({}) from {} IR nodes",
        program.kernels.len(),
        fam.join(", "),
        compiled.ir_nodes_before
    );
    println!(
        "peak activation memory: {} ({symbols})",
        human_bytes(compiled.lowered.peak_bytes)
    );
    println!("weights: {}", human_bytes(weight_bytes));
    if !compiled.ptx.is_empty() {
        let bytes: usize = compiled.ptx.iter().map(|m| m.text.len()).sum();
        println!(
            "ptx: {} modules ({}), {}",
            compiled.ptx.len(),
            compiled
                .ptx
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            human_bytes(bytes as u64)
        );
    }
    println!("compile time: {:.2} s", compiled.elapsed.as_secs_f64());
    Ok(())
}

/// `dir/model.onnx` → `model.dqcplan` in the current folder.
fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    PathBuf::from(format!("{stem}.dqcplan"))
}
