//! The register-blocked f32 GEMM microkernel: a `MR × NR = 6 × 16` tile of `C` from six
//! rows of `A` read in place (any row and column strides, so neither a row-major nor a
//! transposed `A` is copied) and a panel of `B` (`kc` rows of 16 consecutive f32).
//!
//! Two implementations with one contract: an AVX2 + FMA one, chosen at run time when the
//! CPU has both features, and a portable one in plain Rust that the compiler vectorizes
//! for whatever the target has. Both add the products in the same order (`k` ascending,
//! one fused or unfused multiply-add per step), so they agree up to the FMA's single
//! rounding.
//!
//! The AVX2 loop is inline assembly: 12 accumulator registers, per `k` two loads of `B`
//! and six broadcasts of `A`, four `k` steps per iteration. Written with intrinsics, the
//! same loop came out of LLVM one step per iteration, and a small change elsewhere in the
//! function once made it copy all twelve accumulators between registers every step (1.7×
//! slower); the assembly pins the schedule. Against the intrinsics loop it made a chain of
//! DiT-S/2-sized products 6–8 % faster (see `docs/performance.md`, stop 14).

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

    /// `C[r][c] = alpha · Σ_p A[r][p] · b[p·NR + c] (+ C[r][c] if accumulate)` for
    /// `r < mr`, `c < nr`, where `A[r][p]` is `a[r·a.0 + p·a.1]` and `C[r][c]` is
    /// `c_ptr[r·ldc + c]`.
    ///
    /// # Safety
    /// `a` addresses `A[r][p]` for `r < mr`, `p < kc` (rows `mr..MR` are never read),
    /// `b` addresses `kc·NR` readable f32, `c` addresses the
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
                avx2::kernel(kc, a, a_strides, b, c, ldc, mr, nr, alpha, accumulate)
            },
            // SAFETY: forwarded contract.
            Micro::Portable => unsafe {
                portable(kc, a, a_strides, b, c, ldc, mr, nr, alpha, accumulate)
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
        let bp = unsafe { std::slice::from_raw_parts(b.add(p * NR), NR) };
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
    use std::arch::asm;
    use std::arch::x86_64::*;

    /// One `k` step of the loop: `B` row at byte offset `$b0` / `$b1` (its two halves) from
    /// `{bp}`, `A[r][p]` at `{rR} + {off}`; then `{off}` moves to the next `k`.
    macro_rules! step {
        ($b0:literal, $b1:literal) => {
            concat!(
                "vmovups {b0}, ymmword ptr [{bp} + ",
                $b0,
                "]\n",
                "vmovups {b1}, ymmword ptr [{bp} + ",
                $b1,
                "]\n",
                "vbroadcastss {x}, dword ptr [{r0} + {off}]\n",
                "vfmadd231ps {c00}, {x}, {b0}\n",
                "vfmadd231ps {c01}, {x}, {b1}\n",
                "vbroadcastss {x}, dword ptr [{r1} + {off}]\n",
                "vfmadd231ps {c10}, {x}, {b0}\n",
                "vfmadd231ps {c11}, {x}, {b1}\n",
                "vbroadcastss {x}, dword ptr [{r2} + {off}]\n",
                "vfmadd231ps {c20}, {x}, {b0}\n",
                "vfmadd231ps {c21}, {x}, {b1}\n",
                "vbroadcastss {x}, dword ptr [{r3} + {off}]\n",
                "vfmadd231ps {c30}, {x}, {b0}\n",
                "vfmadd231ps {c31}, {x}, {b1}\n",
                "vbroadcastss {x}, dword ptr [{r4} + {off}]\n",
                "vfmadd231ps {c40}, {x}, {b0}\n",
                "vfmadd231ps {c41}, {x}, {b1}\n",
                "vbroadcastss {x}, dword ptr [{r5} + {off}]\n",
                "vfmadd231ps {c50}, {x}, {b0}\n",
                "vfmadd231ps {c51}, {x}, {b1}\n",
                "add {off}, {aps}\n",
            )
        };
    }

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
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        alpha: f32,
        accumulate: bool,
    ) {
        let [r0, r1, r2, r3, r4, r5] = rows(a, a_rs, mr);
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        // SAFETY: the loop reads A[min(r, mr − 1)][p] = rR + p·a_ps (in bytes: `off`) and
        // the panel's row p at b + p·NR for p < kc, all in range by the contract; it
        // writes only its register operands.
        unsafe {
            asm!(
                "test {n4}, {n4}",
                "jz 3f",
                ".p2align 5",
                "2:",
                step!("0", "32"),
                step!("64", "96"),
                step!("128", "160"),
                step!("192", "224"),
                "add {bp}, 256",
                "dec {n4}",
                "jnz 2b",
                "3:",
                "test {rem}, {rem}",
                "jz 5f",
                "4:",
                step!("0", "32"),
                "add {bp}, 64",
                "dec {rem}",
                "jnz 4b",
                "5:",
                n4 = inout(reg) kc / 4 => _,
                rem = inout(reg) kc % 4 => _,
                bp = inout(reg) b => _,
                off = inout(reg) 0isize => _,
                aps = in(reg) a_ps * 4,
                r0 = in(reg) r0,
                r1 = in(reg) r1,
                r2 = in(reg) r2,
                r3 = in(reg) r3,
                r4 = in(reg) r4,
                r5 = in(reg) r5,
                b0 = out(ymm_reg) _,
                b1 = out(ymm_reg) _,
                x = out(ymm_reg) _,
                c00 = inout(ymm_reg) c00,
                c01 = inout(ymm_reg) c01,
                c10 = inout(ymm_reg) c10,
                c11 = inout(ymm_reg) c11,
                c20 = inout(ymm_reg) c20,
                c21 = inout(ymm_reg) c21,
                c30 = inout(ymm_reg) c30,
                c31 = inout(ymm_reg) c31,
                c40 = inout(ymm_reg) c40,
                c41 = inout(ymm_reg) c41,
                c50 = inout(ymm_reg) c50,
                c51 = inout(ymm_reg) c51,
                options(nostack, readonly, pure),
            )
        };
        let acc = [
            [c00, c01],
            [c10, c11],
            [c20, c21],
            [c30, c31],
            [c40, c41],
            [c50, c51],
        ];
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

    /// Every tile shape and `k` depth (around the 4-step unroll) for `A` stored by
    /// columns and by rows; small integers, so every sum is exact.
    fn check(micro: Micro) {
        for kc in [0, 1, 3, 4, 5, 8, 13] {
            let b: Vec<f32> = (0..kc * NR).map(|i| (i % 7) as f32 * 0.5).collect();
            let vals: Vec<f32> = (0..kc * MR).map(|i| (i % 5) as f32 - 2.0).collect();
            for by_rows in [false, true] {
                // A[r][p] = vals[p·MR + r] stored by columns, or a copy stored by rows.
                let (a, strides) = if by_rows {
                    let t: Vec<f32> = (0..MR * kc).map(|i| vals[(i % kc) * MR + i / kc]).collect();
                    (t, (kc as isize, 1))
                } else {
                    (vals.clone(), (1, MR as isize))
                };
                for (mr, nr, acc) in [
                    (MR, NR, false),
                    (MR, NR, true),
                    (2, 5, false),
                    (5, 16, true),
                    (1, 16, false),
                ] {
                    let ldc = NR + 1;
                    let mut c = vec![1f32; MR * ldc];
                    // SAFETY: buffers sized for the contract.
                    unsafe {
                        micro.run(
                            kc,
                            a.as_ptr(),
                            strides,
                            b.as_ptr(),
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
                                let s: f32 =
                                    (0..kc).map(|p| vals[p * MR + r] * b[p * NR + j]).sum();
                                -2.0 * s + if acc { 1.0 } else { 0.0 }
                            } else {
                                1.0
                            };
                            assert_eq!(
                                c[r * ldc + j],
                                want,
                                "{micro:?} kc {kc} rows {by_rows} r {r} c {j} ({mr}×{nr})"
                            );
                        }
                    }
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
