//! The verifier's error types: [`InferError`] for one op, [`VerifyError`] for a graph.

use crate::DType;
use crate::shape::{BroadcastError, Shape};

/// Why one op's operands do not type-check. Operands are numbered from 0 in the op's
/// input order (see the docs of each [`Op`](crate::op::Op) variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// The op got the wrong number of operands.
    #[error("expected {expected} operands, got {actual}")]
    OperandCount {
        /// What the op takes (`3`, `at least 1`).
        expected: String,
        /// Operands given.
        actual: usize,
    },
    /// An operand has a dtype the op does not accept.
    #[error("operand {operand} has dtype {actual}, expected {expected}")]
    DType {
        /// Operand index.
        operand: usize,
        /// Its dtype.
        actual: DType,
        /// What was expected (`a float type`, `f32 to match operand 0`, …).
        expected: String,
    },
    /// An operand has a shape the op does not accept.
    #[error("operand {operand} has shape {shape}, expected {expected}")]
    Shape {
        /// Operand index.
        operand: usize,
        /// Its shape.
        shape: Shape,
        /// What was expected and why.
        expected: String,
    },
    /// Two operands that must broadcast together do not.
    #[error("operands {left} and {right} do not broadcast: {source}")]
    Broadcast {
        /// First operand index.
        left: usize,
        /// Second operand index.
        right: usize,
        /// The disagreement.
        source: BroadcastError,
    },
    /// An axis attribute is out of range for an operand's rank.
    #[error("axis {axis} is out of range for operand {operand} of rank {rank}")]
    Axis {
        /// Operand the axis refers to.
        operand: usize,
        /// The axis as given.
        axis: i64,
        /// The operand's rank.
        rank: usize,
    },
    /// An attribute is malformed on its own or against the operands.
    #[error("attribute `{attr}` {reason}")]
    Attr {
        /// Attribute name (as in the text format).
        attr: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A dimension computation overflows `u64`.
    #[error("operand {operand}: the element count or an extent overflows u64")]
    Overflow {
        /// Operand index.
        operand: usize,
    },
}

/// Why a graph does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// An op's operands do not type-check.
    #[error("node `{node}` ({op}): {source}")]
    Op {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What is wrong.
        source: InferError,
    },
    /// A node has the wrong number of operands for its op and flags.
    #[error("node `{node}` ({op}) takes {expected} operands but has {actual}")]
    OperandCount {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What the op takes (`3`, `at least 1`).
        expected: String,
        /// Operands the node has.
        actual: usize,
    },
    /// The graph has a cycle.
    #[error("the graph has a cycle through node `{node}`")]
    Cycle {
        /// A node on (or behind) the cycle.
        node: String,
    },
    /// An operand refers to a node that is not in the graph.
    #[error("node `{node}` operand {slot} refers to a node that is not in the graph")]
    Dangling {
        /// The consuming node.
        node: String,
        /// Operand slot.
        slot: usize,
    },
    /// An operand refers to an output index its producer does not have.
    #[error(
        "node `{node}` operand {slot} refers to output {output} of `{producer}`, which has {available} outputs"
    )]
    NoSuchOutput {
        /// The consuming node.
        node: String,
        /// Operand slot.
        slot: usize,
        /// The producing node.
        producer: String,
        /// Output index asked for.
        output: u32,
        /// Outputs the producer has.
        available: usize,
    },
    /// The graph returns nothing.
    #[error("graph `{graph}` has no outputs")]
    NoOutputs {
        /// Graph name.
        graph: String,
    },
    /// A graph output refers to a missing node or output.
    #[error("output {index} of graph `{graph}` refers to a value that is not in the graph")]
    DanglingOutput {
        /// Graph name.
        graph: String,
        /// Position among the graph outputs.
        index: usize,
    },
    /// An input node and the graph signature disagree.
    #[error("input `{node}` {reason}")]
    InputSignature {
        /// Input node name (or `#position` if the signature entry is missing).
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A node carries types that differ from the inferred ones.
    #[error("node `{node}` ({op}) is annotated {annotated} but its type is inferred as {inferred}")]
    AnnotationMismatch {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// The types the node carried, comma-separated.
        annotated: String,
        /// The inferred types, comma-separated.
        inferred: String,
    },
    /// A cache slot is read or written with two different types.
    #[error(
        "cache slot `{slot}`: node `{node}` uses it as {actual} but node `{other}` uses it as {expected}"
    )]
    CacheSlot {
        /// Slot name.
        slot: String,
        /// The node found second.
        node: String,
        /// Its type for the slot.
        actual: String,
        /// The node found first.
        other: String,
        /// Its type for the slot.
        expected: String,
    },
}
