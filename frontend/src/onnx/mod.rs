//! ONNX import: the protobuf schema, model loading and validation, tensor conversion, and
//! the reader for the ONNX backend conformance test cases.

pub mod import;
pub mod load;
pub mod ops;
pub mod proto;
pub mod tensor;
pub mod testdata;
pub mod types;
pub mod validate;

pub use import::{import_file, import_model};
pub use load::{OnnxModel, load_model, load_model_from_bytes};
pub use tensor::{DataFiles, dtype_for_onnx, tensor_from_proto};
pub use types::tensor_type;
