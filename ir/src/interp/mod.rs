//! The reference interpreter: the oracle for every pass and every kernel.
//!
//! Every op is evaluated in f32 (integers in i64), reductions accumulate in f64, and each
//! result is stored in the op's output dtype with the bit-exact rounding of
//! [`crate::numeric`] — so quantized formats are simulated exactly. Speed is not a goal;
//! clarity and agreement with the op's definition are.
//!
//! Evaluation is demand-driven from the graph outputs: a [`Op::StepGate`] evaluates only
//! the input its schedule picks for the current step, so the region that computes the
//! fresh value is skipped on reuse steps, exactly as the runtime will skip it.

use std::collections::{BTreeMap, HashMap};

use crate::graph::{Graph, NodeId, Value};
use crate::op::Op;
use crate::shape::Dim;
use crate::tensor::{Tensor, TensorError};

mod attention;
mod conv;
mod elementwise;
mod linalg;
mod movement;
mod norm;
mod quant;
mod reduce;
mod resize;
mod scan;
mod util;

/// Errors while interpreting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// Wrong number of graph inputs.
    #[error("graph `{graph}` takes {expected} inputs, {actual} were given")]
    InputCount {
        /// Graph name.
        graph: String,
        /// Declared inputs.
        expected: usize,
        /// Given inputs.
        actual: usize,
    },
    /// A graph input does not match its declared type.
    #[error("input `{name}`: expected {expected}, got {actual}")]
    InputType {
        /// Input name.
        name: String,
        /// Declared type.
        expected: String,
        /// Type of the tensor given.
        actual: String,
    },
    /// An op failed on a node; `source` says why.
    #[error("node `{node}` ({op}): {message}")]
    Node {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// An op was given operands it cannot evaluate (wrong dtype, shape, count …).
    #[error("{0}")]
    Op(String),
    /// A cache slot was read before any step wrote it.
    #[error("cache slot `{0}` is read before any step wrote it")]
    EmptyCache(String),
    /// A tensor could not be built.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The graph is malformed (cycle, dangling value).
    #[error("malformed graph: {0}")]
    Graph(String),
}

/// Shorthand for op-level failures.
pub(crate) fn op_err(msg: impl Into<String>) -> InterpError {
    InterpError::Op(msg.into())
}

/// State carried across denoising steps: the step number and the cache slots.
#[derive(Clone, Debug, Default)]
pub struct StepState {
    /// The current step (0 for the first).
    pub step: u32,
    /// Cache slots written by earlier steps.
    pub cache: HashMap<String, Tensor>,
}

/// Run `graph` once (step 0, empty cache) on `inputs` given in signature order.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
    run_step(graph, inputs, &mut StepState::default())
}

/// Run one denoising step. Cache writes of this step become visible to later steps only
/// (they are committed when the step ends); `state.step` is advanced by one on success.
pub fn run_step(
    graph: &Graph,
    inputs: &[Tensor],
    state: &mut StepState,
) -> Result<Vec<Tensor>, InterpError> {
    if inputs.len() != graph.inputs().len() {
        return Err(InterpError::InputCount {
            graph: graph.name.clone(),
            expected: graph.inputs().len(),
            actual: inputs.len(),
        });
    }
    let mut values: HashMap<Value, Tensor> = HashMap::new();
    let mut bindings = Bindings::new();
    for (&id, t) in graph.inputs().iter().zip(inputs) {
        check_input(graph, id, t, &mut bindings)?;
        values.insert(Value::new(id, 0), t.clone());
    }
    let mut writes: HashMap<String, Tensor> = HashMap::new();
    // Demand-driven evaluation with an explicit stack (graphs can be deep).
    let mut stack: Vec<NodeId> = graph.outputs().iter().map(|v| v.node).collect();
    let mut visiting: HashMap<NodeId, usize> = HashMap::new();
    while let Some(&id) = stack.last() {
        if values.contains_key(&Value::new(id, 0)) {
            stack.pop();
            continue;
        }
        let node = graph
            .get(id)
            .ok_or_else(|| InterpError::Graph("an output refers to a removed node".into()))?;
        let needed: Vec<Value> = match &node.op {
            Op::StepGate { schedule } => {
                let pick = if schedule.recomputes(state.step) {
                    0
                } else {
                    1
                };
                vec![node.inputs()[pick]]
            }
            _ => node.inputs().to_vec(),
        };
        let missing: Vec<NodeId> = needed
            .iter()
            .filter(|v| !values.contains_key(v))
            .map(|v| v.node)
            .collect();
        if !missing.is_empty() {
            let seen = visiting.entry(id).or_insert(0);
            *seen += 1;
            if *seen > 1 {
                return Err(InterpError::Graph(format!(
                    "cycle through node `{}`",
                    node.name()
                )));
            }
            stack.extend(missing);
            continue;
        }
        stack.pop();
        let args: Vec<Tensor> = needed.iter().map(|v| values[v].clone()).collect();
        let wrap = |e: InterpError| match e {
            InterpError::Op(message) => InterpError::Node {
                node: node.name().to_string(),
                op: node.op.name(),
                message,
            },
            other => other,
        };
        let outs = match &node.op {
            Op::Input { .. } => {
                return Err(InterpError::Graph(format!(
                    "input `{}` has no value",
                    node.name()
                )));
            }
            Op::StepGate { .. } => args,
            Op::CacheRead { slot, .. } => vec![
                state
                    .cache
                    .get(slot)
                    .cloned()
                    .ok_or_else(|| InterpError::EmptyCache(slot.clone()))?,
            ],
            Op::CacheWrite { slot } => {
                writes.insert(slot.clone(), args[0].clone());
                args
            }
            op => eval_op(op, &args, &bindings).map_err(wrap)?,
        };
        for (i, t) in outs.into_iter().enumerate() {
            values.insert(Value::new(id, i as u32), t);
        }
    }
    let result = graph
        .outputs()
        .iter()
        .map(|v| {
            values
                .get(v)
                .cloned()
                .ok_or_else(|| InterpError::Graph("an output was not computed".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.cache.extend(writes);
    state.step += 1;
    Ok(result)
}

fn check_input(
    graph: &Graph,
    id: NodeId,
    t: &Tensor,
    bindings: &mut BTreeMap<String, u64>,
) -> Result<(), InterpError> {
    let node = graph.node(id);
    let Op::Input { ty, .. } = &node.op else {
        return Err(InterpError::Graph(format!(
            "`{}` is not an input",
            node.name()
        )));
    };
    let mismatch = || InterpError::InputType {
        name: node.name().to_string(),
        expected: ty.to_string(),
        actual: t.ty().to_string(),
    };
    if ty.dtype != t.dtype() || ty.shape.rank() != t.shape().len() {
        return Err(mismatch());
    }
    for (d, &n) in ty.shape.dims().iter().zip(t.shape()) {
        if !bind_dim(d, n, bindings) {
            return Err(mismatch());
        }
    }
    Ok(())
}

/// Match a declared dimension against a concrete extent, binding a lone symbol on first
/// sight. Monomials of several symbols must already be determined by earlier bindings.
fn bind_dim(d: &Dim, n: u64, bindings: &mut BTreeMap<String, u64>) -> bool {
    if let Some(v) = d.eval(bindings) {
        return v == n;
    }
    let unbound: Vec<&(String, u32)> = d
        .symbols()
        .iter()
        .filter(|(s, _)| !bindings.contains_key(s))
        .collect();
    if let [(s, 1)] = unbound.as_slice() {
        let rest = d
            .symbols()
            .iter()
            .filter(|(x, _)| x != s)
            .try_fold(d.factor(), |acc, (x, e)| {
                (0..*e).try_fold(acc, |a, _| a.checked_mul(bindings[x]))
            });
        if let Some(rest) = rest
            && rest != 0
            && n.is_multiple_of(rest)
        {
            bindings.insert(s.clone(), n / rest);
            return true;
        }
    }
    false
}

/// Values of the symbolic dimensions (bound from the graph inputs' shapes).
pub type Bindings = BTreeMap<String, u64>;

/// Evaluate one op on concrete operands; `bindings` resolves symbolic dimensions in the
/// op's attributes (`Reshape`, `Expand`, `Resize`). Cache ops and graph inputs are handled
/// by [`run_step`]; every other op is here.
pub fn eval_op(
    op: &Op,
    inputs: &[Tensor],
    bindings: &Bindings,
) -> Result<Vec<Tensor>, InterpError> {
    if let Some(n) = op.num_inputs()
        && n != inputs.len()
    {
        return Err(op_err(format!(
            "{} takes {n} operands, got {}",
            op.name(),
            inputs.len()
        )));
    }
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Input { .. } | Op::CacheRead { .. } | Op::CacheWrite { .. } | Op::StepGate { .. } => {
            Err(op_err(format!("{} is evaluated by run_step", op.name())))
        }
        Op::Constant(t) => one(t.clone()),
        Op::Unary(u) => one(elementwise::unary(*u, &inputs[0])?),
        Op::Binary(b) => one(elementwise::binary(*b, &inputs[0], &inputs[1])?),
        Op::Where => one(elementwise::select(&inputs[0], &inputs[1], &inputs[2])?),
        Op::Cast { to } => one(elementwise::cast(&inputs[0], *to)?),
        Op::Modulate => one(elementwise::modulate(&inputs[0], &inputs[1], &inputs[2])?),
        Op::Gelu { approx } => one(elementwise::gelu(&inputs[0], *approx)?),
        Op::Silu => one(elementwise::silu(&inputs[0])?),
        Op::MatMul => one(linalg::matmul(&inputs[0], &inputs[1])?),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            has_c,
        } => one(linalg::gemm(
            inputs, *alpha, *beta, *trans_a, *trans_b, *has_c,
        )?),
        Op::Conv {
            strides,
            pads,
            dilations,
            groups,
            has_bias,
        } => one(conv::conv(
            inputs, strides, pads, dilations, *groups, *has_bias,
        )?),
        Op::LayerNorm { axis, eps, affine } => one(norm::layer_norm(inputs, *axis, *eps, *affine)?),
        Op::RmsNorm { axis, eps, affine } => one(norm::rms_norm(inputs, *axis, *eps, *affine)?),
        Op::GroupNorm {
            groups,
            eps,
            affine,
        } => one(norm::group_norm(inputs, *groups, *eps, *affine)?),
        Op::Softmax { axis } => one(norm::softmax(&inputs[0], *axis)?),
        Op::Attention {
            heads,
            kv_heads,
            scale,
            causal,
            has_mask,
        } => one(attention::attention(
            inputs, *heads, *kv_heads, *scale, *causal, *has_mask,
        )?),
        Op::SelectiveScan {
            delta_softplus,
            has_d,
            has_z,
        } => one(scan::selective_scan(
            inputs,
            *delta_softplus,
            *has_d,
            *has_z,
        )?),
        Op::Reduce { op, axes, keepdims } => one(reduce::reduce(&inputs[0], *op, axes, *keepdims)?),
        Op::ArgReduce {
            max,
            axis,
            keepdims,
        } => one(reduce::arg_reduce(&inputs[0], *max, *axis, *keepdims)?),
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => one(reduce::cumsum(&inputs[0], *axis, *exclusive, *reverse)?),
        Op::Reshape { shape } => one(movement::reshape(&inputs[0], shape, bindings)?),
        Op::Transpose { perm } => one(movement::transpose(&inputs[0], perm)?),
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => one(movement::slice(&inputs[0], axes, starts, ends, steps)?),
        Op::Concat { axis } => one(movement::concat(inputs, *axis)?),
        Op::Split { axis, sizes } => movement::split(&inputs[0], *axis, sizes),
        Op::Gather { axis } => one(movement::gather(&inputs[0], &inputs[1], *axis)?),
        Op::Expand { shape } => one(movement::expand(&inputs[0], shape, bindings)?),
        Op::Pad { pads, mode } => one(movement::pad(&inputs[0], pads, *mode)?),
        Op::Resize { size, mode, coord } => {
            one(resize::resize(&inputs[0], size, *mode, *coord, bindings)?)
        }
        Op::Quantize {
            dtype,
            scheme,
            has_zero_point,
        } => quant::quantize(inputs, *dtype, scheme, *has_zero_point),
        Op::Dequantize {
            scheme,
            has_zero_point,
            out,
        } => one(quant::dequantize(inputs, scheme, *has_zero_point, *out)?),
        Op::QMatMul {
            a_scheme,
            b_scheme,
            out,
        } => one(quant::qmatmul(inputs, a_scheme.as_ref(), b_scheme, *out)?),
    }
}
