//! `ValueInfoProto` → [`TensorType`]: the declared type of a graph input or output.
//!
//! Dimensions: `dim_value` becomes a static [`Dim`], `dim_param` a symbol of that name, and
//! a dimension with neither (unknown) a fresh symbol `VALUE:AXIS` (e.g. `x:0`), so that
//! two unknown dimensions are never taken to be equal.

use std::path::Path;

use dqc_ir::{Dim, Shape, TensorType};

use crate::FrontendError;
use crate::onnx::proto::{ValueInfoProto, tensor_shape_proto::DimValue, type_proto};
use crate::onnx::tensor::{data_type_name, dtype_for_onnx};

/// The tensor type declared for `vi`. `path` names the model file in errors.
///
/// Errors: no type, a non-tensor type (sequence, map, optional, sparse, opaque), no shape
/// (unknown rank), a negative dimension, an element type without a dqc dtype.
pub fn tensor_type(vi: &ValueInfoProto, path: &Path) -> Result<TensorType, FrontendError> {
    let bad = |reason: String| FrontendError::BadValueType {
        path: path.to_path_buf(),
        value: vi.name.clone(),
        reason,
    };
    let value = vi
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .ok_or_else(|| bad("no type is declared".into()))?;
    let t = match value {
        type_proto::Value::TensorType(t) => t,
        type_proto::Value::SequenceType(_) => {
            return Err(bad("sequences are not supported".into()));
        }
        type_proto::Value::MapType(_) => return Err(bad("maps are not supported".into())),
        type_proto::Value::OptionalType(_) => {
            return Err(bad("optional values are not supported".into()));
        }
        type_proto::Value::SparseTensorType(_) => {
            return Err(bad("sparse tensors are not supported".into()));
        }
        type_proto::Value::OpaqueType(_) => {
            return Err(bad("opaque types are not supported".into()));
        }
    };
    let dtype = dtype_for_onnx(t.elem_type).map_err(|reason| {
        bad(format!(
            "element type {} is not supported: {reason}",
            data_type_name(t.elem_type)
        ))
    })?;
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| bad("the shape (rank) is unknown".into()))?;
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (axis, d) in shape.dim.iter().enumerate() {
        let dim = match &d.value {
            Some(DimValue::DimValue(v)) => {
                Dim::fixed(u64::try_from(*v).map_err(|_| bad(format!("dimension {axis} is {v}")))?)
            }
            Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::sym(p.as_str()),
            Some(DimValue::DimParam(_)) | None => Dim::sym(format!("{}:{axis}", vi.name)),
        };
        dims.push(dim);
    }
    Ok(TensorType::new(dtype, Shape(dims)))
}
