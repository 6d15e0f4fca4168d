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
use super::lang::{
    OpAttr, TensorGraph, TensorLang, TypeAnalysis, ValInfo, ValRef, node_op, op_node,
};
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

fn leaf(
    egraph: &mut TensorGraph,
    class_of: &mut HashMap<Value, Id>,
    graph: &Graph,
    v: Value,
) -> Option<Id> {
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
    /// The first graph output of each class: building the class builds that output.
    output_root: HashMap<Id, Value>,
    built: HashMap<Id, Value>,
    /// Output roots already written, with their new value.
    outputs_done: HashMap<Value, Value>,
    changed: bool,
    pass: &'a str,
}

impl<CF: CostFunction<TensorLang>> Store<'_, CF> {
    fn gerr(&self, source: dqc_ir::graph::GraphError) -> PassError {
        PassError::Graph {
            pass: self.pass.to_string(),
            source,
        }
    }

    /// The value of class `class` in `graph`, building nodes as needed; `hint` names new
    /// nodes that have no original in their class.
    fn build(&mut self, graph: &mut Graph, class: Id, hint: &str) -> Result<Value, PassError> {
        let class = self.egraph.find(class);
        if let Some(v) = self.built.get(&class) {
            return Ok(*v);
        }
        if let Some(&root) = self.output_root.get(&class) {
            return self.output(graph, root, class);
        }
        let value = self.build_best(graph, class, hint)?;
        self.built.insert(class, value);
        Ok(value)
    }

    /// The best e-node of `class` as a value: the leaf's value, or a node (an identical
    /// original is reused).
    fn build_best(&mut self, graph: &mut Graph, class: Id, hint: &str) -> Result<Value, PassError> {
        let node = self.extractor.find_best_node(class).clone();
        match &node {
            TensorLang::Val(r) => self
                .egraph
                .analysis
                .values
                .get(r.0 as usize)
                .map(|i| i.value)
                .ok_or_else(|| self.err(hint, "constant", "a leaf refers to no value")),
            TensorLang::Num(s) => add_typed(
                graph,
                Op::Constant(Tensor::scalar_f32(s.value())),
                &[],
                &format!("{hint}.const"),
                self.pass,
            ),
            TensorLang::Attr(_) => Err(self.err(hint, "attribute", "an attribute used as a value")),
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
                if let Some(n) = reuse {
                    return Ok(Value::new(n, 0));
                }
                if let Some(n) = self.retarget(graph, class, &op, &inputs)? {
                    return Ok(Value::new(n, 0));
                }
                let name = base.unwrap_or_else(|| format!("{hint}.{}", op.name()));
                add_typed(graph, op, &inputs, &name, self.pass)
            }
        }
    }

    /// An original node of `class` with op `op` whose operands are set to `inputs` (values
    /// equal to its old operands, as the class says), keeping its name; `None` if the
    /// class has no such node.
    fn retarget(
        &mut self,
        graph: &mut Graph,
        class: Id,
        op: &Op,
        inputs: &[Value],
    ) -> Result<Option<NodeId>, PassError> {
        let Some(n) = self.origin.get(&class).and_then(|ns| {
            ns.iter().copied().find(|n| {
                graph
                    .get(*n)
                    .is_some_and(|g| &g.op == op && g.inputs().len() == inputs.len())
            })
        }) else {
            return Ok(None);
        };
        for (slot, v) in inputs.iter().enumerate() {
            if graph.get(n).and_then(|g| g.inputs().get(slot)) != Some(v) {
                graph.set_input(n, slot, *v).map_err(|e| self.gerr(e))?;
                self.changed = true;
            }
        }
        Ok(Some(n))
    }

    /// Build the graph output `root` (of class `class`) as a node that keeps its name.
    fn output(&mut self, graph: &mut Graph, root: Value, class: Id) -> Result<Value, PassError> {
        let name = graph.value_name(root).to_string();
        let best = self.extractor.find_best_node(class).clone();
        let mut shared = None;
        let (op, inputs) = if best.is_leaf() {
            // Equal to another value: a free view of it (a reshape to its own shape);
            // other readers of the class read that value itself.
            let value = self.build_best(graph, class, &name)?;
            shared = Some(value);
            let ty = graph
                .value_type(root)
                .cloned()
                .ok_or_else(|| self.err(&name, "reshape", "the output has no type"))?;
            (Op::Reshape { shape: ty.shape }, vec![value])
        } else {
            let (op, kids) = node_op(&best, |id| self.egraph[id].data.attr.clone())
                .ok_or_else(|| self.err(&name, "?", "an e-node without an op"))?;
            let mut inputs = Vec::with_capacity(kids.len());
            for k in kids {
                inputs.push(self.build(graph, k, &name)?);
            }
            (op, inputs)
        };
        let same = graph
            .get(root.node)
            .is_some_and(|n| n.op == op && n.inputs() == inputs.as_slice());
        let value = if same {
            root
        } else if graph
            .get(root.node)
            .is_some_and(|n| n.op == op && n.inputs().len() == inputs.len())
        {
            for (slot, v) in inputs.iter().enumerate() {
                graph
                    .set_input(root.node, slot, *v)
                    .map_err(|e| self.gerr(e))?;
            }
            self.changed = true;
            root
        } else {
            self.changed = true;
            replace_node(graph, root.node, op, &inputs, self.pass)?
        };
        self.outputs_done.insert(root, value);
        let shared = shared.unwrap_or(value);
        self.built.insert(class, shared);
        Ok(shared)
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
pub fn store(
    graph: &mut Graph,
    loaded: &Loaded,
    opts: &PassOptions,
    pass: &str,
) -> Result<bool, PassError> {
    let cost = RooflineCost::new(&loaded.egraph, opts.target);
    let extractor = Extractor::new(&loaded.egraph, cost);
    let mut origin: HashMap<Id, Vec<NodeId>> = HashMap::new();
    for (k, ns) in &loaded.origin {
        origin.entry(loaded.egraph.find(*k)).or_default().extend(ns);
    }
    let mut output_root: HashMap<Id, Value> = HashMap::new();
    for r in &loaded.roots {
        if graph.outputs().contains(r)
            && let Some(&c) = loaded.class_of.get(r)
        {
            output_root.entry(loaded.egraph.find(c)).or_insert(*r);
        }
    }
    let mut store = Store {
        extractor,
        egraph: &loaded.egraph,
        origin: &origin,
        output_root,
        built: HashMap::new(),
        outputs_done: HashMap::new(),
        changed: false,
        pass,
    };
    let before = graph.node_count();
    for &root in &loaded.roots {
        let Some(&class) = loaded.class_of.get(&root) else {
            continue;
        };
        let class = loaded.egraph.find(class);
        let name = graph.value_name(root).to_string();
        let value = store.build(graph, class, &name)?;
        if value == root || graph.get(root.node).is_none() || store.outputs_done.contains_key(&root)
        {
            continue;
        }
        if graph.outputs().contains(&root) {
            // A second output of the same class: a view of the first.
            let Some(ty) = graph.value_type(root).cloned() else {
                continue;
            };
            replace_node(
                graph,
                root.node,
                Op::Reshape { shape: ty.shape },
                &[value],
                pass,
            )?;
        } else {
            graph
                .replace_all_uses(root, value)
                .map_err(|e| store.gerr(e))?;
        }
        store.changed = true;
    }
    let removed = graph.remove_dead();
    Ok(store.changed || removed > 0 || graph.node_count() != before)
}

/// Number of e-nodes of each kind in `egraph` (for diagnostics).
pub fn enode_count(egraph: &TensorGraph) -> usize {
    egraph
        .classes()
        .map(|c| c.nodes.iter().filter(|n| !n.is_leaf()).count())
        .sum()
}
