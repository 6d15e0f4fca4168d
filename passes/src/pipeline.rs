//! The ordered pass pipeline: verifier after every pass, dumps, switches, timings.

use std::time::Instant;

use dqc_ir::{Graph, TensorType};

use crate::canonicalize::Canonicalize;
use crate::egraph::{FusePrep, Recognize};
use crate::{Pass, PassError, PassOptions};

/// Largest constant printed inline in a dump; bigger ones are written
/// `external<TYPE> "name"`.
const DUMP_INLINE_LIMIT: usize = 64;

/// How one pass went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassRun {
    /// The pass.
    pub name: String,
    /// False if it was disabled (by options or by [`Pass::enabled`]) and did not run.
    pub enabled: bool,
    /// Whether it changed the graph.
    pub changed: bool,
    /// Time it took, including the verifier after it, in microseconds.
    pub micros: u128,
}

/// What [`Pipeline::run`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// `(pass, IR text after it)` for each pass named in `dump_after`, in pipeline order.
    /// Constants of more than 64 elements are printed as `external<TYPE> "name"`.
    pub dumps: Vec<(String, String)>,
    /// One entry per pass of the pipeline, in order.
    pub passes: Vec<PassRun>,
}

/// An ordered list of passes.
pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Pipeline {
    /// The standard pipeline in DESIGN order, with the passes that exist now:
    /// `canonicalize`, `recognize`, `fuse-prep`.
    pub fn standard() -> Pipeline {
        Pipeline::new(vec![
            Box::new(Canonicalize),
            Box::new(Recognize),
            Box::new(FusePrep),
        ])
    }

    /// A pipeline of the given passes, in order.
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline { passes }
    }

    /// The pass names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Run every enabled pass in order on `graph`.
    ///
    /// Refuses (before touching the graph) a name in `opts.disabled` or `opts.dump_after`
    /// that is not a pass of this pipeline, listing the valid names. Verifies the input
    /// graph (errors name the pass `input`), then after each pass runs
    /// [`dqc_ir::verify::verify`] and checks that the signature (input names, order and
    /// types; output count and types) is unchanged; the first failure is returned and
    /// names the pass. On success the graph holds inferred types throughout.
    pub fn run(&self, graph: &mut Graph, opts: &PassOptions) -> Result<PipelineReport, PassError> {
        self.check_names(opts)?;
        dqc_ir::verify::verify(graph).map_err(|source| PassError::Verify {
            pass: "input".to_string(),
            source: Box::new(source),
        })?;
        let before = signature(graph);
        let mut report = PipelineReport::default();
        for pass in &self.passes {
            let name = pass.name();
            let enabled = !opts.disabled.contains(name) && pass.enabled(opts);
            let start = Instant::now();
            let mut changed = false;
            if enabled {
                changed = pass.run(graph, opts)?;
                dqc_ir::verify::verify(graph).map_err(|source| PassError::Verify {
                    pass: name.to_string(),
                    source: Box::new(source),
                })?;
                let after = signature(graph);
                if after != before {
                    return Err(PassError::Signature {
                        pass: name.to_string(),
                        message: format!("{} became {}", show(&before), show(&after)),
                    });
                }
            }
            report.passes.push(PassRun {
                name: name.to_string(),
                enabled,
                changed,
                micros: start.elapsed().as_micros(),
            });
            if opts.dump_after.contains(name) {
                let (text, _) = dqc_ir::text::print_with_weights(graph, DUMP_INLINE_LIMIT);
                report.dumps.push((name.to_string(), text));
            }
        }
        Ok(report)
    }

    fn check_names(&self, opts: &PassOptions) -> Result<(), PassError> {
        let names = self.names();
        for (option, set) in [
            ("disabled", &opts.disabled),
            ("dump_after", &opts.dump_after),
        ] {
            if let Some(bad) = set.iter().find(|n| !names.contains(&n.as_str())) {
                return Err(PassError::UnknownPass {
                    name: bad.clone(),
                    option,
                    valid: names.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }
}

/// Input (name, type) pairs and output types.
type Signature = (Vec<(String, Option<TensorType>)>, Vec<Option<TensorType>>);

fn signature(g: &Graph) -> Signature {
    let ins = g
        .input_values()
        .into_iter()
        .map(|v| (g.value_name(v).to_string(), g.value_type(v).cloned()))
        .collect();
    let outs = g
        .outputs()
        .iter()
        .map(|v| g.value_type(*v).cloned())
        .collect();
    (ins, outs)
}

fn show(s: &Signature) -> String {
    let ty = |t: &Option<TensorType>| t.as_ref().map_or("?".to_string(), |t| t.to_string());
    let ins: Vec<String> =
        s.0.iter()
            .map(|(n, t)| format!("%{n}: {}", ty(t)))
            .collect();
    let outs: Vec<String> = s.1.iter().map(ty).collect();
    format!("({}) -> ({})", ins.join(", "), outs.join(", "))
}
