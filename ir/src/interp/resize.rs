//! Resize. (placeholder signatures)
use super::Bindings;
use super::{InterpError, op_err};
use crate::op::{CoordTransform, ResizeMode};
use crate::shape::Shape;
use crate::tensor::Tensor;

pub(super) fn resize(
    _x: &Tensor,
    _size: &Shape,
    _mode: ResizeMode,
    _coord: CoordTransform,
    _b: &Bindings,
) -> Result<Tensor, InterpError> {
    Err(op_err("unimplemented"))
}
