//! Hand-built programs and plans shared by the runtime tests.
#![allow(dead_code)]

use dqc_codegen::spec::{
    Buffer, BufferKind, Elementwise, Expr, Exprs, IndexMap, Kernel, KernelSpec, Program, Scalar,
    Symbol, Term,
};
use dqc_ir::op::BinaryOp;
use dqc_ir::{DType, Dim, Shape, Tensor};
use dqc_runtime::plan::{PlanParts, Provenance};
use std::path::Path;

/// `[B,4]` with `B` symbolic.
pub fn b4() -> Shape {
    Shape(vec![Dim::sym("B"), Dim::fixed(4)])
}

/// Dense row-major addressing of a `[B,4]` space; `batch_stride` 0 broadcasts a `[4]`.
pub fn map(batch_stride: u64) -> IndexMap {
    IndexMap {
        offset: vec![],
        strides: vec![Term::of(Dim::fixed(batch_stride)), Term::constant(1)],
    }
}

pub fn buf(name: &str, dtype: DType, shape: Shape, kind: BufferKind) -> Buffer {
    Buffer {
        name: name.into(),
        dtype,
        shape,
        kind,
    }
}

/// `z = x + y`, all `f32[B,4]`, `B ≤ 8`: one elementwise kernel.
pub fn add_program() -> Program {
    let mut exprs = Exprs::new();
    let a = exprs.push(
        DType::F32,
        Expr::Load {
            arg: 0,
            map: map(4),
        },
    );
    let b = exprs.push(
        DType::F32,
        Expr::Load {
            arg: 1,
            map: map(4),
        },
    );
    let s = exprs.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a,
            b,
        },
    );
    Program {
        symbols: vec![Symbol {
            name: "B".into(),
            max: 8,
        }],
        buffers: vec![
            buf("x", DType::F32, b4(), BufferKind::Input { index: 0 }),
            buf("y", DType::F32, b4(), BufferKind::Input { index: 1 }),
            buf("z", DType::F32, b4(), BufferKind::Output { index: 0 }),
        ],
        inputs: vec![0, 1],
        outputs: vec![2],
        kernels: vec![KernelSpec {
            name: "add".into(),
            args: vec![0, 1, 2],
            writes: vec![2],
            body: Kernel::Elementwise(Elementwise {
                shape: b4(),
                exprs,
                outputs: vec![(2, s)],
            }),
        }],
        arena_bytes: 0,
    }
}

/// `t = x + w` (weight `w: f32[4]`, broadcast), `out = max(t·2, -inf)` through an arena
/// activation `t`; `B ≤ 8`. Has a weight, an activation and a non-finite constant.
pub fn bias_program() -> Program {
    let mut e1 = Exprs::new();
    let a = e1.push(
        DType::F32,
        Expr::Load {
            arg: 0,
            map: map(4),
        },
    );
    let b = e1.push(
        DType::F32,
        Expr::Load {
            arg: 1,
            map: map(0),
        },
    );
    let s = e1.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a,
            b,
        },
    );
    let mut e2 = Exprs::new();
    let t = e2.push(
        DType::F32,
        Expr::Load {
            arg: 0,
            map: map(4),
        },
    );
    let two = e2.push(DType::F32, Expr::Const(Scalar::F(2.0)));
    let m = e2.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Mul,
            a: t,
            b: two,
        },
    );
    let ninf = e2.push(DType::F32, Expr::Const(Scalar::F(f64::NEG_INFINITY)));
    let r = e2.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Max,
            a: m,
            b: ninf,
        },
    );
    Program {
        symbols: vec![Symbol {
            name: "B".into(),
            max: 8,
        }],
        buffers: vec![
            buf("x", DType::F32, b4(), BufferKind::Input { index: 0 }),
            buf(
                "w",
                DType::F32,
                Shape::fixed(&[4]),
                BufferKind::Weight { name: "w".into() },
            ),
            buf("t", DType::F32, b4(), BufferKind::Activation { offset: 0 }),
            buf("out", DType::F32, b4(), BufferKind::Output { index: 0 }),
        ],
        inputs: vec![0],
        outputs: vec![3],
        kernels: vec![
            KernelSpec {
                name: "bias".into(),
                args: vec![0, 1, 2],
                writes: vec![2],
                body: Kernel::Elementwise(Elementwise {
                    shape: b4(),
                    exprs: e1,
                    outputs: vec![(2, s)],
                }),
            },
            KernelSpec {
                name: "scale".into(),
                args: vec![2, 3],
                writes: vec![1],
                body: Kernel::Elementwise(Elementwise {
                    shape: b4(),
                    exprs: e2,
                    outputs: vec![(1, r)],
                }),
            },
        ],
        arena_bytes: 8 * 4 * 4,
    }
}

/// A program with no kernels: inputs `x: f32[B,4]`, `ids: i64[2*B]`; output `y: f32[4]`
/// (never written, so zeros). Enough to test input checking end to end today.
pub fn empty_program() -> Program {
    Program {
        symbols: vec![Symbol {
            name: "B".into(),
            max: 16,
        }],
        buffers: vec![
            buf("x", DType::F32, b4(), BufferKind::Input { index: 0 }),
            buf(
                "ids",
                DType::I64,
                Shape(vec![Dim::sym("B").checked_mul(&Dim::fixed(2)).unwrap()]),
                BufferKind::Input { index: 1 },
            ),
            buf(
                "y",
                DType::F32,
                Shape::fixed(&[4]),
                BufferKind::Output { index: 0 },
            ),
        ],
        inputs: vec![0, 1],
        outputs: vec![2],
        kernels: vec![],
        arena_bytes: 0,
    }
}

pub fn provenance() -> Provenance {
    Provenance {
        dqc_version: "0.1.0".into(),
        source_sha256: "ab".repeat(32),
        calibration_sha256: None,
        compile_options: "--target cpu".into(),
    }
}

pub fn parts(target: &str, program: Program) -> PlanParts {
    PlanParts::new(target, program, provenance())
}

/// The weight of [`bias_program`].
pub fn bias_weights() -> Vec<(String, Tensor)> {
    vec![(
        "w".into(),
        Tensor::from_f32(DType::F32, vec![4], &[1.0, -2.0, 0.5, 3.0]).unwrap(),
    )]
}

pub fn f32_tensor(shape: Vec<u64>, values: &[f32]) -> Tensor {
    Tensor::from_f32(DType::F32, shape, values).unwrap()
}

/// Bytes of a valid `cpu` plan of [`bias_program`].
pub fn bias_plan_bytes() -> Vec<u8> {
    dqc_runtime::plan::plan_bytes(&parts("cpu", bias_program()), &bias_weights(), &[]).unwrap()
}

/// Write `bytes` to `dir/name` and return the path.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
