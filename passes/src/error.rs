//! Errors of passes and of the pipeline.

use dqc_ir::graph::GraphError;
use dqc_ir::verify::VerifyError;

/// Why a pass or the pipeline failed. Every variant names the pass it happened in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PassError {
    /// A pass name in `disabled` or `dump_after` that is not in the pipeline.
    #[error("unknown pass `{name}` in {option}; valid passes: {}", valid.join(", "))]
    UnknownPass {
        /// The name given.
        name: String,
        /// Which option named it (`disabled`, `dump_after`).
        option: &'static str,
        /// The passes of the pipeline, in order.
        valid: Vec<String>,
    },
    /// The verifier refused the graph after a pass (or the input graph, pass `input`).
    #[error("verifier failed after pass `{pass}`: {source}")]
    Verify {
        /// The pass that ran last (`input` for the graph given to the pipeline).
        pass: String,
        /// The verifier's error.
        source: Box<VerifyError>,
    },
    /// A pass changed the graph's signature (input names/order/types, output count/types).
    #[error("pass `{pass}` changed the graph signature: {message}")]
    Signature {
        /// The pass.
        pass: String,
        /// What changed.
        message: String,
    },
    /// A graph edit failed inside a pass.
    #[error("pass `{pass}`: graph edit failed: {source}")]
    Graph {
        /// The pass.
        pass: String,
        /// The graph's error.
        source: GraphError,
    },
    /// A pass could not build a node (type inference refused what it produced).
    #[error("pass `{pass}`: cannot build node `{node}` ({op}): {message}")]
    Rebuild {
        /// The pass.
        pass: String,
        /// The name the node was to have.
        node: String,
        /// Its op.
        op: &'static str,
        /// Why.
        message: String,
    },
}
