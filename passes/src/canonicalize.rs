//! `canonicalize`: constant folding, dead-code removal, and reshape/transpose chains.
//!
//! Rules, applied in rounds until nothing changes (at most [`MAX_ROUNDS`]):
//! - a node whose operands are all constants becomes a constant, evaluated by
//!   [`dqc_ir::interp::eval_op`], if its result has a static shape of at most
//!   [`crate::PassOptions::fold_max_elements`] elements (sources, caching ops,
//!   multi-output ops and quantization ops are left alone: folding a `dequantize` of a
//!   weight would undo its quantization);
//! - `reshape(reshape(x))` → `reshape(x)`;
//!   `transpose(transpose(x, p), q)` → `transpose(x, p∘q)`;
//! - an identity `reshape`, `transpose`, `expand`, `slice` (positive steps) or `cast`
//!   (same type out as in) is bypassed, unless it is a graph output (output names stay);
//! - nodes no output depends on are removed.

use dqc_ir::graph::{NodeId, Value};
use dqc_ir::interp::{Bindings, eval_op};
use dqc_ir::{Graph, Op};

use crate::edit::replace_node;
use crate::{Pass, PassError, PassOptions};

/// Rounds of folding before the pass stops even if something still changes.
pub const MAX_ROUNDS: usize = 16;

const NAME: &str = "canonicalize";

/// The `canonicalize` pass (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Canonicalize;

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, _opts: &PassOptions) -> bool {
        true
    }

    fn run(&self, graph: &mut Graph, opts: &PassOptions) -> Result<bool, PassError> {
        let mut changed = false;
        for _ in 0..MAX_ROUNDS {
            let mut round = graph.remove_dead() > 0;
            round |= fold_constants(graph, opts.fold_max_elements)?;
            round |= simplify_movement(graph)?;
            round |= graph.remove_dead() > 0;
            changed |= round;
            if !round {
                break;
            }
        }
        Ok(changed)
    }
}

fn order(graph: &Graph) -> Result<Vec<NodeId>, PassError> {
    graph.topo_order().map_err(|source| PassError::Graph {
        pass: NAME.to_string(),
        source,
    })
}

/// Whether constant folding may evaluate `op` (single output, pure, not a source).
fn foldable(op: &Op) -> bool {
    match op {
        Op::Input { .. }
        | Op::Constant(_)
        | Op::CacheRead { .. }
        | Op::CacheWrite { .. }
        | Op::StepGate { .. }
        | Op::Split { .. }
        | Op::Quantize { .. }
        | Op::Dequantize { .. }
        | Op::QMatMul { .. } => false,
        Op::Unary(_)
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
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Pad { .. }
        | Op::Resize { .. } => true,
    }
}

/// Fold every node whose operands are all constants. Returns whether any was folded.
fn fold_constants(graph: &mut Graph, max_elements: usize) -> Result<bool, PassError> {
    let mut changed = false;
    for id in order(graph)? {
        let Some(node) = graph.get(id) else { continue };
        if !foldable(&node.op) || node.inputs().is_empty() {
            continue;
        }
        let small = node
            .output_types()
            .first()
            .and_then(|t| t.shape.as_fixed())
            .is_some_and(|s| {
                s.iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d))
                    .is_some_and(|n| n as usize <= max_elements)
            });
        if !small {
            continue;
        }
        let args: Option<Vec<_>> = node
            .inputs()
            .iter()
            .map(|v| {
                if let Op::Constant(t) = &graph.get(v.node)?.op
                    && v.output == 0
                {
                    Some(t.clone())
                } else {
                    None
                }
            })
            .collect();
        let Some(args) = args else { continue };
        // An op the interpreter refuses on these constants stays as it is (the verifier
        // or the runtime will report it with more context).
        let Ok(mut outs) = eval_op(&node.op, &args, &Bindings::new()) else {
            continue;
        };
        let Some(t) = outs.pop().filter(|_| outs.is_empty()) else {
            continue;
        };
        replace_node(graph, id, Op::Constant(t), &[], NAME)?;
        changed = true;
    }
    Ok(changed)
}

/// The single operand of `node` if it is produced by output 0 of a node.
fn only_input(graph: &Graph, id: NodeId) -> Option<Value> {
    match graph.get(id)?.inputs() {
        [v] => Some(*v),
        _ => None,
    }
}

/// Whether a node's output has the same type as its operand.
fn same_type_as_input(graph: &Graph, id: NodeId) -> bool {
    let Some(x) = only_input(graph, id) else {
        return false;
    };
    let out = graph.value_type(Value::new(id, 0));
    out.is_some() && out == graph.value_type(x)
}

fn is_identity_perm(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &a)| i == a)
}

/// Reshape and transpose chains, identity movement ops.
fn simplify_movement(graph: &mut Graph) -> Result<bool, PassError> {
    let gerr = |source| PassError::Graph {
        pass: NAME.to_string(),
        source,
    };
    let mut changed = false;
    for id in order(graph)? {
        let Some(op) = graph.get(id).map(|n| n.op.clone()) else {
            continue;
        };
        let Some(x) = only_input(graph, id) else {
            continue;
        };
        let inner = graph
            .get(x.node)
            .map(|n| (n.op.clone(), n.inputs().to_vec()));
        if let (Op::Reshape { .. }, Some((Op::Reshape { .. }, inner_in))) = (&op, &inner)
            && let [src] = inner_in[..]
        {
            graph.set_input(id, 0, src).map_err(gerr)?;
            changed = true;
        }
        if let (Op::Transpose { perm: outer }, Some((Op::Transpose { perm: p1 }, inner_in))) =
            (&op, &inner)
            && let [src] = inner_in[..]
        {
            let composed: Option<Vec<usize>> = outer.iter().map(|&i| p1.get(i).copied()).collect();
            if let Some(q) = composed {
                replace_node(graph, id, Op::Transpose { perm: q }, &[src], NAME)?;
                changed = true;
                continue;
            }
        }
        let Some(node) = graph.get(id) else { continue };
        let identity = if let Op::Transpose { perm } = &node.op {
            is_identity_perm(perm)
        } else if let Op::Slice { steps, .. } = &node.op {
            steps.iter().all(|&s| s > 0) && same_type_as_input(graph, id)
        } else if let Op::Reshape { .. } | Op::Expand { .. } | Op::Cast { .. } = &node.op {
            same_type_as_input(graph, id)
        } else {
            false
        };
        let v = Value::new(id, 0);
        if identity
            && !graph.outputs().contains(&v)
            && let Some(src) = only_input(graph, id)
        {
            graph.replace_all_uses(v, src).map_err(gerr)?;
            changed = true;
        }
    }
    Ok(changed)
}
