//! The ONNX protobuf schema (`onnx.proto`, IR version 11), written by hand as `prost`
//! messages: no `protoc`, no build script.
//!
//! Field numbers follow `onnx/onnx.proto`. ONNX uses proto2 syntax; scalar fields whose
//! presence the loader must check (`ModelProto.ir_version`, `OperatorSetIdProto.version`)
//! are `Option`s, the others decode to their default when absent, which is how proto2
//! readers treat them too. Repeated scalars accept both packed and unpacked encodings.
//!
//! `TensorProto.raw_data` is a [`bytes::Bytes`]: decoding from a `Bytes` buffer (as the
//! loader does with a memory-mapped file) makes it a view into that buffer, not a copy.
//!
//! Messages that dqc does not use (training information, device configurations, sparse
//! tensors, functions) are declared so that a model carrying them decodes; their contents
//! are kept but ignored.

use bytes::Bytes;

/// `onnx.StringStringEntryProto`: one key/value pair (ONNX's portable map entry).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `onnx.OperatorSetIdProto`: an imported operator set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Domain; `""` and `"ai.onnx"` both name the default ONNX domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Opset version (required by the spec).
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `onnx.ModelProto`: the top-level message of a `.onnx` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// IR version the model targets (required).
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// Imported operator sets.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Name of the exporting tool.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Version of the exporting tool.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Model domain (reverse DNS).
    #[prost(string, tag = "4")]
    pub domain: String,
    /// Model version.
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// Documentation.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The main graph (required).
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Metadata.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
    /// Training information (decoded, ignored by dqc).
    #[prost(message, repeated, tag = "20")]
    pub training_info: Vec<TrainingInfoProto>,
    /// Model-local functions.
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
    /// Device configurations (decoded, ignored by dqc).
    #[prost(message, repeated, tag = "26")]
    pub configuration: Vec<DeviceConfigurationProto>,
}

/// `onnx.DeviceConfigurationProto` (multi-device models; ignored by dqc).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceConfigurationProto {
    /// Configuration name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Number of devices.
    #[prost(int32, tag = "2")]
    pub num_devices: i32,
    /// Device names.
    #[prost(string, repeated, tag = "3")]
    pub device: Vec<String>,
}

/// `onnx.TrainingInfoProto` (decoded so that training models load; ignored by dqc).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainingInfoProto {
    /// Initialization graph.
    #[prost(message, optional, tag = "1")]
    pub initialization: Option<GraphProto>,
    /// Training step graph.
    #[prost(message, optional, tag = "2")]
    pub algorithm: Option<GraphProto>,
    /// Bindings of initialization outputs.
    #[prost(message, repeated, tag = "3")]
    pub initialization_binding: Vec<StringStringEntryProto>,
    /// Bindings of algorithm outputs.
    #[prost(message, repeated, tag = "4")]
    pub update_binding: Vec<StringStringEntryProto>,
}

/// `onnx.GraphProto`: nodes, initializers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Nodes (the spec says topologically sorted; the loader sorts them anyway).
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors, by name.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Sparse constant tensors.
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    /// Documentation.
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// Graph inputs (may also list initializers, which then act as defaults).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types of intermediate values (optional).
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    /// Quantization parameter annotations.
    #[prost(message, repeated, tag = "14")]
    pub quantization_annotation: Vec<TensorAnnotation>,
    /// Metadata.
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `onnx.TensorAnnotation`: names of a tensor's quantization parameter tensors.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorAnnotation {
    /// The annotated tensor.
    #[prost(string, tag = "1")]
    pub tensor_name: String,
    /// Keys such as `SCALE_TENSOR`, `ZERO_POINT_TENSOR`, mapped to tensor names.
    #[prost(message, repeated, tag = "2")]
    pub quant_parameter_tensor_names: Vec<StringStringEntryProto>,
}

/// `onnx.NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names; `""` marks an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names; `""` marks an omitted optional output.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (optional).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator name.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Operator domain (`""` = default ONNX domain).
    #[prost(string, tag = "7")]
    pub domain: String,
    /// Function overload identifier.
    #[prost(string, tag = "8")]
    pub overload: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Documentation.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// Metadata.
    #[prost(message, repeated, tag = "9")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// Discriminator of [`AttributeProto`] (`AttributeProto.AttributeType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// `f`.
    Float = 1,
    /// `i`.
    Int = 2,
    /// `s`.
    String = 3,
    /// `t`.
    Tensor = 4,
    /// `g`.
    Graph = 5,
    /// `floats`.
    Floats = 6,
    /// `ints`.
    Ints = 7,
    /// `strings`.
    Strings = 8,
    /// `tensors`.
    Tensors = 9,
    /// `graphs`.
    Graphs = 10,
    /// `sparse_tensor`.
    SparseTensor = 11,
    /// `sparse_tensors`.
    SparseTensors = 12,
    /// `tp`.
    TypeProto = 13,
    /// `type_protos`.
    TypeProtos = 14,
}

/// `onnx.AttributeProto`: a named attribute; `type` says which value field is used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// In a function body: the name of the caller's attribute this one refers to.
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    /// Documentation.
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// Which field holds the value ([`AttributeType`] as i32).
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
    /// Float value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// Integer value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// String value (UTF-8 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// Tensor value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Graph value (control-flow bodies).
    #[prost(message, optional, tag = "6")]
    pub g: Option<GraphProto>,
    /// Sparse tensor value.
    #[prost(message, optional, tag = "22")]
    pub sparse_tensor: Option<SparseTensorProto>,
    /// Type value.
    #[prost(message, optional, tag = "14")]
    pub tp: Option<TypeProto>,
    /// Float list.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Integer list.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// String list.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// Tensor list.
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    /// Graph list.
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
    /// Sparse tensor list.
    #[prost(message, repeated, tag = "23")]
    pub sparse_tensors: Vec<SparseTensorProto>,
    /// Type list.
    #[prost(message, repeated, tag = "15")]
    pub type_protos: Vec<TypeProto>,
}

/// `onnx.ValueInfoProto`: a value's name and type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Type (required for top-level inputs and outputs).
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Documentation.
    #[prost(string, tag = "3")]
    pub doc_string: String,
    /// Metadata.
    #[prost(message, repeated, tag = "4")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// Element types of `TensorProto.data_type` (`TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    Undefined = 0,
    /// f32.
    Float = 1,
    /// u8.
    Uint8 = 2,
    /// i8.
    Int8 = 3,
    /// u16.
    Uint16 = 4,
    /// i16.
    Int16 = 5,
    /// i32.
    Int32 = 6,
    /// i64.
    Int64 = 7,
    /// UTF-8 strings.
    String = 8,
    /// bool.
    Bool = 9,
    /// IEEE binary16.
    Float16 = 10,
    /// f64.
    Double = 11,
    /// u32.
    Uint32 = 12,
    /// u64.
    Uint64 = 13,
    /// complex of two f32.
    Complex64 = 14,
    /// complex of two f64.
    Complex128 = 15,
    /// bfloat16.
    Bfloat16 = 16,
    /// FP8 E4M3, finite only.
    Float8e4m3fn = 17,
    /// FP8 E4M3, finite only, no negative zero.
    Float8e4m3fnuz = 18,
    /// FP8 E5M2.
    Float8e5m2 = 19,
    /// FP8 E5M2, no infinities, no negative zero.
    Float8e5m2fnuz = 20,
    /// u4, packed two per byte.
    Uint4 = 21,
    /// i4, packed two per byte.
    Int4 = 22,
    /// FP4 E2M1, packed two per byte.
    Float4e2m1 = 23,
    /// E8M0 scale (power of two).
    Float8e8m0 = 24,
    /// u2, packed four per byte.
    Uint2 = 25,
    /// i2, packed four per byte.
    Int2 = 26,
}

/// Where a tensor's bytes are (`TensorProto.DataLocation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataLocation {
    /// In the message: `raw_data` if set, else the typed field.
    Default = 0,
    /// In another file, described by `external_data`.
    External = 1,
}

/// `onnx.TensorProto.Segment`: the part of a chunked tensor that one message holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Segment {
    /// First element index.
    #[prost(int64, tag = "1")]
    pub begin: i64,
    /// One past the last element index.
    #[prost(int64, tag = "2")]
    pub end: i64,
}

/// `onnx.TensorProto`: a serialized tensor.
///
/// Exactly one of the data fields holds the elements, as the spec says per type: `raw_data`
/// (little-endian, packed for 4-bit types), one of the typed fields, or an external file
/// described by `external_data` (keys `location`, `offset`, `length`, `checksum`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type ([`DataType`] as i32).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Segment of a chunked tensor (not supported by dqc; refused when set).
    #[prost(message, optional, tag = "3")]
    pub segment: Option<Segment>,
    /// FLOAT (and COMPLEX64) elements.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16, FP8 elements (as bit
    /// patterns), and 4-bit elements (two per entry).
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// STRING elements.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// INT64 elements.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Tensor name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Documentation.
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// Elements as fixed-width little-endian bytes.
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: Bytes,
    /// External data description.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// [`DataLocation`] as i32.
    #[prost(enumeration = "DataLocation", tag = "14")]
    pub data_location: i32,
    /// DOUBLE (and COMPLEX128) elements.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// UINT32 and UINT64 elements.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// Metadata.
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `onnx.SparseTensorProto` (decoded; sparse initializers are refused by the loader).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SparseTensorProto {
    /// Non-default values, shape `[NNZ]`.
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    /// Indices, shape `[NNZ, rank]` or `[NNZ]`.
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
    /// Dense shape.
    #[prost(int64, repeated, tag = "3")]
    pub dims: Vec<i64>,
}

/// `onnx.TensorShapeProto`: a shape whose dimensions may be symbolic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// Nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One dimension: a number, a symbol name, or unknown (neither set).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The value.
        #[prost(oneof = "DimValue", tags = "1, 2")]
        pub value: Option<DimValue>,
        /// Standard denotation (e.g. `DATA_BATCH`).
        #[prost(string, tag = "3")]
        pub denotation: String,
    }

    /// The `value` oneof of [`Dimension`].
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DimValue {
        /// A static extent.
        #[prost(int64, tag = "1")]
        DimValue(i64),
        /// A symbolic extent.
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

/// `onnx.TypeProto`: the type of a value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// Which kind of type.
    #[prost(oneof = "type_proto::Value", tags = "1, 4, 5, 9, 8, 7")]
    pub value: Option<type_proto::Value>,
    /// Standard denotation.
    #[prost(string, tag = "6")]
    pub denotation: String,
}

/// Nested messages of [`TypeProto`].
pub mod type_proto {
    use super::{TensorShapeProto, TypeProto};

    /// A tensor type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// Element type (`DataType` as i32).
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// Shape, if known.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// A sequence type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sequence {
        /// Element type.
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    /// A map type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Map {
        /// Key element type (`DataType` as i32).
        #[prost(int32, tag = "1")]
        pub key_type: i32,
        /// Value type.
        #[prost(message, optional, boxed, tag = "2")]
        pub value_type: Option<Box<TypeProto>>,
    }

    /// An optional type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Optional {
        /// Wrapped type.
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    /// A sparse tensor type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SparseTensor {
        /// Element type (`DataType` as i32).
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// Shape, if known.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// An opaque type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Opaque {
        /// Domain.
        #[prost(string, tag = "1")]
        pub domain: String,
        /// Name.
        #[prost(string, tag = "2")]
        pub name: String,
    }

    /// The `value` oneof of [`TypeProto`].
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// Tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
        /// Sequence.
        #[prost(message, tag = "4")]
        SequenceType(Sequence),
        /// Map.
        #[prost(message, tag = "5")]
        MapType(Map),
        /// Optional.
        #[prost(message, tag = "9")]
        OptionalType(Optional),
        /// Sparse tensor.
        #[prost(message, tag = "8")]
        SparseTensorType(SparseTensor),
        /// Opaque.
        #[prost(message, tag = "7")]
        OpaqueType(Opaque),
    }
}

/// `onnx.FunctionProto`: a model-local function (decoded; expansion is not done here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionProto {
    /// Function name (the `op_type` that calls it).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Formal inputs.
    #[prost(string, repeated, tag = "4")]
    pub input: Vec<String>,
    /// Formal outputs.
    #[prost(string, repeated, tag = "5")]
    pub output: Vec<String>,
    /// Attribute names without defaults.
    #[prost(string, repeated, tag = "6")]
    pub attribute: Vec<String>,
    /// Attributes with defaults.
    #[prost(message, repeated, tag = "11")]
    pub attribute_proto: Vec<AttributeProto>,
    /// Body.
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
    /// Documentation.
    #[prost(string, tag = "8")]
    pub doc_string: String,
    /// Operator sets the body uses.
    #[prost(message, repeated, tag = "9")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Domain (the `domain` that calls it).
    #[prost(string, tag = "10")]
    pub domain: String,
    /// Overload identifier.
    #[prost(string, tag = "13")]
    pub overload: String,
    /// Types of body values.
    #[prost(message, repeated, tag = "12")]
    pub value_info: Vec<ValueInfoProto>,
    /// Metadata.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}
