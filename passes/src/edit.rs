//! Typed graph edits shared by the passes: add a node with inferred types, replace a
//! node by another op while keeping its value name.

use dqc_ir::graph::{NodeId, Value};
use dqc_ir::{Graph, Op, TensorType};

use crate::PassError;

/// Operand types of `inputs`, or an error naming `name` if one is untyped.
fn operand_types(
    graph: &Graph,
    inputs: &[Value],
    pass: &str,
    name: &str,
    op: &Op,
) -> Result<Vec<TensorType>, PassError> {
    inputs
        .iter()
        .map(|v| {
            graph
                .value_type(*v)
                .cloned()
                .ok_or_else(|| PassError::Rebuild {
                    pass: pass.to_string(),
                    node: name.to_string(),
                    op: op.name(),
                    message: "an operand has no inferred type".to_string(),
                })
        })
        .collect()
}

/// The output types of `op` on `inputs`, or a [`PassError::Rebuild`].
pub(crate) fn infer(
    graph: &Graph,
    op: &Op,
    inputs: &[Value],
    pass: &str,
    name: &str,
) -> Result<Vec<TensorType>, PassError> {
    let tys = operand_types(graph, inputs, pass, name, op)?;
    let refs: Vec<&TensorType> = tys.iter().collect();
    dqc_ir::verify::infer_op(op, &refs).map_err(|e| PassError::Rebuild {
        pass: pass.to_string(),
        node: name.to_string(),
        op: op.name(),
        message: e.to_string(),
    })
}

/// Add `op(inputs)` named `base` (made unique), typed by inference. Returns its first
/// output.
pub(crate) fn add_typed(
    graph: &mut Graph,
    op: Op,
    inputs: &[Value],
    base: &str,
    pass: &str,
) -> Result<Value, PassError> {
    let types = infer(graph, &op, inputs, pass, base)?;
    let id = graph
        .add_node(op, inputs, base)
        .map_err(|source| PassError::Graph {
            pass: pass.to_string(),
            source,
        })?;
    graph.set_types(id, types);
    Ok(Value::new(id, 0))
}

/// Replace the single-output node `old` by `op(inputs)`, which takes over its value name,
/// its readers and its place among the graph outputs; `old` is removed. The new node's
/// type must equal the old one's.
pub(crate) fn replace_node(
    graph: &mut Graph,
    old: NodeId,
    op: Op,
    inputs: &[Value],
    pass: &str,
) -> Result<Value, PassError> {
    let gerr = |source| PassError::Graph {
        pass: pass.to_string(),
        source,
    };
    let node = graph
        .get(old)
        .ok_or_else(|| gerr(dqc_ir::graph::GraphError::NoSuchNode { index: old.index() }))?;
    let names = node.output_names().to_vec();
    let old_types = node.output_types().to_vec();
    let name = names.first().cloned().unwrap_or_default();
    let types = infer(graph, &op, inputs, pass, &name)?;
    if !old_types.is_empty() && types != old_types {
        return Err(PassError::Rebuild {
            pass: pass.to_string(),
            node: name,
            op: op.name(),
            message: format!(
                "the replacement has type {:?}, the node had {:?}",
                types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                old_types.iter().map(|t| t.to_string()).collect::<Vec<_>>()
            ),
        });
    }
    let id = graph
        .add_node_named(op, inputs, names.clone())
        .map_err(gerr)?;
    graph.set_types(id, types);
    let new = Value::new(id, 0);
    graph
        .replace_all_uses(Value::new(old, 0), new)
        .map_err(gerr)?;
    graph.remove_node(old).map_err(gerr)?;
    // Removing `old` released the names the new node carries; reserve them again.
    for n in &names {
        graph.unique_name(n);
    }
    Ok(new)
}
