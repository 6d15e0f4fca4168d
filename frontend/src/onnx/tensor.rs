//! `TensorProto` → [`Tensor`].
//!
//! Data comes from `raw_data` (little-endian, 4-bit types packed two per byte, low nibble
//! first), from the typed fields (`float_data`, `int32_data`, `int64_data`, `double_data`,
//! `uint64_data`), or from an external file. Bytes already in the target encoding are not
//! copied: `raw_data` that lies inside the memory-mapped model file and external data
//! become [`Storage::Mapped`] views of their mapping.
//!
//! Type mapping (ONNX → dqc):
//!
//! | ONNX | dqc | note |
//! |---|---|---|
//! | FLOAT, FLOAT16, BFLOAT16, INT64, INT32, INT8, UINT8, BOOL | same | exact |
//! | FLOAT8E4M3FN, FLOAT8E5M2, INT4, FLOAT4E2M1 | f8e4m3, f8e5m2, i4, fp4e2m1 | exact |
//! | FLOAT8E4M3FNUZ, FLOAT8E5M2FNUZ | f8e4m3fnuz, f8e5m2fnuz | exact |
//! | INT16, UINT16 | i32 | widened, lossless |
//! | UINT32 | i64 | widened, lossless |
//! | UINT64 | i64 | refused if a value exceeds `i64::MAX` |
//! | UINT4 | u8 | unpacked one element per byte, lossless |
//! | INT2, UINT2 | i8, u8 | unpacked one element per byte, lossless; casts wrap like 2-bit |
//! | DOUBLE | f32 | narrowed, rounds to nearest |
//! | STRING, COMPLEX*, FLOAT8E8M0 | — | refused with a clear error |
//!
//! Sizes are checked against the data actually present before anything is allocated, so a
//! tensor that claims a dimension of 2^40 with four bytes of data is refused cheaply.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dqc_ir::tensor::Storage;
use dqc_ir::{DType, Tensor};
use memmap2::Mmap;

use crate::FrontendError;
use crate::onnx::proto::{DataLocation, DataType, TensorProto};

/// Largest tensor the loader accepts, in bytes of dqc storage (1 TiB). Anything larger is
/// taken to be a corrupt or hostile file.
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;

/// Where a model's tensor bytes may come from: the model file's own mapping (for
/// zero-copy `raw_data`) and the folder that external-data locations are relative to.
///
/// Each external file is memory-mapped once and shared by every tensor that points into
/// it. The struct is `Sync`: the map cache is behind a mutex.
pub struct DataFiles {
    model_path: PathBuf,
    dir: PathBuf,
    backing: Option<Arc<Mmap>>,
    maps: Mutex<HashMap<PathBuf, Arc<Mmap>>>,
}

impl DataFiles {
    /// Files for a model read from `model_path` (used in error messages), with external
    /// data relative to `dir`, and `backing` the mapping the model was decoded from.
    pub fn new(model_path: &Path, dir: &Path, backing: Option<Arc<Mmap>>) -> DataFiles {
        DataFiles {
            model_path: model_path.to_path_buf(),
            dir: dir.to_path_buf(),
            backing,
            maps: Mutex::new(HashMap::new()),
        }
    }

    /// The model file these tensors belong to.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// The folder external-data locations are resolved against.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model file's mapping, if it was memory-mapped.
    pub fn backing(&self) -> Option<&Arc<Mmap>> {
        self.backing.as_ref()
    }

    /// Number of distinct external files mapped so far.
    pub fn mapped_files(&self) -> usize {
        self.maps.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// A view of `bytes`: into the model's mapping if they lie inside it, else a copy.
    fn storage_of(&self, bytes: &Bytes) -> Storage {
        if let Some(map) = &self.backing
            && !bytes.is_empty()
        {
            let base = map.as_ptr() as usize;
            let start = bytes.as_ptr() as usize;
            if start >= base && start + bytes.len() <= base + map.len() {
                return Storage::Mapped {
                    map: Arc::clone(map),
                    offset: start - base,
                    len: bytes.len(),
                };
            }
        }
        Storage::Owned(Arc::from(bytes.as_ref()))
    }

    fn err_ext(&self, tensor: &str, location: &str, reason: impl Into<String>) -> FrontendError {
        FrontendError::ExternalData {
            path: self.model_path.clone(),
            tensor: tensor.to_string(),
            location: location.to_string(),
            reason: reason.into(),
        }
    }

    /// Map (once) the external file `location` and return the mapping.
    fn map_external(&self, tensor: &str, location: &str) -> Result<Arc<Mmap>, FrontendError> {
        if location.is_empty() {
            return Err(self.err_ext(tensor, location, "the location is empty"));
        }
        let has_parent = location.split(['/', '\\']).any(|c| c == "..")
            || Path::new(location)
                .components()
                .any(|c| matches!(c, Component::ParentDir));
        let absolute = location.starts_with('/')
            || location.starts_with('\\')
            || Path::new(location).is_absolute()
            || location.as_bytes().get(1) == Some(&b':');
        if absolute {
            return Err(self.err_ext(
                tensor,
                location,
                "absolute locations are refused: external data must lie in the model's folder",
            ));
        }
        if has_parent {
            return Err(self.err_ext(
                tensor,
                location,
                "locations containing `..` are refused: external data must lie in the model's folder",
            ));
        }
        let joined = self.dir.join(location);
        let canon = joined.canonicalize().map_err(|e| {
            self.err_ext(
                tensor,
                location,
                format!("cannot open {}: {e}", joined.display()),
            )
        })?;
        let dir = self.dir.canonicalize().map_err(|e| {
            self.err_ext(
                tensor,
                location,
                format!(
                    "cannot resolve the model folder {}: {e}",
                    self.dir.display()
                ),
            )
        })?;
        if !canon.starts_with(&dir) {
            return Err(self.err_ext(
                tensor,
                location,
                format!(
                    "resolves to {}, outside the model's folder {}",
                    canon.display(),
                    dir.display()
                ),
            ));
        }
        let mut maps = self
            .maps
            .lock()
            .map_err(|_| self.err_ext(tensor, location, "the external-data cache is poisoned"))?;
        if let Some(m) = maps.get(&canon) {
            return Ok(Arc::clone(m));
        }
        let file = File::open(&canon)
            .map_err(|e| self.err_ext(tensor, location, format!("cannot open: {e}")))?;
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(self.err_ext(tensor, location, "not a regular file"));
        }
        // SAFETY: the mapping is read-only. As with every memory-mapped file, another process
        // truncating or rewriting the file while it is mapped is outside this program's
        // control; model files are treated as immutable while loaded.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| self.err_ext(tensor, location, format!("cannot map: {e}")))?;
        let map = Arc::new(map);
        maps.insert(canon, Arc::clone(&map));
        Ok(map)
    }
}

/// How an ONNX element type becomes a dqc one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conv {
    /// Same bytes.
    Same(DType),
    /// i16 / u16 → i32.
    Widen16 { signed: bool },
    /// u32 → i64.
    U32,
    /// u64 → i64, checked.
    U64,
    /// packed u4 → u8.
    U4,
    /// packed 2-bit (four per byte, first element in the low bits) → i8 / u8.
    I2 { signed: bool },
    /// f64 → f32.
    F64,
}

impl Conv {
    fn target(self) -> DType {
        match self {
            Conv::Same(d) => d,
            Conv::Widen16 { .. } => DType::I32,
            Conv::U32 | Conv::U64 => DType::I64,
            Conv::U4 => DType::U8,
            Conv::I2 { signed: true } => DType::I8,
            Conv::I2 { signed: false } => DType::U8,
            Conv::F64 => DType::F32,
        }
    }

    /// Bytes of ONNX raw data for `n` elements.
    fn raw_bytes(self, n: u64) -> u64 {
        match self {
            Conv::Same(d) if d.is_packed() => n.div_ceil(2),
            Conv::Same(d) => n * (d.bits() as u64 / 8),
            Conv::Widen16 { .. } => n * 2,
            Conv::U32 => n * 4,
            Conv::U64 | Conv::F64 => n * 8,
            Conv::U4 => n.div_ceil(2),
            Conv::I2 { .. } => n.div_ceil(4),
        }
    }
}

/// The ONNX name of a data type code, e.g. `STRING (8)`.
pub fn data_type_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(t) => format!("{} ({code})", t.as_str_name()),
        Err(_) => format!("unknown ({code})"),
    }
}

impl DataType {
    /// The name used in `onnx.proto` (`FLOAT`, `BFLOAT16`, …).
    pub fn as_str_name(self) -> &'static str {
        match self {
            DataType::Undefined => "UNDEFINED",
            DataType::Float => "FLOAT",
            DataType::Uint8 => "UINT8",
            DataType::Int8 => "INT8",
            DataType::Uint16 => "UINT16",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::String => "STRING",
            DataType::Bool => "BOOL",
            DataType::Float16 => "FLOAT16",
            DataType::Double => "DOUBLE",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Complex64 => "COMPLEX64",
            DataType::Complex128 => "COMPLEX128",
            DataType::Bfloat16 => "BFLOAT16",
            DataType::Float8e4m3fn => "FLOAT8E4M3FN",
            DataType::Float8e4m3fnuz => "FLOAT8E4M3FNUZ",
            DataType::Float8e5m2 => "FLOAT8E5M2",
            DataType::Float8e5m2fnuz => "FLOAT8E5M2FNUZ",
            DataType::Uint4 => "UINT4",
            DataType::Int4 => "INT4",
            DataType::Float4e2m1 => "FLOAT4E2M1",
            DataType::Float8e8m0 => "FLOAT8E8M0",
            DataType::Uint2 => "UINT2",
            DataType::Int2 => "INT2",
        }
    }
}

/// The dqc dtype that an ONNX element type code loads as, or why it has none.
///
/// Widening conversions (INT16/UINT16 → i32, UINT32/UINT64 → i64, UINT4 → u8) and the one
/// narrowing conversion (DOUBLE → f32) are listed in the module docs.
pub fn dtype_for_onnx(code: i32) -> Result<DType, String> {
    conv_for(code).map(Conv::target)
}

fn conv_for(code: i32) -> Result<Conv, String> {
    let t = DataType::try_from(code).map_err(|_| "not a known ONNX data type".to_string())?;
    Ok(match t {
        DataType::Float => Conv::Same(DType::F32),
        DataType::Float16 => Conv::Same(DType::F16),
        DataType::Bfloat16 => Conv::Same(DType::BF16),
        DataType::Float8e4m3fn => Conv::Same(DType::F8E4M3),
        DataType::Float8e5m2 => Conv::Same(DType::F8E5M2),
        DataType::Int64 => Conv::Same(DType::I64),
        DataType::Int32 => Conv::Same(DType::I32),
        DataType::Int8 => Conv::Same(DType::I8),
        DataType::Uint8 => Conv::Same(DType::U8),
        DataType::Int4 => Conv::Same(DType::I4),
        DataType::Float4e2m1 => Conv::Same(DType::Fp4E2M1),
        DataType::Bool => Conv::Same(DType::Bool),
        DataType::Int16 => Conv::Widen16 { signed: true },
        DataType::Uint16 => Conv::Widen16 { signed: false },
        DataType::Uint32 => Conv::U32,
        DataType::Uint64 => Conv::U64,
        DataType::Uint4 => Conv::U4,
        DataType::Double => Conv::F64,
        DataType::Undefined => return Err("the data type is not set".into()),
        DataType::String => return Err("dqc has no string tensors".into()),
        DataType::Complex64 | DataType::Complex128 => {
            return Err("dqc has no complex tensors".into());
        }
        DataType::Float8e4m3fnuz => Conv::Same(DType::F8E4M3Fnuz),
        DataType::Float8e5m2fnuz => Conv::Same(DType::F8E5M2Fnuz),
        DataType::Float8e8m0 => {
            return Err(
                "E8M0 exists in dqc only as the scale of MX quantization, not as a tensor type"
                    .into(),
            );
        }
        DataType::Int2 => Conv::I2 { signed: true },
        DataType::Uint2 => Conv::I2 { signed: false },
    })
}

fn tensor_name(t: &TensorProto) -> String {
    if t.name.is_empty() {
        "<unnamed>".to_string()
    } else {
        t.name.clone()
    }
}

/// Convert a `TensorProto` into a [`Tensor`].
///
/// Contract: never panics and never allocates more than the data present in the message
/// or the external file justifies; errors name the tensor and the model file. Raw and
/// external data that need no conversion are shared, not copied.
pub fn tensor_from_proto(t: &TensorProto, files: &DataFiles) -> Result<Tensor, FrontendError> {
    let name = tensor_name(t);
    let path = || files.model_path.clone();
    let bad_data = |reason: String| FrontendError::BadData {
        path: path(),
        tensor: name.clone(),
        reason,
    };
    let conv = conv_for(t.data_type).map_err(|reason| FrontendError::UnsupportedDataType {
        path: path(),
        tensor: name.clone(),
        data_type: data_type_name(t.data_type),
        reason,
    })?;
    if t.segment.is_some() {
        return Err(bad_data(
            "segmented (chunked) tensors are not supported".into(),
        ));
    }
    let bad_shape = |reason: String| FrontendError::BadShape {
        path: path(),
        tensor: name.clone(),
        dims: t.dims.clone(),
        reason,
    };
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| bad_shape("a dimension is negative".into()))?;
        shape.push(d);
    }
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad_shape("the element count overflows 64 bits".into()))?;
    let dtype = conv.target();
    let out_bytes = if dtype.is_packed() {
        numel.div_ceil(2)
    } else {
        numel.saturating_mul(dtype.bits() as u64 / 8)
    };
    if out_bytes > MAX_TENSOR_BYTES || conv.raw_bytes(numel.min(u64::MAX / 8)) > MAX_TENSOR_BYTES {
        return Err(bad_shape(format!(
            "{numel} elements of {dtype} need {out_bytes} bytes, over the {MAX_TENSOR_BYTES}-byte limit"
        )));
    }
    let raw_len = conv.raw_bytes(numel);

    let external = t.data_location == DataLocation::External as i32;
    let source: Option<Storage> = if external {
        Some(external_storage(t, &name, raw_len, files)?)
    } else if !t.raw_data.is_empty() {
        if t.raw_data.len() as u64 != raw_len {
            return Err(bad_data(format!(
                "raw_data has {} bytes but {} with dims {:?} needs {raw_len}",
                t.raw_data.len(),
                data_type_name(t.data_type),
                t.dims
            )));
        }
        Some(files.storage_of(&t.raw_data))
    } else {
        None
    };

    let make = |dtype: DType, storage: Storage| {
        Tensor::from_storage(dtype, shape.clone(), storage).map_err(|e| bad_data(e.to_string()))
    };
    match source {
        Some(storage) => from_raw(conv, storage, numel, &bad_data).and_then(|s| make(dtype, s)),
        None => {
            let bytes = from_typed(t, conv, numel, &bad_data)?;
            make(dtype, Storage::Owned(bytes.into()))
        }
    }
}

fn external_storage(
    t: &TensorProto,
    name: &str,
    raw_len: u64,
    files: &DataFiles,
) -> Result<Storage, FrontendError> {
    let mut location = None;
    let mut offset = None;
    let mut length = None;
    for e in &t.external_data {
        match e.key.as_str() {
            "location" => location = Some(e.value.as_str()),
            "offset" => offset = Some(e.value.as_str()),
            "length" => length = Some(e.value.as_str()),
            // The SHA-1 checksum is optional and not verified (it would cost a full read).
            _ => {}
        }
    }
    let location = location.ok_or_else(|| {
        files.err_ext(
            name,
            "",
            "data_location is EXTERNAL but external_data has no `location`",
        )
    })?;
    let parse = |key: &str, v: Option<&str>| -> Result<Option<u64>, FrontendError> {
        v.map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                files.err_ext(name, location, format!("`{key}` is not a number: `{s}`"))
            })
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    let length = parse("length", length)?;
    if let Some(l) = length
        && l != raw_len
    {
        return Err(files.err_ext(
            name,
            location,
            format!(
                "`length` is {l} but {} with dims {:?} needs {raw_len} bytes",
                data_type_name(t.data_type),
                t.dims
            ),
        ));
    }
    let map = files.map_external(name, location)?;
    let end = offset.checked_add(raw_len);
    match end {
        Some(end) if end <= map.len() as u64 => {}
        _ => {
            return Err(files.err_ext(
                name,
                location,
                format!(
                    "bytes {offset}..{offset}+{raw_len} lie beyond the end of the file ({} bytes)",
                    map.len()
                ),
            ));
        }
    }
    // Both fit in the mapping's length, which is a usize.
    Ok(Storage::Mapped {
        map,
        offset: offset as usize,
        len: raw_len as usize,
    })
}

/// Convert raw ONNX bytes (already checked to have the right length) into dqc storage.
fn from_raw(
    conv: Conv,
    storage: Storage,
    numel: u64,
    bad_data: &dyn Fn(String) -> FrontendError,
) -> Result<Storage, FrontendError> {
    let b = storage.bytes();
    let owned = |v: Vec<u8>| Ok(Storage::Owned(v.into()));
    match conv {
        Conv::Same(DType::Bool) => {
            if b.iter().all(|&x| x <= 1) {
                Ok(storage)
            } else {
                owned(b.iter().map(|&x| u8::from(x != 0)).collect())
            }
        }
        Conv::Same(_) => Ok(storage),
        Conv::Widen16 { signed } => owned(
            b.chunks_exact(2)
                .flat_map(|c| {
                    let v = if signed {
                        i32::from(i16::from_le_bytes([c[0], c[1]]))
                    } else {
                        i32::from(u16::from_le_bytes([c[0], c[1]]))
                    };
                    v.to_le_bytes()
                })
                .collect(),
        ),
        Conv::U32 => owned(
            b.chunks_exact(4)
                .flat_map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect(),
        ),
        Conv::U64 => {
            // Values up to i64::MAX have the same bytes as u64 and i64: share them.
            if let Some(pos) = b.chunks_exact(8).position(|c| c[7] & 0x80 != 0) {
                return Err(bad_data(format!(
                    "UINT64 element {pos} exceeds i64::MAX, the largest value dqc's i64 holds"
                )));
            }
            Ok(storage)
        }
        Conv::U4 => {
            let n = usize::try_from(numel).map_err(|_| bad_data("too many elements".into()))?;
            owned((0..n).map(|i| dqc_ir::numeric::nibble(b, i)).collect())
        }
        Conv::I2 { signed } => {
            let n = usize::try_from(numel).map_err(|_| bad_data("too many elements".into()))?;
            owned((0..n).map(|i| crumb(b, i, signed)).collect())
        }
        Conv::F64 => owned(
            b.chunks_exact(8)
                .flat_map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    (f64::from_le_bytes(a) as f32).to_le_bytes()
                })
                .collect(),
        ),
    }
}

/// Which typed field a conversion reads.
fn typed_field(conv: Conv) -> &'static str {
    match conv {
        Conv::Same(DType::F32) => "float_data",
        Conv::Same(DType::I64) => "int64_data",
        Conv::F64 => "double_data",
        Conv::U32 | Conv::U64 => "uint64_data",
        Conv::Same(_) | Conv::Widen16 { .. } | Conv::U4 | Conv::I2 { .. } => "int32_data",
    }
}

/// Build dqc bytes from the typed field that `conv` reads.
fn from_typed(
    t: &TensorProto,
    conv: Conv,
    numel: u64,
    bad_data: &dyn Fn(String) -> FrontendError,
) -> Result<Vec<u8>, FrontendError> {
    let field = typed_field(conv);
    let have = match field {
        "float_data" => t.float_data.len(),
        "int64_data" => t.int64_data.len(),
        "double_data" => t.double_data.len(),
        "uint64_data" => t.uint64_data.len(),
        _ => t.int32_data.len(),
    } as u64;
    let packed = matches!(conv, Conv::U4) || matches!(conv, Conv::Same(d) if d.is_packed());
    // 4-bit types: current writers pack two elements per int32_data entry; one element per
    // entry is accepted too.
    let pairs = packed && have == numel.div_ceil(2);
    // 2-bit types: four elements per entry, or one.
    let quads = matches!(conv, Conv::I2 { .. }) && have == numel.div_ceil(4);
    if have != numel && !pairs && !quads {
        let want = if packed {
            format!(
                "{} (two 4-bit elements per entry) or {numel}",
                numel.div_ceil(2)
            )
        } else {
            numel.to_string()
        };
        return Err(bad_data(format!(
            "{numel} elements need {want} values in {field} (or raw_data / external data), found {have}"
        )));
    }
    let range = |i: usize, v: i64, lo: i64, hi: i64, what: &str| {
        if v < lo || v > hi {
            Err(bad_data(format!(
                "{field}[{i}] = {v} is outside the range of {what} ({lo}..={hi})"
            )))
        } else {
            Ok(v)
        }
    };
    let mut out = Vec::new();
    match conv {
        Conv::Same(DType::F32) => {
            out.reserve(t.float_data.len() * 4);
            for v in &t.float_data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Conv::Same(DType::I64) => {
            out.reserve(t.int64_data.len() * 8);
            for v in &t.int64_data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Conv::F64 => {
            for v in &t.double_data {
                out.extend_from_slice(&(*v as f32).to_le_bytes());
            }
        }
        Conv::U32 | Conv::U64 => {
            let (hi, what) = if conv == Conv::U32 {
                (u64::from(u32::MAX), "UINT32")
            } else {
                (i64::MAX as u64, "dqc's i64")
            };
            for (i, &v) in t.uint64_data.iter().enumerate() {
                if v > hi {
                    return Err(bad_data(format!(
                        "uint64_data[{i}] = {v} is outside the range of {what} (0..={hi})"
                    )));
                }
                out.extend_from_slice(&(v as i64).to_le_bytes());
            }
        }
        Conv::Widen16 { signed } => {
            let (lo, hi, what) = if signed {
                (i64::from(i16::MIN), i64::from(i16::MAX), "INT16")
            } else {
                (0, i64::from(u16::MAX), "UINT16")
            };
            for (i, &v) in t.int32_data.iter().enumerate() {
                range(i, i64::from(v), lo, hi, what)?;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Conv::Same(DType::I32) => {
            for v in &t.int32_data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Conv::Same(DType::I8) => {
            for (i, &v) in t.int32_data.iter().enumerate() {
                out.push(range(i, i64::from(v), -128, 127, "INT8")? as i8 as u8);
            }
        }
        Conv::Same(DType::U8) => {
            for (i, &v) in t.int32_data.iter().enumerate() {
                out.push(range(i, i64::from(v), 0, 255, "UINT8")? as u8);
            }
        }
        Conv::Same(DType::Bool) => {
            for &v in &t.int32_data {
                out.push(u8::from(v != 0));
            }
        }
        Conv::Same(d @ (DType::F16 | DType::BF16)) => {
            // Bit patterns; accept them written as unsigned or sign-extended.
            for (i, &v) in t.int32_data.iter().enumerate() {
                let bits = range(i, i64::from(v), -32768, 65535, d.name())? as u16;
                out.extend_from_slice(&bits.to_le_bytes());
            }
        }
        Conv::Same(d @ (DType::F8E4M3 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz)) => {
            for (i, &v) in t.int32_data.iter().enumerate() {
                out.push(range(i, i64::from(v), -128, 255, d.name())? as u8);
            }
        }
        Conv::Same(DType::I4 | DType::Fp4E2M1) | Conv::U4 if pairs => {
            let name = d_name(conv);
            let mut bytes = Vec::with_capacity(t.int32_data.len());
            for (i, &v) in t.int32_data.iter().enumerate() {
                bytes.push(range(i, i64::from(v), -128, 255, name)? as u8);
            }
            if conv == Conv::U4 {
                let n = usize::try_from(numel).map_err(|_| bad_data("too many elements".into()))?;
                out = (0..n).map(|i| dqc_ir::numeric::nibble(&bytes, i)).collect();
            } else {
                out = bytes;
            }
        }
        Conv::Same(DType::I4 | DType::Fp4E2M1) | Conv::U4 => {
            // One element per entry.
            let (lo, hi) = match conv {
                Conv::Same(DType::I4) => (-8, 7),
                _ => (0, 15),
            };
            let name = d_name(conv);
            let nibbles: Vec<u8> = t
                .int32_data
                .iter()
                .enumerate()
                .map(|(i, &v)| range(i, i64::from(v), lo, hi, name).map(|v| (v as u8) & 0x0f))
                .collect::<Result<_, _>>()?;
            if conv == Conv::U4 {
                out = nibbles;
            } else {
                out = nibbles
                    .chunks(2)
                    .map(|c| c[0] | (c.get(1).copied().unwrap_or(0) << 4))
                    .collect();
            }
        }
        Conv::I2 { signed } if quads => {
            let what = if signed { "INT2" } else { "UINT2" };
            let mut bytes = Vec::with_capacity(t.int32_data.len());
            for (i, &v) in t.int32_data.iter().enumerate() {
                bytes.push(range(i, i64::from(v), -128, 255, what)? as u8);
            }
            let n = usize::try_from(numel).map_err(|_| bad_data("too many elements".into()))?;
            out = (0..n).map(|i| crumb(&bytes, i, signed)).collect();
        }
        Conv::I2 { signed } => {
            let (lo, hi, what) = if signed {
                (-2, 1, "INT2")
            } else {
                (0, 3, "UINT2")
            };
            for (i, &v) in t.int32_data.iter().enumerate() {
                out.push(range(i, i64::from(v), lo, hi, what)? as u8);
            }
        }
    }
    Ok(out)
}

/// Element `i` of packed 2-bit data (four per byte, element 0 in the low bits), widened
/// to one byte (sign-extended when `signed`).
fn crumb(bytes: &[u8], i: usize, signed: bool) -> u8 {
    let v = (bytes.get(i / 4).copied().unwrap_or(0) >> (2 * (i % 4))) & 0b11;
    if signed && v & 0b10 != 0 { v | 0xfc } else { v }
}

fn d_name(conv: Conv) -> &'static str {
    match conv {
        Conv::U4 => "UINT4",
        Conv::Same(DType::I4) => "INT4",
        _ => "FLOAT4E2M1",
    }
}
