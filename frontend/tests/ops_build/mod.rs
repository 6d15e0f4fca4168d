//! Hand-built one-node ONNX models for the compute op tests: build, import, run.
#![allow(dead_code)]

use dqc_frontend::onnx::import::import_model;
use dqc_frontend::onnx::load_model_from_bytes;
use dqc_frontend::onnx::proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, ValueInfoProto,
};
use dqc_ir::{DType, Graph, Tensor};
use prost::Message;

/// An f32 value info with static dims (the shared builder of `common`, with unsigned dims).
pub fn vi(name: &str, dims: &[u64]) -> ValueInfoProto {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    crate::common::vi(name, &dims)
}

/// A string attribute.
pub fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// An integer list attribute.
pub fn attr_is(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An f32 initializer.
pub fn init(name: &str, dims: &[u64], vals: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: vals.to_vec(),
        ..Default::default()
    }
}

/// A model of one node `op` (opset `opset`) on f32 runtime inputs `inputs` (name, dims)
/// plus `inits`, with attributes `attrs` and one output `y` of dims `out`.
pub fn one_node(
    op: &str,
    opset: i64,
    inputs: &[(&str, &[u64])],
    inits: Vec<TensorProto>,
    attrs: Vec<AttributeProto>,
    out: &[u64],
) -> ModelProto {
    let mut names: Vec<String> = inputs.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(inits.iter().map(|t| t.name.clone()));
    let node = NodeProto {
        name: "n".into(),
        op_type: op.into(),
        input: names,
        output: vec!["y".into()],
        attribute: attrs,
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            name: "g".into(),
            node: vec![node],
            initializer: inits,
            input: inputs.iter().map(|(n, d)| vi(n, d)).collect(),
            output: vec![vi("y", out)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Import `m`.
pub fn import(m: &ModelProto) -> Result<Graph, String> {
    let model = load_model_from_bytes(&m.encode_to_vec(), std::path::Path::new("."))
        .map_err(|e| e.to_string())?;
    import_model(&model).map_err(|e| e.to_string())
}

/// Import `m` and run it on f32 inputs.
pub fn run(m: &ModelProto, inputs: &[(&[u64], Vec<f32>)]) -> Vec<f32> {
    let g = import(m).expect("import");
    let ts: Vec<Tensor> = inputs
        .iter()
        .map(|(d, v)| Tensor::from_f32(DType::F32, d.to_vec(), v).expect("tensor"))
        .collect();
    let out = dqc_ir::interp::run(&g, &ts).expect("run");
    out[0].to_f32_vec()
}

/// `n` deterministic values in [-1, 1).
pub fn ramp(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Max abs difference.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
