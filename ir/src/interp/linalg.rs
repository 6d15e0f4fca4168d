//! MatMul and Gemm. (placeholder signatures)
use super::{InterpError, op_err};
use crate::tensor::Tensor;

pub(super) fn matmul(_a: &Tensor, _b: &Tensor) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn gemm(
    _inputs: &[Tensor],
    _alpha: f32,
    _beta: f32,
    _ta: bool,
    _tb: bool,
    _has_c: bool,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
