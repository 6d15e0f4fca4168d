//! dqc-passes: graph-to-graph rewrites.
//!
//! - [`Pass`] and [`PassOptions`] — one named rewrite of a [`dqc_ir::Graph`];
//! - [`Pipeline`] — the ordered list of passes (`Pipeline::standard()`), run with the
//!   verifier after every pass, IR dumps (`--dump-after`) and per-pass switches
//!   (`--disable-pass`), returning a [`PipelineReport`];
//! - [`canonicalize::Canonicalize`] — constant folding, dead code, reshape/transpose chains;
//! - [`egraph`] — e-graph rewriting with egg: the tensor language, conversion from and to
//!   graphs, the target cost model, and the rule files (`patterns`, `algebra`, `layout`,
//!   `fusion`) behind the `recognize` and `fuse-prep` passes.
//!
//! It depends only on `dqc-ir`. `docs/passes.md` describes the pipeline and how to add a
//! rule.
#![warn(missing_docs)]

pub mod canonicalize;
mod edit;
pub mod egraph;
mod error;
mod pass;
mod pipeline;

pub use error::PassError;
pub use pass::{EgraphLimits, Pass, PassOptions};
pub use pipeline::{PassRun, Pipeline, PipelineReport};
