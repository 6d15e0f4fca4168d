//! The ONNX backend node conformance cases.
//!
//! Layout of one case: `DIR/model.onnx` and `DIR/test_data_set_N/input_K.pb`,
//! `output_K.pb`, each `.pb` a serialized `TensorProto`. [`load_case`] reads all of it;
//! [`find_onnx_node_dir`] finds the shared copy of the cases (`shared/onnx-node`) from
//! a starting folder such as `CARGO_MANIFEST_DIR`. [`compare`] is the comparison the
//! conformance tests use (the interpreter's and the compiled pipeline's), and
//! [`parse_case_list`] reads their lists of known failures.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dqc_ir::{DType, Tensor};
use prost::Message;
use std::collections::BTreeMap;

use crate::FrontendError;
use crate::onnx::load::{OnnxModel, load_model};
use crate::onnx::proto::TensorProto;
use crate::onnx::tensor::{DataFiles, tensor_from_proto};

/// One data set of a case: named inputs and expected outputs, in `K` order.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// The `test_data_set_N` folder.
    pub dir: PathBuf,
    /// `(name, tensor)` for each `input_K.pb`.
    pub inputs: Vec<(String, Tensor)>,
    /// `(name, tensor)` for each `output_K.pb`.
    pub outputs: Vec<(String, Tensor)>,
}

/// A conformance case: the model and its data sets.
#[derive(Debug)]
pub struct Case {
    /// Folder name, e.g. `test_abs`.
    pub name: String,
    /// The case folder.
    pub dir: PathBuf,
    /// The loaded model.
    pub model: OnnxModel,
    /// Data sets, in `N` order.
    pub data_sets: Vec<DataSet>,
}

/// Walk up from `start` looking for a folder that has `shared/onnx-node` (the checkout
/// sits next to `shared/`). Returns that `onnx-node` folder.
pub fn find_onnx_node_dir(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|a| a.join("shared").join("onnx-node"))
        .find(|p| p.is_dir())
}

/// Read one `.pb` file holding a `TensorProto`. The name is the proto's own (possibly
/// empty). External data, if any, is resolved relative to the file's folder.
pub fn load_tensor_file(path: &Path) -> Result<(String, Tensor), FrontendError> {
    let bytes = std::fs::read(path).map_err(|source| FrontendError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let proto = TensorProto::decode(Bytes::from(bytes)).map_err(|e| FrontendError::NotTensor {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let files = DataFiles::new(path, dir, None);
    let tensor = tensor_from_proto(&proto, &files)?;
    Ok((proto.name, tensor))
}

/// Files `PREFIX_K.pb` in `dir`, sorted by `K`.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, FrontendError> {
    let rd = std::fs::read_dir(dir).map_err(|source| FrontendError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| FrontendError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(k) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|k| k.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((k, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Load the case in `dir`.
///
/// Tensor names: the `.pb`'s own name, or when empty the `K`-th runtime input (for
/// inputs) or `K`-th graph output (for outputs) of the model.
pub fn load_case(dir: &Path) -> Result<Case, FrontendError> {
    let model = load_model(&dir.join("model.onnx"))?;
    let input_names: Vec<String> = model.runtime_inputs().map(|v| v.name.clone()).collect();
    let output_names: Vec<String> = model.outputs().iter().map(|v| v.name.clone()).collect();
    let mut data_sets = Vec::new();
    for (_, set_dir) in numbered(dir, "test_data_set_", "")? {
        if !set_dir.is_dir() {
            continue;
        }
        let read =
            |prefix: &str, names: &[String]| -> Result<Vec<(String, Tensor)>, FrontendError> {
                let mut v = Vec::new();
                for (k, file) in numbered(&set_dir, prefix, ".pb")? {
                    let (name, tensor) = load_tensor_file(&file)?;
                    let name = if name.is_empty() {
                        usize::try_from(k)
                            .ok()
                            .and_then(|k| names.get(k))
                            .cloned()
                            .ok_or_else(|| FrontendError::BadCase {
                                path: file.clone(),
                                reason: format!(
                                    "the tensor has no name and the model has no {prefix}{k}"
                                ),
                            })?
                    } else {
                        name
                    };
                    v.push((name, tensor));
                }
                Ok(v)
            };
        let inputs = read("input_", &input_names)?;
        let outputs = read("output_", &output_names)?;
        data_sets.push(DataSet {
            dir: set_dir.clone(),
            inputs,
            outputs,
        });
    }
    if data_sets.is_empty() {
        return Err(FrontendError::BadCase {
            path: dir.to_path_buf(),
            reason: "no test_data_set_N folder".into(),
        });
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Case {
        name,
        dir: dir.to_path_buf(),
        model,
        data_sets,
    })
}

/// `NAME REASON` lines of a known-failures list (`#` comments and blank lines skipped):
/// case name → reason.
pub fn parse_case_list(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((n, r)) => (n.to_string(), r.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Relative tolerance of a float reference of dtype `d` (one or two units in the last
/// place of the type the reference is rounded to); 0 for integers and bools.
pub fn rel_tolerance(d: DType) -> f32 {
    match d {
        DType::F32 => 1e-4,
        DType::F16 => 2e-3,
        DType::BF16
        | DType::F8E4M3
        | DType::F8E5M2
        | DType::F8E4M3Fnuz
        | DType::F8E5M2Fnuz
        | DType::Fp4E2M1 => 1.6e-2,
        DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4 | DType::Bool => 0.0,
    }
}

/// Why `got` does not match the expected output `want`, if it does not: same shape; floats
/// within `rel_tolerance(want's dtype) · max(1, max |finite want|)` (NaN matches NaN);
/// integers and bools exactly, with the same dtype.
pub fn compare(got: &Tensor, want: &Tensor) -> Option<String> {
    if got.shape() != want.shape() {
        return Some(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if want.dtype().is_float() {
        if !got.dtype().is_float() {
            return Some(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
        }
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let scale = w
            .iter()
            .filter(|v| v.is_finite())
            .fold(1.0f32, |m, v| m.max(v.abs()));
        let tol = rel_tolerance(want.dtype()) * scale;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol;
            if !ok {
                return Some(format!("element {i}: {a}, expected {b} (tolerance {tol})"));
            }
        }
        None
    } else {
        if got.dtype() != want.dtype() {
            return Some(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
        }
        let (g, w) = (got.to_i64_vec(), want.to_i64_vec());
        g.iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .map(|i| format!("element {i}: {:?}, expected {:?}", g.get(i), w.get(i)))
    }
}
