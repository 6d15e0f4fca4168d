//! Builders for the importer tests: typed value infos with symbolic dims, integer
//! initializers, attributes, and loading a built model.
#![allow(dead_code)]

use dqc_frontend::FrontendError;
use dqc_frontend::onnx::proto::{
    AttributeProto, AttributeType, DataType, ModelProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use dqc_frontend::onnx::{OnnxModel, import_model, load_model_from_bytes};
use dqc_ir::Graph;
use prost::Message;

/// A value info of element type `elem` whose dims are numbers or `dim_param` names.
pub fn vi_t(name: &str, elem: DataType, dims: &[&str]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(n) => tensor_shape_proto::DimValue::DimValue(n),
                Err(_) => tensor_shape_proto::DimValue::DimParam((*d).to_string()),
            }),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

/// An f32 value info.
pub fn vi_f(name: &str, dims: &[&str]) -> ValueInfoProto {
    vi_t(name, DataType::Float, dims)
}

/// An i64 initializer.
pub fn i64s(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A float attribute.
pub fn a_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// Set the default-domain opset of `m`.
pub fn with_opset(mut m: ModelProto, version: i64) -> ModelProto {
    m.opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: Some(version),
    }];
    m
}

/// Load a built model from memory.
pub fn load(m: &ModelProto) -> OnnxModel {
    load_model_from_bytes(&m.encode_to_vec(), std::path::Path::new("."))
        .expect("the test model loads")
}

/// Load and import a built model.
pub fn import(m: &ModelProto) -> Result<Graph, FrontendError> {
    import_model(&load(m))
}
