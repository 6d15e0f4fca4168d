//! Movement ops. (placeholder signatures)
use super::Bindings;
use super::{InterpError, op_err};
use crate::op::PadMode;
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(super) fn reshape(_x: &Tensor, _shape: &Shape, _b: &Bindings) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn transpose(_x: &Tensor, _perm: &[usize]) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn slice(
    _x: &Tensor,
    _axes: &[i64],
    _starts: &[i64],
    _ends: &[i64],
    _steps: &[i64],
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn concat(_xs: &[Tensor], _axis: i64) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn split(_x: &Tensor, _axis: i64, _sizes: &[u64]) -> Result<Vec<Tensor>, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn gather(_x: &Tensor, _idx: &Tensor, _axis: i64) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn expand(_x: &Tensor, _shape: &Shape, _b: &Bindings) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn pad(_x: &Tensor, _pads: &[u64], _mode: PadMode) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
