//! Splitting a linear range of work across rayon's threads.

use rayon::prelude::*;

/// The argument pointer array of a running kernel, shared with worker threads.
#[derive(Clone, Copy)]
pub(super) struct ArgsPtr(pub *const *mut u8);

// SAFETY: the pointers are only dereferenced by generated code and drivers under the
// `run_kernel` contract (buffers valid for the duration of the call, written regions
// disjoint between workers).
impl ArgsPtr {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the field).
    pub fn get(self) -> *const *mut u8 {
        self.0
    }
}

unsafe impl Send for ArgsPtr {}
// SAFETY: as above.
unsafe impl Sync for ArgsPtr {}

/// A raw mutable pointer shared with worker threads that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct SyncPtr<T>(pub *mut T);

// SAFETY: users write disjoint regions only (documented at each use).
impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the field).
    pub fn get(self) -> *mut T {
        self.0
    }
}

unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

/// Run `f` over `[0, total)` in chunks of at least `min_chunk` elements whose boundaries
/// are multiples of `align`; in parallel when there is more than one chunk. Returns the
/// first error.
pub(super) fn for_ranges<E: Send>(
    total: u64,
    min_chunk: u64,
    align: u64,
    f: impl Fn(u64, u64) -> Result<(), E> + Sync,
) -> Result<(), E> {
    if total == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads() as u64;
    let want = (total / min_chunk.max(1)).clamp(1, threads * 4);
    if want <= 1 {
        return f(0, total);
    }
    let align = align.max(1);
    let chunk = total.div_ceil(want).div_ceil(align) * align;
    let n = total.div_ceil(chunk);
    (0..n)
        .into_par_iter()
        .try_for_each(|c| f(c * chunk, ((c + 1) * chunk).min(total)))
}
