//! Verifier and shape/type inference.
//!
//! [`infer_op`] computes the output types of one op from its operand types; it is the
//! single statement of every op's typing rule (the docs of [`Op`] and [`crate::quant`] are
//! the spec). [`verify`] runs it over a whole [`Graph`](crate::Graph) in topological order,
//! stores the types with [`Graph::set_types`](crate::Graph::set_types) and checks the graph-level invariants: outputs present,
//! operand counts, the input signature, annotations, cache slot types, no cycles.
//!
//! Symbolic dimensions are monomials ([`Dim`](crate::Dim)); a rule that would need a sum of symbols
//! (concatenating `B` and `N`, padding a symbolic axis, …) refuses with a message that
//! says so rather than guessing. Symbols are assumed to be at least 1, so a monomial
//! `f·B` is known to be at least `f` (this is what lets `Slice` take a static prefix of a
//! symbolic axis).
//!
//! Rules are split by op family, one private file each: `elementwise` (unary, binary,
//! where, cast, modulate, activations), `contraction` (matmul, gemm, conv), `norm`,
//! `sequence` (attention, selective scan), `reduce`, `movement`, `quant` and `misc`
//! (caching). Each file's module docs state its rules.

use crate::op::Op;
use crate::shape::TensorType;

mod contraction;
mod elementwise;
mod error;
mod graph;
mod helpers;
mod misc;
mod movement;
mod norm;
mod quant;
mod reduce;
mod sequence;

#[cfg(test)]
mod graph_tests;
#[cfg(test)]
mod testutil;

pub use error::{InferError, VerifyError};
pub use graph::verify;
use helpers::{
    broadcast, ceil_div, operand, resolve_axis, sum_dims, want_dtype, want_float, want_rank,
    want_same_dtype, want_shape,
};

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
