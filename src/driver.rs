//! The compile driver: model file → passes → lowering → plan parts. Shared by `dqc compile`
//! and the end-to-end tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dqc_codegen::lower::{LowerOptions, Lowered, lower};
use dqc_ir::{Graph, Target};
use dqc_passes::{PassOptions, Pipeline, PipelineReport};
use dqc_runtime::plan::{PlanParts, Provenance, PtxModule};
use sha2::{Digest, Sha256};

/// What to compile for and how.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The target.
    pub target: Target,
    /// Passes switched off by name.
    pub disabled: BTreeSet<String>,
    /// Passes after which the IR text is collected.
    pub dump_after: BTreeSet<String>,
    /// Largest run-time value of each symbolic dimension.
    pub symbol_max: BTreeMap<String, u64>,
}

impl CompileOptions {
    /// Defaults for `target`: every pass, no dumps, default symbol maxima.
    pub fn new(target: Target) -> CompileOptions {
        CompileOptions {
            target,
            disabled: BTreeSet::new(),
            dump_after: BTreeSet::new(),
            symbol_max: BTreeMap::new(),
        }
    }

    /// The options as they would be written on the command line (recorded in the plan).
    pub fn command_line(&self) -> String {
        let mut s = format!("--target {}", self.target.name);
        for (k, v) in &self.symbol_max {
            s.push_str(&format!(" --max-dim {k}={v}"));
        }
        for p in &self.disabled {
            s.push_str(&format!(" --disable-pass {p}"));
        }
        s
    }
}

/// The result of compiling one graph.
pub struct Compiled {
    /// Nodes of the graph before the passes.
    pub ir_nodes_before: usize,
    /// The graph after the passes.
    pub graph: Graph,
    /// What each pass did (and the requested IR dumps).
    pub report: PipelineReport,
    /// Buffers, kernels, weights, memory plan.
    pub lowered: Lowered,
    /// Everything the plan header needs.
    pub parts: PlanParts,
    /// PTX modules (GPU targets; empty for `cpu`).
    pub ptx: Vec<PtxModule>,
    /// Wall time of passes + lowering.
    pub elapsed: Duration,
}

/// Compile an already loaded graph; `source_sha256` identifies the model it came from.
pub fn compile_graph(
    mut graph: Graph,
    source_sha256: String,
    opts: &CompileOptions,
) -> Result<Compiled> {
    let start = Instant::now();
    let ir_nodes_before = graph.node_count();
    let pass_opts = PassOptions {
        target: opts.target,
        disabled: opts.disabled.clone(),
        dump_after: opts.dump_after.clone(),
        ..PassOptions::default()
    };
    let report = Pipeline::standard().run(&mut graph, &pass_opts)?;
    let lowered = lower(
        &graph,
        &LowerOptions {
            symbol_max: opts.symbol_max.clone(),
        },
    )?;
    let provenance = Provenance {
        dqc_version: env!("CARGO_PKG_VERSION").to_string(),
        source_sha256,
        calibration_sha256: None,
        compile_options: opts.command_line(),
    };
    let parts = PlanParts::new(opts.target.name, lowered.program.clone(), provenance);
    let ptx = if !opts.target.is_cpu() {
        dqc_codegen::ptx::compile_program(&lowered.program, &opts.target)?
            .into_iter()
            .map(|m| PtxModule {
                name: m.module,
                target: opts.target.name.to_string(),
                text: m.text,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Compiled {
        ir_nodes_before,
        graph,
        report,
        lowered,
        parts,
        ptx,
        elapsed: start.elapsed(),
    })
}

/// Load `path` (`.onnx` or `.dqc`, verified) and compile it.
pub fn compile_file(path: &Path, opts: &CompileOptions) -> Result<Compiled> {
    let sha = sha256_file(path)?;
    let graph = load_model(path)?;
    compile_graph(graph, sha, opts).with_context(|| format!("compiling {}", path.display()))
}

/// SHA-256 of the file at `path`, lowercase hex, read in 1 MiB pieces (a model can be
/// gigabytes; it is not held in memory twice).
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the file at `path` starts with the plan magic (a compiled `.dqcplan`, whatever
/// its name). Unreadable files are not plans (the caller's own open reports the error).
pub fn is_plan_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == dqc_runtime::plan::MAGIC)
}

/// Read and verify a model file. `.dqc` files are parsed with their weights; `.onnx`
/// files are imported (and verified) by the ONNX frontend; other extensions are refused
/// with a message that lists what is accepted (and says so when the file is a plan).
pub fn load_model(path: &Path) -> Result<Graph> {
    if is_plan_file(path) {
        anyhow::bail!(
            "{}: this is a compiled plan, not a model (run it with `dqc run`, describe it \
             with `dqc inspect`)",
            path.display()
        );
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("dqc") => {
            let mut g = dqc_ir::text::read_model(path)?;
            dqc_ir::verify::verify(&mut g).with_context(|| format!("{}", path.display()))?;
            Ok(g)
        }
        Some("onnx") => Ok(dqc_frontend::onnx::import_file(path)?),
        _ => anyhow::bail!(
            "{}: unsupported model file (expected a `.dqc` IR file or an `.onnx` model)",
            path.display()
        ),
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
