//! The dataflow graph: nodes hold an [`Op`], values are (node, output index) pairs.
//!
//! Storage is a `petgraph::StableDiGraph`, so node ids stay valid when other nodes are
//! removed. Every node keeps its ordered operand list; the petgraph edges mirror it (one
//! edge per operand, weighted with the producer's output index and the operand slot) so
//! that users of a value and topological orders come from petgraph. Only the methods here
//! mutate the graph, which keeps the two in step.
//!
//! Value types are filled in by [`crate::verify`]; a freshly built node has none until the
//! graph is verified (the [`crate::builder::Builder`] infers them as it goes).

use std::collections::{HashMap, HashSet};

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

use crate::op::Op;
use crate::shape::TensorType;

/// A node id, stable across removals of other nodes.
pub type NodeId = NodeIndex<u32>;

/// A value: output `output` of node `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    /// The producing node.
    pub node: NodeId,
    /// Which of its outputs.
    pub output: u32,
}

impl Value {
    /// Output `output` of `node`.
    pub fn new(node: NodeId, output: u32) -> Value {
        Value { node, output }
    }
}

/// Edge weight: which output of the source feeds which operand slot of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Output index of the producer.
    pub output: u32,
    /// Operand slot of the consumer.
    pub slot: u32,
}

/// A node of the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Ordered operands.
    inputs: Vec<Value>,
    /// One name per output (unique in the graph); the first is also the node's name.
    names: Vec<String>,
    /// Inferred output types (empty until inferred).
    types: Vec<TensorType>,
}

impl Node {
    /// Ordered operands.
    pub fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    /// The node's name (the name of its first output).
    pub fn name(&self) -> &str {
        &self.names[0]
    }

    /// Names of its outputs.
    pub fn output_names(&self) -> &[String] {
        &self.names
    }

    /// Inferred output types (empty if not inferred yet).
    pub fn output_types(&self) -> &[TensorType] {
        &self.types
    }
}

/// Errors from graph edits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// An operand refers to a node that is not in the graph.
    #[error("node `{node}` operand {slot} refers to a value that is not in the graph")]
    DanglingInput {
        /// The consuming node.
        node: String,
        /// Operand slot.
        slot: usize,
    },
    /// An operand refers to an output index the producer does not have.
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
    /// Wrong number of output names.
    #[error("node `{node}` ({op}) has {expected} outputs but {actual} names were given")]
    OutputNames {
        /// Node.
        node: String,
        /// Op name.
        op: &'static str,
        /// Outputs of the op.
        expected: usize,
        /// Names given.
        actual: usize,
    },
    /// A node with users cannot be removed.
    #[error("node `{node}` still has {users} users and cannot be removed")]
    StillUsed {
        /// Node.
        node: String,
        /// Number of uses.
        users: usize,
    },
    /// A node id that is not (or no longer) in the graph.
    #[error("node #{index} is not in the graph")]
    NoSuchNode {
        /// The id's index.
        index: usize,
    },
    /// The graph has a cycle.
    #[error("the graph has a cycle through node `{node}`")]
    Cycle {
        /// A node on the cycle.
        node: String,
    },
}

/// A dataflow graph with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The graph's name (`@name` in the text format).
    pub name: String,
    g: StableDiGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    outputs: Vec<Value>,
    used_names: HashSet<String>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Make `base` unique among value names (appending `_1`, `_2`, … if taken) and reserve it.
    pub fn unique_name(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "v" } else { base };
        if self.used_names.insert(base.to_string()) {
            return base.to_string();
        }
        let mut i = 1usize;
        loop {
            let cand = format!("{base}_{i}");
            if self.used_names.insert(cand.clone()) {
                return cand;
            }
            i += 1;
        }
    }

    /// Add a graph input of type `ty` named `name` (made unique) at the end of the signature.
    pub fn add_input(&mut self, name: &str, ty: TensorType) -> Value {
        let index = self.inputs.len();
        let name = self.unique_name(name);
        let id = self.g.add_node(Node {
            op: Op::Input {
                index,
                ty: ty.clone(),
            },
            inputs: Vec::new(),
            names: vec![name],
            types: vec![ty],
        });
        self.inputs.push(id);
        Value::new(id, 0)
    }

    /// Add a node. `name` is the base name of its outputs (made unique; multi-output ops
    /// get `name`, `name_1`, …). Operands must exist.
    pub fn add_node(&mut self, op: Op, inputs: &[Value], name: &str) -> Result<NodeId, GraphError> {
        let n = op.num_outputs();
        let mut names = Vec::with_capacity(n);
        for i in 0..n {
            let base = if i == 0 {
                name.to_string()
            } else {
                format!("{name}_{i}")
            };
            names.push(self.unique_name(&base));
        }
        self.add_node_named(op, inputs, names)
    }

    /// Add a node whose output names are given exactly (the caller keeps them unique, as the
    /// text parser and the ONNX importer do).
    pub fn add_node_named(
        &mut self,
        op: Op,
        inputs: &[Value],
        names: Vec<String>,
    ) -> Result<NodeId, GraphError> {
        if names.len() != op.num_outputs() {
            return Err(GraphError::OutputNames {
                node: names.first().cloned().unwrap_or_default(),
                op: op.name(),
                expected: op.num_outputs(),
                actual: names.len(),
            });
        }
        for (slot, v) in inputs.iter().enumerate() {
            self.check_value(v, &names[0], slot)?;
        }
        for nm in &names {
            self.used_names.insert(nm.clone());
        }
        let id = self.g.add_node(Node {
            op,
            inputs: inputs.to_vec(),
            names,
            types: Vec::new(),
        });
        for (slot, v) in inputs.iter().enumerate() {
            self.g.add_edge(
                v.node,
                id,
                Edge {
                    output: v.output,
                    slot: slot as u32,
                },
            );
        }
        Ok(id)
    }

    fn check_value(&self, v: &Value, consumer: &str, slot: usize) -> Result<(), GraphError> {
        let Some(p) = self.g.node_weight(v.node) else {
            return Err(GraphError::DanglingInput {
                node: consumer.to_string(),
                slot,
            });
        };
        let available = p.op.num_outputs();
        if v.output as usize >= available {
            return Err(GraphError::NoSuchOutput {
                node: consumer.to_string(),
                slot,
                producer: p.name().to_string(),
                output: v.output,
                available,
            });
        }
        Ok(())
    }

    /// Set the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<Value>) {
        self.outputs = outputs;
    }

    /// Rename the value `v` to `name` if no other value has that name. Returns whether
    /// it was renamed (false: the name is taken, or `v` is not in the graph).
    pub fn rename_value(&mut self, v: Value, name: &str) -> bool {
        let taken = self.g.node_indices().any(|id| {
            self.g[id]
                .names
                .iter()
                .enumerate()
                .any(|(i, n)| n == name && Value::new(id, i as u32) != v)
        });
        match self.g.node_weight_mut(v.node) {
            Some(node) if !taken => match node.names.get_mut(v.output as usize) {
                Some(slot) => {
                    *slot = name.to_string();
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Graph input nodes in signature order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// Graph input values in signature order.
    pub fn input_values(&self) -> Vec<Value> {
        self.inputs.iter().map(|&n| Value::new(n, 0)).collect()
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &[Value] {
        &self.outputs
    }

    /// The node with id `id`. Panics on a removed id (ids come from this graph).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// The node, if present.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id)
    }

    /// Mutable access to a node's op (operands are changed with [`Graph::set_input`]).
    pub fn op_mut(&mut self, id: NodeId) -> &mut Op {
        &mut self.g[id].op
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All node ids (in insertion order, not topological).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    /// The name of a value.
    pub fn value_name(&self, v: Value) -> &str {
        &self.g[v.node].names[v.output as usize]
    }

    /// The inferred type of a value (`None` before inference).
    pub fn value_type(&self, v: Value) -> Option<&TensorType> {
        self.g.node_weight(v.node)?.types.get(v.output as usize)
    }

    /// Record inferred output types of a node.
    pub fn set_types(&mut self, id: NodeId, types: Vec<TensorType>) {
        self.g[id].types = types;
    }

    /// Every (consumer, slot) that reads `v`.
    pub fn uses(&self, v: Value) -> Vec<(NodeId, usize)> {
        let mut u: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().output == v.output)
            .map(|e| (e.target(), e.weight().slot as usize))
            .collect();
        u.sort();
        u
    }

    /// True if `v` is read by a node or is a graph output.
    pub fn is_used(&self, v: Value) -> bool {
        self.outputs.contains(&v) || !self.uses(v).is_empty()
    }

    /// Replace operand `slot` of `node` with `v`.
    pub fn set_input(&mut self, node: NodeId, slot: usize, v: Value) -> Result<(), GraphError> {
        let consumer = self
            .g
            .node_weight(node)
            .ok_or(GraphError::NoSuchNode {
                index: node.index(),
            })?
            .name()
            .to_string();
        self.check_value(&v, &consumer, slot)?;
        if slot >= self.g[node].inputs.len() {
            return Err(GraphError::DanglingInput {
                node: consumer,
                slot,
            });
        }
        let old = self.g[node].inputs[slot];
        let edge = self
            .g
            .edges_directed(node, Direction::Incoming)
            .find(|e| e.source() == old.node && e.weight().slot as usize == slot)
            .map(|e| e.id());
        if let Some(e) = edge {
            self.g.remove_edge(e);
        }
        self.g.add_edge(
            v.node,
            node,
            Edge {
                output: v.output,
                slot: slot as u32,
            },
        );
        self.g[node].inputs[slot] = v;
        Ok(())
    }

    /// Make every reader of `old` (and the graph outputs) read `new` instead.
    pub fn replace_all_uses(&mut self, old: Value, new: Value) -> Result<(), GraphError> {
        for (node, slot) in self.uses(old) {
            self.set_input(node, slot, new)?;
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
        Ok(())
    }

    /// Remove a node that nothing reads. Graph inputs cannot be removed.
    pub fn remove_node(&mut self, id: NodeId) -> Result<Node, GraphError> {
        let node = self
            .g
            .node_weight(id)
            .ok_or(GraphError::NoSuchNode { index: id.index() })?;
        let users = self.g.edges_directed(id, Direction::Outgoing).count()
            + self.outputs.iter().filter(|o| o.node == id).count();
        if users > 0 || matches!(node.op, Op::Input { .. }) {
            return Err(GraphError::StillUsed {
                node: node.name().to_string(),
                users: users.max(1),
            });
        }
        let node = self
            .g
            .remove_node(id)
            .ok_or(GraphError::NoSuchNode { index: id.index() })?;
        for n in &node.names {
            self.used_names.remove(n);
        }
        Ok(node)
    }

    /// Nodes in a topological order (operands before users); among ready nodes the one
    /// added first comes first, so the order is deterministic. Fails on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut pending: HashMap<NodeId, usize> = HashMap::new();
        let mut ready = BinaryHeap::new();
        for id in self.g.node_indices() {
            let n = self.g[id].inputs.len();
            if n == 0 {
                ready.push(Reverse(id));
            } else {
                pending.insert(id, n);
            }
        }
        let mut order = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for e in self.g.edges_directed(id, Direction::Outgoing) {
                let t = e.target();
                if let Some(c) = pending.get_mut(&t) {
                    *c -= 1;
                    if *c == 0 {
                        pending.remove(&t);
                        ready.push(Reverse(t));
                    }
                }
            }
        }
        match pending.keys().min() {
            None => Ok(order),
            Some(&n) => Err(GraphError::Cycle {
                node: self.g[n].name().to_string(),
            }),
        }
    }

    /// Remove every node that no graph output depends on (inputs stay). Returns how many
    /// were removed.
    pub fn remove_dead(&mut self) -> usize {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|v| v.node).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g[n].inputs.iter().map(|v| v.node));
            }
        }
        let dead: Vec<NodeId> = self
            .g
            .node_indices()
            .filter(|n| !live.contains(n) && !matches!(self.g[*n].op, Op::Input { .. }))
            .collect();
        let count = dead.len();
        for n in dead {
            if let Some(node) = self.g.remove_node(n) {
                for nm in &node.names {
                    self.used_names.remove(nm);
                }
            }
        }
        count
    }

    /// Find a value by name.
    pub fn find_value(&self, name: &str) -> Option<Value> {
        self.g.node_indices().find_map(|id| {
            self.g[id]
                .names
                .iter()
                .position(|n| n == name)
                .map(|i| Value::new(id, i as u32))
        })
    }

    /// Map from value name to value, for lookups in bulk.
    pub fn value_names(&self) -> HashMap<String, Value> {
        let mut m = HashMap::new();
        for id in self.g.node_indices() {
            for (i, n) in self.g[id].names.iter().enumerate() {
                m.insert(n.clone(), Value::new(id, i as u32));
            }
        }
        m
    }

    /// The underlying petgraph (read only).
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{BinaryOp, UnaryOp};
    use crate::{DType, Shape};

    fn f32_ty() -> TensorType {
        TensorType::new(DType::F32, Shape::fixed(&[2]))
    }

    #[test]
    fn edits_keep_operands_and_edges_in_step() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", f32_ty());
        let y = g.add_input("y", f32_ty());
        let a = Value::new(
            g.add_node(Op::Binary(BinaryOp::Add), &[x, x], "a").unwrap(),
            0,
        );
        let n = Value::new(g.add_node(Op::Unary(UnaryOp::Neg), &[a], "n").unwrap(), 0);
        g.set_outputs(vec![n]);
        assert_eq!(g.uses(x), vec![(a.node, 0), (a.node, 1)]);
        g.set_input(a.node, 1, y).unwrap();
        assert_eq!(g.uses(x), vec![(a.node, 0)]);
        assert_eq!(g.uses(y), vec![(a.node, 1)]);
        g.replace_all_uses(a, y).unwrap();
        assert_eq!(g.node(n.node).inputs(), &[y]);
        assert!(!g.is_used(a));
        assert_eq!(g.remove_dead(), 1);
        assert_eq!(g.topo_order().unwrap(), vec![x.node, y.node, n.node]);
        // Names freed by removal can be reused; taken names get a suffix.
        assert_eq!(g.unique_name("a"), "a");
        assert_eq!(g.unique_name("n"), "n_1");
    }

    #[test]
    fn bad_ids_and_removals_are_errors() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", f32_ty());
        let n = g.add_node(Op::Unary(UnaryOp::Neg), &[x], "n").unwrap();
        g.set_outputs(vec![Value::new(n, 0)]);
        assert!(matches!(
            g.remove_node(n),
            Err(GraphError::StillUsed { .. })
        ));
        assert!(matches!(
            g.remove_node(x.node),
            Err(GraphError::StillUsed { .. })
        ));
        assert!(matches!(
            g.add_node(Op::Unary(UnaryOp::Neg), &[Value::new(n, 3)], "m"),
            Err(GraphError::NoSuchOutput { .. })
        ));
        g.set_outputs(vec![x]);
        g.remove_node(n).unwrap();
        assert!(matches!(
            g.remove_node(n),
            Err(GraphError::NoSuchNode { .. })
        ));
        assert!(matches!(
            g.set_input(n, 0, x),
            Err(GraphError::NoSuchNode { .. })
        ));
    }

    #[test]
    fn cycles_are_reported() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", f32_ty());
        let a = g.add_node(Op::Unary(UnaryOp::Neg), &[x], "a").unwrap();
        let b = g
            .add_node(Op::Unary(UnaryOp::Neg), &[Value::new(a, 0)], "b")
            .unwrap();
        g.set_input(a, 0, Value::new(b, 0)).unwrap();
        assert!(matches!(g.topo_order(), Err(GraphError::Cycle { .. })));
    }
}
