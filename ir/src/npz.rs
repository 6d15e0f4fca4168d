//! `.npy` / `.npz` files: the exchange format for graph inputs and outputs.
//!
//! Reading accepts `.npy` format versions 1.0, 2.0 and 3.0 with C-order data of these
//! little-endian (or byte-sized) dtypes:
//!
//! | numpy descr | IR dtype |
//! |---|---|
//! | `<f4` | f32 |
//! | `<f2` | f16 |
//! | `<f8` | f32 (converted on read, rounding to nearest; [`NpyArray::note`] says so) |
//! | `<i8` | i64 |
//! | `<i4` | i32 |
//! | `\|i1` | i8 |
//! | `\|u1` | u8 |
//! | `\|b1` | bool (any non-zero byte reads as true) |
//!
//! Fortran-order arrays, big-endian dtypes, structured dtypes and every other descr are
//! refused with an error that names the array. The byte count an array header declares is
//! checked against the bytes actually present before anything is allocated.
//!
//! An `.npz` file is a zip archive of `NAME.npy` members; members may be stored or
//! deflated. Writing produces version 1.0 headers (2.0 when the header would not fit) and
//! stored (uncompressed) members, and replaces the target file atomically. Only dtypes
//! numpy can represent are written: bf16, f8e4m3, f8e5m2, i4 and fp4e2m1 tensors are
//! refused (cast them to f32 first).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::DType;
use crate::tensor::{Tensor, TensorError, checked_numel};

/// The six bytes every `.npy` file starts with.
pub const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header accepted on read (numpy itself refuses more than 10 000 bytes by
/// default; this is generous while still bounding the allocation).
const MAX_HEADER_LEN: usize = 1 << 20;

/// Largest ratio of uncompressed to compressed size deflate can reach (about 1032:1),
/// with slack; a member claiming more is refused before its data is allocated.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// Errors in the bytes of one `.npy` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    /// The data does not start with `\x93NUMPY`.
    #[error("not a .npy array: bad magic bytes")]
    BadMagic,
    /// A format version other than 1.0, 2.0 or 3.0.
    #[error("unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are supported)")]
    UnsupportedVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// Fewer bytes than the header or the data needs.
    #[error("truncated .npy data: {what} needs {needed} bytes, only {available} are present")]
    Truncated {
        /// What was being read (`header`, `data`).
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// Bytes after the array data.
    #[error(".npy data has {extra} bytes after the array's {expected} data bytes")]
    TrailingBytes {
        /// Data bytes the header declares.
        expected: u64,
        /// Bytes beyond them.
        extra: u64,
    },
    /// The header dictionary is malformed.
    #[error("malformed .npy header: {message}")]
    BadHeader {
        /// What is wrong.
        message: String,
    },
    /// `fortran_order` is true.
    #[error(
        "Fortran-order (column-major) arrays are not supported; save it C-ordered (np.ascontiguousarray)"
    )]
    FortranOrder,
    /// A multi-byte dtype stored big-endian.
    #[error("big-endian dtype `{descr}` is not supported; convert it to little-endian first")]
    BigEndian {
        /// The numpy descr.
        descr: String,
    },
    /// A dtype this reader does not know.
    #[error("unsupported dtype `{descr}` (supported: <f4 <f2 <f8 <i8 <i4 |i1 |u1 |b1)")]
    UnsupportedDtype {
        /// The numpy descr, as written in the header.
        descr: String,
    },
    /// The shape's byte count overflows.
    #[error("array shape {shape:?} is too large")]
    TooLarge {
        /// The declared shape.
        shape: Vec<u64>,
    },
    /// A tensor of a dtype numpy has no equivalent for.
    #[error("dtype {dtype} has no .npy equivalent; cast the tensor to f32 first")]
    NotNumpyDtype {
        /// The IR dtype.
        dtype: DType,
    },
    /// An I/O error while reading a member stream.
    #[error("read error: {message}")]
    Read {
        /// The underlying error, as text.
        message: String,
    },
}

/// Errors reading or writing `.npz` files; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    /// The file could not be opened, read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The zip container is malformed or unsupported.
    #[error("{path}: not a readable .npz (zip) archive: {source}")]
    Zip {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: zip::result::ZipError,
    },
    /// One array of the archive is bad.
    #[error("{path}: array `{array}`: {source}")]
    Array {
        /// The file.
        path: PathBuf,
        /// The array's name (member name without `.npy`).
        array: String,
        /// The cause.
        source: NpyError,
    },
    /// A member whose name does not end in `.npy`.
    #[error("{path}: member `{member}` is not a .npy array")]
    NotNpyMember {
        /// The file.
        path: PathBuf,
        /// The member's name.
        member: String,
    },
    /// A member whose declared size is impossible for its compressed size.
    #[error(
        "{path}: member `{member}` claims {size} bytes uncompressed from {compressed} compressed bytes"
    )]
    ImplausibleSize {
        /// The file.
        path: PathBuf,
        /// The member's name.
        member: String,
        /// Declared uncompressed size.
        size: u64,
        /// Compressed size.
        compressed: u64,
    },
    /// Two arrays with the same name were given to write, or an empty name.
    #[error("{path}: array name `{array}` is empty or used twice")]
    BadName {
        /// The file.
        path: PathBuf,
        /// The name.
        array: String,
    },
}

/// One array read from `.npy` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The array.
    pub tensor: Tensor,
    /// Set when the data was converted on read (f64 → f32), saying so.
    pub note: Option<String>,
}

/// How a numpy descr maps onto an IR dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NpyDtype {
    Direct(DType),
    F64,
}

impl NpyDtype {
    fn item_size(self) -> u64 {
        match self {
            NpyDtype::Direct(d) => (d.bits() / 8) as u64,
            NpyDtype::F64 => 8,
        }
    }
}

fn parse_descr(descr: &str) -> Result<NpyDtype, NpyError> {
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('|', descr),
    };
    let d = match code {
        "f4" => NpyDtype::Direct(DType::F32),
        "f2" => NpyDtype::Direct(DType::F16),
        "f8" => NpyDtype::F64,
        "i8" => NpyDtype::Direct(DType::I64),
        "i4" => NpyDtype::Direct(DType::I32),
        "i1" => NpyDtype::Direct(DType::I8),
        "u1" => NpyDtype::Direct(DType::U8),
        "b1" => NpyDtype::Direct(DType::Bool),
        _ => {
            return Err(NpyError::UnsupportedDtype {
                descr: descr.to_string(),
            });
        }
    };
    let multi_byte = d.item_size() > 1;
    match order {
        '>' if multi_byte => Err(NpyError::BigEndian {
            descr: descr.to_string(),
        }),
        // '|' (not applicable) is only meaningful for single bytes, '=' (native) is never
        // written by numpy; both are refused for multi-byte types as ambiguous.
        '|' | '=' if multi_byte => Err(NpyError::UnsupportedDtype {
            descr: descr.to_string(),
        }),
        _ => Ok(d),
    }
}

fn descr_of(dtype: DType) -> Result<&'static str, NpyError> {
    match dtype {
        DType::F32 => Ok("<f4"),
        DType::F16 => Ok("<f2"),
        DType::I64 => Ok("<i8"),
        DType::I32 => Ok("<i4"),
        DType::I8 => Ok("|i1"),
        DType::U8 => Ok("|u1"),
        DType::Bool => Ok("|b1"),
        DType::BF16
        | DType::F8E4M3
        | DType::F8E5M2
        | DType::F8E4M3Fnuz
        | DType::F8E5M2Fnuz
        | DType::I4
        | DType::Fp4E2M1 => Err(NpyError::NotNumpyDtype { dtype }),
    }
}

// ----- the header dictionary -----------------------------------------------------------

/// A Python literal, as far as `.npy` headers use them.
#[derive(Clone, Debug, PartialEq)]
enum PyLit {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Seq(Vec<PyLit>),
    Dict(Vec<(PyLit, PyLit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

fn header_err(message: impl Into<String>) -> NpyError {
    NpyError::BadHeader {
        message: message.into(),
    }
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), NpyError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(header_err(format!(
                "expected `{}` at byte {}",
                c as char, self.pos
            )))
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyLit, NpyError> {
        if depth > 16 {
            return Err(header_err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b'}') {
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(b'}')?;
                Ok(PyLit::Dict(items))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(close) {
                    items.push(self.value(depth + 1)?);
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(close)?;
                Ok(PyLit::Seq(items))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(|&c| c != q) {
                    self.pos += 1;
                }
                let body = self
                    .s
                    .get(start..self.pos)
                    .ok_or_else(|| header_err("unterminated string"))?;
                self.expect(q)?;
                Ok(PyLit::Str(String::from_utf8_lossy(body).into_owned()))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos])
                    .map_err(|_| header_err("bad integer"))?;
                let n: u64 = digits
                    .parse()
                    .map_err(|_| header_err(format!("integer `{digits}` out of range")))?;
                // Python 2 long suffix.
                if matches!(self.s.get(self.pos), Some(b'L' | b'l')) {
                    self.pos += 1;
                }
                Ok(PyLit::Int(n))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_alphanumeric) {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(PyLit::Bool(true)),
                    b"False" => Ok(PyLit::Bool(false)),
                    b"None" => Ok(PyLit::None),
                    other => Err(header_err(format!(
                        "unexpected word `{}`",
                        String::from_utf8_lossy(other)
                    ))),
                }
            }
            Some(c) => Err(header_err(format!(
                "unexpected character `{}` at byte {}",
                c as char, self.pos
            ))),
            None => Err(header_err("unexpected end of header")),
        }
    }
}

/// The parsed header fields.
struct Header {
    dtype: NpyDtype,
    shape: Vec<u64>,
}

fn parse_header_dict(text: &[u8]) -> Result<Header, NpyError> {
    let mut p = LitParser { s: text, pos: 0 };
    let PyLit::Dict(items) = p.value(0)? else {
        return Err(header_err("the header is not a dictionary"));
    };
    if p.peek().is_some() {
        return Err(header_err("characters after the dictionary"));
    }
    let field = |name: &str| {
        items
            .iter()
            .find(|(k, _)| *k == PyLit::Str(name.to_string()))
            .map(|(_, v)| v)
            .ok_or_else(|| header_err(format!("missing key '{name}'")))
    };
    let descr = match field("descr")? {
        PyLit::Str(s) => s.clone(),
        other => {
            return Err(NpyError::UnsupportedDtype {
                descr: format!("{other:?}"),
            });
        }
    };
    match field("fortran_order")? {
        PyLit::Bool(false) => {}
        PyLit::Bool(true) => return Err(NpyError::FortranOrder),
        _ => return Err(header_err("'fortran_order' is not True or False")),
    }
    let shape = match field("shape")? {
        PyLit::Seq(dims) => dims
            .iter()
            .map(|d| match d {
                PyLit::Int(n) => Ok(*n),
                _ => Err(header_err("'shape' holds a non-integer")),
            })
            .collect::<Result<Vec<u64>, _>>()?,
        _ => return Err(header_err("'shape' is not a tuple")),
    };
    let dtype = parse_descr(&descr)?;
    Ok(Header { dtype, shape })
}

// ----- reading -------------------------------------------------------------------------

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), NpyError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(NpyError::Truncated {
                    what,
                    needed: buf.len() as u64,
                    available: filled as u64,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(NpyError::Read {
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Read one array from a stream that holds exactly `total_len` bytes of `.npy` data.
fn read_npy_stream(r: &mut impl Read, total_len: u64) -> Result<NpyArray, NpyError> {
    let mut pre = [0u8; 8];
    read_exact_or(r, &mut pre, "header")?;
    if &pre[..6] != NPY_MAGIC {
        return Err(NpyError::BadMagic);
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, prefix) = match (major, minor) {
        (1, 0) => {
            let mut l = [0u8; 2];
            read_exact_or(r, &mut l, "header")?;
            (u16::from_le_bytes(l) as usize, 10u64)
        }
        (2, 0) | (3, 0) => {
            let mut l = [0u8; 4];
            read_exact_or(r, &mut l, "header")?;
            (u32::from_le_bytes(l) as usize, 12u64)
        }
        _ => return Err(NpyError::UnsupportedVersion { major, minor }),
    };
    let available = total_len.saturating_sub(prefix);
    if header_len as u64 > available {
        return Err(NpyError::Truncated {
            what: "header",
            needed: header_len as u64,
            available,
        });
    }
    if header_len > MAX_HEADER_LEN {
        return Err(header_err(format!(
            "header of {header_len} bytes is longer than the {MAX_HEADER_LEN} accepted"
        )));
    }
    let mut text = vec![0u8; header_len];
    read_exact_or(r, &mut text, "header")?;
    if major < 3 && !text.is_ascii() {
        // Versions 1 and 2 are latin-1; numpy only ever writes ASCII there.
        return Err(header_err("non-ASCII bytes in a version 1/2 header"));
    }
    let header = parse_header_dict(&text)?;
    let too_large = || NpyError::TooLarge {
        shape: header.shape.clone(),
    };
    let numel = checked_numel(&header.shape).map_err(|_| too_large())?;
    let data_len = (numel as u64)
        .checked_mul(header.dtype.item_size())
        .ok_or_else(too_large)?;
    let remaining = available - header_len as u64;
    if data_len > remaining {
        return Err(NpyError::Truncated {
            what: "data",
            needed: data_len,
            available: remaining,
        });
    }
    if data_len < remaining {
        return Err(NpyError::TrailingBytes {
            expected: data_len,
            extra: remaining - data_len,
        });
    }
    let data_len = usize::try_from(data_len).map_err(|_| too_large())?;
    let mut data = Vec::new();
    data.try_reserve_exact(data_len).map_err(|_| too_large())?;
    data.resize(data_len, 0);
    read_exact_or(r, &mut data, "data")?;
    let (tensor, note) = match header.dtype {
        NpyDtype::Direct(DType::Bool) => {
            for b in &mut data {
                *b = u8::from(*b != 0);
            }
            (to_tensor(DType::Bool, header.shape, data)?, None)
        }
        NpyDtype::Direct(d) => (to_tensor(d, header.shape, data)?, None),
        NpyDtype::F64 => {
            let vals: Vec<f32> = data
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect();
            let t = Tensor::from_f32(DType::F32, header.shape.clone(), &vals)
                .map_err(|e| tensor_err(e, &header.shape))?;
            (
                t,
                Some("converted from float64 to float32 (rounded to nearest)".to_string()),
            )
        }
    };
    Ok(NpyArray { tensor, note })
}

fn tensor_err(e: TensorError, shape: &[u64]) -> NpyError {
    match e {
        TensorError::TooLarge { .. } => NpyError::TooLarge {
            shape: shape.to_vec(),
        },
        other => header_err(other.to_string()),
    }
}

fn to_tensor(dtype: DType, shape: Vec<u64>, data: Vec<u8>) -> Result<Tensor, NpyError> {
    Tensor::from_bytes(dtype, shape.clone(), data.into()).map_err(|e| tensor_err(e, &shape))
}

/// Parse a complete `.npy` file held in memory.
///
/// Refuses (see [`NpyError`]): bad magic, versions other than 1.0/2.0/3.0, malformed
/// headers, Fortran order, big-endian or unsupported dtypes, and data shorter or longer
/// than the header declares (checked before allocating).
pub fn read_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    read_npy_stream(&mut io::Cursor::new(bytes), bytes.len() as u64)
}

// ----- writing -------------------------------------------------------------------------

/// Serialize a tensor as a `.npy` file (version 1.0, or 2.0 if the header needs it).
///
/// Refuses dtypes numpy cannot hold (bf16, f8e4m3, f8e5m2, i4, fp4e2m1) with
/// [`NpyError::NotNumpyDtype`].
pub fn write_npy(tensor: &Tensor) -> Result<Vec<u8>, NpyError> {
    let descr = descr_of(tensor.dtype())?;
    let shape = match tensor.shape() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces so that the data starts on a 64-byte boundary; end with '\n'.
    let padded = |prefix: usize| {
        let unpadded = prefix + dict.len() + 1;
        let pad = unpadded.next_multiple_of(64) - unpadded;
        let mut h = dict.clone();
        h.extend(std::iter::repeat_n(' ', pad));
        h.push('\n');
        h
    };
    let mut out = Vec::with_capacity(128 + tensor.bytes().len());
    out.extend_from_slice(NPY_MAGIC);
    let h1 = padded(10);
    if let Ok(len) = u16::try_from(h1.len()) {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(h1.as_bytes());
    } else {
        let h2 = padded(12);
        let len = u32::try_from(h2.len()).map_err(|_| NpyError::TooLarge {
            shape: tensor.shape().to_vec(),
        })?;
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(h2.as_bytes());
    }
    out.extend_from_slice(tensor.bytes());
    Ok(out)
}

/// Read every array of an `.npz` archive, in the archive's order. Names are the member
/// names without the `.npy` suffix; directory entries are skipped.
pub fn read_npz(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, NpzError> {
    Ok(read_npz_with_notes(path)?
        .into_iter()
        .map(|(n, a)| (n, a.tensor))
        .collect())
}

/// Like [`read_npz`], but keeps each array's conversion note (see [`NpyArray::note`]).
pub fn read_npz_with_notes(path: impl AsRef<Path>) -> Result<Vec<(String, NpyArray)>, NpzError> {
    let path = path.as_ref();
    let io_err = |source| NpzError::Io {
        path: path.to_path_buf(),
        source,
    };
    let zip_err = |source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(zip_err)?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(zip_err)?;
        if member.is_dir() {
            continue;
        }
        let member_name = member.name().to_string();
        let Some(array) = member_name.strip_suffix(".npy").map(str::to_string) else {
            return Err(NpzError::NotNpyMember {
                path: path.to_path_buf(),
                member: member_name,
            });
        };
        let (size, compressed) = (member.size(), member.compressed_size());
        if size
            > compressed
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1024)
        {
            return Err(NpzError::ImplausibleSize {
                path: path.to_path_buf(),
                member: member_name,
                size,
                compressed,
            });
        }
        let arr = read_npy_stream(&mut member, size).map_err(|source| NpzError::Array {
            path: path.to_path_buf(),
            array: array.clone(),
            source,
        })?;
        out.push((array, arr));
    }
    Ok(out)
}

/// Write arrays to an `.npz` archive of stored `NAME.npy` members, atomically: the data
/// goes to a temporary file in the same folder, which then replaces `path`. On error,
/// `path` is left as it was.
///
/// Refuses empty or duplicate names, and tensors of dtypes numpy cannot hold (the error
/// names the array).
pub fn write_npz(path: impl AsRef<Path>, arrays: &[(String, Tensor)]) -> Result<(), NpzError> {
    let path = path.as_ref();
    let mut seen = HashSet::new();
    let mut encoded = Vec::with_capacity(arrays.len());
    for (name, t) in arrays {
        if name.is_empty() || !seen.insert(name.as_str()) {
            return Err(NpzError::BadName {
                path: path.to_path_buf(),
                array: name.clone(),
            });
        }
        let bytes = write_npy(t).map_err(|source| NpzError::Array {
            path: path.to_path_buf(),
            array: name.clone(),
            source,
        })?;
        encoded.push((name, bytes));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.npz".to_string());
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = write_zip(&tmp, &encoded).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_zip(tmp: &Path, members: &[(&String, Vec<u8>)]) -> Result<(), NpzError> {
    let io_err = |source| NpzError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let zip_err = |source| NpzError::Zip {
        path: tmp.to_path_buf(),
        source,
    };
    let file = File::create(tmp).map_err(io_err)?;
    let mut zw = zip::ZipWriter::new(io::BufWriter::new(file));
    for (name, bytes) in members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        zw.start_file(format!("{name}.npy"), opts)
            .map_err(zip_err)?;
        zw.write_all(bytes).map_err(io_err)?;
    }
    let buf = zw.finish().map_err(zip_err)?;
    let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests;
