//! CPU backend: row reductions, GEMM, attention, convolution, selective scan.

mod cpu_common;

use cpu_common::*;
use dqc_codegen::spec::{
    Attention, Conv, Expr, Exprs, Gemm, HeadsView, Kernel, MatOperand, RowOp, RowReduce, Scalar,
    SelectiveScan,
};
use dqc_ir::op::{BinaryOp, GeluApprox, ReduceOp};
use dqc_ir::{DType, Dim, Shape};
use proptest::prelude::*;

fn acc_only(dt: DType) -> (Exprs, u32) {
    let mut e = Exprs::new();
    let a = e.push(dt, Expr::Acc);
    (e, a)
}

/// RowReduce over `x: [rows, len]` loaded densely, epilogue = Acc.
fn row_program(
    rows: u64,
    len: u64,
    in_dt: DType,
    out_dt: DType,
    op: RowOp,
) -> dqc_codegen::spec::Program {
    let mut e = Exprs::new();
    let x = load(&mut e, in_dt, 0, map(0, &[len as i64, 1]));
    let acc = e.push(out_dt, Expr::Acc);
    let out_shape = if op.reduces() {
        vec![rows]
    } else {
        vec![rows, len]
    };
    program(
        &[(in_dt, vec![rows, len]), (out_dt, out_shape)],
        Kernel::RowReduce(RowReduce {
            shape: fixed(&[rows, len]),
            axis: 1,
            op,
            exprs: e,
            input: x,
            epilogue: acc,
            out: 1,
        }),
        vec![1],
    )
}

#[test]
fn layer_norm_with_affine_epilogue() {
    // out = LN(x)·gamma + beta over rows of 4
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[4, 1]));
    let acc = e.push(DType::F32, Expr::Acc);
    let g = load(&mut e, DType::F32, 1, map(0, &[0, 1]));
    let b = load(&mut e, DType::F32, 2, map(0, &[0, 1]));
    let m = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Mul,
            a: acc,
            b: g,
        },
    );
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: m,
            b,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![2, 4]),
            (DType::F32, vec![4]),
            (DType::F32, vec![4]),
            (DType::F32, vec![2, 4]),
        ],
        Kernel::RowReduce(RowReduce {
            shape: fixed(&[2, 4]),
            axis: 1,
            op: RowOp::LayerNorm { eps: 0.0 },
            exprs: e,
            input: x,
            epilogue: s,
            out: 3,
        }),
        vec![3],
    );
    let mut bufs = [
        Buf::f32(&[1., 2., 3., 4., 2., 2., 2., 6.]),
        Buf::f32(&[1., 1., 2., 2.]),
        Buf::f32(&[0., 10., 0., 10.]),
        Buf::zeros(DType::F32, 8),
    ];
    run(&p, &mut bufs).unwrap();
    // row 0: mean 2.5, var 1.25; row 1: mean 3, var 3
    let r0: Vec<f32> = [1., 2., 3., 4.]
        .iter()
        .map(|v: &f32| (v - 2.5) / 1.25f32.sqrt())
        .collect();
    let r1: Vec<f32> = [2., 2., 2., 6.]
        .iter()
        .map(|v: &f32| (v - 3.0) / 3f32.sqrt())
        .collect();
    let want = [
        r0[0],
        r0[1] + 10.,
        r0[2] * 2.,
        r0[3] * 2. + 10.,
        r1[0],
        r1[1] + 10.,
        r1[2] * 2.,
        r1[3] * 2. + 10.,
    ];
    assert_close(&bufs[3].to_f32(), &want, 1e-6);
}

#[test]
fn softmax_rms_and_reductions_match_naive() {
    let (rows, len) = (37u64, 50u64);
    let x = rand_f32((rows * len) as usize, 3);
    let rowsv: Vec<&[f32]> = x.chunks(len as usize).collect();
    type RowFn = Box<dyn Fn(&[f32]) -> Vec<f32>>;
    let cases: Vec<(RowOp, RowFn)> = vec![
        (
            RowOp::Softmax,
            Box::new(|r: &[f32]| {
                let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
                r.iter().map(|v| (v - m).exp() / s).collect()
            }),
        ),
        (
            RowOp::RmsNorm { eps: 1e-6 },
            Box::new(|r: &[f32]| {
                let ms: f32 = r.iter().map(|v| v * v).sum::<f32>() / r.len() as f32;
                r.iter().map(|v| v / (ms + 1e-6).sqrt()).collect()
            }),
        ),
        (
            RowOp::Reduce(ReduceOp::Sum),
            Box::new(|r: &[f32]| vec![r.iter().sum()]),
        ),
        (
            RowOp::Reduce(ReduceOp::Max),
            Box::new(|r: &[f32]| vec![r.iter().cloned().fold(f32::NEG_INFINITY, f32::max)]),
        ),
        (
            RowOp::Reduce(ReduceOp::L2),
            Box::new(|r: &[f32]| vec![r.iter().map(|v| v * v).sum::<f32>().sqrt()]),
        ),
        (
            RowOp::Reduce(ReduceOp::Mean),
            Box::new(|r: &[f32]| vec![r.iter().sum::<f32>() / r.len() as f32]),
        ),
    ];
    for (op, f) in cases {
        let p = row_program(rows, len, DType::F32, DType::F32, op);
        let n_out = if op.reduces() { rows } else { rows * len } as usize;
        let mut bufs = [Buf::f32(&x), Buf::zeros(DType::F32, n_out)];
        run(&p, &mut bufs).unwrap();
        let want: Vec<f32> = rowsv.iter().flat_map(|r| f(r)).collect();
        assert_close(&bufs[1].to_f32(), &want, 2e-5);
    }
}

#[test]
fn argmax_takes_the_first_of_ties() {
    let p = row_program(2, 4, DType::F32, DType::I64, RowOp::ArgReduce { max: true });
    let mut bufs = [
        Buf::f32(&[1., 3., 3., 2., 5., 5., 5., 5.]),
        Buf::zeros(DType::I64, 2),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_i64(), vec![1, 0]);
    let p = row_program(
        1,
        4,
        DType::I32,
        DType::I64,
        RowOp::ArgReduce { max: false },
    );
    let mut bufs = [
        Buf::ints(DType::I32, &[4, -2, 7, -2]),
        Buf::zeros(DType::I64, 1),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_i64(), vec![1]);
}

#[test]
fn cumsum_exclusive_and_reverse_stay_integer() {
    let x = [1i64, 2, 3, 4];
    let cases = [
        (false, false, vec![1i64, 3, 6, 10]),
        (true, false, vec![0, 1, 3, 6]),
        (false, true, vec![10, 9, 7, 4]),
        (true, true, vec![9, 7, 4, 0]),
    ];
    for (exclusive, reverse, want) in cases {
        let p = row_program(
            1,
            4,
            DType::I32,
            DType::I32,
            RowOp::CumSum { exclusive, reverse },
        );
        let mut bufs = [Buf::ints(DType::I32, &x), Buf::zeros(DType::I32, 4)];
        run(&p, &mut bufs).unwrap();
        assert_eq!(
            bufs[1].to_i64(),
            want,
            "exclusive {exclusive} reverse {reverse}"
        );
    }
    // floats too
    let p = row_program(
        1,
        3,
        DType::F32,
        DType::F32,
        RowOp::CumSum {
            exclusive: false,
            reverse: true,
        },
    );
    let mut bufs = [Buf::f32(&[0.5, 1.0, 2.0]), Buf::zeros(DType::F32, 3)];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_f32(), vec![3.5, 3.0, 2.0]);
}

#[test]
fn reduce_over_transposed_trailing_axes() {
    // x stored as [3, 2] but reduced as rows over a [2, 3] view: row i = column i
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[1, 2]));
    let acc = e.push(DType::F32, Expr::Acc);
    let p = program(
        &[(DType::F32, vec![3, 2]), (DType::F32, vec![2])],
        Kernel::RowReduce(RowReduce {
            shape: fixed(&[2, 3]),
            axis: 1,
            op: RowOp::Reduce(ReduceOp::Sum),
            exprs: e,
            input: x,
            epilogue: acc,
            out: 1,
        }),
        vec![1],
    );
    let mut bufs = [
        Buf::f32(&[1., 10., 2., 20., 3., 30.]),
        Buf::zeros(DType::F32, 2),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_f32(), vec![6., 60.]);
}

// ---------------------------------------------------------------------------------- GEMM

fn operand(arg: u32, offset: i64, batch: &[i64], rs: i64, cs: i64) -> MatOperand {
    MatOperand {
        arg,
        offset: if offset == 0 { vec![] } else { vec![t(offset)] },
        batch_strides: batch.iter().map(|&s| t(s)).collect(),
        row_stride: t(rs),
        col_stride: t(cs),
    }
}

/// An f32 GEMM of a dense row-major `A` (argument 0, `m × k`) and `B` (argument 1,
/// `k × n`) with the given epilogue writing argument `out`.
fn dense_f32_gemm(m: u64, n: u64, k: u64, exprs: Exprs, epilogue: u32, out: u32) -> Kernel {
    Kernel::Gemm(Gemm {
        batch: Shape::scalar(),
        m: Dim::fixed(m),
        n: Dim::fixed(n),
        k: Dim::fixed(k),
        a: operand(0, 0, &[], k as i64, 1),
        b: operand(1, 0, &[], n as i64, 1),
        in_dtype: DType::F32,
        acc_dtype: DType::F32,
        alpha: 1.0,
        exprs,
        epilogue,
        out,
    })
}

#[allow(clippy::too_many_arguments)]
fn naive_gemm(
    batch: u64,
    m: u64,
    n: u64,
    k: u64,
    a: &[f32],
    ao: (i64, i64, i64),
    b: &[f32],
    bo: (i64, i64, i64),
    alpha: f32,
) -> Vec<f32> {
    let mut out = Vec::new();
    for bi in 0..batch as i64 {
        for i in 0..m as i64 {
            for j in 0..n as i64 {
                let mut s = 0f64;
                for p in 0..k as i64 {
                    let x = a[(bi * ao.0 + i * ao.1 + p * ao.2) as usize];
                    let y = b[(bi * bo.0 + p * bo.1 + j * bo.2) as usize];
                    s += f64::from(x) * f64::from(y);
                }
                out.push(alpha * s as f32);
            }
        }
    }
    out
}

#[test]
fn gemm_2x2_with_bias_gelu_residual_epilogue() {
    // out = gelu(A·B + bias[n]) + res[m, n]
    let mut e = Exprs::new();
    let acc = e.push(DType::F32, Expr::Acc);
    let bias = load(&mut e, DType::F32, 2, map(0, &[0, 1]));
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: acc,
            b: bias,
        },
    );
    let g = e.push(
        DType::F32,
        Expr::Gelu {
            approx: GeluApprox::Tanh,
            x: s,
        },
    );
    let res = load(&mut e, DType::F32, 3, map(0, &[2, 1]));
    let o = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: g,
            b: res,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![2, 2]),
            (DType::F32, vec![2, 2]),
            (DType::F32, vec![2]),
            (DType::F32, vec![2, 2]),
            (DType::F32, vec![2, 2]),
        ],
        Kernel::Gemm(Gemm {
            batch: Shape::scalar(),
            m: Dim::fixed(2),
            n: Dim::fixed(2),
            k: Dim::fixed(2),
            a: operand(0, 0, &[], 2, 1),
            b: operand(1, 0, &[], 2, 1),
            in_dtype: DType::F32,
            acc_dtype: DType::F32,
            alpha: 1.0,
            exprs: e,
            epilogue: o,
            out: 4,
        }),
        vec![4],
    );
    let mut bufs = [
        Buf::f32(&[1., 2., 3., 4.]),
        Buf::f32(&[1., 0., 0., 1.]),
        Buf::f32(&[0.5, -10.]),
        Buf::f32(&[100., 200., 300., 400.]),
        Buf::zeros(DType::F32, 4),
    ];
    run(&p, &mut bufs).unwrap();
    let gelu = |x: f64| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    };
    let want = [
        gelu(1.5) + 100.,
        gelu(-8.) + 200.,
        gelu(3.5) + 300.,
        gelu(-6.) + 400.,
    ];
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_close(&bufs[4].to_f32(), &want, 1e-6);
}

/// Activations at the head of GEMM epilogues, over several cache blocks and a ragged
/// edge: the forms the backend applies to each finished block (`act(acc + bias[n])`,
/// `act(acc)`) and forms it must leave to the compiled epilogue (the accumulator used
/// twice, a bias that varies along rows), each against an f64 reference.
#[test]
fn gemm_activation_epilogues_over_blocks() {
    let (m, n, k) = (157u64, 150u64, 19u64);
    let a = rand_f32((m * k) as usize, 11);
    let b = rand_f32((k * n) as usize, 12);
    let bias = rand_f32(n as usize, 13);
    let full = rand_f32((m * n) as usize, 14);
    let prod = naive_gemm(1, m, n, k, &a, (0, k as i64, 1), &b, (0, n as i64, 1), 1.0);
    let gelu = |x: f64| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    };
    let silu = |x: f64| x / (1.0 + (-x).exp());
    type Build = fn(&mut Exprs, u32, u32, u32) -> u32;
    type Want = Box<dyn Fn(f64, f64, f64) -> f64>;
    let cases: Vec<(&str, Build, Want)> = vec![
        (
            "silu(bias + acc) * full",
            |e, acc, bias, full| {
                let s = e.push(
                    DType::F32,
                    Expr::Binary {
                        op: BinaryOp::Add,
                        a: bias,
                        b: acc,
                    },
                );
                let y = e.push(DType::F32, Expr::Silu { x: s });
                e.push(
                    DType::F32,
                    Expr::Binary {
                        op: BinaryOp::Mul,
                        a: y,
                        b: full,
                    },
                )
            },
            Box::new(move |p, bi, f| silu(p + bi) * f),
        ),
        (
            "gelu(acc)",
            |e, acc, _, _| {
                e.push(
                    DType::F32,
                    Expr::Gelu {
                        approx: GeluApprox::Tanh,
                        x: acc,
                    },
                )
            },
            Box::new(move |p, _, _| gelu(p)),
        ),
        (
            "acc + gelu(acc)",
            |e, acc, _, _| {
                let g = e.push(
                    DType::F32,
                    Expr::Gelu {
                        approx: GeluApprox::Tanh,
                        x: acc,
                    },
                );
                e.push(
                    DType::F32,
                    Expr::Binary {
                        op: BinaryOp::Add,
                        a: acc,
                        b: g,
                    },
                )
            },
            Box::new(move |p, _, _| p + gelu(p)),
        ),
        (
            "gelu(acc + full)",
            |e, acc, _, full| {
                let s = e.push(
                    DType::F32,
                    Expr::Binary {
                        op: BinaryOp::Add,
                        a: acc,
                        b: full,
                    },
                );
                e.push(
                    DType::F32,
                    Expr::Gelu {
                        approx: GeluApprox::Tanh,
                        x: s,
                    },
                )
            },
            Box::new(move |p, _, f| gelu(p + f)),
        ),
    ];
    for (what, build, want) in cases {
        let mut e = Exprs::new();
        let acc = e.push(DType::F32, Expr::Acc);
        let bl = load(&mut e, DType::F32, 2, map(0, &[0, 1]));
        let fl = load(&mut e, DType::F32, 3, map(0, &[n as i64, 1]));
        let root = build(&mut e, acc, bl, fl);
        let p = program(
            &[
                (DType::F32, vec![m, k]),
                (DType::F32, vec![k, n]),
                (DType::F32, vec![n]),
                (DType::F32, vec![m, n]),
                (DType::F32, vec![m, n]),
            ],
            dense_f32_gemm(m, n, k, e, root, 4),
            vec![4],
        );
        let mut bufs = [
            Buf::f32(&a),
            Buf::f32(&b),
            Buf::f32(&bias),
            Buf::f32(&full),
            Buf::zeros(DType::F32, (m * n) as usize),
        ];
        run(&p, &mut bufs).unwrap();
        let expect: Vec<f32> = (0..(m * n) as usize)
            .map(|i| {
                want(
                    f64::from(prod[i]),
                    f64::from(bias[i % n as usize]),
                    f64::from(full[i]),
                ) as f32
            })
            .collect();
        let got = bufs[4].to_f32();
        for (i, (g, w)) in got.iter().zip(&expect).enumerate() {
            assert!(
                (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
                "{what}: element {i}: got {g}, want {w}"
            );
        }
    }
}

#[test]
fn gemm_int8_accumulates_in_i32() {
    let (e, acc) = acc_only(DType::I32);
    let p = program(
        &[
            (DType::I8, vec![1, 2]),
            (DType::U8, vec![2, 1]),
            (DType::I32, vec![1, 1]),
        ],
        Kernel::Gemm(Gemm {
            batch: Shape::scalar(),
            m: Dim::fixed(1),
            n: Dim::fixed(1),
            k: Dim::fixed(2),
            a: operand(0, 0, &[], 2, 1),
            b: operand(1, 0, &[], 1, 1),
            in_dtype: DType::I8,
            acc_dtype: DType::I32,
            alpha: 1.0,
            exprs: e,
            epilogue: acc,
            out: 2,
        }),
        vec![2],
    );
    // i8 and u8 mixed is refused (one input dtype)
    assert!(dqc_codegen::cpu::CpuProgram::compile(&p, &Default::default()).is_err());
    let mut p = p;
    p.buffers[1].dtype = DType::I8;
    let mut bufs = [
        Buf::ints(DType::I8, &[-128, 127]),
        Buf::ints(DType::I8, &[127, 3]),
        Buf::zeros(DType::I32, 1),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[2].to_i64(), vec![-128 * 127 + 127 * 3]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn gemm_strided_batched_matches_naive(
        batch in 1u64..4, m in 1u64..40, n in 1u64..40, k in 0u64..20,
        ta in any::<bool>(), tb in any::<bool>(), bcast in any::<bool>(),
        alpha in -2.0f32..2.0, seed in 0u64..1000,
    ) {
        // A: [batch, m, k] stored transposed per batch if ta; B broadcast over batch if bcast
        let (ars, acs) = if ta { (1, m as i64) } else { (k as i64, 1) };
        let abs = (m * k) as i64;
        let (brs, bcs) = if tb { (1, k as i64) } else { (n as i64, 1) };
        let bbs = if bcast { 0 } else { (k * n) as i64 };
        let av = rand_f32((batch * m * k).max(1) as usize, seed);
        let bv = rand_f32((if bcast { 1 } else { batch } * k * n).max(1) as usize, seed + 9);
        let (e, acc) = acc_only(DType::F32);
        let p = program(
            &[(DType::F32, vec![av.len() as u64]), (DType::F32, vec![bv.len() as u64]), (DType::F32, vec![batch, m, n])],
            Kernel::Gemm(Gemm {
                batch: fixed(&[batch]),
                m: Dim::fixed(m), n: Dim::fixed(n), k: Dim::fixed(k),
                a: operand(0, 0, &[abs], ars, acs),
                b: operand(1, 0, &[bbs], brs, bcs),
                in_dtype: DType::F32, acc_dtype: DType::F32, alpha,
                exprs: e, epilogue: acc, out: 2,
            }),
            vec![2],
        );
        let mut bufs = [Buf::f32(&av), Buf::f32(&bv), Buf::zeros(DType::F32, (batch * m * n) as usize)];
        run(&p, &mut bufs).unwrap();
        let want = naive_gemm(batch, m, n, k, &av, (abs, ars, acs), &bv, (bbs, brs, bcs), alpha);
        assert_close(&bufs[2].to_f32(), &want, 1e-5);
    }
}

/// GEMMs whose product is made in place in the f32 output (see `GemmKernel::direct`): the
/// output starts as NaN, so an element the product or its epilogue skips shows up. Sizes
/// cross the 6 × 16 register tile, the 144-row / 128-column cache blocks and the 384-deep
/// k blocks (accumulated in the output); epilogues: the plain product (stored as it lies),
/// `2·acc + 1` (rewritten in place) and tanh-GELU (the block activation, applied in place).
#[test]
fn gemm_products_made_in_place_overwrite_the_whole_output() {
    for (m, n, k) in [
        (1, 1, 1),
        (7, 17, 5),
        (150, 130, 400),
        (301, 40, 800),
        (13, 48, 0),
    ] {
        let av = rand_f32((m * k).max(1) as usize, m + 1);
        let bv = rand_f32((k * n).max(1) as usize, n + 2);
        let prod = naive_gemm(
            1,
            m,
            n,
            k,
            &av,
            (0, k as i64, 1),
            &bv,
            (0, n as i64, 1),
            1.0,
        );
        for which in 0..3 {
            let mut e = Exprs::new();
            let acc = e.push(DType::F32, Expr::Acc);
            let root = match which {
                0 => acc,
                1 => {
                    let two = e.push(DType::F32, Expr::Const(Scalar::F(2.0)));
                    let one = e.push(DType::F32, Expr::Const(Scalar::F(1.0)));
                    let x = bin(&mut e, DType::F32, BinaryOp::Mul, acc, two);
                    bin(&mut e, DType::F32, BinaryOp::Add, x, one)
                }
                _ => e.push(
                    DType::F32,
                    Expr::Gelu {
                        approx: GeluApprox::Tanh,
                        x: acc,
                    },
                ),
            };
            let p = program(
                &[
                    (DType::F32, vec![(m * k).max(1)]),
                    (DType::F32, vec![(k * n).max(1)]),
                    (DType::F32, vec![m, n]),
                ],
                dense_f32_gemm(m, n, k, e, root, 2),
                vec![2],
            );
            let mut bufs = [
                Buf::f32(&av),
                Buf::f32(&bv),
                Buf::f32(&vec![f32::NAN; (m * n) as usize]),
            ];
            run(&p, &mut bufs).unwrap();
            let want: Vec<f32> = prod
                .iter()
                .map(|&x| match which {
                    0 => x,
                    1 => 2.0 * x + 1.0,
                    _ => {
                        let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
                        0.5 * x * (1.0 + u.tanh())
                    }
                })
                .collect();
            assert_close(&bufs[2].to_f32(), &want, 1e-4);
        }
    }
}

/// `out = A·B + bias[n]` with B a weight buffer (`[k, n]`, transposed in memory if `tb`)
/// of `dt`, compiled with constant weights: packed once, reused, repacked from a new
/// address.
#[allow(clippy::too_many_arguments)]
fn check_weight_gemm(batch: u64, m: u64, n: u64, k: u64, tb: bool, dt: DType, seed: u64) {
    use dqc_codegen::spec::BufferKind;
    let round = |v: Vec<f32>| Buf::of(dt, &v).to_f32();
    let av = round(rand_f32((batch * m * k).max(1) as usize, seed));
    let bias = rand_f32(n.max(1) as usize, seed + 3);
    let (brs, bcs) = if tb { (1, k as i64) } else { (n as i64, 1) };
    let mut e = Exprs::new();
    let acc = e.push(DType::F32, Expr::Acc);
    let bl = load(&mut e, DType::F32, 2, map(0, &[0, 0, 1]));
    let o = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: acc,
            b: bl,
        },
    );
    let mut p = program(
        &[
            (dt, vec![av.len() as u64]),
            (dt, vec![(k * n).max(1)]),
            (DType::F32, vec![n.max(1)]),
            (DType::F32, vec![batch, m, n]),
        ],
        Kernel::Gemm(Gemm {
            batch: fixed(&[batch]),
            m: Dim::fixed(m),
            n: Dim::fixed(n),
            k: Dim::fixed(k),
            a: operand(0, 0, &[(m * k) as i64], k as i64, 1),
            b: operand(1, 0, &[0], brs, bcs),
            in_dtype: dt,
            acc_dtype: DType::F32,
            alpha: 1.0,
            exprs: e,
            epilogue: o,
            out: 3,
        }),
        vec![3],
    );
    p.buffers[1].kind = BufferKind::Weight { name: "w".into() };
    let mut cp = dqc_codegen::cpu::CpuProgram::compile(&p, &Default::default()).unwrap();
    cp.set_weights_constant(true);
    let mut a_buf = Buf::of(dt, &av);
    let mut bias_buf = Buf::f32(&bias);
    // Rounds 0 and 1 use the first B buffer (round 1 runs twice, reusing the panels);
    // round 2 binds the second buffer (another address, other values). Both stay alive, so
    // no address is reused for other bytes (the contract of constant weights).
    let bvs = [seed + 9, seed + 11].map(|s| round(rand_f32((k * n).max(1) as usize, s)));
    let mut b_bufs = bvs.clone().map(|v| Buf::of(dt, &v));
    for round_no in 0..3 {
        let which = usize::from(round_no == 2);
        let (bv, b_buf) = (&bvs[which], &mut b_bufs[which]);
        let mut out = Buf::zeros(DType::F32, (batch * m * n) as usize);
        let ptrs = [a_buf.ptr(), b_buf.ptr(), bias_buf.ptr(), out.ptr()];
        for _ in 0..if round_no == 1 { 2 } else { 1 } {
            // SAFETY: every buffer is sized for its declared shape and 64-byte aligned; B
            // is not written while the program keeps panels of it.
            unsafe { cp.run_kernel(0, &ptrs) }.unwrap();
        }
        let mut want = naive_gemm(
            batch,
            m,
            n,
            k,
            &av,
            ((m * k) as i64, k as i64, 1),
            bv,
            (0, brs, bcs),
            1.0,
        );
        for (i, w) in want.iter_mut().enumerate() {
            *w += bias[i % n as usize];
        }
        assert_close(&out.to_f32(), &want, 1e-5);
    }
}

#[test]
fn gemm_weight_panels_over_block_edges() {
    // Sizes across the 6 × 16 register tile, the 96-row and 256-deep cache blocks, and
    // the tiling into parallel tasks; f16 weights are decoded once.
    for (batch, m, n, k, tb, dt) in [
        (1, 1, 1, 1, false, DType::F32),
        (2, 7, 17, 5, true, DType::F32),
        (1, 2, 100, 300, true, DType::F32),
        (2, 101, 33, 257, false, DType::F32),
        (1, 13, 48, 0, false, DType::F32),
        (1, 9, 40, 20, false, DType::F16),
        (1, 5, 21, 7, true, DType::BF16),
    ] {
        check_weight_gemm(batch, m, n, k, tb, dt, m * 31 + n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn gemm_weight_panels_match_naive(
        batch in 1u64..3, m in 1u64..40, n in 1u64..70, k in 0u64..300,
        tb in any::<bool>(), seed in 0u64..1000,
    ) {
        check_weight_gemm(batch, m, n, k, tb, DType::F32, seed);
    }
}

// ----------------------------------------------------------------------------- attention

#[allow(clippy::too_many_arguments)]
fn naive_attention(
    b: usize,
    sq: usize,
    sk: usize,
    h: usize,
    hkv: usize,
    d: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[u8]>,
    causal: bool,
    scale: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; b * sq * h * d];
    for bi in 0..b {
        for hi in 0..h {
            let g = hi / (h / hkv);
            for i in 0..sq {
                let mut l = vec![f64::NEG_INFINITY; sk];
                for j in 0..sk {
                    let ok = !(causal && j + sq > i + sk)
                        && mask.is_none_or(|m| m[(bi * sq + i) * sk + j] != 0);
                    if ok {
                        let dot: f64 = (0..d)
                            .map(|p| {
                                f64::from(q[((bi * sq + i) * h + hi) * d + p])
                                    * f64::from(k[((bi * sk + j) * hkv + g) * d + p])
                            })
                            .sum();
                        l[j] = f64::from(scale) * dot;
                    }
                }
                let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if mx == f64::NEG_INFINITY {
                    continue;
                }
                let s: f64 = l.iter().map(|x| (x - mx).exp()).sum();
                for e in 0..d {
                    let acc: f64 = (0..sk)
                        .map(|j| {
                            (l[j] - mx).exp() / s * f64::from(v[((bi * sk + j) * hkv + g) * d + e])
                        })
                        .sum();
                    out[((bi * sq + i) * h + hi) * d + e] = acc as f32;
                }
            }
        }
    }
    out
}

fn heads(arg: u32, s: u64, h: u64, d: u64) -> HeadsView {
    HeadsView {
        arg,
        offset: vec![],
        batch_stride: t((s * h * d) as i64),
        seq_stride: t((h * d) as i64),
        head_stride: t(d as i64),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn attention_matches_naive(
        b in 1u64..3, sq in 1u64..20, sk in 1u64..20, hkv in 1u64..3, group in 1u64..3, d in 1u64..9,
        causal in any::<bool>(), with_mask in any::<bool>(), seed in 0u64..1000,
    ) {
        let h = hkv * group;
        let qv = rand_f32((b * sq * h * d) as usize, seed);
        let kv = rand_f32((b * sk * hkv * d) as usize, seed + 1);
        let vv = rand_f32((b * sk * hkv * d) as usize, seed + 2);
        // mask [b, 1, sq, sk] broadcast over heads; row 0 fully masked
        let maskv: Vec<u8> = (0..b * sq * sk).map(|x| u8::from(x % sk != 0 && (x / sk) % sq != 0 || x % 3 == 1)).collect();
        let maskv: Vec<u8> = maskv.iter().enumerate().map(|(x, &m)| if (x as u64 / sk).is_multiple_of(sq) { 0 } else { m }).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let mut bufs_spec = vec![(DType::F32, vec![qv.len() as u64]), (DType::F32, vec![kv.len() as u64]), (DType::F32, vec![vv.len() as u64]), (DType::F32, vec![b, sq, h * d])];
        if with_mask {
            bufs_spec.push((DType::Bool, vec![b, 1, sq, sk]));
        }
        let p = program(
            &bufs_spec,
            Kernel::Attention(Attention {
                batch: Dim::fixed(b), sq: Dim::fixed(sq), sk: Dim::fixed(sk),
                heads: h, kv_heads: hkv, head_dim: d, v_head_dim: d, scale, causal,
                q: heads(0, sq, h, d), k: heads(1, sk, hkv, d), v: heads(2, sk, hkv, d),
                mask: with_mask.then(|| (4, map(0, &[(sq * sk) as i64, 0, sk as i64, 1]), DType::Bool)),
                dtype: DType::F32, out: 3,
            }),
            vec![3],
        );
        let mut bufs = vec![Buf::f32(&qv), Buf::f32(&kv), Buf::f32(&vv), Buf::zeros(DType::F32, (b * sq * h * d) as usize)];
        if with_mask {
            bufs.push(Buf::ints(DType::Bool, &maskv.iter().map(|&m| i64::from(m)).collect::<Vec<_>>()));
        }
        run(&p, &mut bufs).unwrap();
        let want = naive_attention(b as usize, sq as usize, sk as usize, h as usize, hkv as usize, d as usize, &qv, &kv, &vv, with_mask.then_some(&maskv[..]), causal, scale);
        assert_close(&bufs[3].to_f32(), &want, 2e-5);
    }
}

// ---------------------------------------------------------------------------------- conv

#[allow(clippy::too_many_arguments)]
fn naive_conv2d(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    st: [usize; 2],
    pads: [usize; 4],
    dil: [usize; 2],
    g: usize,
    os: [usize; 4],
    bias: &[f32],
) -> Vec<f32> {
    let (cg, mg) = (xs[1] / g, ws[0] / g);
    let mut out = vec![0f32; os.iter().product()];
    for n in 0..os[0] {
        for m in 0..os[1] {
            let gi = m / mg;
            for oy in 0..os[2] {
                for ox in 0..os[3] {
                    let mut s = 0f64;
                    for ci in 0..cg {
                        for ky in 0..ws[2] {
                            for kx in 0..ws[3] {
                                let iy = (oy * st[0] + ky * dil[0]) as i64 - pads[0] as i64;
                                let ix = (ox * st[1] + kx * dil[1]) as i64 - pads[1] as i64;
                                if iy < 0 || ix < 0 || iy >= xs[2] as i64 || ix >= xs[3] as i64 {
                                    continue;
                                }
                                let c = gi * cg + ci;
                                s += f64::from(
                                    x[((n * xs[1] + c) * xs[2] + iy as usize) * xs[3]
                                        + ix as usize],
                                ) * f64::from(w[((m * cg + ci) * ws[2] + ky) * ws[3] + kx]);
                            }
                        }
                    }
                    let _ = mg;
                    out[((n * os[1] + m) * os[2] + oy) * os[3] + ox] = s as f32 + bias[m];
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn conv2d_with_padding_groups_strides_matches_naive(
        n in 1usize..3, g in 1usize..3, cg in 1usize..3, mg in 1usize..3,
        h in 1usize..7, w in 1usize..7, kh in 1usize..4, kw in 1usize..4,
        sy in 1usize..3, sx in 1usize..3, dy in 1usize..3, pad in 0usize..2, seed in 0u64..1000,
    ) {
        let (c, m) = (cg * g, mg * g);
        let span_y = dy * (kh - 1) + 1;
        let span_x = kw;
        prop_assume!(h + 2 * pad >= span_y && w + 2 * pad >= span_x);
        let oh = (h + 2 * pad - span_y) / sy + 1;
        let ow = (w + 2 * pad - span_x) / sx + 1;
        let xs = [n, c, h, w];
        let wsh = [m, cg, kh, kw];
        let os = [n, m, oh, ow];
        let xv = rand_f32(xs.iter().product(), seed);
        let wv = rand_f32(wsh.iter().product(), seed + 5);
        let bias = rand_f32(m, seed + 7);
        let u = |s: &[usize]| s.iter().map(|&v| v as u64).collect::<Vec<u64>>();
        let mut e = Exprs::new();
        let acc = e.push(DType::F32, Expr::Acc);
        let bl = load(&mut e, DType::F32, 2, map(0, &[0, 1, 0, 0]));
        let o = e.push(DType::F32, Expr::Binary { op: BinaryOp::Add, a: acc, b: bl });
        let p = program(
            &[(DType::F32, u(&xs)), (DType::F32, u(&wsh)), (DType::F32, vec![m as u64]), (DType::F32, u(&os))],
            Kernel::Conv(Conv {
                x: 0, w: 1, x_shape: fixed(&u(&xs)), w_shape: fixed(&u(&wsh)), out_shape: fixed(&u(&os)),
                strides: vec![sy as u64, sx as u64], pads: vec![pad as u64, pad as u64, pad as u64, pad as u64],
                dilations: vec![dy as u64, 1], groups: g as u64, dtype: DType::F32,
                exprs: e, epilogue: o, out: 3,
            }),
            vec![3],
        );
        let mut bufs = [Buf::f32(&xv), Buf::f32(&wv), Buf::f32(&bias), Buf::zeros(DType::F32, os.iter().product())];
        run(&p, &mut bufs).unwrap();
        let want = naive_conv2d(&xv, xs, &wv, wsh, [sy, sx], [pad, pad, pad, pad], [dy, 1], g, os, &bias);
        assert_close(&bufs[3].to_f32(), &want, 1e-5);
    }
}

#[test]
fn conv1d_pointwise_and_wrong_output_extent() {
    // 1x1 conv over [1, 2, 3] with w [2, 2, 1]: out[m, p] = Σ_c w[m, c]·x[c, p]
    let (e, acc) = acc_only(DType::F32);
    let mk = |out_len: u64| {
        program(
            &[
                (DType::F32, vec![1, 2, 3]),
                (DType::F32, vec![2, 2, 1]),
                (DType::F32, vec![1, 2, out_len]),
            ],
            Kernel::Conv(Conv {
                x: 0,
                w: 1,
                x_shape: fixed(&[1, 2, 3]),
                w_shape: fixed(&[2, 2, 1]),
                out_shape: fixed(&[1, 2, out_len]),
                strides: vec![1],
                pads: vec![0, 0],
                dilations: vec![1],
                groups: 1,
                dtype: DType::F32,
                exprs: e.clone(),
                epilogue: acc,
                out: 2,
            }),
            vec![2],
        )
    };
    let mut bufs = [
        Buf::f32(&[1., 2., 3., 10., 20., 30.]),
        Buf::f32(&[1., 1., 2., -1.]),
        Buf::zeros(DType::F32, 6),
    ];
    run(&mk(3), &mut bufs).unwrap();
    assert_eq!(bufs[2].to_f32(), vec![11., 22., 33., -8., -16., -24.]);
    assert!(dqc_codegen::cpu::CpuProgram::compile(&mk(4), &Default::default()).is_err());
}

// ---------------------------------------------------------------------------------- scan

#[test]
fn selective_scan_matches_naive_recurrence() {
    let (b, d, l, n) = (2usize, 3usize, 5usize, 4usize);
    let u = rand_f32(b * d * l, 1);
    let delta = rand_f32(b * d * l, 2);
    let a: Vec<f32> = rand_f32(d * n, 3).iter().map(|v| -v.abs() - 0.1).collect();
    let bm = rand_f32(b * n * l, 4);
    let cm = rand_f32(b * n * l, 5);
    let ds = rand_f32(d, 6);
    let z = rand_f32(b * d * l, 7);
    let p = program(
        &[
            (DType::F32, vec![(b * d * l) as u64]),
            (DType::F32, vec![(b * d * l) as u64]),
            (DType::F32, vec![(d * n) as u64]),
            (DType::F32, vec![(b * n * l) as u64]),
            (DType::F32, vec![(b * n * l) as u64]),
            (DType::F32, vec![d as u64]),
            (DType::F32, vec![(b * d * l) as u64]),
            (DType::F32, vec![(b * d * l) as u64]),
        ],
        Kernel::SelectiveScan(SelectiveScan {
            batch: Dim::fixed(b as u64),
            channels: Dim::fixed(d as u64),
            len: Dim::fixed(l as u64),
            state: Dim::fixed(n as u64),
            delta_softplus: true,
            u: 0,
            delta: 1,
            a: 2,
            bm: 3,
            cm: 4,
            d: Some(5),
            z: Some(6),
            out: 7,
        }),
        vec![7],
    );
    let mut bufs = [
        Buf::f32(&u),
        Buf::f32(&delta),
        Buf::f32(&a),
        Buf::f32(&bm),
        Buf::f32(&cm),
        Buf::f32(&ds),
        Buf::f32(&z),
        Buf::zeros(DType::F32, b * d * l),
    ];
    run(&p, &mut bufs).unwrap();
    let mut want = vec![0f32; b * d * l];
    for bi in 0..b {
        for di in 0..d {
            let mut h = vec![0f64; n];
            for ti in 0..l {
                let i = (bi * d + di) * l + ti;
                let dl = (f64::from(delta[i]).exp()).ln_1p();
                let mut y = 0.0;
                for k in 0..n {
                    let bc = (bi * n + k) * l + ti;
                    h[k] = (dl * f64::from(a[di * n + k])).exp() * h[k]
                        + dl * f64::from(bm[bc]) * f64::from(u[i]);
                    y += f64::from(cm[bc]) * h[k];
                }
                y += f64::from(ds[di]) * f64::from(u[i]);
                let zz = f64::from(z[i]);
                y *= zz / (1.0 + (-zz).exp());
                want[i] = y as f32;
            }
        }
    }
    assert_close(&bufs[7].to_f32(), &want, 1e-6);
}

/// Rough timing of the DiT-S/2 GEMM shapes with a bias (+ GELU) epilogue against the
/// `gemm` crate alone (`cargo test --release -p dqc-codegen --test cpu_families bench_dit
/// -- --ignored --nocapture`); best of several runs, in GFLOP/s.
#[test]
#[ignore]
fn bench_dit_mlp_gemm() {
    for (m, n, k, with_gelu) in [
        (512, 384, 384, false),
        (512, 1536, 384, true),
        (512, 384, 1536, false),
        (2, 2304, 384, false),
    ] {
        for constant in [false, true] {
            bench_gemm(m, n, k, with_gelu, constant);
        }
        let (m, n, k) = (m as usize, n as usize, k as usize);
        let a = rand_f32(m * k, 1);
        let b = rand_f32(k * n, 2);
        let mut c = vec![0f32; m * n];
        let mut best = f64::MAX;
        for _ in 0..10 {
            let t0 = std::time::Instant::now();
            // SAFETY: dense row-major operands of the given sizes.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(rayon::current_num_threads()),
                )
            };
            best = best.min(t0.elapsed().as_secs_f64());
        }
        eprintln!(
            "{m}x{n}x{k}: gemm crate alone {:.1} GFLOP/s",
            2.0 * (m * n * k) as f64 / best / 1e9
        );
    }
}

fn bench_gemm(m: u64, n: u64, k: u64, with_gelu: bool, constant: bool) {
    use dqc_codegen::spec::BufferKind;
    let mut e = Exprs::new();
    let acc = e.push(DType::F32, Expr::Acc);
    let bias = load(&mut e, DType::F32, 2, map(0, &[0, 1]));
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: acc,
            b: bias,
        },
    );
    let g = if with_gelu {
        e.push(
            DType::F32,
            Expr::Gelu {
                approx: GeluApprox::Tanh,
                x: s,
            },
        )
    } else {
        s
    };
    let mut p = program(
        &[
            (DType::F32, vec![m, k]),
            (DType::F32, vec![k, n]),
            (DType::F32, vec![n]),
            (DType::F32, vec![m, n]),
        ],
        dense_f32_gemm(m, n, k, e, g, 3),
        vec![3],
    );
    p.buffers[1].kind = BufferKind::Weight { name: "w".into() };
    let mut cp = dqc_codegen::cpu::CpuProgram::compile(&p, &Default::default()).unwrap();
    cp.set_weights_constant(constant);
    let mut bufs = [
        Buf::f32(&rand_f32((m * k) as usize, 1)),
        Buf::f32(&rand_f32((k * n) as usize, 2)),
        Buf::f32(&rand_f32(n as usize, 3)),
        Buf::zeros(DType::F32, (m * n) as usize),
    ];
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.ptr()).collect();
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t0 = std::time::Instant::now();
        // SAFETY: buffers sized for the shapes; B is not written.
        unsafe { cp.run_kernel(0, &ptrs) }.unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    eprintln!(
        "{m}x{n}x{k} + bias (gelu {with_gelu}, constant weights {constant}): {:.1} GFLOP/s",
        2.0 * (m * n * k) as f64 / best / 1e9
    );
}

/// Single-threaded time per element of a DiT-S/2 LayerNorm with the adaLN modulate
/// epilogue `LN(x)·(1 + scale[b]) + shift[b]` over 2 × 256 rows of 384
/// (`cargo test --release -p dqc-codegen --test cpu_families bench_layer_norm -- --ignored
/// --nocapture`); median of 200 runs.
#[test]
#[ignore]
fn bench_layer_norm() {
    let (b, s, n) = (2u64, 256u64, 384u64);
    let mut e = Exprs::new();
    let x = load(
        &mut e,
        DType::F32,
        0,
        map(0, &[(s * n) as i64, n as i64, 1]),
    );
    let acc = e.push(DType::F32, Expr::Acc);
    let sc = load(&mut e, DType::F32, 1, map(0, &[n as i64, 0, 1]));
    let sh = load(&mut e, DType::F32, 2, map(0, &[n as i64, 0, 1]));
    let m = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Mul,
            a: acc,
            b: sc,
        },
    );
    let m = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: m,
            b: acc,
        },
    );
    let y = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: m,
            b: sh,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![b, s, n]),
            (DType::F32, vec![b, n]),
            (DType::F32, vec![b, n]),
            (DType::F32, vec![b, s, n]),
        ],
        Kernel::RowReduce(RowReduce {
            shape: fixed(&[b, s, n]),
            axis: 2,
            op: RowOp::LayerNorm { eps: 1e-6 },
            exprs: e,
            input: x,
            epilogue: y,
            out: 3,
        }),
        vec![3],
    );
    let cp = dqc_codegen::cpu::CpuProgram::compile(&p, &Default::default()).unwrap();
    let numel = (b * s * n) as usize;
    let mut bufs = [
        Buf::f32(&rand_f32(numel, 1)),
        Buf::f32(&rand_f32((b * n) as usize, 2)),
        Buf::f32(&rand_f32((b * n) as usize, 3)),
        Buf::zeros(DType::F32, numel),
    ];
    let t = median_one_thread(&cp, &mut bufs, 200);
    eprintln!(
        "layer norm + modulate, {b}x{s}x{n}: median {:.3} ns/element ({:.1} us)",
        t * 1e9 / numel as f64,
        t * 1e6
    );
}

/// Single-threaded time of the DiT-S/2 attention (2 × 6 heads of 256 × 64, no mask)
/// (`cargo test --release -p dqc-codegen --test cpu_families bench_attention -- --ignored
/// --nocapture`); median of 50 runs, in GFLOP/s of the two products.
#[test]
#[ignore]
fn bench_attention() {
    let (b, s, h, d) = (2u64, 256u64, 6u64, 64u64);
    let n = (b * s * h * d) as usize;
    let p = program(
        &[
            (DType::F32, vec![n as u64]),
            (DType::F32, vec![n as u64]),
            (DType::F32, vec![n as u64]),
            (DType::F32, vec![b, s, h * d]),
        ],
        Kernel::Attention(Attention {
            batch: Dim::fixed(b),
            sq: Dim::fixed(s),
            sk: Dim::fixed(s),
            heads: h,
            kv_heads: h,
            head_dim: d,
            v_head_dim: d,
            scale: 0.125,
            causal: false,
            q: heads(0, s, h, d),
            k: heads(1, s, h, d),
            v: heads(2, s, h, d),
            mask: None,
            dtype: DType::F32,
            out: 3,
        }),
        vec![3],
    );
    let cp = dqc_codegen::cpu::CpuProgram::compile(&p, &Default::default()).unwrap();
    let mut bufs = [
        Buf::f32(&rand_f32(n, 1)),
        Buf::f32(&rand_f32(n, 2)),
        Buf::f32(&rand_f32(n, 3)),
        Buf::zeros(DType::F32, n),
    ];
    let t = median_one_thread(&cp, &mut bufs, 50);
    let flops = 4.0 * (b * h * s * s * d) as f64;
    eprintln!(
        "attention {b}x{h} heads of {s}x{d}: median {:.3} ms, {:.1} GFLOP/s",
        t * 1e3,
        flops / t / 1e9
    );
}
