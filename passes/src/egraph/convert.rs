//! Graph → e-graph and back.
//!
//! [`load`] adds every node whose op is in [`TensorLang`] (single output, typed operands)
//! as an e-node; every other value an e-node reads becomes a `Val` leaf. The *roots* are
//! the values of e-nodes that a node outside the language reads, or that are graph
//! outputs: everything else lives only inside the e-graph.
//!
//! [`store`] extracts the cheapest term of each root's class and writes it back: a chosen
//! e-node that is identical to an original node with the same operand values reuses that
//! node; a new node is typed by inference and named after the original node of its class
//! (or after the root, plus the op name); a root whose term changed is replaced by a node
//! that keeps the root's value name. Nodes nothing reads any more are removed.

use std::collections::HashMap;

use dqc_ir::graph::{NodeId, Value};
use dqc_ir::{Graph, Op, Tensor};
use egg::{CostFunction, Extractor, Id, Language};

use super::cost::RooflineCost;
use super::lang::{OpAttr, TensorGraph, TensorLang, TypeAnalysis, ValInfo, ValRef, node_op, op_node};
use crate::edit::{add_typed, replace_node};
use crate::{PassError, PassOptions};

/// A graph loaded into an e-graph.
pub struct Loaded {
    /// The e-graph.
    pub egraph: TensorGraph,
    /// Class of every value that entered the e-graph (as a node or a leaf).
    pub(crate) class_of: HashMap<Value, Id>,
    /// Original nodes per class.
    pub(crate) origin: HashMap<Id, Vec<NodeId>>,
    /// Root values in topological order.
    pub(crate) roots: Vec<Value>,
}

/// The scalar value of a constant with one float element.
fn scalar_of(op: &Op) -> Option<f64> {
    let Op::Constant(t) = op else { return None };
    (t.numel() == 1 && t.dtype().is_float())
        .then(|| t.to_f32_vec().first().map(|&v| f64::from(v)))
        .flatten()
}

fn leaf(egraph: &mut TensorGraph, class_of: &mut HashMap<Value, Id>, graph: &Graph, v: Value) -> Option<Id> {
    if let Some(&id) = class_of.get(&v) {
        return Some(id);
    }
    let ty = graph.value_type(v)?.clone();
    let scalar = graph.get(v.node).and_then(|n| scalar_of(&n.op));
    let index = u32::try_from(egraph.analysis.values.len()).ok()?;
    egraph.analysis.values.push(ValInfo {
        value: v,
        ty,
        scalar,
    });
    let id = egraph.add(TensorLang::Val(ValRef(index)));
    class_of.insert(v, id);
    Some(id)
}

/// Load `graph` (verified: every value typed) into a fresh e-graph.
pub fn load(graph: &Graph, pass: &str) -> Result<Loaded, PassError> {
    let mut egraph = TensorGraph::new(TypeAnalysis::default());
    let mut class_of: HashMap<Value, Id> = HashMap::new();
    let mut origin: HashMap<Id, Vec<NodeId>> = HashMap::new();
    let mut inside: Vec<NodeId> = Vec::new();
    let order = graph.topo_order().map_err(|source| PassError::Graph {
        pass: pass.to_string(),
        source,
    })?;
    for id in order {
        let node = graph.node(id);
        if node.op.num_outputs() != 1 || node.output_types().len() != 1 {
            continue;
        }
        let kids: Option<Vec<Id>> = node
            .inputs()
            .iter()
            .map(|v| leaf(&mut egraph, &mut class_of, graph, *v))
            .collect();
        let Some(kids) = kids else { continue };
        let needs_attr = op_node(&node.op, None, &kids).is_none();
        let attr = needs_attr.then(|| egraph.add(TensorLang::Attr(OpAttr::new(node.op.clone()))));
        let Some(enode) = op_node(&node.op, attr, &kids) else {
            continue;
        };
        let class = egraph.add(enode);
        class_of.insert(Value::new(id, 0), class);
        origin.entry(class).or_default().push(id);
        inside.push(id);
    }
    // Roots: e-node values read from outside the e-graph, or graph outputs.
    let mut roots = Vec::new();
    for &id in &inside {
        let v = Value::new(id, 0);
        let outside_reader = graph.uses(v).iter().any(|(user, _)| {
            graph
                .get(*user)
                .is_some_and(|u| !inside.contains(user) || u.op.num_outputs() != 1)
        });
        if outside_reader || graph.outputs().contains(&v) {
            roots.push(v);
        }
    }
    egraph.rebuild();
    Ok(Loaded {
        egraph,
        class_of,
        origin,
        roots,
    })
}

/// Writes extracted terms back into the graph.
struct Store<'a, CF: CostFunction<TensorLang>> {
    extractor: Extractor<'a, CF, TensorLang, TypeAnalysis>,
    egraph: &'a TensorGraph,
    origin: &'a HashMap<Id, Vec<NodeId>>,
    built: HashMap<Id, Value>,
    pass: &'a str,
}

impl<CF: CostFunction<TensorLang>> Store<'_, CF> {
    /// The value of class `class` in `graph`, building nodes as needed; `hint` names new
    /// nodes that have no original in their class.
    fn build(&mut self, graph: &mut Graph, class: Id, hint: &str) -> Result<Value, PassError> {
        let class = self.egraph.find(class);
        if let Some(v) = self.built.get(&class) {
            return Ok(*v);
        }
        let node = self.extractor.find_best_node(class).clone();
        let value = match &node {
            TensorLang::Val(r) => self
                .egraph
                .analysis
                .values
                .get(r.0 as usize)
                .map(|i| i.value)
                .ok_or_else(|| self.err(hint, "constant", "a leaf refers to no value"))?,
            TensorLang::Num(s) => add_typed(
                graph,
                Op::Constant(Tensor::scalar_f32(s.value())),
                &[],
                &format!("{hint}.const"),
                self.pass,
            )?,
            TensorLang::Attr(_) => return Err(self.err(hint, "attribute", "an attribute used as a value")),
            other => {
                let (op, kids) = node_op(other, |id| self.egraph[id].data.attr.clone())
                    .ok_or_else(|| self.err(hint, "?", "an e-node without an op"))?;
                let base = self
                    .origin
                    .get(&class)
                    .and_then(|ns| ns.iter().find_map(|n| graph.get(*n)))
                    .map(|n| n.name().to_string());
                let child_hint = base.clone().unwrap_or_else(|| hint.to_string());
                let mut inputs = Vec::with_capacity(kids.len());
                for k in kids {
                    inputs.push(self.build(graph, k, &child_hint)?);
                }
                let reuse = self.origin.get(&class).and_then(|ns| {
                    ns.iter().copied().find(|n| {
                        graph
                            .get(*n)
                            .is_some_and(|g| g.op == op && g.inputs() == inputs.as_slice())
                    })
                });
                match reuse {
                    Some(n) => Value::new(n, 0),
                    None => {
                        let name = base.unwrap_or_else(|| format!("{hint}.{}", op.name()));
                        add_typed(graph, op, &inputs, &name, self.pass)?
                    }
                }
            }
        };
        self.built.insert(class, value);
        Ok(value)
    }

    fn err(&self, node: &str, op: &'static str, message: &str) -> PassError {
        PassError::Rebuild {
            pass: self.pass.to_string(),
            node: node.to_string(),
            op,
            message: message.to_string(),
        }
    }
}

/// Extract every root of `loaded` with the roofline cost of `opts.target` and write the
/// result into `graph`. Returns whether the graph changed.
pub fn store(graph: &mut Graph, loaded: &Loaded, opts: &PassOptions, pass: &str) -> Result<bool, PassError> {
    let cost = RooflineCost::new(&loaded.egraph, opts.target);
    let extractor = Extractor::new(&loaded.egraph, cost);
    let mut origin: HashMap<Id, Vec<NodeId>> = HashMap::new();
    for (k, ns) in &loaded.origin {
        origin.entry(loaded.egraph.find(*k)).or_default().extend(ns);
    }
    let mut store = Store {
        extractor,
        egraph: &loaded.egraph,
        origin: &origin,
        built: HashMap::new(),
        pass,
    };
    let before = graph.node_count();
    let mut changed = false;
    for &root in &loaded.roots {
        let Some(&class) = loaded.class_of.get(&root) else { continue };
        let class = loaded.egraph.find(class);
        let name = graph.value_name(root).to_string();
        let best = store.extractor.find_best_node(class).clone();
        let new = match &best {
            // The root equals another value: readers use it directly; an output keeps
            // its node (and name).
            TensorLang::Val(_) | TensorLang::Num(_) | TensorLang::Attr(_) => {
                if graph.outputs().contains(&root) {
                    continue;
                }
                store.build(graph, class, &name)?
            }
            other => {
                let (op, kids) = node_op(other, |id| loaded.egraph[id].data.attr.clone())
                    .ok_or_else(|| store.err(&name, "?", "an e-node without an op"))?;
                let mut inputs = Vec::with_capacity(kids.len());
                for k in kids {
                    inputs.push(store.build(graph, k, &name)?);
                }
                let same = graph
                    .get(root.node)
                    .is_some_and(|n| n.op == op && n.inputs() == inputs.as_slice());
                if same {
                    root
                } else {
                    changed = true;
                    replace_node(graph, root.node, op, &inputs, pass)?
                }
            }
        };
        store.built.insert(class, new);
        if new != root && graph.get(root.node).is_some() {
            graph
                .replace_all_uses(root, new)
                .map_err(|source| PassError::Graph {
                    pass: pass.to_string(),
                    source,
                })?;
            changed = true;
        }
    }
    let removed = graph.remove_dead();
    Ok(changed || removed > 0 || graph.node_count() != before)
}

/// Number of e-nodes of each kind in `egraph` (for diagnostics).
pub fn enode_count(egraph: &TensorGraph) -> usize {
    egraph.classes().map(|c| c.nodes.iter().filter(|n| !n.is_leaf()).count()).sum()
}
