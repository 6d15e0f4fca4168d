//! `dqc eval FILE --inputs in.npz --outputs out.npz`: run the reference interpreter.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dqc_ir::npz;

/// Arguments of `dqc eval`.
#[derive(clap::Args)]
pub struct Args {
    /// The model file (`.dqc` or `.onnx`).
    pub file: PathBuf,
    /// Inputs: an `.npz` whose array names are the graph's input names.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write the outputs (`.npz`, array names = the graph's output names).
    #[arg(long)]
    pub outputs: PathBuf,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let g = super::load_model(&args.file)?;
    let given = npz::read_npz(&args.inputs)?;
    let mut by_name: HashMap<String, dqc_ir::Tensor> = given.into_iter().collect();
    let mut inputs = Vec::new();
    let mut missing = Vec::new();
    for v in g.input_values() {
        let name = g.value_name(v);
        match by_name.remove(name) {
            Some(t) => inputs.push(t),
            None => missing.push(name.to_string()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{}: missing inputs {} (the model takes {})",
            args.inputs.display(),
            missing.join(", "),
            input_list(&g)
        );
    }
    if !by_name.is_empty() {
        let mut extra: Vec<String> = by_name.into_keys().collect();
        extra.sort();
        bail!(
            "{}: unknown inputs {} (the model takes {})",
            args.inputs.display(),
            extra.join(", "),
            input_list(&g)
        );
    }
    let outs =
        dqc_ir::interp::run(&g, &inputs).with_context(|| format!("{}", args.file.display()))?;
    let named: Vec<(String, dqc_ir::Tensor)> = g
        .outputs()
        .iter()
        .zip(outs)
        .map(|(&v, t)| (g.value_name(v).to_string(), t))
        .collect();
    for (name, t) in &named {
        println!(
            "{name}: {} checksum {:016x}",
            t.ty(),
            super::checksum(t.bytes())
        );
    }
    super::ensure_parent(&args.outputs)?;
    npz::write_npz(&args.outputs, &named)?;
    println!("wrote {}", args.outputs.display());
    Ok(())
}

fn input_list(g: &dqc_ir::Graph) -> String {
    g.input_values()
        .iter()
        .map(|&v| {
            let ty = g.value_type(v).map(|t| t.to_string()).unwrap_or_default();
            format!("{}: {ty}", g.value_name(v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
