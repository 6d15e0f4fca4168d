//! Reductions. (placeholder signatures)
use super::{InterpError, op_err};
use crate::op::ReduceOp;
use crate::tensor::Tensor;

pub(super) fn reduce(
    _x: &Tensor,
    _op: ReduceOp,
    _axes: &[i64],
    _keepdims: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn arg_reduce(
    _x: &Tensor,
    _max: bool,
    _axis: i64,
    _keepdims: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn cumsum(
    _x: &Tensor,
    _axis: i64,
    _exclusive: bool,
    _reverse: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
