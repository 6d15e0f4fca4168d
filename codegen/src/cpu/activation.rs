//! An activation applied in place to each finished block of a GEMM, before the compiled
//! epilogue runs: when the epilogue begins `act(acc [+ bias[col]])` (tanh-GELU or SiLU)
//! and uses the accumulator nowhere else, that part runs here eight lanes at a time with
//! AVX2 + FMA, and the epilogue is compiled with the activation's result as its
//! accumulator. Cranelift's vectors are four lanes wide, and these activations are
//! arithmetic-bound (about 20 operations per element), so the wider code takes about a
//! third of the time per element. The formulas are those of the inline code
//! (`exprgen::vector`): `x·σ(2u)` for GELU, `x·σ(x)` for SiLU, `σ(z) = num/(1 + e^-|z|)`.

use super::CpuError;
use super::par::ArgsPtr;
use super::resolve::Ctx;
use super::vexp;
use crate::spec::{Expr, ExprId, Exprs};
use dqc_ir::DType;
use dqc_ir::op::{BinaryOp, GeluApprox};

/// `2·√(2/π)`: GELU's `2u = x·(K + K·0.044715·x²)`.
const K: f32 = 0.797_884_6 * 2.0;
const KC: f32 = K * 0.044_715;
/// The exponent's clamp (as in the inline code): `e^-87` is a normal f32.
const CLAMP: f32 = -87.0;

/// Which activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    /// GELU, tanh form.
    GeluTanh,
    /// `x·sigmoid(x)`.
    Silu,
}

/// An activation taken out of a GEMM epilogue.
#[derive(Clone, Debug)]
pub(super) struct BlockAct {
    act: Act,
    /// f32 argument, element offset and column stride of a bias added before it.
    bias: Option<(u32, i64, i64)>,
}

impl BlockAct {
    /// Split `act(acc [+ bias])` off the epilogue rooted at `root` over `out_shape`
    /// (`[batch…, m, n]`): the activation and the epilogue with that node read as the
    /// accumulator. `None` when the epilogue does not have that form (the accumulator used
    /// elsewhere too, another activation, a bias that varies along rows or is not f32).
    pub fn split(
        ctx: &Ctx,
        exprs: &Exprs,
        root: ExprId,
        out_shape: &[u64],
    ) -> Result<Option<(BlockAct, Exprs)>, CpuError> {
        let n = exprs.nodes.len();
        if root as usize >= n || out_shape.is_empty() {
            return Ok(None);
        }
        // Reachable nodes and how often each is an operand of a reachable node.
        let mut reach = vec![false; n];
        let mut uses = vec![0usize; n];
        reach[root as usize] = true;
        for i in (0..n).rev() {
            if !reach[i] {
                continue;
            }
            for o in Exprs::operands(&exprs.nodes[i].expr) {
                if let Some(u) = uses.get_mut(o as usize) {
                    *u += 1;
                    reach[o as usize] = true;
                }
            }
        }
        let accs: Vec<usize> = (0..n)
            .filter(|&i| reach[i] && matches!(exprs.nodes[i].expr, Expr::Acc))
            .collect();
        let &[acc] = accs.as_slice() else {
            return Ok(None);
        };
        if uses[acc] != 1 || exprs.nodes[acc].dtype != DType::F32 {
            return Ok(None);
        }
        // The activation node: the accumulator's user, or its user's user through a bias.
        let user = |id: usize| {
            (0..n).find(|&i| {
                reach[i] && Exprs::operands(&exprs.nodes[i].expr).contains(&(id as ExprId))
            })
        };
        let Some(first) = user(acc) else {
            return Ok(None);
        };
        let (node, bias) = match &exprs.nodes[first].expr {
            Expr::Binary {
                op: BinaryOp::Add,
                a,
                b,
            } if uses[first] == 1 && exprs.nodes[first].dtype == DType::F32 => {
                let other = if *a as usize == acc { *b } else { *a };
                let Some(Expr::Load { arg, map }) = exprs.get(other).map(|x| &x.expr) else {
                    return Ok(None);
                };
                if exprs.nodes[other as usize].dtype != DType::F32
                    || ctx.arg(*arg)?.dtype != DType::F32
                {
                    return Ok(None);
                }
                let m = ctx.map(map, out_shape.len(), "activation bias")?;
                let (&last, rest) = m.strides.split_last().unwrap_or((&0, &[]));
                if rest.iter().any(|&s| s != 0) {
                    return Ok(None);
                }
                let ranges: Vec<(i64, i64)> = out_shape.iter().map(|&d| (0, d as i64)).collect();
                ctx.check_bounds(*arg, m.offset, &m.strides, &ranges, "activation bias")?;
                let Some(next) = user(first) else {
                    return Ok(None);
                };
                (next, Some((*arg, m.offset, last)))
            }
            _ => (first, None),
        };
        let act = match exprs.nodes[node].expr {
            Expr::Gelu {
                approx: GeluApprox::Tanh,
                ..
            } => Act::GeluTanh,
            Expr::Silu { .. } => Act::Silu,
            _ => return Ok(None),
        };
        if exprs.nodes[node].dtype != DType::F32 {
            return Ok(None);
        }
        let mut rest = exprs.clone();
        rest.nodes[node].expr = Expr::Acc;
        Ok(Some((BlockAct { act, bias }, rest)))
    }

    /// Apply to `rows` rows of `cols` values `ld` apart at `data`, whose first column is
    /// column `col0` of the product.
    ///
    /// # Safety
    /// `args` are the kernel's arguments (the bias, when there is one, was checked against
    /// them at compile time for every column of the product); `data` addresses the rows,
    /// writable; `col0 + cols` is at most the product's column count.
    pub unsafe fn apply(
        &self,
        args: ArgsPtr,
        col0: u64,
        rows: usize,
        cols: usize,
        data: *mut f32,
        ld: usize,
    ) {
        let bias = self.bias.map(|(arg, off, cs)| {
            // SAFETY: the argument exists (checked at compile time); the offset of column
            // `col0` is inside it.
            let p = unsafe { (*args.get().add(arg as usize)).cast::<f32>().cast_const() };
            (
                p.wrapping_offset((off + col0 as i64 * cs) as isize),
                cs as isize,
            )
        });
        #[cfg(target_arch = "x86_64")]
        let wide = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && bias.is_none_or(|(_, cs)| cs == 1);
        for r in 0..rows {
            // SAFETY: row r holds `cols` writable values (contract).
            let row = unsafe { std::slice::from_raw_parts_mut(data.add(r * ld), cols) };
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the CPU has the features; the bias covers the row's columns.
                unsafe { avx2::apply_row(self.act, row, bias.map(|(p, _)| p)) };
                continue;
            }
            for (j, x) in row.iter_mut().enumerate() {
                // SAFETY: the bias covers every column of the product (checked at compile
                // time).
                let b = bias.map_or(0.0, |(p, cs)| unsafe { *p.offset(j as isize * cs) });
                *x = act1(self.act, *x + b);
            }
        }
    }
}

/// `σ(z)` as `num/(1 + e)`, `e = e^-|z|` (clamped at `e^-87`, so never subnormal), `num = 1`
/// for `z ≥ 0` and `e` below: no overflow, relative accuracy kept in the negative tail.
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let nz = -z.abs();
    let e = vexp::exp(if nz < CLAMP { CLAMP } else { nz });
    let num = if z < 0.0 { e } else { 1.0 };
    num / (1.0 + e)
}

/// One element.
#[inline(always)]
fn act1(act: Act, x: f32) -> f32 {
    match act {
        Act::GeluTanh => x * sigmoid(x * (K + KC * (x * x))),
        Act::Silu => x * sigmoid(x),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Act, CLAMP, K, KC, act1};
    use crate::cpu::vexp;
    use std::arch::x86_64::*;

    /// One row in place, plus `bias[j]` before the activation when given.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `bias` addresses `row.len()` f32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply_row(act: Act, row: &mut [f32], bias: Option<*const f32>) {
        let mut chunks = row.chunks_exact_mut(8);
        let mut j = 0usize;
        for c in &mut chunks {
            // SAFETY: eight values in the chunk and at bias + j (contract).
            unsafe {
                let mut x = _mm256_loadu_ps(c.as_ptr());
                if let Some(b) = bias {
                    x = _mm256_add_ps(x, _mm256_loadu_ps(b.add(j)));
                }
                let z = match act {
                    Act::GeluTanh => {
                        let x2 = _mm256_mul_ps(x, x);
                        _mm256_mul_ps(
                            x,
                            _mm256_fmadd_ps(x2, _mm256_set1_ps(KC), _mm256_set1_ps(K)),
                        )
                    }
                    Act::Silu => x,
                };
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_mul_ps(x, sigmoid8(z)));
            }
            j += 8;
        }
        for (i, x) in chunks.into_remainder().iter_mut().enumerate() {
            // SAFETY: as above.
            let b = bias.map_or(0.0, |b| unsafe { *b.add(j + i) });
            *x = act1(act, *x + b);
        }
    }

    /// [`super::sigmoid`] on eight lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sigmoid8(z: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        // −|z|: the sign bit set; `max(clamp, ·)` returns its second operand for NaN.
        let nz = _mm256_or_ps(z, _mm256_set1_ps(-0.0));
        let e = vexp::exp8(_mm256_max_ps(_mm256_set1_ps(CLAMP), nz));
        let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(z, _mm256_setzero_ps());
        let num = _mm256_blendv_ps(one, e, neg);
        _mm256_div_ps(num, _mm256_add_ps(one, e))
    }
}

#[cfg(test)]
mod tests {
    use super::{Act, BlockAct, act1};
    use crate::cpu::Bindings;
    use crate::cpu::par::ArgsPtr;
    use crate::cpu::resolve::{ArgInfo, Ctx};
    use crate::spec::{Expr, Exprs, IndexMap, Term};
    use dqc_ir::DType;
    use dqc_ir::op::{BinaryOp, GeluApprox};

    fn load(e: &mut Exprs, arg: u32, strides: [i64; 2]) -> u32 {
        let map = IndexMap {
            offset: vec![],
            strides: strides.iter().map(|&s| Term::constant(s)).collect(),
        };
        e.push(DType::F32, Expr::Load { arg, map })
    }

    /// `acc + load(arg)` with the load's strides over `[m, n]`.
    fn plus(e: &mut Exprs, acc: u32, arg: u32, strides: [i64; 2]) -> u32 {
        let b = load(e, arg, strides);
        e.push(
            DType::F32,
            Expr::Binary {
                op: BinaryOp::Add,
                a: acc,
                b,
            },
        )
    }

    /// Which epilogues lose their head to the block stage: `act(acc ± bias[col])` and
    /// `act(acc)` do; the accumulator used twice, a bias varying along rows, an integer
    /// bias or another activation do not.
    #[test]
    fn split_takes_only_an_activation_of_the_accumulator_and_a_column_bias() {
        let bindings = Bindings::new();
        let ctx = Ctx {
            kernel: "k",
            bindings: &bindings,
            args: vec![
                ArgInfo {
                    dtype: DType::F32,
                    numel: 8,
                },
                ArgInfo {
                    dtype: DType::F32,
                    numel: 32,
                },
                ArgInfo {
                    dtype: DType::I32,
                    numel: 8,
                },
            ],
        };
        let shape = [4u64, 8];
        type Build = fn(&mut Exprs, u32) -> u32;
        let cases: [(Build, Option<Act>); 7] = [
            (
                |e, acc| e.push(DType::F32, Expr::Silu { x: acc }),
                Some(Act::Silu),
            ),
            (
                |e, acc| {
                    let b = load(e, 0, [0, 1]);
                    let s = e.push(
                        DType::F32,
                        Expr::Binary {
                            op: BinaryOp::Add,
                            a: b,
                            b: acc,
                        },
                    );
                    let g = e.push(
                        DType::F32,
                        Expr::Gelu {
                            approx: GeluApprox::Tanh,
                            x: s,
                        },
                    );
                    let r = load(e, 1, [8, 1]);
                    e.push(
                        DType::F32,
                        Expr::Binary {
                            op: BinaryOp::Mul,
                            a: g,
                            b: r,
                        },
                    )
                },
                Some(Act::GeluTanh),
            ),
            (
                |e, acc| {
                    let g = e.push(DType::F32, Expr::Silu { x: acc });
                    e.push(
                        DType::F32,
                        Expr::Binary {
                            op: BinaryOp::Add,
                            a: g,
                            b: acc,
                        },
                    )
                },
                None,
            ),
            (
                |e, acc| {
                    let s = plus(e, acc, 1, [8, 1]);
                    e.push(DType::F32, Expr::Silu { x: s })
                },
                None,
            ),
            (
                |e, acc| {
                    let s = plus(e, acc, 2, [0, 1]);
                    e.push(DType::F32, Expr::Silu { x: s })
                },
                None,
            ),
            (
                |e, acc| {
                    e.push(
                        DType::F32,
                        Expr::Gelu {
                            approx: GeluApprox::Erf,
                            x: acc,
                        },
                    )
                },
                None,
            ),
            (
                |e, acc| {
                    let b = load(e, 0, [0, 1]);
                    e.push(
                        DType::F32,
                        Expr::Binary {
                            op: BinaryOp::Mul,
                            a: acc,
                            b,
                        },
                    )
                },
                None,
            ),
        ];
        for (i, (build, want)) in cases.into_iter().enumerate() {
            let mut e = Exprs::new();
            let acc = e.push(DType::F32, Expr::Acc);
            let root = build(&mut e, acc);
            let got = BlockAct::split(&ctx, &e, root, &shape).unwrap();
            assert_eq!(got.as_ref().map(|(a, _)| a.act), want, "case {i}");
            if let Some((_, rest)) = got {
                let reach_acc = rest
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.expr, Expr::Acc))
                    .count();
                assert_eq!(
                    reach_acc, 2,
                    "case {i}: the activation node now reads the block"
                );
            }
        }
    }

    fn gelu_f64(x: f64) -> f64 {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
    }

    fn silu_f64(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    /// Every path (eight lanes, remainder, scalar) within the inline code's tolerance of
    /// the f64 formula over [−30, 30], with and without a bias.
    #[test]
    fn block_activations_are_accurate_on_every_path() {
        let vals: Vec<f32> = (0..6003).map(|i| -30.0 + i as f32 * 0.01).collect();
        let zeros = vec![0f32; vals.len()];
        let half: Vec<f32> = vec![0.5; vals.len()];
        for (act, f) in [
            (Act::GeluTanh, gelu_f64 as fn(f64) -> f64),
            (Act::Silu, silu_f64),
        ] {
            for bias in [None, Some(&half)] {
                let mut row = vals.clone();
                let bias_arg = bias.unwrap_or(&zeros);
                let args = [bias_arg.as_ptr().cast_mut().cast::<u8>()];
                let ba = BlockAct {
                    act,
                    bias: bias.map(|_| (0, 0, 1)),
                };
                // SAFETY: one row of vals.len() values; the bias holds as many.
                unsafe { ba.apply(ArgsPtr(args.as_ptr()), 0, 1, row.len(), row.as_mut_ptr(), 0) };
                for (i, (&g, &x)) in row.iter().zip(&vals).enumerate() {
                    let xin = f64::from(x + bias_arg[i]);
                    let w = f(xin);
                    let scalar = act1(act, xin as f32);
                    for got in [f64::from(g), f64::from(scalar)] {
                        let ok = (got - w).abs() <= 1e-6 * (1.0 + w.abs())
                            && (w.abs() < 1e-6 || ((got - w) / w).abs() < 2e-5);
                        assert!(ok, "{act:?} at {xin}: got {got}, want {w}");
                    }
                }
            }
        }
        assert!(act1(Act::GeluTanh, f32::NAN).is_nan());
        assert!(act1(Act::Silu, f32::NAN).is_nan());
        let far = act1(Act::Silu, -1000.0);
        assert!(far.is_finite() && far <= 0.0, "{far}");
        assert_eq!(act1(Act::GeluTanh, 1000.0), 1000.0);
    }
}
