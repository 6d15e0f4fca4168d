//! The register-blocked f32 GEMM microkernel: a `MR × NR = 6 × 16` tile of `C` from six
//! rows of `A` read in place (any row and column strides, so neither a row-major nor a
//! transposed `A` is copied) and a panel of `B` (`kc × 16`, column index fastest,
//! consecutive `k` rows `b_rs` elements apart).
//!
//! Two implementations with one contract: an AVX2 + FMA one (12 accumulator registers, two
//! `B` loads and six broadcasts of `A` per `k`), chosen at run time when the CPU has both
//! features, and a portable one in plain Rust that the compiler vectorizes for whatever
//! the target has. Both add the products in the same order (`k` ascending, one fused or
//! unfused multiply-add per step), so they agree up to the FMA's single rounding.

/// Rows of the register tile.
pub(super) const MR: usize = 6;
/// Columns of the register tile.
pub(super) const NR: usize = 16;

/// Which microkernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Micro {
    /// `std::arch` AVX2 + FMA intrinsics (x86-64 only; select it only when
    /// [`Micro::detect`] returned it).
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// Plain Rust, correct on every target.
    Portable,
}

impl Micro {
    /// The fastest microkernel this CPU can run.
    pub fn detect() -> Micro {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Micro::Avx2Fma;
            }
        }
        Micro::Portable
    }

    /// `C[r][c] = alpha · Σ_p A[r][p] · b[p·b_rs + c] (+ C[r][c] if accumulate)` for
    /// `r < mr`, `c < nr`, where `A[r][p]` is `a[r·a.0 + p·a.1]` and `C[r][c]` is
    /// `c_ptr[r·ldc + c]`.
    ///
    /// # Safety
    /// `a` addresses `A[r][p]` for `r < mr`, `p < kc` (rows `mr..MR` are never read),
    /// `b` addresses `(kc−1)·b_rs + NR` readable f32 (when `kc > 0`), `c` addresses the
    /// `mr × nr` tile with row stride `ldc`, writable and not aliasing `a` or `b`;
    /// `1 ≤ mr ≤ MR`, `nr ≤ NR`. For [`Micro::Avx2Fma`] the CPU has AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub unsafe fn run(
        self,
        kc: usize,
        a: *const f32,
        a_strides: (isize, isize),
        b: *const f32,
        b_rs: usize,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        alpha: f32,
        accumulate: bool,
    ) {
        match self {
            // SAFETY: forwarded contract; the variant is only selected on AVX2+FMA CPUs.
            #[cfg(target_arch = "x86_64")]
            Micro::Avx2Fma => unsafe {
                avx2::kernel(kc, a, a_strides, b, b_rs, c, ldc, mr, nr, alpha, accumulate)
            },
            // SAFETY: forwarded contract.
            Micro::Portable => unsafe {
                portable(kc, a, a_strides, b, b_rs, c, ldc, mr, nr, alpha, accumulate)
            },
        }
    }
}

/// Pointers to the `MR` rows of `A` at `p = 0`; rows at or past `mr` repeat row `mr − 1`
/// (read, never stored), so a short strip reads only rows it owns.
#[inline(always)]
fn rows(a: *const f32, rs: isize, mr: usize) -> [*const f32; MR] {
    let last = mr.clamp(1, MR) - 1;
    std::array::from_fn(|r| a.wrapping_offset(r.min(last) as isize * rs))
}

/// Store the full register tile `acc` (row-major `MR × NR`) into `C` per the contract of
/// [`Micro::run`].
///
/// # Safety
/// As [`Micro::run`] for `c`.
#[inline(always)]
unsafe fn store_tile(
    acc: &[f32; MR * NR],
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    accumulate: bool,
) {
    for r in 0..mr {
        // SAFETY: row r < mr of the tile has nr writable elements.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), nr) };
        let src = &acc[r * NR..r * NR + nr];
        if accumulate {
            for (d, &s) in row.iter_mut().zip(src) {
                *d += alpha * s;
            }
        } else {
            for (d, &s) in row.iter_mut().zip(src) {
                *d = alpha * s;
            }
        }
    }
}

/// The portable microkernel.
///
/// # Safety
/// As [`Micro::run`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable(
    kc: usize,
    a: *const f32,
    (a_rs, a_ps): (isize, isize),
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    accumulate: bool,
) {
    let mut acc = [0f32; MR * NR];
    let rows = rows(a, a_rs, mr);
    for p in 0..kc {
        // SAFETY: step p of the panel is in range (contract).
        let bp = unsafe { std::slice::from_raw_parts(b.add(p * b_rs), NR) };
        for (r, &row) in rows.iter().enumerate() {
            // SAFETY: A[min(r, mr − 1)][p] is in range (contract).
            let x = unsafe { *row.offset(p as isize * a_ps) };
            for (s, &y) in acc[r * NR..(r + 1) * NR].iter_mut().zip(bp) {
                *s += x * y;
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store_tile(&acc, c, ldc, mr, nr, alpha, accumulate) };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR, rows, store_tile};
    use std::arch::x86_64::*;

    /// The AVX2 + FMA microkernel.
    ///
    /// # Safety
    /// As [`super::Micro::run`]; the CPU has AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(
        kc: usize,
        a: *const f32,
        (a_rs, a_ps): (isize, isize),
        b: *const f32,
        b_rs: usize,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        alpha: f32,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let rows = rows(a, a_rs, mr);
        let mut bp = b;
        let mut off = 0isize;
        for _ in 0..kc {
            // SAFETY: NR = 16 readable f32 at bp and A[min(r, mr − 1)][p] at
            // rows[r] + off (contract).
            unsafe {
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                for (row, &ar) in acc.iter_mut().zip(&rows) {
                    let x = _mm256_broadcast_ss(&*ar.offset(off));
                    row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(x, b1, row[1]);
                }
                off += a_ps;
                bp = bp.add(b_rs);
            }
        }
        let va = _mm256_set1_ps(alpha);
        if mr == MR && nr == NR {
            for (r, row) in acc.iter().enumerate() {
                // SAFETY: the full tile is in range (contract).
                unsafe {
                    let d = c.add(r * ldc);
                    let (mut v0, mut v1) = (_mm256_mul_ps(va, row[0]), _mm256_mul_ps(va, row[1]));
                    if accumulate {
                        v0 = _mm256_add_ps(_mm256_loadu_ps(d), v0);
                        v1 = _mm256_add_ps(_mm256_loadu_ps(d.add(8)), v1);
                    }
                    _mm256_storeu_ps(d, v0);
                    _mm256_storeu_ps(d.add(8), v1);
                }
            }
            return;
        }
        let mut tile = [0f32; MR * NR];
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: `tile` holds MR × NR f32.
            unsafe {
                _mm256_storeu_ps(tile.as_mut_ptr().add(r * NR), row[0]);
                _mm256_storeu_ps(tile.as_mut_ptr().add(r * NR + 8), row[1]);
            }
        }
        // SAFETY: forwarded contract.
        unsafe { store_tile(&tile, c, ldc, mr, nr, alpha, accumulate) };
    }
}

#[cfg(test)]
mod tests {
    use super::{MR, Micro, NR};

    fn check(micro: Micro) {
        let kc = 7;
        let a: Vec<f32> = (0..kc * MR).map(|i| (i % 5) as f32 - 2.0).collect();
        let b_rs = NR + 3;
        let b: Vec<f32> = (0..kc * b_rs).map(|i| (i % 7) as f32 * 0.5).collect();
        for (mr, nr, acc) in [
            (MR, NR, false),
            (MR, NR, true),
            (2, 5, false),
            (5, 16, true),
        ] {
            let ldc = NR + 1;
            let mut c = vec![1f32; MR * ldc];
            // SAFETY: buffers sized for the contract.
            unsafe {
                micro.run(
                    kc,
                    a.as_ptr(),
                    (1, MR as isize),
                    b.as_ptr(),
                    b_rs,
                    c.as_mut_ptr(),
                    ldc,
                    mr,
                    nr,
                    -2.0,
                    acc,
                )
            };
            for r in 0..MR {
                for j in 0..ldc {
                    let want = if r < mr && j < nr {
                        let s: f32 = (0..kc).map(|p| a[p * MR + r] * b[p * b_rs + j]).sum();
                        -2.0 * s + if acc { 1.0 } else { 0.0 }
                    } else {
                        1.0
                    };
                    assert_eq!(c[r * ldc + j], want, "{micro:?} r {r} c {j} ({mr}×{nr})");
                }
            }
        }
    }

    #[test]
    fn microkernels_compute_the_tile_and_nothing_else() {
        check(Micro::Portable);
        check(Micro::detect());
    }
}
