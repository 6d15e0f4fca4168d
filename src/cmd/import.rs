//! `dqc import MODEL.onnx [-o MODEL.dqc]`: convert an ONNX model to the IR.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Constants with more elements than this go to the weights file when writing.
const INLINE_LIMIT: usize = 64;

/// Arguments of `dqc import`.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model (`.onnx`).
    pub file: PathBuf,
    /// Write the IR here (`.dqc`, with large constants in a `.safetensors` next to it)
    /// instead of printing it.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let g = super::load_model(&args.file)?;
    match &args.output {
        None => print!("{}", dqc_ir::text::print_with_weights(&g, INLINE_LIMIT).0),
        Some(out) => {
            super::ensure_parent(out)?;
            dqc_ir::text::write_model(out, &g, INLINE_LIMIT)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {} ({} nodes, {} inputs, {} outputs)",
                out.display(),
                g.node_count(),
                g.inputs().len(),
                g.outputs().len()
            );
        }
    }
    Ok(())
}

/// Summary lines of the ONNX side of a model: opsets, inputs, outputs, op histogram and
/// initializer sizes (each line starts with `// `).
pub fn onnx_summary(path: &Path) -> Result<Vec<String>> {
    let m = dqc_frontend::onnx::load_model(path)?;
    let mut lines = Vec::new();
    let opsets: Vec<String> = m
        .opsets()
        .iter()
        .map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    lines.push(format!(
        "// onnx model {} (ir_version {}, opsets {})",
        path.display(),
        m.ir_version(),
        opsets.join(", ")
    ));
    for vi in m.runtime_inputs() {
        let ty = dqc_frontend::onnx::tensor_type(vi, m.path())
            .map_or_else(|e| format!("? ({e})"), |t| t.to_string());
        lines.push(format!("//   onnx input  {}: {ty}", vi.name));
    }
    for vi in m.outputs() {
        let ty = dqc_frontend::onnx::tensor_type(vi, m.path())
            .map_or_else(|e| format!("? ({e})"), |t| t.to_string());
        lines.push(format!("//   onnx output {}: {ty}", vi.name));
    }
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for n in m.nodes() {
        let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
            n.op_type.clone()
        } else {
            format!("{}.{}", n.domain, n.op_type)
        };
        *hist.entry(key).or_default() += 1;
    }
    let params: usize = m.initializers().values().map(|t| t.numel()).sum();
    let bytes: usize = m.initializers().values().map(|t| t.bytes().len()).sum();
    lines.push(format!(
        "//   onnx: {} nodes, {} initializers, {} parameters ({:.2} MiB)",
        m.graph().node.len(),
        m.initializers().len(),
        params,
        bytes as f64 / (1024.0 * 1024.0)
    ));
    let ops: Vec<String> = hist.iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.push(format!("//   onnx ops: {}", ops.join(", ")));
    Ok(lines)
}
