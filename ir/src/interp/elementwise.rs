//! Elementwise ops. (placeholder signatures; implemented by the interpreter work)
use super::{InterpError, op_err};
use crate::DType;
use crate::op::{BinaryOp, GeluApprox, UnaryOp};
use crate::tensor::Tensor;

pub(super) fn unary(_op: UnaryOp, _x: &Tensor) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn binary(_op: BinaryOp, _a: &Tensor, _b: &Tensor) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn select(_c: &Tensor, _a: &Tensor, _b: &Tensor) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn cast(_x: &Tensor, _to: DType) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn modulate(
    _x: &Tensor,
    _shift: &Tensor,
    _scale: &Tensor,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn gelu(_x: &Tensor, _approx: GeluApprox) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn silu(_x: &Tensor) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
