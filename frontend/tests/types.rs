//! Declared value types → `TensorType`.

mod common;

use std::path::Path;

use common::vi;
use dqc_frontend::FrontendError;
use dqc_frontend::onnx::proto::{
    DataType, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use dqc_frontend::onnx::tensor_type;
use dqc_ir::{DType, Dim, Shape, TensorType};

fn with_dims(
    name: &str,
    elem: DataType,
    dims: Vec<Option<tensor_shape_proto::DimValue>>,
) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|value| tensor_shape_proto::Dimension {
                            value,
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

#[test]
fn static_symbolic_and_unknown_dims() {
    use tensor_shape_proto::DimValue::{DimParam, DimValue};
    let v = with_dims(
        "x",
        DataType::Float16,
        vec![Some(DimParam("B".into())), Some(DimValue(256)), None],
    );
    let t = tensor_type(&v, Path::new("m.onnx")).expect("type");
    assert_eq!(
        t,
        TensorType::new(
            DType::F16,
            Shape(vec![Dim::sym("B"), Dim::fixed(256), Dim::sym("x:2")])
        )
    );
    assert_eq!(
        tensor_type(&vi("y", &[2, 3]), Path::new("m.onnx"))
            .expect("type")
            .to_string(),
        "f32[2,3]"
    );
}

#[test]
fn unrepresentable_types_are_refused() {
    let p = Path::new("m.onnx");
    let neg = with_dims(
        "n",
        DataType::Float,
        vec![Some(tensor_shape_proto::DimValue::DimValue(-2))],
    );
    assert!(
        matches!(tensor_type(&neg, p), Err(FrontendError::BadValueType { value, .. }) if value == "n")
    );
    let s = with_dims("s", DataType::String, vec![]);
    assert!(
        tensor_type(&s, p)
            .unwrap_err()
            .to_string()
            .contains("STRING")
    );
    let mut no_shape = vi("r", &[1]);
    if let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..
    }) = no_shape.r#type.as_mut()
    {
        t.shape = None;
    }
    assert!(
        tensor_type(&no_shape, p)
            .unwrap_err()
            .to_string()
            .contains("rank")
    );
    let seq = ValueInfoProto {
        name: "q".into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::SequenceType(type_proto::Sequence {
                elem_type: None,
            })),
            denotation: String::new(),
        }),
        ..Default::default()
    };
    assert!(
        tensor_type(&seq, p)
            .unwrap_err()
            .to_string()
            .contains("sequences")
    );
    let untyped = ValueInfoProto {
        name: "u".into(),
        ..Default::default()
    };
    assert!(
        tensor_type(&untyped, p)
            .unwrap_err()
            .to_string()
            .contains("no type")
    );
}
