//! An ergonomic way to write graphs in Rust.
//!
//! [`Builder`] wraps a [`Graph`]. Every op helper returns the new [`Value`] directly; the
//! first error (an operand that is not in the graph, a wrong operand count, inconsistent
//! arguments, a type error found by shape inference) is recorded and returned by
//! [`Builder::finish`]. After an error the helpers add nothing more and return a value that
//! refers to no node, so a model builder can be written as straight-line code.
//!
//! Names are scoped: inside `push_scope("blocks.0")` and `push_scope("attn")` a value named
//! `qkv` is called `blocks.0.attn.qkv`. Helpers name their node after the op (`add`,
//! `matmul`, …) unless [`Builder::named`] gives the next node a name; names are made
//! unique by the graph (`add`, `add_1`, …).
//!
//! ```
//! use dqc_ir::builder::Builder;
//! use dqc_ir::{DType, Dim, Shape, Tensor};
//!
//! let mut b = Builder::new("mlp");
//! let x = b.input("x", DType::F32, Shape(vec![Dim::sym("B"), Dim::fixed(4)]));
//! let y = b.scoped("fc", |b| {
//!     let w = b.param("weight", Tensor::zeros(DType::F32, vec![4, 8]).unwrap());
//!     let bias = b.param("bias", Tensor::zeros(DType::F32, vec![8]).unwrap());
//!     b.named("fc").linear(x, w, Some(bias))
//! });
//! let y = b.silu(y);
//! let g = b.finish(&[y]).unwrap();
//! assert!(g.find_value("fc.fc").is_some());
//! assert!(g.find_value("fc.weight").is_some());
//! ```
//!
//! Types: graph inputs carry their declared type; every other node is typed as it is added
//! by the verifier's rules ([`crate::verify::infer_op`]), so a shape error is reported at
//! the node that causes it, by name.

use crate::DType;
use crate::graph::{Graph, GraphError, NodeId, Value};
use crate::op::{
    BinaryOp, CoordTransform, GeluApprox, Op, PadMode, ReduceOp, ResizeMode, StepSchedule, UnaryOp,
    dequant_extra_inputs,
};
use crate::quant::QuantScheme;
use crate::shape::{Shape, TensorType};
use crate::tensor::Tensor;

/// Errors recorded while building; [`Builder::finish`] returns the first one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// The graph refused the node (an operand from another graph, a missing output …).
    #[error("node `{node}` ({op}): {source}")]
    Graph {
        /// The node's intended name.
        node: String,
        /// Op name.
        op: &'static str,
        /// The cause.
        source: GraphError,
    },
    /// Wrong number of operands for the op's flags.
    #[error("node `{node}` ({op}) takes {expected} operands, {actual} were given")]
    Arity {
        /// The node's intended name.
        node: String,
        /// Op name.
        op: &'static str,
        /// Operands the op takes.
        expected: usize,
        /// Operands given.
        actual: usize,
    },
    /// Arguments of a helper that do not fit together.
    #[error("node `{node}` ({op}): {message}")]
    Invalid {
        /// The node's intended name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The inference hook refused a node.
    #[error("node `{node}` ({op}): type error: {message}")]
    Type {
        /// The node's name.
        node: String,
        /// Op name.
        op: &'static str,
        /// The hook's message.
        message: String,
    },
    /// `pop_scope` without a matching `push_scope`.
    #[error("pop_scope called with no open scope")]
    ScopeUnderflow,
    /// `finish` while scopes are still open.
    #[error("finish called with open scopes: {open:?}")]
    UnclosedScopes {
        /// The open scopes, outermost first.
        open: Vec<String>,
    },
    /// A graph output that is not a value of this graph.
    #[error("graph output {index} is not a value of this graph")]
    BadOutput {
        /// Position in the output list.
        index: usize,
    },
}

/// Attributes of [`Builder::gemm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmAttrs {
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of `c`.
    pub beta: f32,
    /// Use `Aᵀ`.
    pub trans_a: bool,
    /// Use `Bᵀ`.
    pub trans_b: bool,
}

impl Default for GemmAttrs {
    /// `alpha = beta = 1`, no transposes.
    fn default() -> GemmAttrs {
        GemmAttrs {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        }
    }
}

/// Attributes of [`Builder::conv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    /// Stride per spatial axis.
    pub strides: Vec<u64>,
    /// Begin paddings of every spatial axis, then end paddings.
    pub pads: Vec<u64>,
    /// Dilation per spatial axis.
    pub dilations: Vec<u64>,
    /// Number of groups.
    pub groups: u64,
}

impl ConvAttrs {
    /// `rank` spatial axes, all with the same stride and symmetric padding, no dilation,
    /// one group.
    pub fn uniform(rank: usize, stride: u64, pad: u64) -> ConvAttrs {
        ConvAttrs {
            strides: vec![stride; rank],
            pads: vec![pad; 2 * rank],
            dilations: vec![1; rank],
            groups: 1,
        }
    }
}

/// Attributes of [`Builder::attention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionAttrs {
    /// Query heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Logit scale (`None`: `1/√D`).
    pub scale: Option<f32>,
    /// Causal masking.
    pub causal: bool,
}

impl AttentionAttrs {
    /// Plain multi-head attention: `kv_heads = heads`, default scale, not causal.
    pub fn mha(heads: u64) -> AttentionAttrs {
        AttentionAttrs {
            heads,
            kv_heads: heads,
            scale: None,
            causal: false,
        }
    }
}

/// Operands of [`Builder::selective_scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanInputs {
    /// `u: [B, D, L]`.
    pub u: Value,
    /// `delta: [B, D, L]`.
    pub delta: Value,
    /// `A: [D, N]`.
    pub a: Value,
    /// `Bm: [B, N, L]`.
    pub b: Value,
    /// `Cm: [B, N, L]`.
    pub c: Value,
    /// Optional skip `Dskip: [D]`.
    pub d: Option<Value>,
    /// Optional gate `z: [B, D, L]`.
    pub z: Option<Value>,
}

/// Builds a [`Graph`]; see the module documentation.
pub struct Builder {
    graph: Graph,
    scopes: Vec<String>,
    pending_name: Option<String>,
    error: Option<BuildError>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("graph", &self.graph.name)
            .field("nodes", &self.graph.node_count())
            .field("scopes", &self.scopes)
            .field("error", &self.error)
            .finish()
    }
}

/// A value that refers to no node: what helpers return after an error.
fn poison() -> Value {
    Value::new(NodeId::end(), 0)
}

impl Builder {
    /// Start an empty graph named `name`.
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            graph: Graph::new(name),
            scopes: Vec::new(),
            pending_name: None,
            error: None,
        }
    }

    /// The graph built so far (read only).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The first recorded error, if any.
    pub fn error(&self) -> Option<&BuildError> {
        self.error.as_ref()
    }

    /// The type of a value, if known (inputs, or any node when inference is installed).
    pub fn value_type(&self, v: Value) -> Option<&TensorType> {
        self.graph.value_type(v)
    }

    /// Set the graph outputs and return the graph, or the first recorded error. Fails if
    /// scopes are still open or an output is not a value of this graph.
    pub fn finish(mut self, outputs: &[Value]) -> Result<Graph, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.scopes.is_empty() {
            return Err(BuildError::UnclosedScopes { open: self.scopes });
        }
        for (index, v) in outputs.iter().enumerate() {
            let ok = self
                .graph
                .get(v.node)
                .is_some_and(|n| (v.output as usize) < n.op.num_outputs());
            if !ok {
                return Err(BuildError::BadOutput { index });
            }
        }
        self.graph.set_outputs(outputs.to_vec());
        Ok(self.graph)
    }

    // ----- naming ------------------------------------------------------------------

    /// Open a name scope (`blocks.0`, then `attn`, …); a scope may itself contain dots.
    pub fn push_scope(&mut self, name: &str) {
        self.scopes.push(name.to_string());
    }

    /// Close the innermost scope (recording an error if none is open).
    pub fn pop_scope(&mut self) {
        if self.scopes.pop().is_none() {
            self.record(BuildError::ScopeUnderflow);
        }
    }

    /// Run `f` inside scope `name`.
    pub fn scoped<R>(&mut self, name: &str, f: impl FnOnce(&mut Builder) -> R) -> R {
        self.push_scope(name);
        let r = f(self);
        self.pop_scope();
        r
    }

    /// Name the next node created (its final node, for helpers that create several).
    pub fn named(&mut self, name: &str) -> &mut Builder {
        self.pending_name = Some(name.to_string());
        self
    }

    /// `name` inside the current scope: `blocks.0.attn.` + `name`.
    pub fn qualified(&self, name: &str) -> String {
        if self.scopes.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.scopes.join("."))
        }
    }

    fn take_name(&mut self, default: &str) -> String {
        self.pending_name
            .take()
            .unwrap_or_else(|| default.to_string())
    }

    fn record(&mut self, e: BuildError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn invalid(&mut self, base: &str, op: &'static str, message: impl Into<String>) {
        let node = self.qualified(base);
        self.record(BuildError::Invalid {
            node,
            op,
            message: message.into(),
        });
    }

    // ----- generic node creation -------------------------------------------------------

    /// Add `op` with operands `inputs`, named `base` (scoped, made unique). Returns one
    /// value per output.
    fn emit_as(&mut self, op: Op, inputs: &[Value], base: &str) -> Vec<Value> {
        let n_out = op.num_outputs();
        if self.error.is_some() {
            return vec![poison(); n_out];
        }
        let node = self.qualified(base);
        let expected = op.num_inputs();
        let arity_ok = match expected {
            Some(n) => n == inputs.len(),
            None => !inputs.is_empty(),
        };
        if !arity_ok {
            self.record(BuildError::Arity {
                node,
                op: op.name(),
                expected: expected.unwrap_or(1),
                actual: inputs.len(),
            });
            return vec![poison(); n_out];
        }
        let op_name = op.name();
        let inferred = self.run_inference(&op, inputs);
        let id = match self.graph.add_node(op, inputs, &node) {
            Ok(id) => id,
            Err(source) => {
                self.record(BuildError::Graph {
                    node,
                    op: op_name,
                    source,
                });
                return vec![poison(); n_out];
            }
        };
        match inferred {
            Some(Ok(types)) => self.graph.set_types(id, types),
            Some(Err(message)) => {
                let node = self.graph.node(id).name().to_string();
                self.record(BuildError::Type {
                    node,
                    op: op_name,
                    message,
                });
            }
            None => {}
        }
        (0..n_out as u32).map(|i| Value::new(id, i)).collect()
    }

    /// Infer the node's types if every operand has a known type.
    fn run_inference(&self, op: &Op, inputs: &[Value]) -> Option<Result<Vec<TensorType>, String>> {
        let types: Option<Vec<&TensorType>> =
            inputs.iter().map(|v| self.graph.value_type(*v)).collect();
        Some(crate::verify::infer_op(op, &types?).map_err(|e| e.to_string()))
    }

    /// Add any op; the node is named by [`Builder::named`] or after the op. Returns one
    /// value per output of the op.
    pub fn node(&mut self, op: Op, inputs: &[Value]) -> Vec<Value> {
        let base = self.take_name(op.name());
        self.emit_as(op, inputs, &base)
    }

    /// Add a single-output op (records an error for a multi-output op).
    pub fn node1(&mut self, op: Op, inputs: &[Value]) -> Value {
        let base = self.take_name(op.name());
        if op.num_outputs() != 1 {
            self.invalid(
                &base,
                op.name(),
                "node1 used for an op with several outputs",
            );
            return poison();
        }
        self.emit_as(op, inputs, &base)
            .first()
            .copied()
            .unwrap_or_else(poison)
    }

    // ----- sources ---------------------------------------------------------------------

    /// A graph input of the given type, appended to the signature. The name is scoped; a
    /// pending [`Builder::named`] name is discarded (inputs are always named explicitly).
    pub fn input(&mut self, name: &str, dtype: DType, shape: Shape) -> Value {
        self.input_typed(name, TensorType::new(dtype, shape))
    }

    /// A graph input of type `ty`.
    pub fn input_typed(&mut self, name: &str, ty: TensorType) -> Value {
        self.pending_name = None;
        if self.error.is_some() {
            return poison();
        }
        let q = self.qualified(name);
        self.graph.add_input(&q, ty)
    }

    /// A constant, named `const` unless [`Builder::named`] says otherwise.
    pub fn constant(&mut self, t: Tensor) -> Value {
        self.node1(Op::Constant(t), &[])
    }

    /// A named weight (a constant called `scope.name`).
    pub fn param(&mut self, name: &str, t: Tensor) -> Value {
        self.named(name).constant(t)
    }

    /// An f32 scalar constant.
    pub fn scalar(&mut self, v: f32) -> Value {
        self.constant(Tensor::scalar_f32(v))
    }

    // ----- elementwise -----------------------------------------------------------------

    /// `f(x)`.
    pub fn unary(&mut self, op: UnaryOp, x: Value) -> Value {
        self.node1(Op::Unary(op), &[x])
    }

    /// `f(a, b)` with broadcasting.
    pub fn binary(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        self.node1(Op::Binary(op), &[a, b])
    }

    /// `a + b`.
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Add, a, b)
    }
    /// `a - b`.
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Sub, a, b)
    }
    /// `a * b`.
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Mul, a, b)
    }
    /// `a / b`.
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Div, a, b)
    }
    /// `a ^ b`.
    pub fn pow(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Pow, a, b)
    }
    /// `max(a, b)`.
    pub fn maximum(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Max, a, b)
    }
    /// `min(a, b)`.
    pub fn minimum(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Min, a, b)
    }
    /// `-x`.
    pub fn neg(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Neg, x)
    }
    /// `e^x`.
    pub fn exp(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Exp, x)
    }
    /// `ln x`.
    pub fn log(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Log, x)
    }
    /// `√x`.
    pub fn sqrt(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Sqrt, x)
    }
    /// `1/√x`.
    pub fn rsqrt(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Rsqrt, x)
    }
    /// `tanh x`.
    pub fn tanh(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Tanh, x)
    }
    /// `1/(1+e^-x)`.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Sigmoid, x)
    }
    /// `sin x`.
    pub fn sin(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Sin, x)
    }
    /// `cos x`.
    pub fn cos(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Cos, x)
    }
    /// `max(x, 0)`.
    pub fn relu(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Relu, x)
    }

    /// `where(cond, a, b)`.
    pub fn where_(&mut self, cond: Value, a: Value, b: Value) -> Value {
        self.node1(Op::Where, &[cond, a, b])
    }

    /// Convert `x` to `to`.
    pub fn cast(&mut self, x: Value, to: DType) -> Value {
        self.node1(Op::Cast { to }, &[x])
    }

    /// adaLN modulation `x·(1 + scale) + shift`.
    pub fn modulate(&mut self, x: Value, shift: Value, scale: Value) -> Value {
        self.node1(Op::Modulate, &[x, shift, scale])
    }

    /// GELU.
    pub fn gelu(&mut self, x: Value, approx: GeluApprox) -> Value {
        self.node1(Op::Gelu { approx }, &[x])
    }

    /// `x · sigmoid(x)`.
    pub fn silu(&mut self, x: Value) -> Value {
        self.node1(Op::Silu, &[x])
    }

    // ----- contraction -----------------------------------------------------------------

    /// Numpy `matmul(a, b)`.
    pub fn matmul(&mut self, a: Value, b: Value) -> Value {
        self.node1(Op::MatMul, &[a, b])
    }

    /// `alpha · op(a) · op(b) + beta · c`.
    pub fn gemm(&mut self, a: Value, b: Value, c: Option<Value>, attrs: GemmAttrs) -> Value {
        let op = Op::Gemm {
            alpha: attrs.alpha,
            beta: attrs.beta,
            trans_a: attrs.trans_a,
            trans_b: attrs.trans_b,
            has_c: c.is_some(),
        };
        let mut ins = vec![a, b];
        ins.extend(c);
        self.node1(op, &ins)
    }

    /// A linear layer `x @ w (+ bias)` with `w: [in, out]`. With a bias this is two nodes:
    /// `NAME.matmul` and the bias add `NAME` (`NAME` from [`Builder::named`], default
    /// `linear`); without, one matmul node `NAME`.
    pub fn linear(&mut self, x: Value, w: Value, bias: Option<Value>) -> Value {
        let base = self.take_name("linear");
        match bias {
            None => self.named(&base).matmul(x, w),
            Some(bias) => {
                let mm = self.named(&format!("{base}.matmul")).matmul(x, w);
                self.named(&base).add(mm, bias)
            }
        }
    }

    /// Convolution `x: [N, C, *spatial]` with `w: [M, C/groups, *kernel]`.
    pub fn conv(&mut self, x: Value, w: Value, bias: Option<Value>, attrs: ConvAttrs) -> Value {
        let op = Op::Conv {
            strides: attrs.strides,
            pads: attrs.pads,
            dilations: attrs.dilations,
            groups: attrs.groups,
            has_bias: bias.is_some(),
        };
        let mut ins = vec![x, w];
        ins.extend(bias);
        self.node1(op, &ins)
    }

    // ----- normalization ---------------------------------------------------------------

    /// Layer norm over the axes from `axis` on; `affine = Some((gamma, beta))`.
    pub fn layer_norm(
        &mut self,
        x: Value,
        affine: Option<(Value, Value)>,
        axis: i64,
        eps: f32,
    ) -> Value {
        let op = Op::LayerNorm {
            axis,
            eps,
            affine: affine.is_some(),
        };
        let mut ins = vec![x];
        if let Some((g, b)) = affine {
            ins.extend([g, b]);
        }
        self.node1(op, &ins)
    }

    /// RMS norm over the axes from `axis` on, times `gamma` if given.
    pub fn rms_norm(&mut self, x: Value, gamma: Option<Value>, axis: i64, eps: f32) -> Value {
        let op = Op::RmsNorm {
            axis,
            eps,
            affine: gamma.is_some(),
        };
        let mut ins = vec![x];
        ins.extend(gamma);
        self.node1(op, &ins)
    }

    /// Group norm of `x: [N, C, *]`; `affine = Some((gamma, beta))`.
    pub fn group_norm(
        &mut self,
        x: Value,
        affine: Option<(Value, Value)>,
        groups: u64,
        eps: f32,
    ) -> Value {
        let op = Op::GroupNorm {
            groups,
            eps,
            affine: affine.is_some(),
        };
        let mut ins = vec![x];
        if let Some((g, b)) = affine {
            ins.extend([g, b]);
        }
        self.node1(op, &ins)
    }

    /// Softmax along `axis`.
    pub fn softmax(&mut self, x: Value, axis: i64) -> Value {
        self.node1(Op::Softmax { axis }, &[x])
    }

    // ----- attention and scan ----------------------------------------------------------

    /// Packed-head attention of `q, k, v` (and `mask` if given).
    pub fn attention(
        &mut self,
        q: Value,
        k: Value,
        v: Value,
        mask: Option<Value>,
        attrs: AttentionAttrs,
    ) -> Value {
        let op = Op::Attention {
            heads: attrs.heads,
            kv_heads: attrs.kv_heads,
            scale: attrs.scale,
            causal: attrs.causal,
            has_mask: mask.is_some(),
        };
        let mut ins = vec![q, k, v];
        ins.extend(mask);
        self.node1(op, &ins)
    }

    /// Mamba-1 selective scan.
    pub fn selective_scan(&mut self, s: ScanInputs, delta_softplus: bool) -> Value {
        let op = Op::SelectiveScan {
            delta_softplus,
            has_d: s.d.is_some(),
            has_z: s.z.is_some(),
        };
        let mut ins = vec![s.u, s.delta, s.a, s.b, s.c];
        ins.extend(s.d);
        ins.extend(s.z);
        self.node1(op, &ins)
    }

    // ----- reductions ------------------------------------------------------------------

    /// Reduce over `axes` (empty: all).
    pub fn reduce(&mut self, x: Value, op: ReduceOp, axes: &[i64], keepdims: bool) -> Value {
        let op = Op::Reduce {
            op,
            axes: axes.to_vec(),
            keepdims,
        };
        self.node1(op, &[x])
    }

    // ----- movement --------------------------------------------------------------------

    /// Reshape to `shape` (same element count).
    pub fn reshape(&mut self, x: Value, shape: Shape) -> Value {
        self.node1(Op::Reshape { shape }, &[x])
    }

    /// Permute axes: output axis `i` is input axis `perm[i]`.
    pub fn transpose(&mut self, x: Value, perm: &[usize]) -> Value {
        self.node1(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// ONNX-style slice; `steps` empty means all ones. Records an error if the lists
    /// differ in length.
    pub fn slice(
        &mut self,
        x: Value,
        axes: &[i64],
        starts: &[i64],
        ends: &[i64],
        steps: &[i64],
    ) -> Value {
        let steps = if steps.is_empty() {
            vec![1; axes.len()]
        } else {
            steps.to_vec()
        };
        if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
            let base = self.take_name("slice");
            self.invalid(
                &base,
                "slice",
                format!(
                    "{} axes but {} starts, {} ends, {} steps",
                    axes.len(),
                    starts.len(),
                    ends.len(),
                    steps.len()
                ),
            );
            return poison();
        }
        let op = Op::Slice {
            axes: axes.to_vec(),
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            steps,
        };
        self.node1(op, &[x])
    }

    /// Join `xs` (one or more) along `axis`.
    pub fn concat(&mut self, xs: &[Value], axis: i64) -> Value {
        self.node1(Op::Concat { axis }, xs)
    }

    /// Split along `axis` into pieces of `sizes`; one value per piece (named `NAME`,
    /// `NAME_1`, …). Records an error for an empty `sizes`.
    pub fn split(&mut self, x: Value, axis: i64, sizes: &[u64]) -> Vec<Value> {
        if sizes.is_empty() {
            let base = self.take_name("split");
            self.invalid(&base, "split", "no pieces");
            return Vec::new();
        }
        self.node(
            Op::Split {
                axis,
                sizes: sizes.to_vec(),
            },
            &[x],
        )
    }

    /// `take(data, indices, axis)`.
    pub fn gather(&mut self, data: Value, indices: Value, axis: i64) -> Value {
        self.node1(Op::Gather { axis }, &[data, indices])
    }

    /// Broadcast to `shape`.
    pub fn expand(&mut self, x: Value, shape: Shape) -> Value {
        self.node1(Op::Expand { shape }, &[x])
    }

    /// Pad every axis: begins of all axes, then ends.
    pub fn pad(&mut self, x: Value, pads: &[u64], mode: PadMode) -> Value {
        self.node1(
            Op::Pad {
                pads: pads.to_vec(),
                mode,
            },
            &[x],
        )
    }

    /// Resize to `size` (the whole output shape).
    pub fn resize(
        &mut self,
        x: Value,
        size: Shape,
        mode: ResizeMode,
        coord: CoordTransform,
    ) -> Value {
        self.node1(Op::Resize { size, mode, coord }, &[x])
    }

    // ----- quantization ----------------------------------------------------------------

    /// Quantize `x` to `dtype` under `scheme`. `scale` is the scale for affine schemes,
    /// the per-tensor f32 scale for NVFP4, and must be `None` for MX; `zero_point` is only
    /// allowed with affine schemes. Returns `q` and, for NVFP4 and MX, the computed block
    /// scales.
    pub fn quantize(
        &mut self,
        x: Value,
        scale: Option<Value>,
        zero_point: Option<Value>,
        dtype: DType,
        scheme: QuantScheme,
    ) -> (Value, Option<Value>) {
        let wants_scale = !matches!(scheme, QuantScheme::Mx { .. });
        if scale.is_some() != wants_scale || (zero_point.is_some() && !scheme.allows_zero_point()) {
            let base = self.take_name("quantize");
            self.invalid(
                &base,
                "quantize",
                format!(
                    "scheme {scheme} takes {} scale and {} zero point",
                    if wants_scale { "a" } else { "no" },
                    if scheme.allows_zero_point() {
                        "an optional"
                    } else {
                        "no"
                    }
                ),
            );
            return (poison(), None);
        }
        let op = Op::Quantize {
            dtype,
            scheme,
            has_zero_point: zero_point.is_some(),
        };
        let mut ins = vec![x];
        ins.extend(scale);
        ins.extend(zero_point);
        let outs = self.node(op, &ins);
        let q = outs.first().copied().unwrap_or_else(poison);
        (q, outs.get(1).copied())
    }

    /// Dequantize `q` to `out`; `scales` are the scheme's scale inputs in order (one, or
    /// `block_scale, tensor_scale` for NVFP4).
    pub fn dequantize(
        &mut self,
        q: Value,
        scales: &[Value],
        zero_point: Option<Value>,
        scheme: QuantScheme,
        out: DType,
    ) -> Value {
        let op = Op::Dequantize {
            scheme,
            has_zero_point: zero_point.is_some(),
            out,
        };
        let mut ins = vec![q];
        ins.extend_from_slice(scales);
        ins.extend(zero_point);
        self.node1(op, &ins)
    }

    /// `matmul(a, dequantize(b))`, and `dequantize(a)` first if `a_quant` gives `a`'s
    /// scheme and scales. Records an error if a scale list does not fit its scheme.
    pub fn qmatmul(
        &mut self,
        a: Value,
        a_quant: Option<(QuantScheme, &[Value])>,
        b: Value,
        b_scheme: QuantScheme,
        b_scales: &[Value],
        out: DType,
    ) -> Value {
        let a_ok = a_quant.is_none_or(|(s, sc)| sc.len() == dequant_extra_inputs(&s));
        if !a_ok || b_scales.len() != dequant_extra_inputs(&b_scheme) {
            let base = self.take_name("qmatmul");
            self.invalid(&base, "qmatmul", "scale count does not fit the scheme");
            return poison();
        }
        let mut ins = vec![a];
        if let Some((_, sc)) = a_quant {
            ins.extend_from_slice(sc);
        }
        ins.push(b);
        ins.extend_from_slice(b_scales);
        let op = Op::QMatMul {
            a_scheme: a_quant.map(|(s, _)| s),
            b_scheme,
            out,
        };
        self.node1(op, &ins)
    }

    // ----- caching ---------------------------------------------------------------------

    /// Read cache slot `slot` holding a tensor of type `ty`.
    pub fn cache_read(&mut self, slot: &str, ty: TensorType) -> Value {
        self.node1(
            Op::CacheRead {
                slot: slot.to_string(),
                ty,
            },
            &[],
        )
    }

    /// Store `x` into cache slot `slot`; returns `x` passed through.
    pub fn cache_write(&mut self, x: Value, slot: &str) -> Value {
        self.node1(
            Op::CacheWrite {
                slot: slot.to_string(),
            },
            &[x],
        )
    }

    /// `fresh` on steps where `schedule` recomputes, `cached` otherwise.
    pub fn step_gate(&mut self, fresh: Value, cached: Value, schedule: StepSchedule) -> Value {
        self.node1(Op::StepGate { schedule }, &[fresh, cached])
    }
}

#[cfg(test)]
mod tests;
