//! Selective scan. (placeholder signatures)
use super::{InterpError, op_err};
use crate::tensor::Tensor;

pub(super) fn selective_scan(
    _inputs: &[Tensor],
    _softplus: bool,
    _has_d: bool,
    _has_z: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
