//! Movement ops: `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`, `Transpose`, `Concat`,
//! `Expand`, `Tile`.

use crate::onnx::import::Registry;

/// Register the movement converters.
pub fn register(_r: &mut Registry) {}
