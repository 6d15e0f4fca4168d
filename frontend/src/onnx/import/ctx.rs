//! [`Ctx`]: the state of one import — the IR graph being built, the value of every ONNX
//! tensor name so far, and the emission of IR nodes with constant folding.

use std::collections::HashMap;

use dqc_ir::interp::{Bindings, eval_op};
use dqc_ir::verify::infer_op;
use dqc_ir::{DType, Dim, Graph, Op, Tensor, TensorType, Value};

use crate::FrontendError;
use crate::onnx::import::node::NodeView;
use crate::onnx::import::oval::{OVal, SymInt, SymInts};
use crate::onnx::load::OnnxModel;

/// Results with more elements than this are not folded at compile time (they become IR
/// nodes that compute them at run time).
pub const FOLD_LIMIT: u64 = 1 << 20;

/// Identity of a tensor's bytes: tensors cloned from one another share their storage, so
/// one initializer becomes one `Constant` node however often it is read.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ConstKey {
    ptr: usize,
    len: usize,
    dtype: DType,
    shape: Vec<u64>,
}

impl ConstKey {
    fn of(t: &Tensor) -> ConstKey {
        ConstKey {
            ptr: t.bytes().as_ptr() as usize,
            len: t.bytes().len(),
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
        }
    }
}

/// The state of one import.
pub struct Ctx<'m> {
    model: &'m OnnxModel,
    graph: Graph,
    values: HashMap<String, OVal>,
    const_nodes: HashMap<ConstKey, Value>,
    const_names: HashMap<ConstKey, String>,
    current: Option<NodeView<'m>>,
    fresh: usize,
}

impl<'m> Ctx<'m> {
    /// A context that builds a graph named `name` for `model`.
    pub fn new(model: &'m OnnxModel, name: &str) -> Ctx<'m> {
        Ctx {
            model,
            graph: Graph::new(name),
            values: HashMap::new(),
            const_nodes: HashMap::new(),
            const_names: HashMap::new(),
            current: None,
            fresh: 0,
        }
    }

    /// The model being imported.
    pub fn model(&self) -> &'m OnnxModel {
        self.model
    }

    /// The graph built so far.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Mutable access to the graph (for graph inputs and outputs).
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    /// Finish: hand over the graph.
    pub fn into_graph(self) -> Graph {
        self.graph
    }

    /// Make `node` the node that errors are reported against.
    pub fn begin(&mut self, node: NodeView<'m>) {
        self.current = Some(node);
    }

    /// Bind ONNX tensor name `name` to `v`. A constant remembers the first name it is bound
    /// under, which becomes the name of its `Constant` node if it is materialized.
    pub fn set(&mut self, name: &str, v: OVal) {
        if let OVal::Const(t) = &v {
            self.const_names
                .entry(ConstKey::of(t))
                .or_insert_with(|| name.to_string());
        }
        self.values.insert(name.to_string(), v);
    }

    /// The value bound to ONNX tensor name `name`.
    pub fn get(&self, name: &str) -> Option<&OVal> {
        self.values.get(name)
    }

    /// Input `i` of `node`: `None` when the slot is omitted (`""`) or beyond the list.
    pub fn input(&self, node: &NodeView<'_>, i: usize) -> Result<Option<OVal>, FrontendError> {
        let name = node.input_name(i);
        if name.is_empty() {
            return Ok(None);
        }
        match self.values.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(node.input_error(i, "no value is defined under this name")),
        }
    }

    /// Required input `i` of `node`.
    pub fn req(&self, node: &NodeView<'_>, i: usize) -> Result<OVal, FrontendError> {
        self.input(node, i)?
            .ok_or_else(|| node.input_error(i, "required but missing"))
    }

    /// Every present input of `node` (omitted optional ones skipped).
    pub fn inputs(&self, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
        let mut out = Vec::new();
        for i in 0..node.num_inputs() {
            if let Some(v) = self.input(node, i)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The type of a value.
    pub fn ty(&self, v: &OVal) -> Result<TensorType, FrontendError> {
        match v {
            OVal::Const(t) => Ok(t.ty()),
            OVal::Dims(d) => Ok(TensorType::new(d.dtype, dqc_ir::Shape::fixed(&d.shape()))),
            OVal::Node(n) => self.graph.value_type(*n).cloned().ok_or_else(|| {
                self.error(format!("value `{}` has no type", self.graph.value_name(*n)))
            }),
        }
    }

    /// A conversion error naming the current node.
    pub fn error(&self, reason: impl Into<String>) -> FrontendError {
        match &self.current {
            Some(n) => n.error(reason),
            None => FrontendError::Convert {
                path: self.model.path().to_path_buf(),
                node: "(graph outputs)".into(),
                reason: reason.into(),
            },
        }
    }

    /// A fresh symbol name `{prefix}{k}` for a dimension that is only known at run time.
    pub fn fresh_symbol(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    /// The graph value of `v`, adding a `Constant` node for a constant (once per tensor:
    /// an initializer read by many nodes becomes one node, named after the ONNX name it
    /// was first bound to, else `name`). Symbolic [`OVal::Dims`] cannot be materialized:
    /// dqc knows such shapes at compile time only.
    pub fn materialize(&mut self, v: &OVal, name: &str) -> Result<Value, FrontendError> {
        let t = match v {
            OVal::Node(n) => return Ok(*n),
            OVal::Const(t) => t.clone(),
            OVal::Dims(d) => v.as_const().ok_or_else(|| {
                self.error(format!(
                    "the shape value {} (`{name}`) would be needed as a tensor at run time; \
                     dqc resolves symbolic shapes at compile time only, so a shape computation \
                     must end in an op that takes a shape (Reshape, Expand, ConstantOfShape, …)",
                    d
                ))
            })?,
        };
        let key = ConstKey::of(&t);
        if let Some(v) = self.const_nodes.get(&key) {
            return Ok(*v);
        }
        let base = self
            .const_names
            .get(&key)
            .cloned()
            .unwrap_or_else(|| name.to_string());
        let ty = t.ty();
        let id = self
            .graph
            .add_node(Op::Constant(t), &[], &base)
            .map_err(|e| self.error(e.to_string()))?;
        self.graph.set_types(id, vec![ty]);
        let value = Value::new(id, 0);
        self.const_nodes.insert(key, value);
        Ok(value)
    }

    /// Add `op` on `inputs`, one output named `name` (made unique); see [`Ctx::emit`].
    pub fn emit1(&mut self, op: Op, inputs: &[OVal], name: &str) -> Result<OVal, FrontendError> {
        let mut outs = self.emit(op, inputs, name)?;
        if outs.len() == 1
            && let Some(v) = outs.pop()
        {
            return Ok(v);
        }
        Err(self.error(format!("expected one result, got {}", outs.len())))
    }

    /// Add `op` on `inputs`. Output `k` is named `name` for `k = 0` and `name_k` after
    /// (made unique). See [`Ctx::emit_named`].
    pub fn emit(
        &mut self,
        op: Op,
        inputs: &[OVal],
        name: &str,
    ) -> Result<Vec<OVal>, FrontendError> {
        let names: Vec<String> = (0..op.num_outputs())
            .map(|k| {
                if k == 0 {
                    name.to_string()
                } else {
                    format!("{name}_{k}")
                }
            })
            .collect();
        self.emit_named(op, inputs, &names)
    }

    /// Add `op` on `inputs` with one base name per output.
    ///
    /// The output types are inferred with [`dqc_ir::verify::infer_op`]; an operand the op
    /// refuses gives [`FrontendError::OpType`] naming the current node. If every input is
    /// known at compile time and every result has at most [`FOLD_LIMIT`] elements, the op
    /// is evaluated by the interpreter and the results are constants (constant folding);
    /// otherwise inputs are materialized and a node is added, with its types set.
    pub fn emit_named(
        &mut self,
        op: Op,
        inputs: &[OVal],
        names: &[String],
    ) -> Result<Vec<OVal>, FrontendError> {
        let tys = inputs
            .iter()
            .map(|v| self.ty(v))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&TensorType> = tys.iter().collect();
        let out_tys = infer_op(&op, &refs).map_err(|source| FrontendError::OpType {
            path: self.model.path().to_path_buf(),
            node: self.describe_current(),
            op: op.name().to_string(),
            operands: format!(
                "({})",
                tys.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            source: Box::new(source),
        })?;
        let small = out_tys.iter().all(|t| {
            t.shape
                .as_fixed()
                .and_then(|d| d.iter().try_fold(1u64, |a, &x| a.checked_mul(x)))
                .is_some_and(|n| n <= FOLD_LIMIT)
        });
        if !inputs.is_empty() && small && inputs.iter().all(OVal::is_const) {
            let ts: Vec<Tensor> = inputs.iter().filter_map(OVal::as_const).collect();
            let outs =
                eval_op(&op, &ts, &Bindings::new()).map_err(|source| FrontendError::Fold {
                    path: self.model.path().to_path_buf(),
                    node: self.describe_current(),
                    op: op.name().to_string(),
                    source: Box::new(source),
                })?;
            return Ok(outs.into_iter().map(OVal::Const).collect());
        }
        if names.len() != op.num_outputs() {
            return Err(self.error(format!(
                "{} has {} outputs but {} names were given",
                op.name(),
                op.num_outputs(),
                names.len()
            )));
        }
        let base = names.first().cloned().unwrap_or_default();
        let mut vals = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.iter().enumerate() {
            vals.push(self.materialize(v, &format!("{base}.in{i}"))?);
        }
        let unique: Vec<String> = names.iter().map(|n| self.graph.unique_name(n)).collect();
        let n_out = op.num_outputs();
        let id = self
            .graph
            .add_node_named(op, &vals, unique)
            .map_err(|e| self.error(e.to_string()))?;
        self.graph.set_types(id, out_tys);
        Ok((0..n_out)
            .map(|k| OVal::Node(Value::new(id, k as u32)))
            .collect())
    }

    fn describe_current(&self) -> String {
        self.current
            .as_ref()
            .map_or_else(|| "(graph outputs)".to_string(), NodeView::describe)
    }

    /// An input error naming the current node and input `index`.
    pub fn input_err(&self, index: usize, reason: String) -> FrontendError {
        match &self.current {
            Some(n) => n.input_error(index, reason),
            None => self.error(reason),
        }
    }

    /// The integer entries of input `index`'s value `v`, which must be known at compile
    /// time (axes, pads, shapes, starts/ends). Integer and bool tensors of any rank are
    /// read in order; a symbolic dimension or a run-time value is refused.
    pub fn const_i64s(&self, v: &OVal, index: usize) -> Result<Vec<i64>, FrontendError> {
        match v {
            OVal::Const(t) => {
                if t.dtype().is_float() {
                    return Err(self.input_err(
                        index,
                        format!("expected integers, found a {} tensor", t.dtype()),
                    ));
                }
                Ok(t.to_i64_vec())
            }
            OVal::Dims(d) => d
                .vals
                .iter()
                .map(SymInt::as_int)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    self.input_err(
                        index,
                        format!("must be known at compile time, but it is the symbolic value {d}"),
                    )
                }),
            OVal::Node(n) => Err(self.input_err(
                index,
                format!(
                    "must be known at compile time (a constant or computed from shapes), but it is the run-time value `{}`",
                    self.graph.value_name(*n)
                ),
            )),
        }
    }

    /// The dims held by input `index`'s value `v`: a constant of non-negative integers or
    /// an [`OVal::Dims`].
    pub fn dims(&self, v: &OVal, index: usize) -> Result<Vec<Dim>, FrontendError> {
        let ints = self.sym_ints(v, index)?;
        ints.vals
            .iter()
            .map(|x| {
                x.as_dim()
                    .ok_or_else(|| self.input_err(index, format!("dimension {x} is negative")))
            })
            .collect()
    }

    /// The entries of input `index`'s value `v` as [`SymInts`]: an [`OVal::Dims`] or an
    /// integer constant of rank ≤ 1.
    pub fn sym_ints(&self, v: &OVal, index: usize) -> Result<SymInts, FrontendError> {
        if let Some(s) = v.sym_ints() {
            return Ok(s);
        }
        match v {
            OVal::Const(t) => Err(self.input_err(
                index,
                format!("expected an integer tensor of rank ≤ 1, found {}", t.ty()),
            )),
            OVal::Dims(_) | OVal::Node(_) => {
                self.const_i64s(v, index)?;
                Err(self.input_err(index, "must be known at compile time".into()))
            }
        }
    }
}
