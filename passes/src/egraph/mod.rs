//! E-graph rewriting with egg.
//!
//! [`lang`] defines the tensor language and its type analysis, [`convert`] loads a graph
//! into an e-graph and writes the extracted result back, [`cost`] is the target's
//! roofline cost model, [`rule`] holds the type-checked appliers and named predicates,
//! and the rule files hold one topic each: [`patterns`], [`algebra`], [`layout`],
//! [`fusion`]. Two passes use them: [`Recognize`] (`recognize`: patterns + algebra +
//! layout) and [`FusePrep`] (`fuse-prep`: fusion + layout). Every run is bounded by
//! [`crate::EgraphLimits`].

pub mod algebra;
pub mod convert;
pub mod cost;
pub mod fusion;
pub mod lang;
pub mod layout;
pub mod patterns;
pub mod rule;

use dqc_ir::Graph;
use egg::Runner;

use crate::{Pass, PassError, PassOptions};
use rule::Rule;

/// Load `graph` into an e-graph, run `rules` under `opts.egraph`'s limits, extract with
/// the target's cost model and write the result back. Returns whether the graph changed.
pub fn rewrite_graph(
    graph: &mut Graph,
    rules: &[Rule],
    opts: &PassOptions,
    pass: &str,
) -> Result<bool, PassError> {
    let convert::Loaded {
        egraph,
        class_of,
        origin,
        roots,
    } = convert::load(graph, pass)?;
    if roots.is_empty() {
        return Ok(false);
    }
    let limits = opts.egraph;
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_node_limit(limits.node_limit)
        .with_iter_limit(limits.iter_limit)
        .with_time_limit(limits.time_limit)
        .run(rules);
    let loaded = convert::Loaded {
        egraph: runner.egraph,
        class_of,
        origin,
        roots,
    };
    convert::store(graph, &loaded, opts, pass)
}

/// `recognize`: capture LayerNorm, RMSNorm, GELU, SiLU, modulate and attention with the
/// [`patterns`], [`algebra`] and [`layout`] rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recognize;

impl Recognize {
    /// The rules this pass runs.
    pub fn rules() -> Vec<Rule> {
        let mut r = patterns::rules();
        r.extend(algebra::rules());
        r.extend(layout::rules());
        r
    }
}

impl Pass for Recognize {
    fn name(&self) -> &'static str {
        "recognize"
    }

    fn enabled(&self, _opts: &PassOptions) -> bool {
        true
    }

    fn run(&self, graph: &mut Graph, opts: &PassOptions) -> Result<bool, PassError> {
        rewrite_graph(graph, &Recognize::rules(), opts, self.name())
    }
}

/// `fuse-prep`: the [`fusion`] canonical forms (GEMM bias epilogues, attention scale),
/// with the [`layout`] rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct FusePrep;

impl FusePrep {
    /// The rules this pass runs.
    pub fn rules() -> Vec<Rule> {
        let mut r = fusion::rules();
        r.extend(layout::rules());
        r
    }
}

impl Pass for FusePrep {
    fn name(&self) -> &'static str {
        "fuse-prep"
    }

    fn enabled(&self, _opts: &PassOptions) -> bool {
        true
    }

    fn run(&self, graph: &mut Graph, opts: &PassOptions) -> Result<bool, PassError> {
        rewrite_graph(graph, &FusePrep::rules(), opts, self.name())
    }
}
