//! The frontend's error type.
//!
//! Every variant carries the path of the file being read (`<memory>` for
//! [`crate::onnx::load_model_from_bytes`]) and, where one is involved, the node or tensor
//! it is about, so that a message alone tells the user where to look.

use std::path::PathBuf;

/// Why a model, a tensor or a test case could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The file could not be opened, mapped or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a protobuf `ModelProto` (truncated, garbage, another format).
    #[error("{}: not an ONNX model: {reason}", path.display())]
    NotOnnx {
        /// File.
        path: PathBuf,
        /// The decode error or what the bytes look like instead.
        reason: String,
    },

    /// The bytes are not a protobuf `TensorProto`.
    #[error("{}: not a serialized ONNX TensorProto: {reason}", path.display())]
    NotTensor {
        /// File.
        path: PathBuf,
        /// The decode error.
        reason: String,
    },

    /// A model-level field is missing or wrong (ir_version, opset_import, graph).
    #[error("{}: invalid model: {reason}", path.display())]
    InvalidModel {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Two definitions of one value name in one graph.
    #[error("{}: graph `{graph}`: value `{value}` is defined twice: by {first} and by {second}", path.display())]
    DuplicateValue {
        /// File.
        path: PathBuf,
        /// Graph name.
        graph: String,
        /// The value name.
        value: String,
        /// The first definition (graph input, initializer or node).
        first: String,
        /// The second definition.
        second: String,
    },

    /// A node reads a value that nothing defines.
    #[error("{}: graph `{graph}`: node {node} input `{input}`: missing initializer or producer", path.display())]
    MissingInput {
        /// File.
        path: PathBuf,
        /// Graph name.
        graph: String,
        /// The node (name or index, and op type).
        node: String,
        /// The missing value.
        input: String,
    },

    /// A graph output that nothing defines.
    #[error("{}: graph `{graph}`: output `{output}`: missing initializer or producer", path.display())]
    MissingOutput {
        /// File.
        path: PathBuf,
        /// Graph name.
        graph: String,
        /// The missing value.
        output: String,
    },

    /// The nodes of a graph depend on each other in a cycle.
    #[error("{}: graph `{graph}`: the nodes form a cycle through node {node}", path.display())]
    Cycle {
        /// File.
        path: PathBuf,
        /// Graph name.
        graph: String,
        /// A node on the cycle.
        node: String,
    },

    /// A node uses an operator domain that the model does not import.
    #[error("{}: node {node}: operator domain `{domain}` is not in opset_import", path.display())]
    UnknownDomain {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// The domain.
        domain: String,
    },

    /// A tensor's element type has no dqc dtype.
    #[error("{}: tensor `{tensor}`: data type {data_type} is not supported: {reason}", path.display())]
    UnsupportedDataType {
        /// File.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The ONNX type name and code, e.g. `STRING (8)`.
        data_type: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// A tensor's dimensions are negative, overflow or are absurdly large.
    #[error("{}: tensor `{tensor}` with dims {dims:?}: {reason}", path.display())]
    BadShape {
        /// File.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The dims as stored.
        dims: Vec<i64>,
        /// What is wrong.
        reason: String,
    },

    /// A tensor's data does not match its type and shape.
    #[error("{}: tensor `{tensor}`: {reason}", path.display())]
    BadData {
        /// File.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// What is wrong (sizes expected and found, value out of range, …).
        reason: String,
    },

    /// A tensor's external data is refused or unreadable.
    #[error("{}: tensor `{tensor}`: external data `{location}`: {reason}", path.display())]
    ExternalData {
        /// The model file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The `location` as written in the model.
        location: String,
        /// What is wrong.
        reason: String,
    },

    /// A graph input or output whose declared type dqc cannot represent.
    #[error("{}: value `{value}`: {reason}", path.display())]
    BadValueType {
        /// File.
        path: PathBuf,
        /// Value name.
        value: String,
        /// What is wrong (not a tensor, unknown rank, unsupported element type, …).
        reason: String,
    },

    /// A conformance test case folder is malformed.
    #[error("{}: invalid test case: {reason}", path.display())]
    BadCase {
        /// The case folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// No converter is registered for a node's operator at the model's opset.
    #[error("{}: node {node}: operator `{op_type}` of domain `{domain}` at opset {opset} is not supported; {detail}", path.display())]
    UnsupportedOp {
        /// File.
        path: PathBuf,
        /// The node (name, index and op type).
        node: String,
        /// The operator.
        op_type: String,
        /// Its domain (`ai.onnx` for the default domain).
        domain: Box<str>,
        /// The opset version the model imports for that domain.
        opset: i64,
        /// Which versions exist and which supported ops have close names.
        detail: Box<str>,
    },

    /// A node attribute is missing, has the wrong type or an invalid value.
    #[error("{}: node {node}: attribute `{attr}`: {reason}", path.display())]
    Attribute {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// Attribute name.
        attr: String,
        /// What is wrong.
        reason: String,
    },

    /// A node input is missing, or must be known at compile time and is not, or has a
    /// value the converter cannot use.
    #[error("{}: node {node}: input {index} (`{input}`): {reason}", path.display())]
    NodeInput {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// Input position.
        index: usize,
        /// The ONNX value name (`` for an omitted optional input).
        input: String,
        /// What is wrong.
        reason: String,
    },

    /// The IR op a node converts to does not type-check on its operands.
    #[error("{}: node {node}: {op} does not accept operands {operands}: {source}", path.display())]
    OpType {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// The IR op name.
        op: String,
        /// The operand types, e.g. `(f32[2,3], i64[2])`.
        operands: String,
        /// The verifier's reason.
        #[source]
        source: Box<dqc_ir::verify::InferError>,
    },

    /// Constant folding a node on compile-time inputs failed.
    #[error("{}: node {node}: evaluating {op} on constant inputs failed: {source}", path.display())]
    Fold {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// The IR op name.
        op: String,
        /// The interpreter's reason.
        #[source]
        source: Box<dqc_ir::interp::InterpError>,
    },

    /// A node cannot be converted for a reason specific to it (unsupported attribute
    /// value, a shape that monomial dimensions cannot express, …).
    #[error("{}: node {node}: {reason}", path.display())]
    Convert {
        /// File.
        path: PathBuf,
        /// The node.
        node: String,
        /// What is wrong.
        reason: String,
    },

    /// The imported graph does not verify (an importer bug or a model the IR cannot hold).
    #[error("{}: the imported graph does not verify: {source}", path.display())]
    Verify {
        /// File.
        path: PathBuf,
        /// The verifier's error.
        #[source]
        source: Box<dqc_ir::verify::VerifyError>,
    },
}
