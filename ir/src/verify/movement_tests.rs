//! Tests of the movement rules.

use proptest::prelude::*;

use super::super::testutil::{err, ok, ok1, says, shape, ty};
use super::{static_slice, symbolic_slice};
use crate::DType::{Bool, F16, F32, I32, I64, U8};
use crate::op::{CoordTransform, NearestRounding, Op, PadMode, ResizeMode};
use crate::shape::{Dim, Shape};

fn reshape(s: &str) -> Op {
    Op::Reshape { shape: shape(s) }
}

fn slice(axes: &[i64], starts: &[i64], ends: &[i64], steps: &[i64]) -> Op {
    Op::Slice {
        axes: axes.to_vec(),
        starts: starts.to_vec(),
        ends: ends.to_vec(),
        steps: steps.to_vec(),
    }
}

#[test]
fn reshape_rule() {
    let x = ty(F32, "B,256,384");
    assert_eq!(
        ok1(&reshape("256*B,384"), &[x.clone()]),
        ty(F32, "256*B,384")
    );
    assert_eq!(
        ok1(&reshape("B,256,6,64"), &[x.clone()]),
        ty(F32, "B,256,6,64")
    );
    assert_eq!(
        ok1(&reshape("2*B,N"), &[ty(F32, "B,2*N")]),
        ty(F32, "2*B,N")
    );
    assert_eq!(ok1(&reshape(""), &[ty(F32, "1,1")]), ty(F32, ""));
    let m = err(&reshape("B,256,383"), &[x.clone()]);
    says(
        &m,
        &["attribute `shape`", "[B,256,383]", "98048*B", "98304*B"],
    );
    let m = err(&reshape("N,6"), &[ty(F32, "B,6")]);
    says(&m, &["cannot be proven"]);
}

#[test]
fn transpose_rule() {
    let op = Op::Transpose {
        perm: vec![0, 2, 1, 3],
    };
    assert_eq!(ok1(&op, &[ty(F16, "B,S,H,D")]), ty(F16, "B,H,S,D"));
    let m = err(&op, &[ty(F16, "B,S,H")]);
    says(&m, &["attribute `perm`", "[0, 2, 1, 3]", "3 axes"]);
    let dup = Op::Transpose {
        perm: vec![0, 0, 1],
    };
    says(&err(&dup, &[ty(F16, "B,S,H")]), &["not a permutation"]);
    let far = Op::Transpose {
        perm: vec![0, 5, 1],
    };
    says(&err(&far, &[ty(F16, "B,S,H")]), &["not a permutation"]);
}

#[test]
fn slice_static_follows_onnx_clamping() {
    assert_eq!(static_slice(10, 2, 8, 3), 2); // 2, 5
    assert_eq!(static_slice(10, -3, i64::MAX, 1), 3);
    assert_eq!(static_slice(10, i64::MIN, i64::MAX, 1), 10);
    assert_eq!(static_slice(10, -1, i64::MIN, -1), 10);
    assert_eq!(static_slice(10, 8, 2, -2), 3); // 8, 6, 4
    assert_eq!(static_slice(10, 5, 5, 1), 0);
    assert_eq!(static_slice(10, 20, 30, 1), 0);
    assert_eq!(static_slice(0, -1, i64::MIN, -1), 0);
    let op = slice(&[1, -1], &[0, 1], &[128, i64::MAX], &[1, 2]);
    assert_eq!(ok1(&op, &[ty(F32, "B,256,9")]), ty(F32, "B,128,4"));
}

#[test]
fn slice_symbolic() {
    let full = slice(&[0], &[0], &[i64::MAX], &[1]);
    assert_eq!(ok1(&full, &[ty(F32, "B,4")]), ty(F32, "B,4"));
    let rev = slice(&[0], &[-1], &[i64::MIN], &[-1]);
    assert_eq!(ok1(&rev, &[ty(F32, "B,4")]), ty(F32, "B,4"));
    // 256*N is at least 256, so [0:128] has 128 elements.
    let prefix = slice(&[0], &[0], &[128], &[1]);
    assert_eq!(ok1(&prefix, &[ty(F32, "256*N")]), ty(F32, "128"));
    let back = slice(&[0], &[3], &[0], &[-1]);
    assert_eq!(ok1(&back, &[ty(F32, "4*N")]), ty(F32, "3"));
    let last = slice(&[1], &[-1], &[i64::MAX], &[1]);
    assert_eq!(ok1(&last, &[ty(F32, "B,S,64")]), ty(F32, "B,1,64"));
    let tail2 = slice(&[0], &[-4], &[-1], &[2]);
    assert_eq!(ok1(&tail2, &[ty(F32, "4*N")]), ty(F32, "2"));
    let down = slice(&[0], &[2], &[i64::MIN], &[-1]);
    assert_eq!(ok1(&down, &[ty(F32, "4*N")]), ty(F32, "3"));
    let m = err(&prefix, &[ty(F32, "N")]);
    says(
        &m,
        &["operand 0", "[N]", "static extent along axis 0", "0:128:1"],
    );
    let tail = slice(&[0], &[1], &[i64::MAX], &[1]);
    says(&err(&tail, &[ty(F32, "B")]), &["symbolic dimension B"]);
}

#[test]
fn slice_refusals() {
    let x = ty(F32, "4,4");
    says(
        &err(&slice(&[0], &[0], &[2], &[0]), &[x.clone()]),
        &["attribute `steps`", "zero"],
    );
    says(
        &err(&slice(&[0, -2], &[0, 0], &[2, 2], &[1, 1]), &[x.clone()]),
        &["attribute `axes`", "twice"],
    );
    says(
        &err(&slice(&[0], &[0, 1], &[2], &[1]), &[x.clone()]),
        &["attribute `starts`", "2 entries"],
    );
    says(
        &err(&slice(&[2], &[0], &[2], &[1]), &[x]),
        &["axis 2 is out of range"],
    );
}

#[test]
fn concat_rule() {
    let op = Op::Concat { axis: 1 };
    let out = ok1(&op, &[ty(F32, "B,3,8"), ty(F32, "B,5,8")]);
    assert_eq!(out, ty(F32, "B,8,8"));
    let out = ok1(
        &op,
        &[ty(F32, "B,S,8"), ty(F32, "B,2*S,8"), ty(F32, "B,0,8")],
    );
    assert_eq!(out, ty(F32, "B,3*S,8"));
    assert_eq!(ok1(&op, &[ty(F32, "B,N")]), ty(F32, "B,N"));
    let m = err(&op, &[ty(F32, "B,S,8"), ty(F32, "B,4,8")]);
    says(&m, &["operand 0", "S + 4", "not representable"]);
    let m = err(&op, &[ty(F32, "B,3,8"), ty(F32, "B,5,7")]);
    says(&m, &["operand 1", "[B,5,7]", "except along concat axis 1"]);
    let m = err(&op, &[ty(F32, "B,3,8"), ty(F16, "B,5,8")]);
    says(&m, &["operand 1", "f16"]);
    says(&err(&op, &[]), &["at least 1"]);
    says(
        &err(&Op::Concat { axis: 2 }, &[ty(F32, "B,3")]),
        &["axis 2 is out of range"],
    );
}

#[test]
fn split_rule() {
    let op = Op::Split {
        axis: -1,
        sizes: vec![384, 384, 768],
    };
    let out = ok(&op, &[ty(F32, "B,S,1536")]);
    assert_eq!(
        out,
        vec![ty(F32, "B,S,384"), ty(F32, "B,S,384"), ty(F32, "B,S,768")]
    );
    says(
        &err(&op, &[ty(F32, "B,S,1535")]),
        &["attribute `sizes`", "1536", "1535"],
    );
    says(
        &err(&op, &[ty(F32, "B,S,N")]),
        &["operand 0", "static extent along split axis 2"],
    );
    let none = Op::Split {
        axis: 0,
        sizes: vec![],
    };
    says(
        &err(&none, &[ty(F32, "4")]),
        &["attribute `sizes`", "empty"],
    );
}

#[test]
fn gather_rule() {
    let op = Op::Gather { axis: 0 };
    assert_eq!(
        ok1(&op, &[ty(F32, "1000,384"), ty(I64, "B,S")]),
        ty(F32, "B,S,384")
    );
    let mid = Op::Gather { axis: 1 };
    assert_eq!(ok1(&mid, &[ty(F16, "B,10,4"), ty(I32, "")]), ty(F16, "B,4"));
    says(
        &err(&op, &[ty(F32, "10,4"), ty(F32, "3")]),
        &["operand 1", "f32", "i64 or i32"],
    );
    says(
        &err(&Op::Gather { axis: 2 }, &[ty(F32, "10,4"), ty(I64, "3")]),
        &["axis 2"],
    );
}

#[test]
fn expand_rule() {
    let op = Op::Expand {
        shape: shape("B,1,384"),
    };
    assert_eq!(ok1(&op, &[ty(F32, "256,1")]), ty(F32, "B,256,384"));
    // ONNX Expand: the target may be smaller along an axis.
    let small = Op::Expand {
        shape: shape("1,4"),
    };
    assert_eq!(ok1(&small, &[ty(Bool, "3,1,1")]), ty(Bool, "3,1,4"));
    says(
        &err(&op, &[ty(F32, "2,383")]),
        &["attribute `shape`", "[2,383]"],
    );
}

#[test]
fn pad_rule() {
    let op = Op::Pad {
        pads: vec![0, 0, 1, 0, 0, 2],
        mode: PadMode::Constant(0.0),
    };
    assert_eq!(ok1(&op, &[ty(F32, "B,4,5")]), ty(F32, "B,4,8"));
    says(
        &err(&op, &[ty(F32, "B,4")]),
        &["attribute `pads`", "6 entries", "rank 2"],
    );
    says(
        &err(&op, &[ty(F32, "B,4,W")]),
        &["operand 0", "padded axis 2", "W + 1 + 2"],
    );
    let refl = Op::Pad {
        pads: vec![3, 0],
        mode: PadMode::Reflect,
    };
    assert_eq!(ok1(&refl, &[ty(F32, "4")]), ty(F32, "7"));
    says(&err(&refl, &[ty(F32, "3")]), &["Reflect"]);
    let edge = Op::Pad {
        pads: vec![1, 0],
        mode: PadMode::Edge,
    };
    says(&err(&edge, &[ty(U8, "0")]), &["Edge"]);
}

#[test]
fn resize_rule() {
    let op = Op::Resize {
        size: shape("B,4,64,64"),
        mode: ResizeMode::Linear,
        coord: CoordTransform::HalfPixel,
    };
    assert_eq!(ok1(&op, &[ty(F32, "B,4,32,32")]), ty(F32, "B,4,64,64"));
    says(
        &err(&op, &[ty(F32, "B,4,32")]),
        &["attribute `size`", "rank 4", "rank 3"],
    );
    says(&err(&op, &[ty(I32, "B,4,32,32")]), &["operand 0", "float"]);
    let near = Op::Resize {
        size: shape("8"),
        mode: ResizeMode::Nearest(NearestRounding::Floor),
        coord: CoordTransform::Asymmetric,
    };
    assert_eq!(ok1(&near, &[ty(I32, "4")]), ty(I32, "8"));
    says(&err(&near, &[ty(I32, "0")]), &["non-empty axis 0"]);
}

/// Random shapes over a few symbols and small static extents.
fn arb_dim() -> impl Strategy<Value = Dim> {
    prop_oneof![
        (1u64..5).prop_map(Dim::fixed),
        Just(Dim::sym("B")),
        Just(Dim::sym("N")),
        Just(Dim::fixed(1)),
    ]
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    prop::collection::vec(arb_dim(), 0..5).prop_map(Shape)
}

/// A direct reading of numpy's rule, written independently of `Shape::broadcast`.
fn reference_broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let mut out = Vec::new();
    let (ra, rb) = (a.dims().iter().rev(), b.dims().iter().rev());
    let n = a.rank().max(b.rank());
    let one = Dim::fixed(1);
    let mut ra = ra.chain(std::iter::repeat(&one));
    let mut rb = rb.chain(std::iter::repeat(&one));
    for _ in 0..n {
        let (x, y) = (ra.next()?, rb.next()?);
        let d = if x == &one {
            y.clone()
        } else if y == &one || x == y {
            x.clone()
        } else {
            return None;
        };
        out.push(d);
    }
    out.reverse();
    Some(Shape(out))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn binary_broadcast_agrees_with_reference(a in arb_shape(), b in arb_shape()) {
        let op = Op::Binary(crate::op::BinaryOp::Add);
        let ta = crate::TensorType::new(F32, a.clone());
        let tb = crate::TensorType::new(F32, b.clone());
        let got = super::super::infer_op(&op, &[&ta, &tb]).ok().map(|mut t| t.remove(0).shape);
        prop_assert_eq!(got, reference_broadcast(&a, &b));
    }

    #[test]
    fn expand_agrees_with_reference(a in arb_shape(), b in arb_shape()) {
        let op = Op::Expand { shape: b.clone() };
        let ta = crate::TensorType::new(F32, a.clone());
        let got = super::super::infer_op(&op, &[&ta]).ok().map(|mut t| t.remove(0).shape);
        prop_assert_eq!(got, reference_broadcast(&a, &b));
    }

    /// Reshape is accepted exactly when the element counts agree for every binding of
    /// the symbols, checked here on a few bindings against the monomial comparison.
    #[test]
    fn reshape_element_count_rule(a in arb_shape(), b in arb_shape()) {
        let op = Op::Reshape { shape: b.clone() };
        let ta = crate::TensorType::new(F32, a.clone());
        let accepted = super::super::infer_op(&op, &[&ta]).is_ok();
        let mut agree_everywhere = true;
        for (vb, vn) in [(1u64, 1u64), (2, 3), (5, 7), (3, 2)] {
            let bind: std::collections::BTreeMap<String, u64> =
                [("B".to_string(), vb), ("N".to_string(), vn)].into_iter().collect();
            let ea: Option<u64> = a.eval(&bind).map(|v| v.iter().product());
            let eb: Option<u64> = b.eval(&bind).map(|v| v.iter().product());
            agree_everywhere &= ea == eb;
        }
        prop_assert_eq!(accepted, agree_everywhere);
        if accepted {
            prop_assert_eq!(
                super::super::infer_op(&op, &[&ta]).ok(),
                Some(vec![crate::TensorType::new(F32, b)])
            );
        }
    }

    /// Static slices never exceed the extent and match a direct enumeration of indices.
    #[test]
    fn static_slice_matches_enumeration(
        n in 0u64..12, start in -15i64..15, end in -15i64..15,
        step in prop_oneof![-4i64..0, 1i64..5],
    ) {
        let ni = n as i64;
        let norm = |v: i64| if v < 0 { v + ni } else { v };
        let mut count = 0u64;
        if step > 0 {
            let (s, e) = (norm(start).clamp(0, ni), norm(end).clamp(0, ni));
            let mut i = s;
            while i < e { count += 1; i += step; }
        } else if ni > 0 {
            let (s, e) = (norm(start).clamp(0, ni - 1), norm(end).clamp(-1, ni - 1));
            let mut i = s;
            while i > e { count += 1; i += step; }
        }
        prop_assert_eq!(static_slice(n, start, end, step), count);
    }

    /// Whatever `symbolic_slice` accepts on `f·N` agrees with the static rule for every
    /// value of `N` tried.
    #[test]
    fn symbolic_slice_is_sound(
        f in 1u64..6, start in prop_oneof![-8i64..8, Just(i64::MAX), Just(i64::MIN)],
        end in prop_oneof![-8i64..8, Just(i64::MAX), Just(i64::MIN)],
        step in prop_oneof![-3i64..0, 1i64..4],
    ) {
        let d = Dim::fixed(f).checked_mul(&Dim::sym("N")).unwrap_or(Dim::fixed(0));
        if let Some(got) = symbolic_slice(&d, start, end, step) {
            for n in 1u64..5 {
                let extent = f * n;
                let want = static_slice(extent, start, end, step);
                let have = match got.as_fixed() {
                    Some(c) => c,
                    None => { prop_assert_eq!(&got, &d); extent }
                };
                prop_assert_eq!(have, want, "f={} n={}", f, n);
            }
        }
    }
}
