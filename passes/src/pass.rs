//! The [`Pass`] trait and the options every pass sees.

use std::collections::BTreeSet;
use std::time::Duration;

use dqc_ir::{Graph, Target};

use crate::PassError;

/// Bounds of every e-graph [`egg::Runner`] a pass starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EgraphLimits {
    /// Stop when the e-graph has more e-nodes than this.
    pub node_limit: usize,
    /// Stop after this many rewrite iterations.
    pub iter_limit: usize,
    /// Stop after this much time.
    pub time_limit: Duration,
}

impl Default for EgraphLimits {
    /// 200 000 nodes, 30 iterations, 10 seconds.
    fn default() -> EgraphLimits {
        EgraphLimits {
            node_limit: 200_000,
            iter_limit: 30,
            time_limit: Duration::from_secs(10),
        }
    }
}

/// What a pipeline run is asked to do.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// The compilation target (its roofline figures drive e-graph extraction).
    pub target: Target,
    /// Passes switched off by name (`--disable-pass`).
    pub disabled: BTreeSet<String>,
    /// Passes after which the IR text is collected (`--dump-after`).
    pub dump_after: BTreeSet<String>,
    /// Limits of every e-graph run.
    pub egraph: EgraphLimits,
    /// Constant folding replaces a node by a constant only if the result has at most
    /// this many elements.
    pub fold_max_elements: usize,
}

impl Default for PassOptions {
    /// Target `cpu`, nothing disabled or dumped, default e-graph limits, fold results of
    /// up to 65 536 elements.
    fn default() -> PassOptions {
        PassOptions {
            target: Target::cpu(),
            disabled: BTreeSet::new(),
            dump_after: BTreeSet::new(),
            egraph: EgraphLimits::default(),
            fold_max_elements: 1 << 16,
        }
    }
}

impl PassOptions {
    /// Default options for `target`.
    pub fn for_target(target: Target) -> PassOptions {
        PassOptions {
            target,
            ..PassOptions::default()
        }
    }
}

/// One graph-to-graph rewrite.
///
/// Contract: `run` leaves a graph that the verifier accepts, with the same signature
/// (input names, order and types; output order and types) and the same values on every
/// input (up to float rounding of the rewrites' identities); it returns whether it
/// changed anything. The pipeline checks the first two after every pass.
pub trait Pass {
    /// The pass's name (kebab-case), as `--dump-after` and `--disable-pass` take it.
    fn name(&self) -> &'static str;
    /// Whether the pass runs under `opts` (the pipeline also skips disabled names).
    fn enabled(&self, opts: &PassOptions) -> bool;
    /// Rewrite `graph`; `Ok(true)` if it changed.
    fn run(&self, graph: &mut Graph, opts: &PassOptions) -> Result<bool, PassError>;
}
