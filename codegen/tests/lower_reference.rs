//! The reference executor on hand-built programs: hand-computed results and clear errors
//! (never a panic) for loads outside a buffer and bad gather indices.

use dqc_codegen::reference::{ReferenceError, run_program};
use dqc_codegen::spec::{
    Buffer, BufferKind, Elementwise, Expr, Exprs, IndexMap, Kernel, KernelSpec, Program, Term,
};
use dqc_ir::op::BinaryOp;
use dqc_ir::{DType, Shape, Tensor};
use std::collections::BTreeMap;

fn buf(name: &str, dtype: DType, shape: &[u64], kind: BufferKind) -> Buffer {
    Buffer {
        name: name.into(),
        dtype,
        shape: Shape::fixed(shape),
        kind,
    }
}

fn t(c: i64) -> Term {
    Term::constant(c)
}

/// out[i, j] = x[j, i] + x[offset + …] over a [2, 3] space reading a [3, 2] input.
fn transpose_add(offset: i64) -> Program {
    let mut e = Exprs::new();
    let a = e.push(
        DType::F32,
        Expr::Load {
            arg: 0,
            map: IndexMap {
                offset: vec![],
                strides: vec![t(1), t(2)],
            },
        },
    );
    let b = e.push(
        DType::F32,
        Expr::Load {
            arg: 0,
            map: IndexMap {
                offset: vec![t(offset)],
                strides: vec![t(0), t(0)],
            },
        },
    );
    let s = e.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a,
            b,
        },
    );
    Program {
        symbols: vec![],
        buffers: vec![
            buf("x", DType::F32, &[3, 2], BufferKind::Input { index: 0 }),
            buf("y", DType::F32, &[2, 3], BufferKind::Output { index: 0 }),
        ],
        inputs: vec![0],
        outputs: vec![1],
        kernels: vec![KernelSpec {
            name: "k".into(),
            args: vec![0, 1],
            writes: vec![1],
            body: Kernel::Elementwise(Elementwise {
                shape: Shape::fixed(&[2, 3]),
                exprs: e,
                outputs: vec![(1, s)],
            }),
        }],
        arena_bytes: 0,
    }
}

#[test]
fn strided_loads_by_hand() {
    let x = Tensor::from_f32(DType::F32, vec![3, 2], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let out = run_program(&transpose_add(5), &[], &[x], &BTreeMap::new()).unwrap();
    // xᵀ = [[1,3,5],[2,4,6]], plus x[5] = 6.
    assert_eq!(out[0].to_f32_vec(), vec![7., 9., 11., 8., 10., 12.]);
}

#[test]
fn out_of_range_load_is_an_error() {
    let x = Tensor::from_f32(DType::F32, vec![3, 2], &[0.; 6]).unwrap();
    let err = run_program(&transpose_add(6), &[], &[x], &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(
            err,
            ReferenceError::OutOfRange {
                offset: 6,
                len: 6,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_input_is_an_error() {
    let x = Tensor::from_f32(DType::F32, vec![2, 3], &[0.; 6]).unwrap();
    let err = run_program(&transpose_add(0), &[], &[x], &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(err, ReferenceError::InputType { index: 0, .. }),
        "{err}"
    );
    let err = run_program(&transpose_add(0), &[], &[], &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, ReferenceError::InputCount { .. }), "{err}");
}

#[test]
fn gather_index_out_of_range_is_an_error() {
    let mut e = Exprs::new();
    let idx = e.push(
        DType::I64,
        Expr::Load {
            arg: 1,
            map: IndexMap {
                offset: vec![],
                strides: vec![t(1)],
            },
        },
    );
    let g = e.push(
        DType::F32,
        Expr::Gather {
            arg: 0,
            map: IndexMap {
                offset: vec![],
                strides: vec![t(0)],
            },
            index: idx,
            axis_stride: t(1),
            axis_len: dqc_ir::Dim::fixed(4),
        },
    );
    let p = Program {
        symbols: vec![],
        buffers: vec![
            buf("w", DType::F32, &[4], BufferKind::Input { index: 0 }),
            buf("i", DType::I64, &[2], BufferKind::Input { index: 1 }),
            buf("y", DType::F32, &[2], BufferKind::Output { index: 0 }),
        ],
        inputs: vec![0, 1],
        outputs: vec![2],
        kernels: vec![KernelSpec {
            name: "g".into(),
            args: vec![0, 1, 2],
            writes: vec![2],
            body: Kernel::Elementwise(Elementwise {
                shape: Shape::fixed(&[2]),
                exprs: e,
                outputs: vec![(2, g)],
            }),
        }],
        arena_bytes: 0,
    };
    let w = Tensor::from_f32(DType::F32, vec![4], &[10., 11., 12., 13.]).unwrap();
    let ok = Tensor::from_i64(DType::I64, vec![2], &[-1, 2]).unwrap();
    let out = run_program(&p, &[], &[w.clone(), ok], &BTreeMap::new()).unwrap();
    assert_eq!(out[0].to_f32_vec(), vec![13., 12.]);
    let bad = Tensor::from_i64(DType::I64, vec![2], &[0, 4]).unwrap();
    let err = run_program(&p, &[], &[w, bad], &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(
            err,
            ReferenceError::GatherIndex {
                index: 4,
                len: 4,
                ..
            }
        ),
        "{err}"
    );
}
