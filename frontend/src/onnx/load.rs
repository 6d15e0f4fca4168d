//! Loading an ONNX file: map, decode, validate.
//!
//! [`load_model`] memory-maps the file and decodes it from that mapping, so `raw_data`
//! initializers stay in the mapping (no copy) and the mapping lives as long as any tensor
//! that refers to it. Validation (see [`crate::onnx::validate`]) then checks the model
//! fields, name uniqueness, that every input has a definition, and sorts the nodes.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dqc_ir::Tensor;
use memmap2::Mmap;
use prost::Message;

use crate::FrontendError;
use crate::onnx::proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::onnx::tensor::{DataFiles, tensor_from_proto};
use crate::onnx::validate::{GraphCheck, ModelContext, check_graph, normalize_domain};

/// A decoded and validated ONNX model.
///
/// Invariants: `ir_version` is set, at least one opset is imported and each domain once,
/// the graph is present, value names are unique per graph, every node input and graph
/// output has a definition, the nodes are acyclic ([`OnnxModel::node_order`] is a
/// topological order), and every initializer of the main graph converted to a [`Tensor`].
pub struct OnnxModel {
    path: PathBuf,
    proto: ModelProto,
    opsets: BTreeMap<String, i64>,
    order: Vec<usize>,
    initializers: BTreeMap<String, Tensor>,
    files: DataFiles,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("ir_version", &self.ir_version())
            .field("opsets", &self.opsets)
            .field("nodes", &self.order.len())
            .field("initializers", &self.initializers.len())
            .finish()
    }
}

/// Placeholder path used in errors for models decoded from memory.
pub const MEMORY_PATH: &str = "<memory>";

/// Owner that keeps a mapping alive inside a [`Bytes`].
struct MapOwner(Arc<Mmap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Load, decode and validate the ONNX model at `path`.
///
/// External data is resolved relative to the file's folder. Errors carry `path`.
pub fn load_model(path: &Path) -> Result<OnnxModel, FrontendError> {
    let io = |source| FrontendError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(FrontendError::NotOnnx {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if meta.len() == 0 {
        // Mapping an empty file is not portable; an empty file is not a model anyway.
        return decode_model(Bytes::new(), path, dir, None);
    }
    // SAFETY: read-only mapping of a file the caller handed us; concurrent modification of
    // the file by another process is outside this program's control (documented contract:
    // model files must not change while loaded).
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(io)?);
    let bytes = Bytes::from_owner(MapOwner(Arc::clone(&map)));
    decode_model(bytes, path, dir, Some(map))
}

/// Decode and validate a model held in memory. External data is resolved relative to
/// `dir`; errors name the path `<memory>`. Never panics on any input.
pub fn load_model_from_bytes(bytes: &[u8], dir: &Path) -> Result<OnnxModel, FrontendError> {
    decode_model(
        Bytes::copy_from_slice(bytes),
        Path::new(MEMORY_PATH),
        dir,
        None,
    )
}

/// What well-known non-ONNX formats look like, to say so instead of a protobuf error.
fn sniff_format(b: &[u8]) -> Option<&'static str> {
    let sigs: [(&[u8], &str); 8] = [
        (b"\x89PNG", "a PNG image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (a PyTorch .pt checkpoint or .npz is one)",
        ),
        (b"\x1f\x8b", "a gzip file"),
        (b"\x93NUMPY", "a NumPy .npy file"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x7fELF", "an ELF executable"),
        (b"\x89HDF", "an HDF5 file (a Keras model?)"),
    ];
    sigs.iter()
        .find(|(magic, _)| b.starts_with(magic))
        .map(|(_, what)| *what)
}

fn decode_model(
    bytes: Bytes,
    path: &Path,
    dir: &Path,
    backing: Option<Arc<Mmap>>,
) -> Result<OnnxModel, FrontendError> {
    let not_onnx = |reason: String| FrontendError::NotOnnx {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty".into()));
    }
    if let Some(what) = sniff_format(&bytes) {
        return Err(not_onnx(format!("the bytes look like {what}")));
    }
    let proto = ModelProto::decode(bytes).map_err(|e| not_onnx(format!("protobuf decode: {e}")))?;
    let files = DataFiles::new(path, dir, backing);
    OnnxModel::from_proto(proto, files)
}

impl OnnxModel {
    /// Validate a decoded model; `files` says where its tensor bytes come from.
    pub fn from_proto(proto: ModelProto, files: DataFiles) -> Result<OnnxModel, FrontendError> {
        let path = files.model_path().to_path_buf();
        let invalid = |reason: String| FrontendError::InvalidModel {
            path: path.clone(),
            reason,
        };
        if proto.ir_version.is_none() && proto.graph.is_none() && proto.opset_import.is_empty() {
            return Err(FrontendError::NotOnnx {
                path: path.clone(),
                reason: "the bytes decode as protobuf but have no ir_version, opset_import or graph field".into(),
            });
        }
        match proto.ir_version {
            None => return Err(invalid("ir_version is missing".into())),
            Some(v) if v < 1 => return Err(invalid(format!("ir_version {v} is not valid"))),
            Some(_) => {}
        }
        let mut opsets = BTreeMap::new();
        for op in &proto.opset_import {
            let domain = normalize_domain(&op.domain).to_string();
            let shown = if domain.is_empty() {
                "ai.onnx".to_string()
            } else {
                domain.clone()
            };
            let version = match op.version {
                Some(v) if v >= 1 => v,
                Some(v) => {
                    return Err(invalid(format!(
                        "opset_import for domain `{shown}` has version {v}"
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "opset_import for domain `{shown}` has no version"
                    )));
                }
            };
            if opsets.insert(domain, version).is_some() {
                return Err(invalid(format!(
                    "opset_import lists domain `{shown}` more than once"
                )));
            }
        }
        if opsets.is_empty() {
            return Err(invalid("opset_import is empty".into()));
        }
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| invalid("the model has no graph".into()))?;
        let ctx = ModelContext::new(&path, &opsets, &proto.functions);
        let GraphCheck { order, .. } = check_graph(&ctx, graph, &[])?;
        if let Some(sparse) = graph.sparse_initializer.first() {
            let name = sparse
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            return Err(FrontendError::BadData {
                path: path.clone(),
                tensor: name,
                reason: "sparse initializers are not supported".into(),
            });
        }
        let mut initializers = BTreeMap::new();
        for t in &graph.initializer {
            let tensor = tensor_from_proto(t, &files)?;
            initializers.insert(t.name.clone(), tensor);
        }
        Ok(OnnxModel {
            path,
            proto,
            opsets,
            order,
            initializers,
            files,
        })
    }

    /// The file the model was read from (`<memory>` for in-memory models).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded protobuf.
    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    /// The IR version (validated present and positive).
    pub fn ir_version(&self) -> i64 {
        self.proto.ir_version.unwrap_or(0)
    }

    /// The main graph.
    pub fn graph(&self) -> &GraphProto {
        // Validated present in `from_proto`; the fallback is unreachable.
        static EMPTY: std::sync::OnceLock<GraphProto> = std::sync::OnceLock::new();
        self.proto
            .graph
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(GraphProto::default))
    }

    /// The ONNX element type code the model declares for the value `name` (graph
    /// input/output/value_info, initializer, or a `Constant` node's tensor), if any.
    /// Used where dqc widens a type (UINT4, INT2/UINT2 load as one byte per element) but
    /// an op must still follow the narrow type's rules.
    pub fn declared_elem_type(&self, name: &str) -> Option<i32> {
        use crate::onnx::proto::type_proto::Value;
        let g = self.graph();
        let from_vi = g
            .input
            .iter()
            .chain(&g.output)
            .chain(&g.value_info)
            .filter(|vi| vi.name == name)
            .find_map(|vi| match vi.r#type.as_ref()?.value.as_ref()? {
                Value::TensorType(t) => Some(t.elem_type),
                _ => None,
            });
        from_vi
            .or_else(|| {
                g.initializer
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| t.data_type)
            })
            .or_else(|| {
                g.node
                    .iter()
                    .filter(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
                    .flat_map(|n| &n.attribute)
                    .find_map(|a| a.t.as_ref().map(|t| t.data_type))
            })
    }

    /// Imported opsets, by domain; the default ONNX domain is `""` (also for models that
    /// spell it `ai.onnx`).
    pub fn opsets(&self) -> &BTreeMap<String, i64> {
        &self.opsets
    }

    /// The opset version imported for `domain` (`""` or `ai.onnx` for the default).
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        self.opsets.get(normalize_domain(domain)).copied()
    }

    /// Indices into `graph().node` in a topological order (the file's order when it is
    /// already one).
    pub fn node_order(&self) -> &[usize] {
        &self.order
    }

    /// The main graph's nodes in topological order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeProto> {
        let nodes = &self.graph().node;
        self.order.iter().filter_map(move |&i| nodes.get(i))
    }

    /// Initializers of the main graph, converted, by name.
    pub fn initializers(&self) -> &BTreeMap<String, Tensor> {
        &self.initializers
    }

    /// One initializer.
    pub fn initializer(&self, name: &str) -> Option<&Tensor> {
        self.initializers.get(name)
    }

    /// Graph inputs that are not initializers: the values a caller must feed.
    pub fn runtime_inputs(&self) -> impl Iterator<Item = &ValueInfoProto> {
        self.graph()
            .input
            .iter()
            .filter(|v| !self.initializers.contains_key(&v.name))
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &[ValueInfoProto] {
        &self.graph().output
    }

    /// Convert another tensor of this model (a `Constant` attribute, a subgraph
    /// initializer) with the same external-data rules and mappings.
    pub fn tensor(&self, t: &TensorProto) -> Result<Tensor, FrontendError> {
        tensor_from_proto(t, &self.files)
    }

    /// Where this model's tensor bytes come from.
    pub fn data_files(&self) -> &DataFiles {
        &self.files
    }
}
