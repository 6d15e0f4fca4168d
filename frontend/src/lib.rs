//! dqc-frontend: model import.
//!
//! What exists now:
//! - [`onnx::proto`] — the ONNX protobuf schema as hand-written `prost` messages;
//! - [`onnx::load_model`] / [`onnx::load_model_from_bytes`] — memory-map, decode and
//!   validate a model (ir_version, opsets, unique names, every input defined, acyclic,
//!   nodes in topological order), converting its initializers to [`dqc_ir::Tensor`]s
//!   without copying raw or external data;
//! - [`onnx::tensor_from_proto`] — every ONNX element type that has a dqc dtype, from
//!   raw, typed or external data, with external locations confined to the model's folder;
//! - [`onnx::tensor_type`] — the declared type of a graph input/output as a
//!   [`dqc_ir::TensorType`] (symbolic dims from `dim_param`);
//! - [`onnx::testdata`] — the ONNX backend node conformance cases (`model.onnx` plus
//!   `test_data_set_N/{input,output}_K.pb`).
//!
//! - [`onnx::import`] — ONNX → [`dqc_ir::Graph`]: [`onnx::import_model`] /
//!   [`onnx::import_file`] walk the nodes with the converters of an
//!   [`onnx::import::Registry`] (one file per op family under [`onnx::ops`], each with
//!   `register`), folding constant and shape subgraphs at compile time (symbolic shapes
//!   are [`onnx::import::OVal::Dims`]) and verifying the result.
//!
//! It depends only on `dqc-ir`. See `docs/frontend.md` and `../shared/docs/DESIGN.md`.
#![warn(missing_docs)]

mod error;
pub mod onnx;

pub use error::FrontendError;
