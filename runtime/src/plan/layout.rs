//! The byte layout of a plan file: fixed prefix, header, sections; reading and checking
//! it down to the last byte.
//!
//! ```text
//! 0   8   magic  "DQCPLAN\0"
//! 8   4   format version, u32 LE
//! 12  8   header length H, u64 LE
//! 20  32  SHA-256 of the header bytes
//! 52  H   header (JSON, UTF-8)
//! then each section of the header's table in order, starting at the next multiple of
//! 64 after the previous part, the gap filled with zero bytes; the file ends with the
//! last section.
//! ```

use super::error::{PlanError, ValidationError};
use super::header::{FORMAT_VERSION, PlanHeader, SectionEntry};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The first eight bytes of every plan.
pub const MAGIC: &[u8; 8] = b"DQCPLAN\0";
/// Length of the fixed prefix (magic, version, header length, header checksum).
pub const PREFIX_LEN: usize = 52;
/// Alignment of every section in the file.
pub const SECTION_ALIGN: u64 = 64;
/// Name of the weights section.
pub const WEIGHTS: &str = "weights";
/// Name of the PTX section.
pub const PTX: &str = "ptx";

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `(offset, length)` of a section in the file.
type Range = (usize, usize);

/// A plan's header with the byte ranges of its sections, all checked.
pub(crate) struct Parsed {
    pub header: PlanHeader,
    /// `(offset, length)` of the weights section.
    pub weights: (usize, usize),
    /// `(offset, length)` of the PTX section.
    pub ptx: (usize, usize),
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Check the prefix, header checksum, section table, padding and section checksums of
/// `bytes` (the whole file) and parse the header. The program is not validated here.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, PlanError> {
    let p = || path.to_path_buf();
    let actual = bytes.len() as u64;
    let truncated = |what: &str, expected: u64| PlanError::Truncated {
        path: p(),
        what: what.to_string(),
        expected,
        actual,
    };
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            truncated("the fixed prefix", PREFIX_LEN as u64)
        } else {
            PlanError::NotAPlan { path: p() }
        });
    }
    if bytes.get(..8) != Some(&MAGIC[..]) {
        return Err(PlanError::NotAPlan { path: p() });
    }
    let Some(v) = bytes.get(8..12) else {
        return Err(truncated("the fixed prefix", PREFIX_LEN as u64));
    };
    let version = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    if version != FORMAT_VERSION {
        return Err(PlanError::Version {
            path: p(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < PREFIX_LEN {
        return Err(truncated("the fixed prefix", PREFIX_LEN as u64));
    }
    let header_len = u64_at(bytes, 12);
    let header_end = (PREFIX_LEN as u64).saturating_add(header_len);
    if header_end > actual {
        return Err(truncated("the header", header_end));
    }
    let header_bytes = &bytes[PREFIX_LEN..header_end as usize];
    if Sha256::digest(header_bytes).as_slice() != &bytes[20..52] {
        return Err(PlanError::HeaderChecksum { path: p() });
    }
    let header: PlanHeader =
        serde_json::from_slice(header_bytes).map_err(|e| PlanError::Header {
            path: p(),
            message: e.to_string(),
        })?;
    if header.format_version != version {
        return Err(PlanError::Invalid {
            path: p(),
            source: ValidationError::VersionMismatch {
                header: header.format_version,
                prefix: version,
            },
        });
    }
    let ranges = check_sections(path, bytes, header_end, &header.sections)?;
    let find = |name: &str| {
        ranges
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| PlanError::Layout {
                path: p(),
                message: format!("the plan has no `{name}` section"),
            })
    };
    let weights = find(WEIGHTS)?;
    let ptx = find(PTX)?;
    Ok(Parsed {
        header,
        weights,
        ptx,
    })
}

/// Check the section table against the file: canonical placement, zero padding, no
/// trailing bytes, unique names, checksums. Returns each section's byte range.
fn check_sections(
    path: &Path,
    bytes: &[u8],
    header_end: u64,
    sections: &[SectionEntry],
) -> Result<Vec<(String, Range)>, PlanError> {
    let p = || path.to_path_buf();
    let actual = bytes.len() as u64;
    let layout = |message: String| PlanError::Layout { path: p(), message };
    let mut prev = header_end;
    let mut out: Vec<(String, Range)> = Vec::new();
    for s in sections {
        if out.iter().any(|(n, _)| *n == s.name) {
            return Err(layout(format!("section `{}` is listed twice", s.name)));
        }
        let start = prev.next_multiple_of(SECTION_ALIGN);
        if s.offset != start {
            return Err(layout(format!(
                "section `{}` is said to start at byte {}, it must start at byte {start}",
                s.name, s.offset
            )));
        }
        let end = s
            .offset
            .checked_add(s.length)
            .ok_or_else(|| layout(format!("section `{}` has an impossible length", s.name)))?;
        if end > actual {
            return Err(PlanError::Truncated {
                path: p(),
                what: format!("section `{}`", s.name),
                expected: end,
                actual,
            });
        }
        if bytes[prev as usize..start as usize].iter().any(|&b| b != 0) {
            return Err(layout(format!(
                "non-zero padding before section `{}`",
                s.name
            )));
        }
        let r = (start as usize, s.length as usize);
        if sha256_hex(&bytes[r.0..r.0 + r.1]) != s.sha256 {
            return Err(PlanError::SectionChecksum {
                path: p(),
                section: s.name.clone(),
            });
        }
        out.push((s.name.clone(), r));
        prev = end;
    }
    if actual > prev {
        return Err(layout(format!(
            "{} bytes after the end of the last part (byte {prev})",
            actual - prev
        )));
    }
    Ok(out)
}

/// Write a whole plan file to `out`: prefix, header (with the section table filled in)
/// and sections in the given order, each after its zero padding. Returns the bytes
/// written.
pub(crate) fn assemble<W: std::io::Write>(
    mut header: PlanHeader,
    sections: &[(&str, &[u8])],
    out: &mut W,
) -> Result<u64, AssembleError> {
    // The section offsets depend on the header's length, which depends on the offsets'
    // digits: iterate until the length is stable (it changes at most a few times).
    let mut header_bytes = Vec::new();
    let mut stable = false;
    for _ in 0..16 {
        let mut at = PREFIX_LEN as u64 + header_bytes.len() as u64;
        header.sections = sections
            .iter()
            .map(|(name, b)| {
                let offset = at.next_multiple_of(SECTION_ALIGN);
                at = offset + b.len() as u64;
                SectionEntry {
                    name: name.to_string(),
                    offset,
                    length: b.len() as u64,
                    sha256: sha256_hex(b),
                }
            })
            .collect();
        let next = serde_json::to_vec(&header).map_err(|e| AssembleError::Layout(e.to_string()))?;
        stable = next.len() == header_bytes.len();
        header_bytes = next;
        if stable {
            break;
        }
    }
    if !stable {
        return Err(AssembleError::Layout(
            "the header length did not settle while placing the sections".into(),
        ));
    }
    let mut head = Vec::with_capacity(PREFIX_LEN + header_bytes.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    head.extend_from_slice(&(header_bytes.len() as u64).to_le_bytes());
    head.extend_from_slice(Sha256::digest(&header_bytes).as_slice());
    head.extend_from_slice(&header_bytes);
    out.write_all(&head)?;
    let mut at = head.len() as u64;
    let zeros = [0u8; SECTION_ALIGN as usize];
    for (s, (_, b)) in header.sections.iter().zip(sections) {
        let pad = (s.offset - at) as usize;
        out.write_all(&zeros[..pad])?;
        out.write_all(b)?;
        at = s.offset + b.len() as u64;
    }
    Ok(at)
}

/// Why a plan could not be assembled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AssembleError {
    /// The header could not be laid out.
    #[error("{0}")]
    Layout(String),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
