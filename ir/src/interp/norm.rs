//! Normalizations and softmax. (placeholder signatures)
use super::{InterpError, op_err};
use crate::tensor::Tensor;

pub(super) fn layer_norm(
    _inputs: &[Tensor],
    _axis: i64,
    _eps: f32,
    _affine: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn rms_norm(
    _inputs: &[Tensor],
    _axis: i64,
    _eps: f32,
    _affine: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn group_norm(
    _inputs: &[Tensor],
    _groups: u64,
    _eps: f32,
    _affine: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn softmax(_x: &Tensor, _axis: i64) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
