//! Convolution. (placeholder signatures)
use super::{InterpError, op_err};
use crate::tensor::Tensor;

pub(super) fn conv(
    _inputs: &[Tensor],
    _strides: &[u64],
    _pads: &[u64],
    _dilations: &[u64],
    _groups: u64,
    _has_bias: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
