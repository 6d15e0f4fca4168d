//! The `weights` section: a safetensors blob of every `Weight` buffer.
//!
//! Dtypes map as in `dqc_ir::text` (`F32`, `F16`, `BF16`, `F8_E4M3`, `F8_E5M2`, `I64`,
//! `I32`, `I8`, `U8`, `BOOL`); the packed types i4 and fp4e2m1 are stored as a 1-D `U8`
//! tensor of their bytes with the true type in `__metadata__["dqc.type.NAME"]`
//! (`i4[3,5]`). The writer pads the safetensors header with spaces so that the data
//! starts 64 bytes into the section, and inserts `U8` padding tensors named
//! `__dqc_pad.N` so that every weight starts on a 64-byte boundary of the section.

use super::error::ValidationError;
use crate::align::ALIGN;
use dqc_codegen::spec::{BufferKind, Program};
use dqc_ir::text::{from_st, to_st};
use dqc_ir::{DType, Shape, Tensor};
use safetensors::tensor::{Dtype as StDtype, Metadata, SafeTensors, TensorInfo};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Name prefix of the padding tensors.
pub const PAD_PREFIX: &str = "__dqc_pad.";

fn type_key(name: &str) -> String {
    format!("dqc.type.{name}")
}

/// Parse a static type written `i4[3,5]`.
fn parse_type(s: &str) -> Option<(DType, Vec<u64>)> {
    let (d, rest) = s.split_once('[')?;
    let dims = rest.strip_suffix(']')?;
    let dtype = d.parse().ok()?;
    let shape = if dims.is_empty() {
        Vec::new()
    } else {
        dims.split(',')
            .map(|x| x.trim().parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?
    };
    Some((dtype, shape))
}

fn werr(message: impl Into<String>) -> ValidationError {
    ValidationError::WeightsSection {
        message: message.into(),
    }
}

/// Encode `weights` as the bytes of the weights section.
pub(crate) fn encode(weights: &[(String, Tensor)]) -> Result<Vec<u8>, ValidationError> {
    let mut seen = HashSet::new();
    let mut infos: Vec<(String, TensorInfo)> = Vec::new();
    let mut meta = HashMap::new();
    let mut chunks: Vec<(usize, &[u8])> = Vec::new();
    let mut pos = 0usize;
    for (i, (name, t)) in weights.iter().enumerate() {
        if name.is_empty() || name.starts_with(PAD_PREFIX) || !seen.insert(name.as_str()) {
            return Err(ValidationError::Weight {
                name: name.clone(),
                problem: "empty, reserved or given twice".into(),
            });
        }
        let aligned = pos.next_multiple_of(ALIGN);
        if aligned > pos {
            infos.push((
                format!("{PAD_PREFIX}{i}"),
                TensorInfo {
                    dtype: StDtype::U8,
                    shape: vec![aligned - pos],
                    data_offsets: (pos, aligned),
                },
            ));
            pos = aligned;
        }
        let bytes = t.bytes();
        let (dtype, shape) = match to_st(t.dtype()) {
            Some(d) => (d, t.shape().iter().map(|&x| x as usize).collect()),
            None => {
                meta.insert(
                    type_key(name),
                    format!("{}{}", t.dtype(), Shape::fixed(t.shape())),
                );
                (StDtype::U8, vec![bytes.len()])
            }
        };
        infos.push((
            name.clone(),
            TensorInfo {
                dtype,
                shape,
                data_offsets: (pos, pos + bytes.len()),
            },
        ));
        chunks.push((pos, bytes));
        pos += bytes.len();
    }
    let meta = if meta.is_empty() { None } else { Some(meta) };
    let metadata = Metadata::new(meta, infos).map_err(|e| werr(e.to_string()))?;
    let mut header = serde_json::to_vec(&metadata).map_err(|e| werr(e.to_string()))?;
    let unpadded = 8 + header.len();
    header.resize(
        header.len() + (unpadded.next_multiple_of(ALIGN) - unpadded),
        b' ',
    );
    let data_start = 8 + header.len();
    let mut out = vec![0u8; data_start + pos];
    out[..8].copy_from_slice(&(header.len() as u64).to_le_bytes());
    out[8..data_start].copy_from_slice(&header);
    for (at, bytes) in chunks {
        out[data_start + at..data_start + at + bytes.len()].copy_from_slice(bytes);
    }
    Ok(out)
}

/// One weight located in the section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WeightEntry {
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// Offset from the start of the section.
    pub offset: usize,
    pub len: usize,
}

/// Read the section's safetensors header and locate every weight (padding skipped).
pub(crate) fn decode(section: &[u8]) -> Result<BTreeMap<String, WeightEntry>, ValidationError> {
    let (n, meta) = SafeTensors::read_metadata(section).map_err(|e| werr(e.to_string()))?;
    let data_start = 8 + n;
    let extra = meta.metadata().clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, info) in meta.tensors() {
        if name.starts_with(PAD_PREFIX) {
            continue;
        }
        let bad = |problem: String| ValidationError::Weight {
            name: name.clone(),
            problem,
        };
        let (begin, end) = info.data_offsets;
        let len = end - begin;
        let offset = data_start + begin;
        let (dtype, shape) = match extra.get(&type_key(&name)) {
            Some(ty) => {
                let (d, s) = parse_type(ty)
                    .ok_or_else(|| bad(format!("bad type `{ty}` in the metadata")))?;
                if info.dtype != StDtype::U8 || !d.is_packed() {
                    return Err(bad(format!(
                        "metadata type `{ty}` for a stored {:?} tensor",
                        info.dtype
                    )));
                }
                (d, s)
            }
            None => (
                from_st(info.dtype)
                    .ok_or_else(|| bad(format!("unsupported dtype {:?}", info.dtype)))?,
                info.shape.iter().map(|&d| d as u64).collect(),
            ),
        };
        let numel = dqc_ir::tensor::checked_numel(&shape).map_err(|e| bad(e.to_string()))?;
        if dtype.storage_bytes(numel) != len {
            return Err(bad(format!(
                "{dtype}{} needs {} bytes, the section has {len}",
                Shape::fixed(&shape),
                dtype.storage_bytes(numel)
            )));
        }
        out.insert(
            name,
            WeightEntry {
                dtype,
                shape,
                offset,
                len,
            },
        );
    }
    Ok(out)
}

/// Check that every `Weight` buffer has a tensor of its dtype and shape, and that every
/// tensor is used by some buffer.
pub(crate) fn check_against_program(
    program: &Program,
    entries: &BTreeMap<String, WeightEntry>,
) -> Result<(), ValidationError> {
    let mut used = HashSet::new();
    for b in &program.buffers {
        if let BufferKind::Weight { name } = &b.kind {
            let bad = |problem: String| ValidationError::Weight {
                name: name.clone(),
                problem,
            };
            let e = entries.get(name).ok_or_else(|| {
                bad(format!(
                    "buffer `{}` needs it, the weights section has no such tensor",
                    b.name
                ))
            })?;
            let want = b
                .shape
                .as_fixed()
                .ok_or_else(|| bad("symbolic shape".into()))?;
            if e.dtype != b.dtype || e.shape != want {
                return Err(bad(format!(
                    "stored as {}{}, buffer `{}` is {}{}",
                    e.dtype,
                    Shape::fixed(&e.shape),
                    b.name,
                    b.dtype,
                    b.shape
                )));
            }
            used.insert(name.as_str());
        }
    }
    if let Some(extra) = entries.keys().find(|k| !used.contains(k.as_str())) {
        return Err(ValidationError::Weight {
            name: extra.clone(),
            problem: "stored, but no buffer of the program uses it".into(),
        });
    }
    Ok(())
}
