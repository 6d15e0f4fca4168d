//! Scaled dot-product attention: per (batch, head, query block) in parallel, logits by
//! `gemm`, mask and causal limit, softmax over f32 rows (f64 sum), values by `gemm`.

use super::CpuError;
use super::gemm::sgemm;
use super::io::{read_f32, write_f32};
use super::par::SyncPtr;
use super::resolve::{Ctx, Map};
use super::{vexp, with_scratch};
use crate::spec::{Attention, HeadsView};
use dqc_ir::DType;
use rayon::prelude::*;

/// Logits per task (at most): a task takes as many query rows as keep its `rows × Sk`
/// block of logits within 256 KiB (L2), so `K` and `V` are packed for the microkernel
/// once per (batch, head) when the sequence is short.
const LOGITS_PER_TASK: u64 = 64 * 1024;
/// Query rows per task (at least).
const QBLOCK_MIN: u64 = 16;

thread_local! {
    /// The logits block of the running task (reused, so tasks do not allocate).
    static LOGITS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Debug)]
struct View {
    arg: u32,
    offset: i64,
    bs: i64,
    ss: i64,
    hs: i64,
}

/// A checked attention kernel.
pub(super) struct AttentionKernel {
    b: u64,
    sq: u64,
    sk: u64,
    h: u64,
    hkv: u64,
    d: u64,
    dv: u64,
    scale: f32,
    causal: bool,
    q: View,
    k: View,
    v: View,
    mask: Option<(u32, Map, DType, u64)>,
    dtype: DType,
    numel: [u64; 3],
    out: u32,
}

fn view(ctx: &Ctx, hv: &HeadsView, dims: [u64; 4], what: &str) -> Result<View, CpuError> {
    let v = View {
        arg: hv.arg,
        offset: ctx.poly(&hv.offset)?,
        bs: ctx.term(&hv.batch_stride)?,
        ss: ctx.term(&hv.seq_stride)?,
        hs: ctx.term(&hv.head_stride)?,
    };
    let ranges: Vec<(i64, i64)> = dims.iter().map(|&d| (0, d as i64)).collect();
    ctx.check_bounds(hv.arg, v.offset, &[v.bs, v.ss, v.hs, 1], &ranges, what)?;
    Ok(v)
}

/// Resolve and check the spec.
pub(super) fn compile(ctx: &Ctx, spec: &Attention) -> Result<AttentionKernel, CpuError> {
    let (b, sq, sk) = (
        ctx.dim(&spec.batch)?,
        ctx.dim(&spec.sq)?,
        ctx.dim(&spec.sk)?,
    );
    let (h, hkv, d, dv) = (spec.heads, spec.kv_heads, spec.head_dim, spec.v_head_dim);
    if h == 0 || hkv == 0 || h % hkv != 0 {
        return Err(ctx.malformed(format!(
            "heads ({h}) must be a positive multiple of kv_heads ({hkv})"
        )));
    }
    if !spec.dtype.is_float() || spec.dtype.is_packed() {
        return Err(ctx.unsupported(format!("attention in {}", spec.dtype)));
    }
    let q = view(ctx, &spec.q, [b, sq, h, d], "q")?;
    let k = view(ctx, &spec.k, [b, sk, hkv, d], "k")?;
    let v = view(ctx, &spec.v, [b, sk, hkv, dv], "v")?;
    let mut numel = [0u64; 3];
    for (i, vw) in [&q, &k, &v].into_iter().enumerate() {
        let info = ctx.arg(vw.arg)?;
        if info.dtype != spec.dtype {
            return Err(ctx.malformed(format!(
                "argument {} has dtype {}, attention runs in {}",
                vw.arg, info.dtype, spec.dtype
            )));
        }
        numel[i] = info.numel;
    }
    let total = b * sq * h * dv;
    ctx.check_dense(spec.out, Some(spec.dtype), total, "output")?;
    let mask = match &spec.mask {
        None => None,
        Some((arg, map, dt)) => {
            let m = ctx.map(map, 4, "mask")?;
            let dims = [b, h, sq, sk];
            let ranges: Vec<(i64, i64)> = dims.iter().map(|&x| (0, x as i64)).collect();
            ctx.check_bounds(*arg, m.offset, &m.strides, &ranges, "mask")?;
            let info = ctx.arg(*arg)?;
            if info.dtype != *dt || !(*dt == DType::Bool || dt.is_float()) {
                return Err(ctx.malformed(format!(
                    "mask argument {arg} has dtype {}, spec says {dt} (bool or float needed)",
                    info.dtype
                )));
            }
            Some((*arg, m, *dt, info.numel))
        }
    };
    Ok(AttentionKernel {
        b,
        sq,
        sk,
        h,
        hkv,
        d,
        dv,
        scale: spec.scale,
        causal: spec.causal,
        q,
        k,
        v,
        mask,
        dtype: spec.dtype,
        numel,
        out: spec.out,
    })
}

impl AttentionKernel {
    /// Query blocks per (batch, head) so that the `bh` heads give every thread about two
    /// tasks.
    fn rows_split(&self, bh: u64) -> u64 {
        let want = 2 * rayon::current_num_threads() as u64;
        want.div_ceil(bh.max(1)).max(1)
    }

    /// Run.
    ///
    /// # Safety
    /// `run_kernel`'s contract.
    pub unsafe fn run(&self, _name: &str, args: &[*mut u8]) -> Result<(), CpuError> {
        let (b, sq, sk, h, d, dv) = (self.b, self.sq, self.sk, self.h, self.d, self.dv);
        let total = (b * sq * h * dv) as usize;
        if total == 0 {
            return Ok(());
        }
        // SAFETY: sizes checked at compile time.
        let qv = unsafe {
            read_f32(
                self.dtype,
                args[self.q.arg as usize],
                self.numel[0] as usize,
            )
        };
        // SAFETY: as above.
        let kv = unsafe {
            read_f32(
                self.dtype,
                args[self.k.arg as usize],
                self.numel[1] as usize,
            )
        };
        // SAFETY: as above.
        let vv = unsafe {
            read_f32(
                self.dtype,
                args[self.v.arg as usize],
                self.numel[2] as usize,
            )
        };
        let maskv: Option<(Vec<f32>, &Map, bool)> =
            self.mask.as_ref().map(|(arg, m, dt, numel)| {
                let p = args[*arg as usize];
                let vals = if *dt == DType::Bool {
                    // SAFETY: as above.
                    let s = unsafe { std::slice::from_raw_parts(p, *numel as usize) };
                    s.iter().map(|&x| f32::from(u8::from(x != 0))).collect()
                } else {
                    // SAFETY: as above.
                    unsafe { read_f32(*dt, p, *numel as usize) }.into_owned()
                };
                (vals, m, *dt == DType::Bool)
            });
        let direct = self.dtype == DType::F32;
        let mut scratch = if direct {
            Vec::new()
        } else {
            vec![0f32; total]
        };
        let out = SyncPtr(if direct {
            args[self.out as usize].cast::<f32>()
        } else {
            scratch.as_mut_ptr()
        });
        let group = h / self.hkv;
        let qb = (LOGITS_PER_TASK / sk.max(1))
            .max(QBLOCK_MIN)
            .min(sq.div_ceil(self.rows_split(b * h)))
            .max(1);
        let qt = sq.div_ceil(qb);
        let ldo = (h * dv) as isize;
        (0..b * h * qt).into_par_iter().for_each(|task| {
            let bi = task / (h * qt);
            let hi = (task / qt) % h;
            let i0 = (task % qt) * qb;
            let rows = (sq - i0).min(qb) as usize;
            let g = hi / group;
            let n = sk as usize;
            with_scratch(&LOGITS, |s| {
                // The logits block, then one normalizing factor per row.
                s.resize(rows * n + rows, 0.0);
                let (s, inv) = s.split_at_mut(rows * n);
                let qoff = self.q.offset
                    + bi as i64 * self.q.bs
                    + i0 as i64 * self.q.ss
                    + hi as i64 * self.q.hs;
                let koff = self.k.offset + bi as i64 * self.k.bs + g as i64 * self.k.hs;
                let voff = self.v.offset + bi as i64 * self.v.bs + g as i64 * self.v.hs;
                // SAFETY: views checked against their buffers at compile time.
                unsafe {
                    sgemm(
                        rows,
                        n,
                        d as usize,
                        s.as_mut_ptr(),
                        n as isize,
                        qv.as_ptr().offset(qoff as isize),
                        self.q.ss as isize,
                        1,
                        kv.as_ptr().offset(koff as isize),
                        1,
                        self.k.ss as isize,
                        self.scale,
                    );
                }
                for r in 0..rows {
                    let i = i0 as usize + r;
                    let row = &mut s[r * n..(r + 1) * n];
                    let limited = self.causal || maskv.is_some();
                    for (j, l) in row.iter_mut().enumerate().take(if limited { n } else { 0 }) {
                        let mut ok =
                            !(self.causal && j as i128 > i as i128 + sk as i128 - sq as i128);
                        if let Some((mv, m, is_bool)) = &maskv {
                            let off = m.offset
                                + bi as i64 * m.strides[0]
                                + hi as i64 * m.strides[1]
                                + i as i64 * m.strides[2]
                                + j as i64 * m.strides[3];
                            let x = mv[off as usize];
                            if *is_bool {
                                ok &= x != 0.0;
                            } else {
                                *l += x;
                            }
                        }
                        if !ok {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                    inv[r] = exp_row(row);
                }
                // SAFETY: this task writes rows i0..i0+rows, head hi of the output only.
                unsafe {
                    let dst = out
                        .get()
                        .offset(((bi * sq + i0) * h * dv + hi * dv) as isize);
                    sgemm(
                        rows,
                        dv as usize,
                        n,
                        dst,
                        ldo,
                        s.as_ptr(),
                        n as isize,
                        1,
                        vv.as_ptr().offset(voff as isize),
                        self.v.ss as isize,
                        1,
                        1.0,
                    );
                    // Normalize: row r of P·V times 1/Σ of row r of the exponentials.
                    for (r, &f) in inv.iter().enumerate() {
                        let o = std::slice::from_raw_parts_mut(
                            dst.offset(r as isize * ldo),
                            dv as usize,
                        );
                        for x in o {
                            *x *= f;
                        }
                    }
                }
            });
        });
        if !direct {
            // SAFETY: the output holds `total` elements of the dtype (checked at compile).
            unsafe { write_f32(self.dtype, args[self.out as usize], 0, &scratch) };
        }
        Ok(())
    }
}

/// The unnormalized softmax of one row of logits in place (`e^(x − max)`), returning the
/// factor `1/Σ` that normalizes it (the kernel applies it to the much smaller `P·V` row
/// instead of to the row itself); a row with no finite logit (all masked) becomes zeros
/// and the factor 0. Runs the AVX2 + FMA build of the same code when the CPU has both.
fn exp_row(row: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is built for.
            return unsafe { exp_row_avx2(row) };
        }
    }
    exp_row_body(row)
}

/// Softmax of one row in place: [`exp_row`], then the normalization.
#[cfg(test)]
fn softmax(row: &mut [f32]) {
    let inv = exp_row(row);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// [`exp_row_body`] with the exponentials eight at a time in AVX2 + FMA (agreeing with the
/// scalar code to a few ulps) and the other loops compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_row_avx2(row: &mut [f32]) -> f32 {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return 0.0;
    }
    // SAFETY: the caller's contract.
    (1.0 / unsafe { avx2::exp_shifted_sum(row, max) }) as f32
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::exp_nonpositive;
    use crate::cpu::vexp;
    use std::arch::x86_64::*;

    /// [`super::exp_shifted_sum`], eight lanes per instruction.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_shifted_sum(row: &mut [f32], max: f32) -> f64 {
        let vmax = _mm256_set1_ps(max);
        let mut acc = _mm256_setzero_ps();
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: the chunk holds eight f32.
            unsafe {
                let y = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), vmax));
                _mm256_storeu_ps(c.as_mut_ptr(), y);
                acc = _mm256_add_ps(acc, y);
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let mut sum: f64 = lanes.iter().map(|&l| f64::from(l)).sum();
        for x in chunks.into_remainder() {
            *x = exp_nonpositive(*x - max);
            sum += f64::from(*x);
        }
        sum
    }

    /// [`exp_nonpositive`] on eight lanes ([`vexp::exp8`], so within a few ulps of it).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let lim = _mm256_set1_ps(vexp::FLOOR);
        // `max(lim, x)` returns its second operand when either is NaN: NaN flows through.
        let y = vexp::exp8(_mm256_max_ps(lim, x));
        // Masked (−∞) and subnormal-range inputs give 0.
        let low = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lim);
        _mm256_blendv_ps(y, _mm256_setzero_ps(), low)
    }
}

/// The portable [`exp_row`]: maximum, shifted exponentials and `1/Σ`.
#[inline(always)]
fn exp_row_body(row: &mut [f32]) -> f32 {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return 0.0;
    }
    (1.0 / exp_shifted_sum(row, max)) as f32
}

/// The largest element of `row` (−∞ for an empty row), NaN if any element is NaN; eight
/// lanes of straight-line selects so the compiler vectorizes it.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let pick = |a: f32, x: f32| if x > a || x.is_nan() { x } else { a };
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = pick(*l, x);
        }
    }
    let m = lanes.iter().fold(f32::NEG_INFINITY, |a, &x| pick(a, x));
    chunks.remainder().iter().fold(m, |a, &x| pick(a, x))
}

/// Replace every `x` of `row` by `e^(x - max)` and return the sum (f64 over eight f32
/// partial sums). Written as straight-line lane arithmetic over chunks of eight so the
/// compiler vectorizes it; `exp` is [`exp_nonpositive`].
#[inline(always)]
fn exp_shifted_sum(row: &mut [f32], max: f32) -> f64 {
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (x, l) in c.iter_mut().zip(lanes.iter_mut()) {
            *x = exp_nonpositive(*x - max);
            *l += *x;
        }
    }
    let mut sum: f64 = lanes.iter().map(|&l| f64::from(l)).sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sum += f64::from(*x);
    }
    sum
}

/// `e^x` for `x ≤ 0` (softmax after subtracting the row maximum), [`vexp::exp`]; below
/// [`vexp::FLOOR`] (where f32 results would be subnormal) and for −∞ (masked logits) the
/// result is exactly 0; NaN stays NaN.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // A comparison, not `max`, so that NaN flows through to the result.
    let y = vexp::exp(if x < vexp::FLOOR { vexp::FLOOR } else { x });
    if x < vexp::FLOOR { 0.0 } else { y }
}

#[cfg(test)]
mod exp_tests {
    use super::{exp_nonpositive, exp_row, exp_row_body, exp_shifted_sum, row_max, softmax};

    #[test]
    fn exp_matches_std_on_the_softmax_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            worst = worst.max((got - want).abs() / want);
            x += 0.001_37;
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn row_max_takes_the_largest_and_propagates_nan() {
        let mut row: Vec<f32> = (0..19).map(|i| (i as f32 * 7.0) % 11.0 - 5.0).collect();
        assert_eq!(row_max(&row), 5.0);
        row[17] = 9.5;
        assert_eq!(row_max(&row), 9.5);
        assert_eq!(row_max(&[]), f32::NEG_INFINITY);
        assert_eq!(row_max(&[f32::NEG_INFINITY; 9]), f32::NEG_INFINITY);
        for at in [0, 7, 8, 18] {
            let mut r = row.clone();
            r[at] = f32::NAN;
            assert!(row_max(&r).is_nan(), "NaN at {at}");
        }
    }

    #[test]
    fn shifted_sum_covers_tails() {
        let mut row: Vec<f32> = (0..13).map(|i| -(i as f32) * 0.5).collect();
        let want: f64 = row.iter().map(|&x| f64::from(x).exp()).sum();
        let got = exp_shifted_sum(&mut row, 0.0);
        assert!((got - want).abs() / want < 1e-6);
        assert!((f64::from(row[12]) - (-6f64).exp()).abs() < 1e-8);
    }

    #[test]
    fn softmax_agrees_on_every_path_and_zeroes_masked_rows() {
        for n in [1usize, 7, 8, 9, 31, 256] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 23) as f32 * 0.37 - 4.0)
                .collect();
            let (mut fast, mut plain) = (row.clone(), row.clone());
            let (inv_fast, inv_plain) = (exp_row(&mut fast), exp_row_body(&mut plain));
            assert!((inv_fast / inv_plain - 1.0).abs() < 1e-6, "n {n}");
            for (a, b) in fast.iter().zip(&plain) {
                assert!((a - b).abs() <= 1e-6 * b.abs(), "n {n}: {a} vs {b}");
            }
            let mut fast = row.clone();
            softmax(&mut fast);
            let sum: f64 = fast.iter().map(|&x| f64::from(x)).sum();
            assert!((sum - 1.0).abs() < 1e-5, "n {n}: sum {sum}");
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denom: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
            for (&x, &p) in row.iter().zip(&fast) {
                let want = f64::from(x - max).exp() / denom;
                assert!((f64::from(p) - want).abs() < 1e-6, "n {n}: {p} vs {want}");
            }
        }
        let mut masked = vec![f32::NEG_INFINITY; 12];
        softmax(&mut masked);
        assert!(masked.iter().all(|&x| x == 0.0));
    }
}
