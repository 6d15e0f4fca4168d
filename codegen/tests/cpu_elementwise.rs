//! CPU backend: fused elementwise kernels.

mod cpu_common;

use cpu_common::*;
use dqc_codegen::cpu::{Bindings, CpuError, CpuProgram};
use dqc_codegen::spec::{Elementwise, Expr, Exprs, Kernel, Scalar, Term};
use dqc_ir::interp::eval_op;
use dqc_ir::op::{BinaryOp, GeluApprox, UnaryOp};
use dqc_ir::{DType, Dim, Op, Shape, Tensor};
use proptest::prelude::*;

fn ew(shape: &[u64], exprs: Exprs, outputs: Vec<(u32, u32)>) -> Kernel {
    Kernel::Elementwise(Elementwise {
        shape: fixed(shape),
        exprs,
        outputs,
    })
}

#[test]
fn transposed_plus_broadcast_row() {
    // out[i, j] = x[j, i] + b[j], x: [4, 3], b: [4], out: [3, 4]
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[1, 3]));
    let b = load(&mut e, DType::F32, 1, map(0, &[0, 1]));
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: x,
            b,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![4, 3]),
            (DType::F32, vec![4]),
            (DType::F32, vec![3, 4]),
        ],
        ew(&[3, 4], e, vec![(2, s)]),
        vec![2],
    );
    let xv: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let mut bufs = [
        Buf::f32(&xv),
        Buf::f32(&[100., 200., 300., 400.]),
        Buf::zeros(DType::F32, 12),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(
        bufs[2].to_f32(),
        vec![
            100., 203., 306., 409., 101., 204., 307., 410., 102., 205., 308., 411.
        ]
    );
}

#[test]
fn piecewise_concat_only_evaluates_the_chosen_piece() {
    // out: [2, 5] = concat(a: [2, 2], b: [2, 3]) along axis 1
    let mut e = Exprs::new();
    let a = load(&mut e, DType::F32, 0, map(0, &[2, 1]));
    // b's map is out of range for j < 2 (offset -2): only legal inside its piece
    let b = load(&mut e, DType::F32, 1, map(-2, &[3, 1]));
    let pw = e.push(
        DType::F32,
        Expr::Piecewise {
            axis: 1,
            bounds: vec![vec![], vec![t(2)]],
            pieces: vec![a, b],
        },
    );
    let p = program(
        &[
            (DType::F32, vec![2, 2]),
            (DType::F32, vec![2, 3]),
            (DType::F32, vec![2, 5]),
        ],
        ew(&[2, 5], e, vec![(2, pw)]),
        vec![2],
    );
    let mut bufs = [
        Buf::f32(&[1., 2., 3., 4.]),
        Buf::f32(&[10., 20., 30., 40., 50., 60.]),
        Buf::zeros(DType::F32, 10),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(
        bufs[2].to_f32(),
        vec![1., 2., 10., 20., 30., 3., 4., 40., 50., 60.]
    );
}

fn gather_program(len: u64) -> dqc_codegen::spec::Program {
    // out[i, j] = table[idx[i], j], table: [len, 2], idx: [3] (i64)
    let mut e = Exprs::new();
    let idx = load(&mut e, DType::I64, 1, map(0, &[1, 0]));
    let g = e.push(
        DType::F32,
        Expr::Gather {
            arg: 0,
            map: map(0, &[0, 1]),
            index: idx,
            axis_stride: t(2),
            axis_len: Dim::fixed(len),
        },
    );
    program(
        &[
            (DType::F32, vec![len, 2]),
            (DType::I64, vec![3]),
            (DType::F32, vec![3, 2]),
        ],
        ew(&[3, 2], e, vec![(2, g)]),
        vec![2],
    )
}

#[test]
fn gather_negative_index_counts_from_the_end() {
    let p = gather_program(4);
    let mut bufs = [
        Buf::f32(&[0., 1., 10., 11., 20., 21., 30., 31.]),
        Buf::ints(DType::I64, &[2, -1, 0]),
        Buf::zeros(DType::F32, 6),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[2].to_f32(), vec![20., 21., 30., 31., 0., 1.]);
}

#[test]
fn gather_out_of_range_is_an_error_naming_the_index() {
    let p = gather_program(4);
    for bad in [4i64, -5] {
        let mut bufs = [
            Buf::f32(&[0.; 8]),
            Buf::ints(DType::I64, &[0, bad, 1]),
            Buf::zeros(DType::F32, 6),
        ];
        let e = run(&p, &mut bufs).unwrap_err();
        match &e {
            CpuError::IndexOutOfRange { kernel, index, len } => {
                assert_eq!((kernel.as_str(), *index, *len), ("k", bad, 4));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains(&bad.to_string()), "{e}");
    }
}

/// Run a one-op kernel `out = f(x)` over a 1-D input and return the output buffer.
fn unary_kernel(xd: DType, od: DType, build: impl Fn(&mut Exprs, u32) -> u32, x: Buf) -> Buf {
    let n = x.numel as u64;
    let mut e = Exprs::new();
    let l = load(&mut e, xd, 0, map(0, &[1]));
    let r = build(&mut e, l);
    let p = program(
        &[(xd, vec![n]), (od, vec![n])],
        ew(&[n], e, vec![(1, r)]),
        vec![1],
    );
    let mut bufs = [x, Buf::zeros(od, n as usize)];
    run(&p, &mut bufs).unwrap();
    let [_, out] = bufs;
    out
}

fn interp1(op: Op, x: &Tensor) -> Tensor {
    eval_op(&op, std::slice::from_ref(x), &Default::default())
        .unwrap()
        .remove(0)
}

#[test]
fn casts_match_the_interpreter_bit_for_bit() {
    let fvals = [
        2.7f32,
        -2.7,
        1e10,
        -1e10,
        f32::NAN,
        0.4,
        65519.0,
        70000.0,
        1.0 / 3.0,
        -0.0,
    ];
    let ivals = [
        300i64,
        -129,
        0,
        1,
        -1,
        (1 << 32) + (1 << 24) + 1,
        i64::MAX,
        127,
        255,
        -8,
    ];
    let cases: Vec<(DType, DType)> = vec![
        (DType::F32, DType::I8),
        (DType::F32, DType::U8),
        (DType::F32, DType::I32),
        (DType::F32, DType::I64),
        (DType::F32, DType::Bool),
        (DType::F32, DType::F16),
        (DType::F32, DType::BF16),
        (DType::F32, DType::F8E4M3),
        (DType::F16, DType::F32),
        (DType::BF16, DType::F16),
        (DType::I64, DType::BF16),
        (DType::I64, DType::F16),
        (DType::I64, DType::F32),
        (DType::I32, DType::I8),
        (DType::I32, DType::U8),
        (DType::I64, DType::Bool),
        (DType::I64, DType::I4),
    ];
    for (from, to) in cases {
        let x = if from.is_float() {
            Tensor::from_f32(from, vec![10], &fvals).unwrap()
        } else {
            Tensor::from_i64(from, vec![10], &ivals).unwrap()
        };
        let got = unary_kernel(
            from,
            to,
            |e, l| e.push(to, Expr::Cast { x: l }),
            Buf::from_tensor(&x),
        );
        let want = interp1(Op::Cast { to }, &x);
        assert_eq!(got.bytes(), want.bytes(), "cast {from} -> {to}");
    }
}

#[test]
fn unary_functions_match_the_interpreter() {
    let vals: Vec<f32> = vec![-3.5, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5, 10.0, -10.0, f32::NAN];
    let x = Tensor::from_f32(DType::F32, vec![10], &vals).unwrap();
    for op in UnaryOp::ALL {
        if op == UnaryOp::Not {
            continue;
        }
        let got = unary_kernel(
            DType::F32,
            DType::F32,
            |e, l| e.push(DType::F32, Expr::Unary { op, x: l }),
            Buf::from_tensor(&x),
        );
        let want = interp1(Op::Unary(op), &x);
        assert_close(&got.to_f32(), &want.to_f32_vec(), 1e-6);
    }
    for approx in [GeluApprox::Erf, GeluApprox::Tanh] {
        let got = unary_kernel(
            DType::F32,
            DType::F32,
            |e, l| e.push(DType::F32, Expr::Gelu { approx, x: l }),
            Buf::from_tensor(&x),
        );
        let want = interp1(Op::Gelu { approx }, &x);
        assert_close(&got.to_f32(), &want.to_f32_vec(), 1e-6);
    }
    let got = unary_kernel(
        DType::F32,
        DType::F32,
        |e, l| e.push(DType::F32, Expr::Silu { x: l }),
        Buf::from_tensor(&x),
    );
    assert_close(&got.to_f32(), &interp1(Op::Silu, &x).to_f32_vec(), 1e-6);
}

#[test]
fn f16_arithmetic_rounds_each_result() {
    // 1/3 in f16 = 0x3555, then stored as f16
    let mut e = Exprs::new();
    let a = load(&mut e, DType::F16, 0, map(0, &[1]));
    let c = e.push(DType::F16, Expr::Const(Scalar::F(3.0)));
    let q = e.push(
        DType::F16,
        Expr::Binary {
            op: BinaryOp::Div,
            a,
            b: c,
        },
    );
    let p = program(
        &[(DType::F16, vec![1]), (DType::F16, vec![1])],
        ew(&[1], e, vec![(1, q)]),
        vec![1],
    );
    let mut bufs = [Buf::of(DType::F16, &[1.0]), Buf::zeros(DType::F16, 1)];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[1].bytes(), &[0x55, 0x35]);
}

#[test]
fn comparisons_store_bool_bytes() {
    let mut e = Exprs::new();
    let a = load(&mut e, DType::F32, 0, map(0, &[1]));
    let b = load(&mut e, DType::F32, 1, map(0, &[0]));
    let lt = e.push(
        DType::Bool,
        Expr::Binary {
            op: BinaryOp::Less,
            a,
            b,
        },
    );
    let nt = e.push(
        DType::Bool,
        Expr::Unary {
            op: UnaryOp::Not,
            x: lt,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![3]),
            (DType::F32, vec![1]),
            (DType::Bool, vec![3]),
            (DType::Bool, vec![3]),
        ],
        ew(&[3], e, vec![(2, lt), (3, nt)]),
        vec![2, 3],
    );
    let mut bufs = [
        Buf::f32(&[1.0, f32::NAN, 3.0]),
        Buf::f32(&[2.0]),
        Buf::zeros(DType::Bool, 3),
        Buf::zeros(DType::Bool, 3),
    ];
    run(&p, &mut bufs).unwrap();
    assert_eq!(bufs[2].bytes(), &[1, 0, 0]);
    assert_eq!(bufs[3].bytes(), &[0, 1, 1]);
}

#[test]
fn integer_division_rules_and_division_by_zero() {
    let build = |op| {
        let mut e = Exprs::new();
        let a = load(&mut e, DType::I8, 0, map(0, &[1]));
        let b = load(&mut e, DType::I8, 1, map(0, &[1]));
        let r = e.push(DType::I8, Expr::Binary { op, a, b });
        program(
            &[
                (DType::I8, vec![5]),
                (DType::I8, vec![5]),
                (DType::I8, vec![5]),
            ],
            ew(&[5], e, vec![(2, r)]),
            vec![2],
        )
    };
    let av = [100i64, -100, 7, -7, 7];
    let bv = [100i64, -100, 2, 2, -2];
    let expect = [
        (BinaryOp::Add, vec![-56i64, 56, 9, -5, 5]),
        (BinaryOp::Div, vec![1, 1, 3, -3, -3]),
        (BinaryOp::Mod, vec![0, 0, 1, 1, -1]),
    ];
    for (op, want) in expect {
        let mut bufs = [
            Buf::ints(DType::I8, &av),
            Buf::ints(DType::I8, &bv),
            Buf::zeros(DType::I8, 5),
        ];
        run(&build(op), &mut bufs).unwrap();
        assert_eq!(bufs[2].to_i64(), want, "{op:?}");
    }
    let mut bufs = [
        Buf::ints(DType::I8, &av),
        Buf::ints(DType::I8, &[1, 1, 0, 1, 1]),
        Buf::zeros(DType::I8, 5),
    ];
    let e = run(&build(BinaryOp::Div), &mut bufs).unwrap_err();
    assert!(
        matches!(e, CpuError::DivisionByZero { dividend: 7, .. }),
        "{e}"
    );
}

#[test]
fn large_kernel_runs_in_parallel_chunks_with_coords() {
    // out[i, j] = x[i, j] * 2 + i, over [300, 257] (not a multiple of any chunk)
    let (r, c) = (300u64, 257u64);
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[c as i64, 1]));
    let two = e.push(DType::F32, Expr::Const(Scalar::F(2.0)));
    let m = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Mul,
            a: x,
            b: two,
        },
    );
    let i = e.push(DType::I64, Expr::Coord { axis: 0 });
    let fi = e.push(DType::F32, Expr::Cast { x: i });
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: m,
            b: fi,
        },
    );
    let p = program(
        &[(DType::F32, vec![r, c]), (DType::F32, vec![r, c])],
        ew(&[r, c], e, vec![(1, s)]),
        vec![1],
    );
    let xv = rand_f32((r * c) as usize, 7);
    let mut bufs = [Buf::f32(&xv), Buf::zeros(DType::F32, (r * c) as usize)];
    run(&p, &mut bufs).unwrap();
    let want: Vec<f32> = xv
        .iter()
        .enumerate()
        .map(|(k, &v)| v * 2.0 + (k as u64 / c) as f32)
        .collect();
    assert_eq!(bufs[1].to_f32(), want);
}

#[test]
fn symbolic_shapes_resolve_and_unbound_symbols_are_named() {
    let mut e = Exprs::new();
    let x = load(
        &mut e,
        DType::F32,
        0,
        dqc_codegen::spec::IndexMap {
            offset: vec![],
            strides: vec![Term::of(Dim::fixed(3)), t(1)],
        },
    );
    let n = e.push(
        DType::F32,
        Expr::Unary {
            op: UnaryOp::Neg,
            x,
        },
    );
    let shape = Shape(vec![sym("B"), Dim::fixed(3)]);
    let mut p = program(
        &[(DType::F32, vec![1]), (DType::F32, vec![1])],
        Kernel::Elementwise(Elementwise {
            shape: shape.clone(),
            exprs: e,
            outputs: vec![(1, n)],
        }),
        vec![1],
    );
    for b in &mut p.buffers {
        b.shape = shape.clone();
    }
    let err = CpuProgram::compile(&p, &Bindings::new()).err().unwrap();
    assert!(
        matches!(&err, CpuError::Unbound { symbol, .. } if symbol == "B"),
        "{err}"
    );
    let mut bind = Bindings::new();
    bind.insert("B".into(), 2);
    let mut bufs = [
        Buf::f32(&[1., 2., 3., 4., 5., 6.]),
        Buf::zeros(DType::F32, 6),
    ];
    run_with(&p, &bind, &mut bufs).unwrap();
    assert_eq!(bufs[1].to_f32(), vec![-1., -2., -3., -4., -5., -6.]);
}

#[test]
fn malformed_specs_are_refused() {
    // a map with the wrong number of strides
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[1]));
    let p = program(
        &[(DType::F32, vec![4]), (DType::F32, vec![4])],
        ew(&[2, 2], e, vec![(1, x)]),
        vec![1],
    );
    assert!(matches!(
        CpuProgram::compile(&p, &Bindings::new()),
        Err(CpuError::Malformed { .. })
    ));
    // a load reaching past its buffer
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(1, &[1]));
    let p = program(
        &[(DType::F32, vec![4]), (DType::F32, vec![4])],
        ew(&[4], e, vec![(1, x)]),
        vec![1],
    );
    assert!(matches!(
        CpuProgram::compile(&p, &Bindings::new()),
        Err(CpuError::OutOfBounds { arg: 0, .. })
    ));
    // wrong argument count at run time
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[1]));
    let p = program(
        &[(DType::F32, vec![4]), (DType::F32, vec![4])],
        ew(&[4], e, vec![(1, x)]),
        vec![1],
    );
    let cp = CpuProgram::compile(&p, &Bindings::new()).unwrap();
    // SAFETY: refused before any pointer is used.
    let r = unsafe { cp.run_kernel(0, &[]) };
    assert!(matches!(
        r,
        Err(CpuError::ArgumentCount {
            expected: 2,
            actual: 0,
            ..
        })
    ));
    // SAFETY: refused before any pointer is used.
    assert!(matches!(
        unsafe { cp.run_kernel(1, &[]) },
        Err(CpuError::NoSuchKernel { .. })
    ));
}

fn naive_binary(shape: &[u64], sa: &[i64], sb: &[i64], a: &[f32], b: &[f32]) -> Vec<f32> {
    let n: u64 = shape.iter().product();
    (0..n)
        .map(|lin| {
            let mut rem = lin;
            let (mut oa, mut ob) = (0i64, 0i64);
            for d in (0..shape.len()).rev() {
                let c = (rem % shape[d]) as i64;
                rem /= shape[d];
                oa += c * sa[d];
                ob += c * sb[d];
            }
            a[oa as usize] * b[ob as usize] - b[ob as usize]
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn strided_broadcast_loads_match_naive(
        shape in proptest::collection::vec(1u64..6, 1..4),
        perm_seed in 0usize..6,
        bmask in proptest::collection::vec(any::<bool>(), 3),
        seed in 0u64..1000,
    ) {
        let r = shape.len();
        // a: a permuted dense layout of `shape`
        let mut order: Vec<usize> = (0..r).collect();
        order.rotate_left(perm_seed % r);
        let mut sa = vec![0i64; r];
        let mut acc = 1i64;
        for &d in order.iter().rev() {
            sa[d] = acc;
            acc *= shape[d] as i64;
        }
        // b: dense over the non-broadcast axes, stride 0 on broadcast ones
        let bshape: Vec<u64> = shape.iter().zip(&bmask).map(|(&d, &m)| if m { 1 } else { d }).collect();
        let sb: Vec<i64> = dense(&bshape).iter().zip(&bmask).map(|(&s, &m)| if m { 0 } else { s }).collect();
        let n: u64 = shape.iter().product();
        let nb: u64 = bshape.iter().product();
        let av = rand_f32(n as usize, seed);
        let bv = rand_f32(nb as usize, seed + 1);
        let mut e = Exprs::new();
        let a = load(&mut e, DType::F32, 0, map(0, &sa));
        let b = load(&mut e, DType::F32, 1, map(0, &sb));
        let m = e.push(DType::F32, Expr::Binary { op: BinaryOp::Mul, a, b });
        let s = e.push(DType::F32, Expr::Binary { op: BinaryOp::Sub, a: m, b });
        let p = program(&[(DType::F32, vec![n]), (DType::F32, vec![nb]), (DType::F32, shape.clone())],
            ew(&shape, e, vec![(2, s)]), vec![2]);
        let mut bufs = [Buf::f32(&av), Buf::f32(&bv), Buf::zeros(DType::F32, n as usize)];
        run(&p, &mut bufs).unwrap();
        prop_assert_eq!(bufs[2].to_f32(), naive_binary(&shape, &sa, &sb, &av, &bv));
    }
}

#[test]
fn vector_loop_handles_tails_broadcasts_and_nan() {
    // out[i, j] = -(max(x[i, j], b[i]) / 2) + sqrt(|x|), rows of 10 (two f32x4 + tail of 2)
    let (r, c) = (3u64, 10u64);
    let mut e = Exprs::new();
    let x = load(&mut e, DType::F32, 0, map(0, &[c as i64, 1]));
    let b = load(&mut e, DType::F32, 1, map(0, &[1, 0]));
    let m = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Max,
            a: x,
            b,
        },
    );
    let two = e.push(DType::F32, Expr::Const(Scalar::F(2.0)));
    let d = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Div,
            a: m,
            b: two,
        },
    );
    let n = e.push(
        DType::F32,
        Expr::Unary {
            op: UnaryOp::Neg,
            x: d,
        },
    );
    let ab = e.push(
        DType::F32,
        Expr::Unary {
            op: UnaryOp::Abs,
            x,
        },
    );
    let sq = e.push(
        DType::F32,
        Expr::Unary {
            op: UnaryOp::Sqrt,
            x: ab,
        },
    );
    let o = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: n,
            b: sq,
        },
    );
    let p = program(
        &[
            (DType::F32, vec![r, c]),
            (DType::F32, vec![r]),
            (DType::F32, vec![r, c]),
        ],
        ew(&[r, c], e, vec![(2, o)]),
        vec![2],
    );
    let mut xv = rand_f32((r * c) as usize, 11);
    xv[5] = f32::NAN;
    xv[29] = f32::NAN;
    let bv = [0.25f32, -0.5, 0.0];
    let mut bufs = [
        Buf::f32(&xv),
        Buf::f32(&bv),
        Buf::zeros(DType::F32, (r * c) as usize),
    ];
    run(&p, &mut bufs).unwrap();
    let want: Vec<f32> = xv
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let bb = bv[k / c as usize];
            let m = if v.is_nan() { f32::NAN } else { v.max(bb) };
            -(m / 2.0) + v.abs().sqrt()
        })
        .collect();
    let got = bufs[2].to_f32();
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "element {k}: {g} vs {w}"
        );
    }
}

#[test]
fn inline_sigmoid_silu_gelu_are_accurate_over_a_wide_range() {
    // 6001 values in [-30, 30]: the f32x4 loop and the scalar tail both run. Relative
    // error is checked above 1e-6 only: the interpreter's `0.5·x·(1 + tanh u)` itself
    // cancels in the far negative tail of GELU.
    let vals: Vec<f32> = (0..6001).map(|i| -30.0 + i as f32 * 0.01).collect();
    let x = Tensor::from_f32(DType::F32, vec![vals.len() as u64], &vals).unwrap();
    type Build = Box<dyn Fn(&mut Exprs, u32) -> u32>;
    let cases: Vec<(Op, Build)> = vec![
        (
            Op::Unary(UnaryOp::Sigmoid),
            Box::new(|e, l| {
                e.push(
                    DType::F32,
                    Expr::Unary {
                        op: UnaryOp::Sigmoid,
                        x: l,
                    },
                )
            }),
        ),
        (
            Op::Silu,
            Box::new(|e, l| e.push(DType::F32, Expr::Silu { x: l })),
        ),
        (
            Op::Gelu {
                approx: GeluApprox::Tanh,
            },
            Box::new(|e, l| {
                e.push(
                    DType::F32,
                    Expr::Gelu {
                        approx: GeluApprox::Tanh,
                        x: l,
                    },
                )
            }),
        ),
    ];
    for (op, build) in cases {
        let got = unary_kernel(DType::F32, DType::F32, build, Buf::from_tensor(&x)).to_f32();
        let want = interp1(op.clone(), &x).to_f32_vec();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let rel = ((g - w) / w).abs();
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()) && (w.abs() < 1e-6 || rel < 2e-5),
                "{op:?} at x = {}: got {g}, want {w}",
                vals[i]
            );
        }
    }
}

#[test]
fn inline_sigmoid_tails_are_normal_numbers_and_nan_propagates() {
    // Far tails: no overflow to inf/NaN, no subnormal results (slow on x86), the negative
    // tail keeps its relative accuracy down to e^-87; 13 values run the f32x4 loop and the
    // scalar tail.
    let vals = [
        -1000.0f32,
        -200.0,
        -100.0,
        -88.5,
        -87.5,
        -86.0,
        -60.0,
        -20.0,
        20.0,
        88.5,
        1000.0,
        f32::NAN,
        -0.0,
    ];
    let x = Tensor::from_f32(DType::F32, vec![vals.len() as u64], &vals).unwrap();
    let build = |e: &mut Exprs, l: u32| {
        e.push(
            DType::F32,
            Expr::Unary {
                op: UnaryOp::Sigmoid,
                x: l,
            },
        )
    };
    let got = unary_kernel(DType::F32, DType::F32, build, Buf::from_tensor(&x)).to_f32();
    for (&v, &g) in vals.iter().zip(&got) {
        if v.is_nan() {
            assert!(g.is_nan(), "sigmoid(NaN) = {g}");
            continue;
        }
        assert!(
            g == 0.0 || g.is_normal(),
            "sigmoid({v}) = {g:e} is not a normal number"
        );
        let want = 1.0 / (1.0 + (-f64::from(v)).exp());
        if v >= -87.0 {
            let rel = (f64::from(g) - want).abs() / want;
            assert!(rel < 2e-6, "sigmoid({v}) = {g:e}, want {want:e}");
        } else {
            // Below −87 the exponential is held at e^-87 (never subnormal).
            assert!(f64::from(g) <= 1.7e-38 && g > 0.0, "sigmoid({v}) = {g:e}");
        }
    }
}

#[test]
fn compiled_programs_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CpuProgram>();
    let empty = CpuProgram::compile(&Default::default(), &Bindings::new()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
}

/// Nanoseconds per element of the f32 activation loops on one thread, 512 × 1536 (the
/// DiT-S/2 FF width): `cargo test --release -p dqc-codegen --test cpu_elementwise
/// bench_activations -- --ignored --nocapture`; median of 60 runs.
#[test]
#[ignore]
fn bench_activations() {
    let (rows, cols) = (512u64, 1536u64);
    let n = (rows * cols) as usize;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for what in ["gelu_tanh", "silu", "add"] {
        let mut e = Exprs::new();
        let x = load(&mut e, DType::F32, 0, map(0, &[cols as i64, 1]));
        let y = match what {
            "gelu_tanh" => e.push(
                DType::F32,
                Expr::Gelu {
                    approx: GeluApprox::Tanh,
                    x,
                },
            ),
            "silu" => e.push(DType::F32, Expr::Silu { x }),
            _ => {
                let b = load(&mut e, DType::F32, 1, map(0, &[0, 1]));
                e.push(
                    DType::F32,
                    Expr::Binary {
                        op: BinaryOp::Add,
                        a: x,
                        b,
                    },
                )
            }
        };
        let p = program(
            &[
                (DType::F32, vec![rows, cols]),
                (DType::F32, vec![cols]),
                (DType::F32, vec![rows, cols]),
            ],
            ew(&[rows, cols], e, vec![(2, y)]),
            vec![2],
        );
        let cp = CpuProgram::compile(&p, &Bindings::new()).unwrap();
        let mut bufs = [
            Buf::f32(&rand_f32(n, 1)),
            Buf::f32(&rand_f32(cols as usize, 2)),
            Buf::zeros(DType::F32, n),
        ];
        let ptrs: Vec<usize> = bufs.iter_mut().map(|b| b.ptr() as usize).collect();
        let mut ts: Vec<f64> = (0..60)
            .map(|_| {
                pool.install(|| {
                    let ptrs: Vec<*mut u8> = ptrs.iter().map(|&p| p as *mut u8).collect();
                    let t0 = std::time::Instant::now();
                    // SAFETY: buffers sized for their shapes.
                    unsafe { cp.run_kernel(0, &ptrs) }.unwrap();
                    t0.elapsed().as_secs_f64()
                })
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        eprintln!(
            "{what}: median {:.2} ns/element, best {:.2}",
            ts[30] * 1e9 / n as f64,
            ts[0] * 1e9 / n as f64
        );
    }
}
