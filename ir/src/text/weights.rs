//! Weight stores for `external<…> "key"` constants, and safetensors files.
//!
//! [`SafetensorsWeights`] memory-maps a `.safetensors` file; every tensor it returns shares
//! the mapping ([`Storage::Mapped`]), nothing is copied.
//!
//! Dtype mapping (dqc ↔ safetensors): f32 `F32`, f16 `F16`, bf16 `BF16`, f8e4m3 `F8_E4M3`,
//! f8e5m2 `F8_E5M2`, i64 `I64`, i32 `I32`, i8 `I8`, u8 `U8`, bool `BOOL`. The packed
//! types i4 and fp4e2m1 have no exact safetensors counterpart (safetensors' `F4` is not
//! specified for packing order), so they are stored as a 1-D `U8` tensor of their packed
//! bytes, and the true type is recorded in the header's `__metadata__` under the key
//! `dqc.type.NAME` as a type in the text format (`i4[3,5]`). When reading, `F8_E8M0`
//! (OCP MX scales) is read as `u8`, which is how dqc stores E8M0; other safetensors dtypes
//! are refused when the file is opened.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::tensor::{Dtype as StDtype, SafeTensors, View};

use crate::DType;
use crate::tensor::{Storage, Tensor, checked_numel};

use super::error::WeightsError;
use super::parse::{Rule, parse_rule};
use super::print::tensor_type;
use super::value;

/// Where `external<…> "key"` constants come from.
pub trait WeightStore {
    /// The tensor stored under `key`, or `None` if there is none. The parser checks the
    /// tensor's dtype and shape against the declaration.
    fn get(&self, key: &str) -> Option<Tensor>;
}

impl WeightStore for HashMap<String, Tensor> {
    fn get(&self, key: &str) -> Option<Tensor> {
        HashMap::get(self, key).cloned()
    }
}

impl WeightStore for BTreeMap<String, Tensor> {
    fn get(&self, key: &str) -> Option<Tensor> {
        BTreeMap::get(self, key).cloned()
    }
}

/// The list [`super::print_with_weights`] returns, searched linearly.
impl WeightStore for Vec<(String, Tensor)> {
    fn get(&self, key: &str) -> Option<Tensor> {
        self.iter().find(|(k, _)| k == key).map(|(_, t)| t.clone())
    }
}

/// Metadata key that records the dqc type of a packed tensor stored as bytes.
fn type_key(name: &str) -> String {
    format!("dqc.type.{name}")
}

/// A memory-mapped `.safetensors` file.
///
/// The mapping is shared by every tensor handed out; the file must not be modified while
/// the store or any of its tensors is alive ([`write_safetensors`] replaces files by
/// renaming, which leaves existing mappings intact).
pub struct SafetensorsWeights {
    path: PathBuf,
    map: Arc<memmap2::Mmap>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

struct Entry {
    dtype: DType,
    shape: Vec<u64>,
    offset: usize,
    len: usize,
}

impl SafetensorsWeights {
    /// Map `path` and read its header. Every entry is checked here (known dtype, byte
    /// length consistent with dtype and shape, packed-type metadata valid), so that
    /// [`WeightStore::get`] cannot fail later.
    pub fn open(path: &Path) -> Result<SafetensorsWeights, WeightsError> {
        let io = |source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; the contract above asks callers not to modify the
        // file while it is mapped (the usual caveat of memory-mapped weights).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let (n, meta) = SafeTensors::read_metadata(&map).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let data_start = 8 + n;
        let extra = meta.metadata().clone().unwrap_or_default();
        let mut entries = HashMap::new();
        for (name, info) in meta.tensors() {
            let bad = |message: String| WeightsError::Entry {
                path: path.to_path_buf(),
                name: name.clone(),
                message,
            };
            let (begin, end) = info.data_offsets;
            let offset = data_start
                .checked_add(begin)
                .filter(|_| end >= begin)
                .ok_or_else(|| bad("bad data offsets".to_string()))?;
            let len = end - begin;
            if offset.checked_add(len).is_none_or(|e| e > map.len()) {
                return Err(bad("data lies outside the file".to_string()));
            }
            let st_shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
            let (dtype, shape) = match extra.get(&type_key(&name)) {
                Some(ty) => {
                    if info.dtype != StDtype::U8 {
                        return Err(bad(format!(
                            "metadata says `{ty}` but the stored dtype is {:?}, not U8",
                            info.dtype
                        )));
                    }
                    let pair = parse_rule(ty, Rule::type_only)
                        .map_err(|e| bad(format!("bad type `{ty}` in metadata: {}", e.kind)))?;
                    let tt = pair
                        .into_inner()
                        .next()
                        .ok_or_else(|| bad(format!("bad type `{ty}` in metadata")))
                        .and_then(|p| {
                            value::tensor_type(ty, p).map_err(|e| {
                                bad(format!("bad type `{ty}` in metadata: {}", e.kind))
                            })
                        })?;
                    let dims = tt
                        .shape
                        .as_fixed()
                        .ok_or_else(|| bad(format!("metadata type `{ty}` is not static")))?;
                    (tt.dtype, dims)
                }
                None => (
                    from_st(info.dtype).ok_or_else(|| {
                        bad(format!(
                            "safetensors dtype {:?} is not supported",
                            info.dtype
                        ))
                    })?,
                    st_shape,
                ),
            };
            let numel = checked_numel(&shape).map_err(|e| bad(e.to_string()))?;
            if dtype.storage_bytes(numel) != len {
                return Err(bad(format!(
                    "{} needs {} bytes, the file has {len}",
                    tensor_type(&crate::shape::TensorType::new(
                        dtype,
                        crate::Shape::fixed(&shape)
                    )),
                    dtype.storage_bytes(numel)
                )));
            }
            entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    offset,
                    len,
                },
            );
        }
        Ok(SafetensorsWeights {
            path: path.to_path_buf(),
            map: Arc::new(map),
            entries,
        })
    }

    /// The file this store maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the stored tensors, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Number of stored tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl WeightStore for SafetensorsWeights {
    fn get(&self, key: &str) -> Option<Tensor> {
        let e = self.entries.get(key)?;
        Tensor::from_storage(
            e.dtype,
            e.shape.clone(),
            Storage::Mapped {
                map: Arc::clone(&self.map),
                offset: e.offset,
                len: e.len,
            },
        )
        .ok()
    }
}

/// The dqc dtype a safetensors dtype reads as (`F8_E8M0` as its `u8` storage); `None`
/// for types dqc does not have.
pub fn from_st(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F8_E4M3 => DType::F8E4M3,
        StDtype::F8_E5M2 => DType::F8E5M2,
        StDtype::I64 => DType::I64,
        StDtype::I32 => DType::I32,
        StDtype::I8 => DType::I8,
        StDtype::U8 | StDtype::F8_E8M0 => DType::U8,
        StDtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// The safetensors dtype a dqc dtype is stored as (`None`: packed, stored as U8 bytes).
pub fn to_st(d: DType) -> Option<StDtype> {
    Some(match d {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F8E4M3 => StDtype::F8_E4M3,
        DType::F8E5M2 => StDtype::F8_E5M2,
        DType::I64 => StDtype::I64,
        DType::I32 => StDtype::I32,
        DType::I8 => StDtype::I8,
        DType::U8 => StDtype::U8,
        DType::Bool => StDtype::BOOL,
        DType::I4 | DType::Fp4E2M1 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => return None,
    })
}

struct StView<'a> {
    dtype: StDtype,
    shape: Vec<usize>,
    data: &'a [u8],
}

impl View for StView<'_> {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write `tensors` to a `.safetensors` file at `path`, atomically: the data goes to a
/// temporary file in the same folder, is synced, and is renamed over `path`. Packed dtypes
/// are stored as described in the module docs. Names must be unique.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), WeightsError> {
    let mut views = Vec::with_capacity(tensors.len());
    let mut meta = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (name, t) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(WeightsError::DuplicateName { name: name.clone() });
        }
        let view = match to_st(t.dtype()) {
            Some(dtype) => StView {
                dtype,
                shape: t.shape().iter().map(|&d| d as usize).collect(),
                data: t.bytes(),
            },
            None => {
                meta.insert(type_key(name), tensor_type(&t.ty()));
                StView {
                    dtype: StDtype::U8,
                    shape: vec![t.bytes().len()],
                    data: t.bytes(),
                }
            }
        };
        views.push((name.clone(), view));
    }
    let meta = if meta.is_empty() { None } else { Some(meta) };
    let bytes = safetensors::tensor::serialize(views, meta).map_err(|e| WeightsError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `bytes` to `path` through a synced temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
