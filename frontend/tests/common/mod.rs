//! Builders for small ONNX models and tensors, shared by the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use dqc_frontend::onnx::proto::{
    AttributeProto, AttributeType, DataLocation, DataType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, tensor_shape_proto, type_proto,
};
use prost::Message;

/// A float tensor value info with static dims.
pub fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::DimValue::DimValue(d)),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    }
}

/// A node of the default domain.
pub fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A graph attribute.
pub fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Graph as i32,
        g: Some(g),
        ..Default::default()
    }
}

/// An f32 tensor stored in raw_data.
pub fn f32_raw(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: Bytes::from(raw),
        ..Default::default()
    }
}

/// A tensor whose data is in `file` at `offset`.
pub fn external(name: &str, dims: &[i64], file: &str, offset: Option<u64>) -> TensorProto {
    let mut ext = vec![StringStringEntryProto {
        key: "location".into(),
        value: file.into(),
    }];
    if let Some(o) = offset {
        ext.push(StringStringEntryProto {
            key: "offset".into(),
            value: o.to_string(),
        });
    }
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        external_data: ext,
        data_location: DataLocation::External as i32,
        ..Default::default()
    }
}

/// A graph.
pub fn graph(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> GraphProto {
    GraphProto {
        name: "g".into(),
        node: nodes,
        initializer: inits,
        input: inputs,
        output: outputs,
        ..Default::default()
    }
}

/// A model around `g` (IR 10, opset 21).
pub fn model(g: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(21),
        }],
        producer_name: "dqc-tests".into(),
        graph: Some(g),
        ..Default::default()
    }
}

/// `y = Relu(x + w)` with `w` an f32 initializer: a small valid model.
pub fn small_model() -> ModelProto {
    model(graph(
        vec![
            node("add", "Add", &["x", "w"], &["s"]),
            node("relu", "Relu", &["s"], &["y"]),
        ],
        vec![f32_raw("w", &[2, 3], &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0])],
        vec![vi("x", &[2, 3])],
        vec![vi("y", &[2, 3])],
    ))
}

/// Encode a message.
pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}
