//! Attention. (placeholder signatures)
use super::{InterpError, op_err};
use crate::tensor::Tensor;

pub(super) fn attention(
    _inputs: &[Tensor],
    _heads: u64,
    _kv_heads: u64,
    _scale: Option<f32>,
    _causal: bool,
    _has_mask: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
