//! Tests of the quantization rules.

use super::super::testutil::{err, ok, ok1, says, ty};
use crate::DType::{BF16, F8E4M3, F8E5M2, F16, F32, Fp4E2M1, I4, I8, I32, U8};
use crate::op::Op;
use crate::quant::QuantScheme::{self, Mx, Nvfp4, PerChannel, PerGroup, PerTensor};

fn q(dtype: crate::DType, scheme: QuantScheme, zp: bool) -> Op {
    Op::Quantize {
        dtype,
        scheme,
        has_zero_point: zp,
    }
}

fn dq(scheme: QuantScheme, zp: bool, out: crate::DType) -> Op {
    Op::Dequantize {
        scheme,
        has_zero_point: zp,
        out,
    }
}

#[test]
fn quantize_affine() {
    let x = ty(F32, "B,256,384");
    let op = q(I8, PerTensor, true);
    let out = ok1(&op, &[x.clone(), ty(F32, ""), ty(I8, "")]);
    assert_eq!(out, ty(I8, "B,256,384"));
    let op = q(F8E4M3, PerChannel { axis: -1 }, false);
    assert_eq!(
        ok1(&op, &[x.clone(), ty(F32, "384")]),
        ty(F8E4M3, "B,256,384")
    );
    // ragged groups: ceil(100 / 64) = 2.
    let op = q(I4, PerGroup { axis: 1, size: 64 }, true);
    let out = ok1(
        &op,
        &[ty(F16, "256,100"), ty(F32, "256,2"), ty(I4, "256,2")],
    );
    assert_eq!(out, ty(I4, "256,100"));
    // symbolic grouped axis divisible by the group size.
    let op = q(U8, PerGroup { axis: 0, size: 32 }, false);
    let out = ok1(&op, &[ty(F32, "64*B,8"), ty(F32, "2*B,8")]);
    assert_eq!(out, ty(U8, "64*B,8"));
}

#[test]
fn quantize_refusals() {
    let x = ty(F32, "B,256,384");
    says(
        &err(&q(Fp4E2M1, PerTensor, false), &[x.clone(), ty(F32, "")]),
        &["attribute `dtype`", "fp4e2m1", "per_tensor"],
    );
    says(
        &err(
            &q(F8E4M3, PerTensor, true),
            &[x.clone(), ty(F32, ""), ty(F8E4M3, "")],
        ),
        &["attribute `has_zero_point`", "f8e4m3"],
    );
    says(
        &err(
            &q(I8, PerChannel { axis: 1 }, false),
            &[x.clone(), ty(F32, "384")],
        ),
        &["operand 1", "[384]", "expected [256]"],
    );
    says(
        &err(
            &q(I8, PerChannel { axis: 3 }, false),
            &[x.clone(), ty(F32, "384")],
        ),
        &["axis 3 is out of range for operand 0"],
    );
    says(
        &err(&q(I8, PerTensor, false), &[x.clone(), ty(F16, "")]),
        &["operand 1", "f16", "expected f32"],
    );
    says(
        &err(
            &q(I8, PerTensor, true),
            &[x.clone(), ty(F32, ""), ty(U8, "")],
        ),
        &["operand 2", "u8", "expected i8"],
    );
    says(
        &err(
            &q(I8, PerGroup { axis: 0, size: 32 }, false),
            &[ty(F32, "B,8"), ty(F32, "B,8")],
        ),
        &["operand 0", "ceil(B/32)"],
    );
    says(
        &err(
            &q(I8, PerGroup { axis: 0, size: 0 }, false),
            &[ty(F32, "4"), ty(F32, "4")],
        ),
        &["attribute `size`"],
    );
    says(
        &err(&q(I8, PerTensor, false), &[ty(I32, "4"), ty(F32, "")]),
        &["operand 0", "float"],
    );
}

#[test]
fn quantize_block_formats() {
    let x = ty(BF16, "B,S,100");
    let out = ok(
        &q(Fp4E2M1, Nvfp4 { axis: -1 }, false),
        &[x.clone(), ty(F32, "")],
    );
    assert_eq!(out, vec![ty(Fp4E2M1, "B,S,100"), ty(F8E4M3, "B,S,7")]);
    let out = ok(&q(F8E5M2, Mx { axis: 2 }, false), &[x.clone()]);
    assert_eq!(out, vec![ty(F8E5M2, "B,S,100"), ty(U8, "B,S,4")]);
    let out = ok(&q(I8, Mx { axis: 0 }, false), &[ty(F32, "64")]);
    assert_eq!(out, vec![ty(I8, "64"), ty(U8, "2")]);
    says(
        &err(
            &q(F8E4M3, Nvfp4 { axis: -1 }, false),
            &[x.clone(), ty(F32, "")],
        ),
        &["attribute `dtype`", "fp4e2m1"],
    );
    says(
        &err(
            &q(Fp4E2M1, Nvfp4 { axis: -1 }, false),
            &[x.clone(), ty(F32, "1")],
        ),
        &["operand 1", "[1]", "expected []"],
    );
    says(
        &err(&q(U8, Mx { axis: -1 }, false), &[x.clone()]),
        &["attribute `dtype`", "u8"],
    );
    says(
        &err(&q(Fp4E2M1, Mx { axis: -1 }, true), &[x]),
        &["attribute `has_zero_point`"],
    );
}

#[test]
fn dequantize_rule() {
    let op = dq(PerGroup { axis: 0, size: 128 }, true, F16);
    let out = ok1(&op, &[ty(I4, "4096,N"), ty(F32, "32,N"), ty(I4, "32,N")]);
    assert_eq!(out, ty(F16, "4096,N"));
    let op = dq(Nvfp4 { axis: 0 }, false, BF16);
    let out = ok1(&op, &[ty(Fp4E2M1, "64,N"), ty(F8E4M3, "4,N"), ty(F32, "")]);
    assert_eq!(out, ty(BF16, "64,N"));
    let op = dq(Mx { axis: -1 }, false, F32);
    assert_eq!(
        ok1(&op, &[ty(F8E4M3, "B,33"), ty(U8, "B,2")]),
        ty(F32, "B,33")
    );
    says(
        &err(&dq(PerTensor, false, I32), &[ty(I8, "4"), ty(F32, "")]),
        &["attribute `out`", "i32", "float"],
    );
    says(
        &err(&dq(PerTensor, false, F32), &[ty(F16, "4"), ty(F32, "")]),
        &["operand 0", "f16", "per_tensor"],
    );
    says(
        &err(
            &dq(Nvfp4 { axis: 0 }, false, F32),
            &[ty(Fp4E2M1, "64"), ty(U8, "4"), ty(F32, "")],
        ),
        &["operand 1", "u8", "expected f8e4m3"],
    );
    says(
        &err(
            &dq(Mx { axis: 0 }, false, F32),
            &[ty(I8, "64"), ty(U8, "3")],
        ),
        &["operand 1", "[3]", "expected [2]"],
    );
    says(
        &err(
            &dq(PerChannel { axis: 0 }, true, F32),
            &[ty(U8, "8,4"), ty(F32, "8"), ty(U8, "4")],
        ),
        &["operand 2", "[4]", "expected [8]"],
    );
}

#[test]
fn qmatmul_rule() {
    let op = Op::QMatMul {
        a_scheme: None,
        b_scheme: PerChannel { axis: 1 },
        out: F16,
    };
    let out = ok1(
        &op,
        &[ty(F16, "B,S,384"), ty(I8, "384,1536"), ty(F32, "1536")],
    );
    assert_eq!(out, ty(F16, "B,S,1536"));
    let op = Op::QMatMul {
        a_scheme: Some(Nvfp4 { axis: -1 }),
        b_scheme: Nvfp4 { axis: 0 },
        out: BF16,
    };
    let out = ok1(
        &op,
        &[
            ty(Fp4E2M1, "M,64"),
            ty(F8E4M3, "M,4"),
            ty(F32, ""),
            ty(Fp4E2M1, "64,N"),
            ty(F8E4M3, "4,N"),
            ty(F32, ""),
        ],
    );
    assert_eq!(out, ty(BF16, "M,N"));
    let op = Op::QMatMul {
        a_scheme: Some(PerTensor),
        b_scheme: PerTensor,
        out: F32,
    };
    let out = ok1(&op, &[ty(I8, "K"), ty(F32, ""), ty(I8, "K,7"), ty(F32, "")]);
    assert_eq!(out, ty(F32, "7"));
}

#[test]
fn qmatmul_refusals() {
    let op = Op::QMatMul {
        a_scheme: None,
        b_scheme: PerChannel { axis: 1 },
        out: F16,
    };
    says(
        &err(
            &op,
            &[ty(F16, "B,S,256"), ty(I8, "384,1536"), ty(F32, "1536")],
        ),
        &[
            "operand 1",
            "[384,1536]",
            "inner dimension 256",
            "operand 0 [B,S,256]",
        ],
    );
    says(
        &err(
            &op,
            &[ty(F16, "B,S,384"), ty(I8, "1,384,1536"), ty(F32, "1536")],
        ),
        &["operand 1", "rank 2"],
    );
    says(
        &err(
            &op,
            &[ty(I8, "B,S,384"), ty(I8, "384,1536"), ty(F32, "1536")],
        ),
        &["operand 0", "float"],
    );
    says(
        &err(
            &op,
            &[ty(F16, "B,S,384"), ty(Fp4E2M1, "384,1536"), ty(F32, "1536")],
        ),
        &["operand 1", "fp4e2m1"],
    );
    says(
        &err(
            &op,
            &[ty(F16, "B,S,384"), ty(I8, "384,1536"), ty(F32, "384")],
        ),
        &["operand 2", "expected [1536]"],
    );
    let bad_out = Op::QMatMul {
        a_scheme: None,
        b_scheme: PerTensor,
        out: I8,
    };
    says(
        &err(&bad_out, &[ty(F16, "4"), ty(I8, "4,2"), ty(F32, "")]),
        &["attribute `out`"],
    );
    says(
        &err(&bad_out, &[ty(F16, "4"), ty(I8, "4,2")]),
        &["expected 3 operands, got 2"],
    );
}
