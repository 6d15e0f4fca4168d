//! Verifier and shape/type inference.
//!
//! [`infer_op`] computes the output types of one op from its operand types; it is the
//! single statement of every op's typing rule (the docs of [`Op`] and [`crate::quant`] are
//! the spec). [`verify`] runs it over a whole [`Graph`] in topological order, stores the
//! types with [`Graph::set_types`] and checks the graph-level invariants: outputs present,
//! operand counts, the input signature, annotations, cache slot types, no cycles.
//!
//! Symbolic dimensions are monomials ([`Dim`]); a rule that would need a sum of symbols
//! (concatenating `B` and `N`, padding a symbolic axis, …) refuses with a message that
//! says so rather than guessing. Symbols are assumed to be at least 1, so a monomial
//! `f·B` is known to be at least `f` (this is what lets `Slice` take a static prefix of a
//! symbolic axis).
//!
//! Rules are split by op family, one private file each: `elementwise` (unary, binary,
//! where, cast, modulate, activations), `contraction` (matmul, gemm, conv), `norm`,
//! `sequence` (attention, selective scan), `reduce`, `movement`, `quant` and `misc`
//! (caching). Each file's module docs state its rules.

use std::collections::HashMap;

use crate::DType;
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::shape::{BroadcastError, Dim, Shape, TensorType, normalize_axis};

mod contraction;
mod elementwise;
mod misc;
mod movement;
mod norm;
mod quant;
mod reduce;
mod sequence;

#[cfg(test)]
mod graph_tests;

/// Why one op's operands do not type-check. Operands are numbered from 0 in the op's
/// input order (see the docs of each [`Op`] variant).
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

/// Infer the output types of `op` from its operand types (one type per output, in output
/// order).
///
/// Checks the operand count ([`Op::num_inputs`]), operand dtypes and shapes and the
/// attributes against them, as documented on each [`Op`] variant and in [`crate::quant`].
/// Sources (`Input`, `Constant`, `CacheRead`) return their declared type. Refuses, with an
/// [`InferError`] naming the operand or attribute, anything that is malformed or whose
/// result is not representable with monomial dimensions.
pub fn infer_op(op: &Op, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    check_count(op, inputs.len())?;
    match op {
        Op::Input { ty, .. } => Ok(vec![ty.clone()]),
        Op::Constant(t) => Ok(vec![t.ty()]),
        Op::CacheRead { ty, .. } => Ok(vec![ty.clone()]),
        Op::CacheWrite { .. } => misc::cache_write(inputs),
        Op::StepGate { schedule } => misc::step_gate(schedule, inputs),
        Op::Unary(u) => elementwise::unary(*u, inputs),
        Op::Binary(b) => elementwise::binary(*b, inputs),
        Op::Where => elementwise::select(inputs),
        Op::Cast { to } => elementwise::cast(*to, inputs),
        Op::Modulate => elementwise::modulate(inputs),
        Op::Gelu { .. } | Op::Silu => elementwise::activation(inputs),
        Op::MatMul => contraction::matmul(inputs),
        Op::Gemm {
            trans_a,
            trans_b,
            has_c,
            ..
        } => contraction::gemm(*trans_a, *trans_b, *has_c, inputs),
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
            has_bias,
        } => contraction::conv(strides, pads, dilations, *groups, *has_bias, inputs),
        Op::LayerNorm { axis, affine, .. } => norm::layer_norm(*axis, *affine, inputs),
        Op::RmsNorm { axis, affine, .. } => norm::rms_norm(*axis, *affine, inputs),
        Op::GroupNorm { groups, affine, .. } => norm::group_norm(*groups, *affine, inputs),
        Op::Softmax { axis } => norm::softmax(*axis, inputs),
        Op::Attention {
            heads,
            kv_heads,
            has_mask,
            ..
        } => sequence::attention(*heads, *kv_heads, *has_mask, inputs),
        Op::SelectiveScan { has_d, has_z, .. } => sequence::selective_scan(*has_d, *has_z, inputs),
        Op::Reduce { axes, keepdims, .. } => reduce::reduce(axes, *keepdims, inputs),
        Op::ArgReduce { axis, keepdims, .. } => reduce::arg_reduce(*axis, *keepdims, inputs),
        Op::CumSum { axis, .. } => reduce::cumsum(*axis, inputs),
        Op::Reshape { shape } => movement::reshape(shape, inputs),
        Op::Transpose { perm } => movement::transpose(perm, inputs),
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => movement::slice(axes, starts, ends, steps, inputs),
        Op::Concat { axis } => movement::concat(*axis, inputs),
        Op::Split { axis, sizes } => movement::split(*axis, sizes, inputs),
        Op::Gather { axis } => movement::gather(*axis, inputs),
        Op::Expand { shape } => movement::expand(shape, inputs),
        Op::Pad { pads, mode } => movement::pad(pads, *mode, inputs),
        Op::Resize { size, mode, .. } => movement::resize(size, *mode, inputs),
        Op::Quantize {
            dtype,
            scheme,
            has_zero_point,
        } => quant::quantize(*dtype, scheme, *has_zero_point, inputs),
        Op::Dequantize {
            scheme,
            has_zero_point,
            out,
        } => quant::dequantize(scheme, *has_zero_point, *out, inputs),
        Op::QMatMul {
            a_scheme,
            b_scheme,
            out,
        } => quant::qmatmul(a_scheme.as_ref(), b_scheme, *out, inputs),
    }
}

/// The operand count `op` takes, as text for messages (`3`, `at least 1`).
fn expected_count(op: &Op) -> String {
    match op.num_inputs() {
        Some(n) => n.to_string(),
        None => "at least 1".to_string(),
    }
}

/// Check the operand count of `op` ([`Op::num_inputs`]; variadic ops take at least one).
fn check_count(op: &Op, actual: usize) -> Result<(), InferError> {
    let ok = match op.num_inputs() {
        Some(n) => n == actual,
        None => actual >= 1,
    };
    if ok {
        Ok(())
    } else {
        Err(InferError::OperandCount {
            expected: expected_count(op),
            actual,
        })
    }
}

/// Infer and check every node in topological order, storing the types with
/// [`Graph::set_types`].
///
/// Checks, in this order: the graph has outputs and each refers to an existing value;
/// every `Input` node sits at its `index` in the signature and every signature entry is an
/// `Input` node; there is no cycle; then per node: operands exist, their count matches
/// [`Op::num_inputs`], [`infer_op`] accepts them (this covers attributes such as a
/// `StepGate` schedule), and types the node already carries (from a text annotation or an
/// earlier inference) equal the inferred ones. Finally every `CacheRead` and `CacheWrite`
/// of one slot must agree on the slot's type.
///
/// On error the graph may hold the types inferred before the failing node.
pub fn verify(graph: &mut Graph) -> Result<(), VerifyError> {
    check_outputs(graph)?;
    check_signature(graph)?;
    let order = graph.topo_order().map_err(|e| match e {
        crate::graph::GraphError::Cycle { node } => VerifyError::Cycle { node },
        other => VerifyError::Cycle {
            node: other.to_string(),
        },
    })?;
    for id in order {
        let types = infer_node(graph, id)?;
        let node = graph.node(id);
        if !node.output_types().is_empty() && node.output_types() != types.as_slice() {
            return Err(VerifyError::AnnotationMismatch {
                node: node.name().to_string(),
                op: node.op.name(),
                annotated: type_list(node.output_types()),
                inferred: type_list(&types),
            });
        }
        graph.set_types(id, types);
    }
    check_cache_slots(graph)
}

/// Infer one node's output types from its producers' (already verified) types.
fn infer_node(graph: &Graph, id: NodeId) -> Result<Vec<TensorType>, VerifyError> {
    let node = graph.node(id);
    let name = || node.name().to_string();
    let mut operand_types = Vec::with_capacity(node.inputs().len());
    for (slot, v) in node.inputs().iter().enumerate() {
        let Some(producer) = graph.get(v.node) else {
            return Err(VerifyError::Dangling { node: name(), slot });
        };
        let available = producer.op.num_outputs();
        let ty = producer
            .output_types()
            .get(v.output as usize)
            .filter(|_| (v.output as usize) < available);
        let Some(ty) = ty else {
            return Err(VerifyError::NoSuchOutput {
                node: name(),
                slot,
                producer: producer.name().to_string(),
                output: v.output,
                available,
            });
        };
        operand_types.push(ty);
    }
    if let Err(InferError::OperandCount { expected, actual }) =
        check_count(&node.op, operand_types.len())
    {
        return Err(VerifyError::OperandCount {
            node: name(),
            op: node.op.name(),
            expected,
            actual,
        });
    }
    infer_op(&node.op, &operand_types).map_err(|source| VerifyError::Op {
        node: name(),
        op: node.op.name(),
        source,
    })
}

fn type_list(types: &[TensorType]) -> String {
    let parts: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", parts.join(", "))
}

fn check_outputs(graph: &Graph) -> Result<(), VerifyError> {
    if graph.outputs().is_empty() {
        return Err(VerifyError::NoOutputs {
            graph: graph.name.clone(),
        });
    }
    for (index, v) in graph.outputs().iter().enumerate() {
        let present = graph
            .get(v.node)
            .is_some_and(|n| (v.output as usize) < n.op.num_outputs());
        if !present {
            return Err(VerifyError::DanglingOutput {
                graph: graph.name.clone(),
                index,
            });
        }
    }
    Ok(())
}

fn check_signature(graph: &Graph) -> Result<(), VerifyError> {
    for (position, &id) in graph.inputs().iter().enumerate() {
        let Some(node) = graph.get(id) else {
            return Err(VerifyError::InputSignature {
                node: format!("#{position}"),
                reason: "is in the signature but its node is not in the graph".to_string(),
            });
        };
        match &node.op {
            Op::Input { index, .. } if *index == position => {}
            Op::Input { index, .. } => {
                return Err(VerifyError::InputSignature {
                    node: node.name().to_string(),
                    reason: format!(
                        "has index {index} but is at position {position} of the signature"
                    ),
                });
            }
            other => {
                return Err(VerifyError::InputSignature {
                    node: node.name().to_string(),
                    reason: format!(
                        "is at position {position} of the signature but is a `{}` node",
                        other.name()
                    ),
                });
            }
        }
    }
    for id in graph.node_ids() {
        let node = graph.node(id);
        if let Op::Input { index, .. } = &node.op
            && graph.inputs().get(*index) != Some(&id)
        {
            return Err(VerifyError::InputSignature {
                node: node.name().to_string(),
                reason: format!(
                    "has index {index} but is not at that position of the graph's {} inputs",
                    graph.inputs().len()
                ),
            });
        }
    }
    Ok(())
}

/// Every read and write of a slot must agree on its type (after inference).
fn check_cache_slots(graph: &Graph) -> Result<(), VerifyError> {
    let mut seen: HashMap<String, (String, TensorType)> = HashMap::new();
    let order = graph.topo_order().map_err(|e| VerifyError::Cycle {
        node: e.to_string(),
    })?;
    for id in order {
        let node = graph.node(id);
        let (slot, ty) = match &node.op {
            Op::CacheRead { slot, ty } => (slot, ty.clone()),
            Op::CacheWrite { slot } => {
                let Some(ty) = node.output_types().first() else {
                    continue;
                };
                (slot, ty.clone())
            }
            Op::Input { .. }
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Modulate
            | Op::MatMul
            | Op::Gemm { .. }
            | Op::Conv { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::GroupNorm { .. }
            | Op::Softmax { .. }
            | Op::Gelu { .. }
            | Op::Silu
            | Op::Attention { .. }
            | Op::SelectiveScan { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::CumSum { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Gather { .. }
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Resize { .. }
            | Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::QMatMul { .. }
            | Op::StepGate { .. } => continue,
        };
        match seen.get(slot) {
            Some((other, expected)) if *expected != ty => {
                return Err(VerifyError::CacheSlot {
                    slot: slot.clone(),
                    node: node.name().to_string(),
                    actual: ty.to_string(),
                    other: other.clone(),
                    expected: expected.to_string(),
                });
            }
            Some(_) => {}
            None => {
                seen.insert(slot.clone(), (node.name().to_string(), ty));
            }
        }
    }
    Ok(())
}

// ----- helpers shared by the rule files ----------------------------------------------------

/// Operand `i`, or an operand-count error if it is missing (callers have checked the
/// count already; this keeps the rules free of indexing).
fn operand<'a>(inputs: &[&'a TensorType], i: usize) -> Result<&'a TensorType, InferError> {
    inputs
        .get(i)
        .copied()
        .ok_or_else(|| InferError::OperandCount {
            expected: format!("at least {}", i + 1),
            actual: inputs.len(),
        })
}

/// Resolve `axis` against operand `operand`'s rank.
fn resolve_axis(operand: usize, ty: &TensorType, axis: i64) -> Result<usize, InferError> {
    normalize_axis(axis, ty.shape.rank()).ok_or(InferError::Axis {
        operand,
        axis,
        rank: ty.shape.rank(),
    })
}

/// Operand must be a float type.
fn want_float(operand: usize, ty: &TensorType) -> Result<(), InferError> {
    if ty.dtype.is_float() {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: "a float type".to_string(),
        })
    }
}

/// Operand must have exactly `dtype`.
fn want_dtype(operand: usize, ty: &TensorType, dtype: DType) -> Result<(), InferError> {
    if ty.dtype == dtype {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: dtype.to_string(),
        })
    }
}

/// Operand `operand` must have the dtype of operand `other`.
fn want_same_dtype(
    operand: usize,
    ty: &TensorType,
    other: usize,
    other_ty: &TensorType,
) -> Result<(), InferError> {
    if ty.dtype == other_ty.dtype {
        Ok(())
    } else {
        Err(InferError::DType {
            operand,
            actual: ty.dtype,
            expected: format!("{} to match operand {other}", other_ty.dtype),
        })
    }
}

/// Operand must have rank `rank`; `what` names the expected layout (`[B, C]`).
fn want_rank(operand: usize, ty: &TensorType, rank: usize, what: &str) -> Result<(), InferError> {
    if ty.shape.rank() == rank {
        Ok(())
    } else {
        Err(InferError::Shape {
            operand,
            shape: ty.shape.clone(),
            expected: format!("rank {rank} ({what})"),
        })
    }
}

/// Operand must have exactly `shape`; `why` says where that shape comes from.
fn want_shape(operand: usize, ty: &TensorType, shape: &Shape, why: &str) -> Result<(), InferError> {
    if ty.shape == *shape {
        Ok(())
    } else {
        Err(InferError::Shape {
            operand,
            shape: ty.shape.clone(),
            expected: format!("{shape} ({why})"),
        })
    }
}

/// Broadcast the shapes of operands `left` and `right`.
fn broadcast(left: usize, a: &Shape, right: usize, b: &Shape) -> Result<Shape, InferError> {
    a.broadcast(b).map_err(|source| InferError::Broadcast {
        left,
        right,
        source,
    })
}

/// The symbolic part of a monomial (`6*B*N → B*N`, `6 → 1`), `None` for a zero dim.
fn symbolic_part(d: &Dim) -> Option<Dim> {
    d.checked_div(&Dim::fixed(d.factor()))
}

/// Sum of monomials that share one symbolic part (`2*B + B = 3*B`; static dims add up);
/// zero extents add nothing. `None` if the parts differ (the sum is not a monomial) or the
/// factor overflows.
fn sum_dims<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> Option<Dim> {
    let mut part: Option<Dim> = None;
    let mut factor: u64 = 0;
    for d in dims {
        if d.factor() == 0 {
            continue;
        }
        let p = symbolic_part(d)?;
        match &part {
            None => part = Some(p),
            Some(q) if *q == p => {}
            Some(_) => return None,
        }
        factor = factor.checked_add(d.factor())?;
    }
    match part {
        None => Some(Dim::fixed(0)),
        Some(p) => Dim::fixed(factor).checked_mul(&p),
    }
}

/// `ceil(d / block)`: exact for static dims; a symbolic dim must be divisible by `block`
/// as a monomial (its factor a multiple of `block`), else `None`.
fn ceil_div(d: &Dim, block: u64) -> Option<Dim> {
    if block == 0 {
        return None;
    }
    match d.as_fixed() {
        Some(n) => Some(Dim::fixed(n.div_ceil(block))),
        None => d.checked_div(&Dim::fixed(block)),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shorthands for the rule tests.
    use super::*;

    /// Parse `"B,256,2*B"` (empty = scalar) into a shape.
    pub fn shape(s: &str) -> Shape {
        if s.trim().is_empty() {
            return Shape::scalar();
        }
        Shape(
            s.split(',')
                .map(|d| {
                    d.trim()
                        .split('*')
                        .map(|f| match f.trim().parse::<u64>() {
                            Ok(n) => Dim::fixed(n),
                            Err(_) => Dim::sym(f.trim()),
                        })
                        .try_fold(Dim::fixed(1), |a, b| a.checked_mul(&b))
                        .unwrap()
                })
                .collect(),
        )
    }

    /// A type from a dtype and a shape string.
    pub fn ty(dtype: DType, s: &str) -> TensorType {
        TensorType::new(dtype, shape(s))
    }

    /// Infer, expecting success.
    pub fn ok(op: &Op, inputs: &[TensorType]) -> Vec<TensorType> {
        let refs: Vec<&TensorType> = inputs.iter().collect();
        match infer_op(op, &refs) {
            Ok(t) => t,
            Err(e) => panic!("{} refused: {e}", op.name()),
        }
    }

    /// Infer one output, expecting success.
    pub fn ok1(op: &Op, inputs: &[TensorType]) -> TensorType {
        let mut t = ok(op, inputs);
        assert_eq!(t.len(), 1, "{} should have one output", op.name());
        t.remove(0)
    }

    /// Infer, expecting an error; returns its message.
    pub fn err(op: &Op, inputs: &[TensorType]) -> String {
        let refs: Vec<&TensorType> = inputs.iter().collect();
        match infer_op(op, &refs) {
            Ok(t) => panic!("{} accepted, inferred {t:?}", op.name()),
            Err(e) => e.to_string(),
        }
    }

    /// Assert that `msg` contains every one of `parts`.
    pub fn says(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "message `{msg}` lacks `{p}`");
        }
    }
}
