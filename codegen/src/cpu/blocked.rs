//! The cache-blocked f32 GEMM around the [`microkernel`](super::microkernel): one
//! single-threaded product `C = alpha · A·B` of any strides (callers split work across
//! threads themselves): columns in blocks of [`NC`] (`B`'s block packed into 16-column
//! panels over all of `k`, or taken from a [`PackedB`] made once), rows in blocks of
//! [`MC`], `k` in blocks of at most [`KC`], then every (6-row strip, panel) pair through
//! the microkernel — so each block of `C` stays in cache while all of `k` is added in.
//! [`gemm_blocks`] computes each block in a per-thread buffer (or in place in the output)
//! and hands it to the caller (the epilogue) as soon as it is finished, so the product is
//! never passed over a second time out of cache.
//! `A` is read in place: the microkernel broadcasts its elements one at a time, so a
//! packed copy would only be a second pass over `A` (it cost 12 % of a DiT-S forward).
//! The `B` packing and `C` block buffers are per thread and reused, so a call allocates nothing after the
//! first on a thread.

use super::microkernel::{MR, Micro, NR};
use super::with_scratch;
use std::cell::RefCell;

/// Depth of a `k` block: a strip of `A` (6 × `KC` f32, 9 KiB) stays in L1 while the
/// `KC × 16` panels of `B` (24 KiB each) stream past it from L2. Measured against 128 and
/// 256 (with the panel loop outside the strip loop) on the DiT-S/2 shapes: 2–7 % faster.
pub(super) const KC: usize = 384;
/// Columns of `B` and `C` per block (a multiple of 16): the `MC × NC` block of `C`
/// (72 KiB) stays in L2 while every `k` block adds into it, next to the `KC × NC` block of
/// `B` (192 KiB) and the strips of `A`.
pub(super) const NC: usize = 128;
/// Rows of `A` per block (24 strips): the rows of `C` that one pass over the `B` block
/// serves.
pub(super) const MC: usize = 144;

/// A strided f32 matrix view: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub(super) struct View {
    /// Element `(0, 0)`.
    pub ptr: *const f32,
    /// Row stride in elements.
    pub rs: isize,
    /// Column stride in elements.
    pub cs: isize,
}

/// A `k × n` matrix packed once in panel-major order: panel `j` holds columns
/// `16j .. 16j + 16` (zero beyond `n`), `k` rows of 16 consecutive f32 each; panels follow
/// one another.
pub(super) struct PackedB {
    k: usize,
    n: usize,
    data: Aligned,
}

/// An f32 buffer whose usable part starts on a 64-byte boundary, so each 16-float row of a
/// panel is exactly one cache line (a 32-byte load never straddles two lines).
#[derive(Default)]
pub(super) struct Aligned {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// Make `len` usable elements. Contents are unspecified afterwards (callers overwrite
    /// what they use); the buffer only grows, so a steady state neither allocates nor
    /// clears.
    pub(super) fn resize(&mut self, len: usize) {
        if self.buf.len() < len + 16 {
            self.buf.resize(len + 16, 0.0);
        }
        let misalign = (self.buf.as_ptr() as usize % 64) / 4;
        self.off = (16 - misalign) % 16;
        self.len = len;
    }

    pub(super) fn get(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    pub(super) fn get_mut(&mut self) -> &mut [f32] {
        let (o, n) = (self.off, self.len);
        &mut self.buf[o..o + n]
    }
}

impl PackedB {
    /// Pack the `k × n` matrix `b`.
    ///
    /// # Safety
    /// `b` addresses every element `(p, j)`, `p < k`, `j < n`.
    pub unsafe fn pack(k: usize, n: usize, b: View) -> PackedB {
        let panels = n.div_ceil(NR);
        let mut data = Aligned::default();
        data.resize(panels * k * NR);
        for (jp, panel) in data
            .get_mut()
            .chunks_exact_mut((k * NR).max(1))
            .enumerate()
            .take(panels)
        {
            // SAFETY: forwarded contract.
            unsafe { pack_b_panel(panel, b, 0, k, jp * NR, (n - jp * NR).min(NR)) };
        }
        PackedB { k, n, data }
    }

    /// Rows.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Start of rows `p0..` of panel `jp`.
    fn panel(&self, jp: usize, p0: usize) -> *const f32 {
        self.data.get()[(jp * self.k + p0) * NR..].as_ptr()
    }
}

/// Where `B` comes from.
#[derive(Clone, Copy)]
pub(super) enum BSource<'a> {
    /// Strided; packed block by block during the call.
    View(View),
    /// Packed once; the product uses columns `n0..n0 + n` of it (`n0` a multiple of 16).
    Packed(&'a PackedB, usize),
}

/// Per-thread buffers: `B` packing and the block of `C`.
#[derive(Default)]
struct Scratch {
    b: Aligned,
    /// One `MC × NC` block of `C` for [`gemm_blocks`].
    c: Aligned,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Pack rows `p0..p0 + kc`, columns `j0..j0 + nc` (`nc ≤ 16`) of `b` into `dst` (`kc × 16`,
/// zero-filled beyond `nc`).
///
/// # Safety
/// `b` addresses those elements; `dst` holds at least `kc·16` f32.
unsafe fn pack_b_panel(dst: &mut [f32], b: View, p0: usize, kc: usize, j0: usize, nc: usize) {
    let dst = &mut dst[..kc * NR];
    if b.cs == 1 {
        for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
            // SAFETY: elements (p0 + p, j0..j0 + nc) are in range (contract).
            let src = unsafe { b.ptr.offset((p0 + p) as isize * b.rs + j0 as isize) };
            if nc == NR {
                // SAFETY: NR contiguous elements; a fixed-size copy is two vector moves.
                let full: &[f32; NR] = unsafe { &*src.cast::<[f32; NR]>() };
                row.copy_from_slice(full);
            } else {
                // SAFETY: nc contiguous elements.
                row[..nc].copy_from_slice(unsafe { std::slice::from_raw_parts(src, nc) });
                row[nc..].fill(0.0);
            }
        }
        return;
    }
    // Columns of B strided (B is a transposed matrix, e.g. Kᵀ): walk each column along k,
    // which reads it contiguously when `rs` is 1, and scatter it into the panel.
    if nc < NR {
        for row in dst.chunks_exact_mut(NR) {
            row[nc..].fill(0.0);
        }
    }
    let out = dst.as_mut_ptr();
    for j in 0..nc {
        // SAFETY: column j0 + j, rows p0..p0 + kc are in range (contract); `dst` holds
        // kc rows of NR.
        unsafe {
            let col = b.ptr.offset(p0 as isize * b.rs + (j0 + j) as isize * b.cs);
            for p in 0..kc {
                *out.add(p * NR + j) = *col.offset(p as isize * b.rs);
            }
        }
    }
}

/// `C = alpha · A·B` for an `m × n` product over `k`, `C` row-major with row stride `ldc`.
///
/// # Safety
/// `a` addresses every element `(i, p)`, `i < m`, `p < k`; a [`BSource::View`] every
/// `(p, j)`, `j < n`; a [`BSource::Packed`] has `k` rows and at least `n0 + n` columns;
/// `c` addresses the `m × n` tile, writable, aliasing neither operand. For
/// [`Micro::Avx2Fma`] the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    micro: Micro,
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: BSource<'_>,
    alpha: f32,
    c: *mut f32,
    ldc: usize,
) {
    let done: Result<(), std::convert::Infallible> =
        // SAFETY: forwarded contract.
        unsafe { drive(micro, m, n, k, a, b, alpha, Some((c, ldc)), &mut |_| Ok(())) };
    let Ok(()) = done;
}

/// A finished block of `C`: rows `row..row + rows`, columns `col..col + cols` of the
/// product, element `(i, j)` of the block at `data[i·ld + j]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Block {
    pub row: usize,
    pub rows: usize,
    pub col: usize,
    pub cols: usize,
    pub data: *mut f32,
    pub ld: usize,
}

/// `alpha · A·B` handed to `finish` one `MC × NC` block at a time, as soon as all of `k`
/// has been added into it, so `finish` (an epilogue) reads it while it is hot. With `dest`
/// (`C` and its row stride) each block is computed in place in `C` and `finish` may
/// overwrite it there (an epilogue whose output is the product's own f32 buffer); without,
/// the block lives in a per-thread buffer that stays in L1/L2 and the full product is
/// never materialized. Stops at the first error `finish` returns.
///
/// # Safety
/// As [`gemm`] for `a`, `b` and a `dest`; `finish` may read and write the block's
/// `rows × cols` elements (and nothing else of the buffer) during the call.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_blocks<E>(
    micro: Micro,
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: BSource<'_>,
    alpha: f32,
    dest: Option<(*mut f32, usize)>,
    finish: &mut dyn FnMut(Block) -> Result<(), E>,
) -> Result<(), E> {
    // SAFETY: forwarded contract.
    unsafe { drive(micro, m, n, k, a, b, alpha, dest, finish) }
}

/// The loop nest of [`gemm`] and [`gemm_blocks`]: each block in `dest` (`C` and its row
/// stride) or, without, in the per-thread buffer; then `finish`.
///
/// # Safety
/// As [`gemm`] / [`gemm_blocks`].
#[allow(clippy::too_many_arguments)]
unsafe fn drive<E>(
    micro: Micro,
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: BSource<'_>,
    alpha: f32,
    dest: Option<(*mut f32, usize)>,
    finish: &mut dyn FnMut(Block) -> Result<(), E>,
) -> Result<(), E> {
    if let BSource::Packed(pb, n0) = b {
        debug_assert!(pb.k() == k && n0 % NR == 0 && n0 + n <= pb.n().div_ceil(NR) * NR);
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    with_scratch(&SCRATCH, |s| {
        if dest.is_none() {
            s.c.resize(MC * NC);
        }
        // k blocks of equal depth (≤ KC) so the last one is not a sliver. With a single
        // strip of rows nothing is reused from L1 across strips: one block over all of k
        // reads each panel of B as one sequential stream (these products, e.g. a GEMV
        // over a weight, are bound by reading B).
        let kb = if m <= MR { 1 } else { k.div_ceil(KC).max(1) };
        let kc_max = k.div_ceil(kb);
        let mut j0 = 0;
        while j0 < n {
            let nc = NC.min(n - j0);
            let panels = nc.div_ceil(NR);
            // Panel `jp` of this column block from row `p0` on: (pointer, row stride 16).
            if let BSource::View(v) = b {
                s.b.resize(panels * k * NR);
                for (jp, panel) in
                    s.b.get_mut()
                        .chunks_exact_mut((k * NR).max(1))
                        .take(panels)
                        .enumerate()
                {
                    // SAFETY: forwarded contract.
                    unsafe { pack_b_panel(panel, v, 0, k, j0 + jp * NR, (nc - jp * NR).min(NR)) };
                }
            }
            let mut i0 = 0;
            while i0 < m {
                let mc = MC.min(m - i0);
                // This block of C: (first element, row stride).
                let (cb, ld) = match dest {
                    // SAFETY: (i0, j0) is inside the m × n tile (contract).
                    Some((c, ldc)) => (unsafe { c.add(i0 * ldc + j0) }, ldc),
                    None => (s.c.get_mut().as_mut_ptr(), NC),
                };
                if k == 0 {
                    for i in 0..mc {
                        // SAFETY: row i of the block has nc writable elements.
                        unsafe { std::slice::from_raw_parts_mut(cb.add(i * ld), nc).fill(0.0) };
                    }
                }
                let mut p0 = 0;
                while p0 < k {
                    let kc = kc_max.min(k - p0);
                    // Each strip of A (6 × kc, in L1) meets every panel of B in turn; the
                    // panels stream from L2 as sequential reads.
                    for st in 0..mc.div_ceil(MR) {
                        let mr = (mc - st * MR).min(MR);
                        let row = i0 + st * MR;
                        for jp in 0..panels {
                            let bp = match b {
                                BSource::View(_) => s.b.get()[(jp * k + p0) * NR..].as_ptr(),
                                BSource::Packed(pb, n0) => pb.panel((n0 + j0) / NR + jp, p0),
                            };
                            let nr = (nc - jp * NR).min(NR);
                            // SAFETY: rows row..row + mr, columns p0..p0 + kc of A exist
                            // (contract); the panel holds kc steps from p0; the tile rows
                            // st·MR..+mr, columns jp·NR..+nr are inside the block.
                            unsafe {
                                micro.run(
                                    kc,
                                    a.ptr.offset(row as isize * a.rs + p0 as isize * a.cs),
                                    (a.rs, a.cs),
                                    bp,
                                    cb.add(st * MR * ld + jp * NR),
                                    ld,
                                    mr,
                                    nr,
                                    alpha,
                                    p0 > 0,
                                )
                            };
                        }
                    }
                    p0 += kc;
                }
                finish(Block {
                    row: i0,
                    rows: mc,
                    col: j0,
                    cols: nc,
                    data: cb,
                    ld,
                })?;
                i0 += mc;
            }
            j0 += nc;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{BSource, KC, MC, Micro, PackedB, View, gemm};
    use proptest::prelude::*;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(micro: Micro, m: usize, n: usize, k: usize, ta: bool, tb: bool, packed: bool) {
        let av = vals(m * k + 1, 1 + m as u64);
        let bv = vals(k * n + 1, 2 + n as u64);
        let a = if ta {
            View {
                ptr: av.as_ptr(),
                rs: 1,
                cs: m as isize,
            }
        } else {
            View {
                ptr: av.as_ptr(),
                rs: k as isize,
                cs: 1,
            }
        };
        let bview = if tb {
            View {
                ptr: bv.as_ptr(),
                rs: 1,
                cs: k as isize,
            }
        } else {
            View {
                ptr: bv.as_ptr(),
                rs: n as isize,
                cs: 1,
            }
        };
        let ldc = n + 3;
        let mut c = vec![7f32; m * ldc];
        // SAFETY: views address m×k and k×n elements of their vectors.
        let pb = packed.then(|| unsafe { PackedB::pack(k, n, bview) });
        let src = match &pb {
            Some(p) => BSource::Packed(p, 0),
            None => BSource::View(bview),
        };
        // SAFETY: as above; c holds m rows of ldc.
        unsafe { gemm(micro, m, n, k, a, src, 0.5, c.as_mut_ptr(), ldc) };
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j];
                if j >= n {
                    assert_eq!(got, 7.0, "padding column touched");
                    continue;
                }
                let mut s = 0f64;
                for p in 0..k {
                    // SAFETY: in range of the views (see above).
                    let (x, y) = unsafe {
                        (
                            *a.ptr.offset(i as isize * a.rs + p as isize * a.cs),
                            *bview
                                .ptr
                                .offset(p as isize * bview.rs + j as isize * bview.cs),
                        )
                    };
                    s += f64::from(x) * f64::from(y);
                }
                let want = 0.5 * s;
                assert!(
                    (f64::from(got) - want).abs() <= 1e-5 * (1.0 + (k as f64).sqrt()),
                    "{micro:?} {m}×{n}×{k} ta {ta} tb {tb} packed {packed} at ({i},{j}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn blocked_gemm_over_block_edges() {
        for micro in [Micro::Portable, Micro::detect()] {
            for (m, n, k) in [
                (1, 1, 1),
                (6, 16, 4),
                (7, 17, 3),
                (MC + 5, 33, KC + 1),
                (13, 50, 2 * KC + 7),
                (3, 40, 2 * KC + 3),
                (3, 5, 0),
            ] {
                for (ta, tb, packed) in [
                    (false, false, false),
                    (true, true, false),
                    (false, false, true),
                    (true, false, true),
                    (false, true, true),
                ] {
                    check(micro, m, n, k, ta, tb, packed);
                }
            }
        }
    }

    #[test]
    fn packed_b_serves_a_column_window() {
        let (k, n) = (9usize, 40usize);
        let bv = vals(k * n, 5);
        let view = View {
            ptr: bv.as_ptr(),
            rs: n as isize,
            cs: 1,
        };
        // SAFETY: k×n dense.
        let pb = unsafe { PackedB::pack(k, n, view) };
        assert_eq!((pb.k(), pb.n()), (k, n));
        let av = vals(2 * k, 6);
        let a = View {
            ptr: av.as_ptr(),
            rs: k as isize,
            cs: 1,
        };
        let mut c = vec![0f32; 2 * 24];
        // Columns 16..40 of B.
        // SAFETY: as above; c is 2 × 24.
        unsafe {
            gemm(
                Micro::detect(),
                2,
                24,
                k,
                a,
                BSource::Packed(&pb, 16),
                1.0,
                c.as_mut_ptr(),
                24,
            )
        };
        for i in 0..2 {
            for j in 0..24 {
                let want: f32 = (0..k).map(|p| av[i * k + p] * bv[p * n + 16 + j]).sum();
                assert!((c[i * 24 + j] - want).abs() < 1e-5, "({i},{j})");
            }
        }
    }

    /// Single-threaded GFLOP/s of this GEMM (B packed once, B packed per call) against the
    /// `gemm` crate on the DiT-S/2 shapes (`cargo test --release -p dqc-codegen --lib
    /// bench_blocked -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn bench_blocked_against_gemm_crate() {
        let micro = Micro::detect();
        for (m, n, k) in [
            (512usize, 384usize, 384usize),
            (512, 1536, 384),
            (512, 384, 1536),
        ] {
            let av = vals(m * k, 1);
            let bv = vals(k * n, 2);
            let mut c = vec![0f32; m * n];
            let a = View {
                ptr: av.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            let b = View {
                ptr: bv.as_ptr(),
                rs: n as isize,
                cs: 1,
            };
            // SAFETY: dense operands of the given sizes.
            let pb = unsafe { PackedB::pack(k, n, b) };
            let mut best = [f64::MAX; 3];
            for _ in 0..40 {
                for (which, slot) in best.iter_mut().enumerate() {
                    let t0 = std::time::Instant::now();
                    // SAFETY: as above.
                    unsafe {
                        match which {
                            0 => gemm(
                                micro,
                                m,
                                n,
                                k,
                                a,
                                BSource::Packed(&pb, 0),
                                1.0,
                                c.as_mut_ptr(),
                                n,
                            ),
                            1 => gemm(micro, m, n, k, a, BSource::View(b), 1.0, c.as_mut_ptr(), n),
                            _ => ::gemm::gemm(
                                m,
                                n,
                                k,
                                c.as_mut_ptr(),
                                1,
                                n as isize,
                                false,
                                av.as_ptr(),
                                1,
                                k as isize,
                                bv.as_ptr(),
                                1,
                                n as isize,
                                0.0f32,
                                1.0f32,
                                false,
                                false,
                                false,
                                ::gemm::Parallelism::None,
                            ),
                        }
                    }
                    *slot = slot.min(t0.elapsed().as_secs_f64());
                }
            }
            let gf = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
            eprintln!(
                "{m}x{n}x{k}: packed {:.1}, per call {:.1}, gemm crate {:.1} GFLOP/s",
                gf(best[0]),
                gf(best[1]),
                gf(best[2])
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn blocked_gemm_matches_f64(
            m in 1usize..30, n in 1usize..40, k in 0usize..300,
            ta in any::<bool>(), tb in any::<bool>(), packed in any::<bool>(),
        ) {
            check(Micro::detect(), m, n, k, ta, tb, packed);
        }
    }
}
