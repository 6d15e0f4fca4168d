//! `dqc inspect FILE`: parse, verify, print the IR and a summary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use dqc_ir::Op;

/// Arguments of `dqc inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The model file (`.dqc` or `.onnx`) or a plan (`.dqcplan`: kernels, buffers, peak
    /// memory, precision table, provenance).
    pub file: PathBuf,
    /// Print only the summary, not the IR text.
    #[arg(long)]
    pub summary: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    if args.file.extension().and_then(|e| e.to_str()) == Some("dqcplan")
        || dqc::driver::is_plan_file(&args.file)
    {
        let plan = dqc_runtime::Plan::load(&args.file)?;
        print!("{}", plan.describe());
        return Ok(());
    }
    let g = super::load_model(&args.file)?;
    if !args.summary {
        print!("{}", dqc_ir::text::print_with_weights(&g, 16).0);
    }
    let mut hist: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut params = 0usize;
    let mut param_bytes = 0usize;
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::Input { .. } => {}
            Op::Constant(t) => {
                params += t.numel();
                param_bytes += t.bytes().len();
            }
            op => *hist.entry(op.name()).or_default() += 1,
        }
    }
    println!("// graph @{}", g.name);
    for v in g.input_values() {
        let ty = g.value_type(v).map(|t| t.to_string()).unwrap_or_default();
        println!("//   input  %{}: {ty}", g.value_name(v));
    }
    for &v in g.outputs() {
        let ty = g.value_type(v).map(|t| t.to_string()).unwrap_or_default();
        println!("//   output %{}: {ty}", g.value_name(v));
    }
    println!(
        "//   {} nodes, {} parameters ({:.2} MiB)",
        g.node_count(),
        params,
        param_bytes as f64 / (1024.0 * 1024.0)
    );
    let ops: Vec<String> = hist.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("//   ops: {}", ops.join(", "));
    if args.file.extension().and_then(|e| e.to_str()) == Some("onnx") {
        for line in super::import::onnx_summary(&args.file)? {
            println!("{line}");
        }
    }
    Ok(())
}
