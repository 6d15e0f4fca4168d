//! 64-byte-aligned, zero-initialized byte buffers: the storage kernels read and write.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// Alignment of every buffer handed to a kernel.
pub const ALIGN: usize = 64;

/// A fixed-size, zero-initialized byte buffer whose first byte is [`ALIGN`]-aligned.
///
/// A zero-length buffer allocates nothing; its pointer is still non-null and aligned.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its allocation exclusively, like a `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for AlignedBuf {}

/// An allocation larger than the address space allows, or refused by the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate {bytes} bytes")]
pub struct AllocError {
    /// Bytes requested.
    pub bytes: u64,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: u64) -> Result<AlignedBuf, AllocError> {
        let err = AllocError { bytes: len };
        let n = usize::try_from(len).map_err(|_| err.clone())?;
        if n == 0 {
            return Ok(AlignedBuf {
                ptr: dangling(),
                len: 0,
            });
        }
        let layout = Layout::from_size_align(n, ALIGN).map_err(|_| err.clone())?;
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p).ok_or(err)?;
        Ok(AlignedBuf { ptr, len: n })
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Result<AlignedBuf, AllocError> {
        let mut b = AlignedBuf::zeroed(bytes.len() as u64)?;
        b.as_mut_slice().copy_from_slice(bytes);
        Ok(b)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialized bytes (or dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Pointer to the first byte (aligned to [`ALIGN`]).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.len, ALIGN),
                )
            };
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

/// A type whose alignment is [`ALIGN`], for the dangling pointer of empty buffers.
#[repr(C, align(64))]
struct Aligned64([u8; ALIGN]);

fn dangling() -> NonNull<u8> {
    // An aligned, non-null address that is never dereferenced (length 0).
    NonNull::<Aligned64>::dangling().cast()
}

/// True if `p` is aligned to [`ALIGN`].
pub fn is_aligned(p: *const u8) -> bool {
    (p as usize).is_multiple_of(ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut b = AlignedBuf::zeroed(100).unwrap();
        assert!(is_aligned(b.as_mut_ptr()));
        assert!(b.as_slice().iter().all(|&x| x == 0));
        let c = AlignedBuf::copy_of(&[1, 2, 3]).unwrap();
        assert_eq!(c.as_slice(), &[1, 2, 3]);
        let mut e = AlignedBuf::zeroed(0).unwrap();
        assert!(e.is_empty() && is_aligned(e.as_mut_ptr()));
    }
}
