//! Whole-graph verification: signature, outputs, cycles, per-node inference in
//! topological order, annotations and cache slots.

use std::collections::HashMap;

use super::{InferError, VerifyError, check_count, infer_op};
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::shape::TensorType;

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
