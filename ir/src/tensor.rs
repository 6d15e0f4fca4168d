//! Concrete tensors: a dtype, a static shape and the bytes in the dtype's own encoding.
//!
//! Bytes are shared (`Arc`) and may live in a memory-mapped file, so a constant loaded from
//! a weights file is never copied. Values are stored little-endian; packed types hold two
//! elements per byte (see [`DType`]).

use std::fmt;
use std::sync::Arc;

use crate::DType;
use crate::numeric;
use crate::shape::{Shape, TensorType};

/// Where a tensor's bytes live.
#[derive(Clone)]
pub enum Storage {
    /// Bytes owned in memory.
    Owned(Arc<[u8]>),
    /// A range of a memory-mapped file.
    Mapped {
        /// The mapping.
        map: Arc<memmap2::Mmap>,
        /// Start of the tensor's bytes.
        offset: usize,
        /// Length in bytes.
        len: usize,
    },
    /// Bytes in a buffer of another owner's kind, e.g. a runtime's output buffer that goes
    /// back to its session for reuse when the last tensor holding it is dropped.
    Shared(Arc<dyn SharedBytes>),
}

/// A read-only byte buffer a [`Storage::Shared`] tensor keeps alive; its bytes must not
/// change while any tensor holds it.
pub trait SharedBytes: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

impl Storage {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(b) => b,
            Storage::Mapped { map, offset, len } => &map[*offset..*offset + *len],
            Storage::Shared(b) => b.bytes(),
        }
    }
}

/// A tensor with a static shape.
#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<u64>,
    data: Storage,
}

/// A tensor whose byte length does not match its dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The byte count is wrong.
    #[error("tensor {dtype}{shape:?} needs {expected} bytes, got {actual}")]
    ByteLength {
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<u64>,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The element count is wrong.
    #[error("tensor of shape {shape:?} has {expected} elements, got {actual} values")]
    ElementCount {
        /// Shape.
        shape: Vec<u64>,
        /// Elements required.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// The shape's element count overflows the address space.
    #[error("tensor shape {shape:?} is too large")]
    TooLarge {
        /// Shape.
        shape: Vec<u64>,
    },
}

/// Element count of a static shape, refusing sizes that do not fit in memory.
pub fn checked_numel(shape: &[u64]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= (isize::MAX as u64) / 8)
        .map(|n| n as usize)
        .ok_or_else(|| TensorError::TooLarge {
            shape: shape.to_vec(),
        })
}

impl Tensor {
    /// Wrap bytes already in `dtype`'s encoding. Fails if the length is wrong.
    pub fn from_bytes(
        dtype: DType,
        shape: Vec<u64>,
        bytes: Arc<[u8]>,
    ) -> Result<Tensor, TensorError> {
        Tensor::from_storage(dtype, shape, Storage::Owned(bytes))
    }

    /// Wrap any storage. Fails if the length is wrong.
    pub fn from_storage(
        dtype: DType,
        shape: Vec<u64>,
        data: Storage,
    ) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        let expected = dtype.storage_bytes(n);
        let actual = data.bytes().len();
        if expected != actual {
            return Err(TensorError::ByteLength {
                dtype,
                shape,
                expected,
                actual,
            });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// Encode f32 values into `dtype` (round half to even, saturating as
    /// [`numeric::encode_f32`] describes).
    pub fn from_f32(dtype: DType, shape: Vec<u64>, values: &[f32]) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        if n != values.len() {
            return Err(TensorError::ElementCount {
                shape,
                expected: n,
                actual: values.len(),
            });
        }
        let bytes = numeric::encode_f32(dtype, values);
        Tensor::from_bytes(dtype, shape, bytes.into())
    }

    /// Encode integer values into `dtype` (saturating to its range; floats convert exactly
    /// where representable, else round to nearest even).
    pub fn from_i64(dtype: DType, shape: Vec<u64>, values: &[i64]) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        if n != values.len() {
            return Err(TensorError::ElementCount {
                shape,
                expected: n,
                actual: values.len(),
            });
        }
        let bytes = numeric::encode_i64(dtype, values);
        Tensor::from_bytes(dtype, shape, bytes.into())
    }

    /// A scalar f32.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::from_f32(DType::F32, Vec::new(), &[v]).expect("a scalar has one element")
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<u64>) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        Tensor::from_bytes(dtype, shape, vec![0u8; dtype.storage_bytes(n)].into())
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// The storage (to share it without copying).
    pub fn storage(&self) -> &Storage {
        &self.data
    }

    /// The IR type of this tensor.
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, Shape::fixed(&self.shape))
    }

    /// Decode every element to f32 (bool → 0/1, integers converted, i64 rounded).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        numeric::decode_f32(self.dtype, self.bytes(), self.numel())
    }

    /// Decode every element to i64 (floats truncated toward zero, saturating; NaN → 0).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        numeric::decode_i64(self.dtype, self.bytes(), self.numel())
    }

    /// Same bytes, new shape of the same element count.
    pub fn reshaped(&self, shape: Vec<u64>) -> Result<Tensor, TensorError> {
        Tensor::from_storage(self.dtype, shape, self.data.clone())
    }

    /// Bitwise equality of dtype, shape and bytes.
    pub fn bit_eq(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype && self.shape == other.shape && self.bytes() == other.bytes()
    }
}

impl PartialEq for Tensor {
    /// Tensors compare bitwise (so `NaN == NaN` when the bits agree).
    fn eq(&self, other: &Tensor) -> bool {
        self.bit_eq(other)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}{:?}", self.dtype, self.shape)?;
        if self.numel() <= 8 {
            write!(f, " {:?}", self.to_f32_vec())?;
        }
        f.write_str(")")
    }
}
