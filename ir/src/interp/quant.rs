//! Quantization ops. (placeholder signatures)
use super::{InterpError, op_err};
use crate::DType;
use crate::quant::QuantScheme;
use crate::tensor::Tensor;

pub(super) fn quantize(
    _inputs: &[Tensor],
    _dtype: DType,
    _scheme: &QuantScheme,
    _zp: bool,
) -> Result<Vec<Tensor>, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn dequantize(
    _inputs: &[Tensor],
    _scheme: &QuantScheme,
    _zp: bool,
    _out: DType,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
pub(super) fn qmatmul(
    _inputs: &[Tensor],
    _a: Option<&QuantScheme>,
    _b: &QuantScheme,
    _out: DType,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
