//! Contraction rules: matmul, gemm, conv.
//!
//! Dtypes of a product: two operands of one float type give that type; two of the 8- and
//! 4-bit integer types (`i8`, `u8`, `i4`, mixed allowed) give `i32`; `i32 × i32` and
//! `i64 × i64` keep their type. Anything else (mixed floats, bool) is refused.

use super::{InferError, broadcast, operand, want_float, want_rank, want_same_dtype, want_shape};
use crate::DType;
use crate::shape::{Dim, Shape, TensorType};

fn is_small_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8 | DType::I4)
}

/// Result dtype of a product of operands `0` and `1`.
fn product_dtype(a: &TensorType, b: &TensorType) -> Result<DType, InferError> {
    let (x, y) = (a.dtype, b.dtype);
    if is_small_int(x) {
        return if is_small_int(y) {
            Ok(DType::I32)
        } else {
            Err(InferError::DType {
                operand: 1,
                actual: y,
                expected: format!("i8, u8 or i4 to multiply operand 0 ({x})"),
            })
        };
    }
    if x.is_float() || matches!(x, DType::I32 | DType::I64) {
        want_same_dtype(1, b, 0, a)?;
        return Ok(x);
    }
    Err(InferError::DType {
        operand: 0,
        actual: x,
        expected: "a float or integer type".to_string(),
    })
}

/// Numpy matmul: `[..., M, K] × [..., K, N] → [..., M, N]`, batch dimensions broadcast,
/// a 1-D left operand is `[1, K]` and a 1-D right operand `[K, 1]`, the promoted axes
/// removed from the result.
pub(super) fn matmul(inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    let a = operand(inputs, 0)?;
    let b = operand(inputs, 1)?;
    let dtype = product_dtype(a, b)?;
    for (i, t) in [(0, a), (1, b)] {
        if t.shape.rank() == 0 {
            return Err(InferError::Shape {
                operand: i,
                shape: t.shape.clone(),
                expected: "rank at least 1 (matmul does not take scalars)".to_string(),
            });
        }
    }
    let one = Dim::fixed(1);
    let ad = a.shape.dims();
    let bd = b.shape.dims();
    let (a_batch, m, k) = match ad {
        [k] => (&[][..], None, k),
        [batch @ .., m, k] => (batch, Some(m), k),
        [] => (&[][..], None, &one),
    };
    let (b_batch, kb, n) = match bd {
        [k] => (&[][..], k, None),
        [batch @ .., k, n] => (batch, k, Some(n)),
        [] => (&[][..], &one, None),
    };
    if k != kb {
        return Err(InferError::Shape {
            operand: 1,
            shape: b.shape.clone(),
            expected: format!("inner dimension {k} to match operand 0 {}", a.shape),
        });
    }
    let mut dims = broadcast(0, &Shape(a_batch.to_vec()), 1, &Shape(b_batch.to_vec()))?.0;
    dims.extend(m.cloned());
    dims.extend(n.cloned());
    Ok(vec![TensorType::new(dtype, Shape(dims))])
}

/// Gemm: `a`, `b` 2-D; `op(a): [M, K]`, `op(b): [K, N]`; `c` (if present) has the result
/// dtype and broadcasts to `[M, N]` without growing it.
pub(super) fn gemm(
    trans_a: bool,
    trans_b: bool,
    has_c: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let a = operand(inputs, 0)?;
    let b = operand(inputs, 1)?;
    want_rank(0, a, 2, if trans_a { "[K, M]" } else { "[M, K]" })?;
    want_rank(1, b, 2, if trans_b { "[N, K]" } else { "[K, N]" })?;
    let dtype = product_dtype(a, b)?;
    let (ad, bd) = (a.shape.dims(), b.shape.dims());
    let pick = |d: &[Dim], t: bool| match (d, t) {
        ([r, c], false) => Some((r.clone(), c.clone())),
        ([r, c], true) => Some((c.clone(), r.clone())),
        _ => None,
    };
    let (Some((m, k)), Some((kb, n))) = (pick(ad, trans_a), pick(bd, trans_b)) else {
        return Err(InferError::Shape {
            operand: 0,
            shape: a.shape.clone(),
            expected: "rank 2".to_string(),
        });
    };
    if k != kb {
        return Err(InferError::Shape {
            operand: 1,
            shape: b.shape.clone(),
            expected: format!(
                "inner dimension {k} to match operand 0 {} (trans_a = {trans_a}, trans_b = {trans_b})",
                a.shape
            ),
        });
    }
    let out = Shape(vec![m, n]);
    if has_c {
        let c = operand(inputs, 2)?;
        if c.dtype != dtype {
            return Err(InferError::DType {
                operand: 2,
                actual: c.dtype,
                expected: format!("{dtype}, the dtype of the product"),
            });
        }
        let grown = broadcast(2, &c.shape, 0, &out)?;
        if grown != out {
            return Err(InferError::Shape {
                operand: 2,
                shape: c.shape.clone(),
                expected: format!("a shape that broadcasts to the result {out}"),
            });
        }
    }
    Ok(vec![TensorType::new(dtype, out)])
}

/// A static positive attribute list of the right length.
fn check_list(attr: &'static str, values: &[u64], len: usize, min: u64) -> Result<(), InferError> {
    if values.len() != len {
        return Err(InferError::Attr {
            attr,
            reason: format!("has {} entries, expected {len}", values.len()),
        });
    }
    if let Some(v) = values.iter().find(|&&v| v < min) {
        return Err(InferError::Attr {
            attr,
            reason: format!("has entry {v}, expected every entry to be at least {min}"),
        });
    }
    Ok(())
}

/// Conv: `x: [N, C, *spatial]`, `w: [M, C/groups, *kernel]`, `bias: [M]`; one float dtype.
/// Spatial output extent `floor((in + pb + pe - dil·(k-1) - 1) / stride) + 1`, which needs
/// static spatial and kernel extents.
pub(super) fn conv(
    strides: &[u64],
    pads: &[u64],
    dilations: &[u64],
    groups: u64,
    has_bias: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let x = operand(inputs, 0)?;
    let w = operand(inputs, 1)?;
    want_float(0, x)?;
    want_same_dtype(1, w, 0, x)?;
    let rank = x.shape.rank();
    if rank < 3 {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: "rank at least 3 ([N, C, *spatial])".to_string(),
        });
    }
    want_rank(1, w, rank, "[M, C/groups, *kernel], the rank of operand 0")?;
    let spatial = rank - 2;
    check_list("strides", strides, spatial, 1)?;
    check_list("dilations", dilations, spatial, 1)?;
    check_list("pads", pads, 2 * spatial, 0)?;
    if groups == 0 {
        return Err(InferError::Attr {
            attr: "groups",
            reason: "is 0, expected at least 1".to_string(),
        });
    }
    let (xd, wd) = (x.shape.dims(), w.shape.dims());
    let (Some(n), Some(c), Some(m), Some(cg)) = (xd.first(), xd.get(1), wd.first(), wd.get(1))
    else {
        return Err(InferError::Shape {
            operand: 0,
            shape: x.shape.clone(),
            expected: "rank at least 3".to_string(),
        });
    };
    let g = Dim::fixed(groups);
    if cg.checked_mul(&g).as_ref() != Some(c) {
        return Err(InferError::Shape {
            operand: 1,
            shape: w.shape.clone(),
            expected: format!(
                "input channels per group {cg} × groups {groups} to equal the channels {c} of operand 0"
            ),
        });
    }
    if m.checked_div(&g).is_none() {
        return Err(InferError::Shape {
            operand: 1,
            shape: w.shape.clone(),
            expected: format!("output channels {m} divisible by groups {groups}"),
        });
    }
    if has_bias {
        let bias = operand(inputs, 2)?;
        want_same_dtype(2, bias, 0, x)?;
        want_shape(
            2,
            bias,
            &Shape(vec![m.clone()]),
            "[M], one per output channel",
        )?;
    }
    let mut out = vec![n.clone(), m.clone()];
    for i in 0..spatial {
        let (Some(xi), Some(ki)) = (xd.get(i + 2), wd.get(i + 2)) else {
            return Err(InferError::Shape {
                operand: 1,
                shape: w.shape.clone(),
                expected: format!("rank {rank}"),
            });
        };
        let Some(xin) = xi.as_fixed() else {
            return Err(InferError::Shape {
                operand: 0,
                shape: x.shape.clone(),
                expected: format!(
                    "a static extent along spatial axis {} (conv output extents of symbolic dims are not monomials)",
                    i + 2
                ),
            });
        };
        let Some(k) = ki.as_fixed() else {
            return Err(InferError::Shape {
                operand: 1,
                shape: w.shape.clone(),
                expected: format!("a static kernel extent along axis {}", i + 2),
            });
        };
        let at = |v: &[u64], j: usize| v.get(j).copied().map(i128::from).unwrap_or(0);
        let span = i128::from(xin) + at(pads, i) + at(pads, i + spatial)
            - at(dilations, i) * (i128::from(k) - 1)
            - 1;
        if span < 0 {
            return Err(InferError::Shape {
                operand: 1,
                shape: w.shape.clone(),
                expected: format!(
                    "a dilated kernel along axis {} no larger than the padded input extent {}",
                    i + 2,
                    i128::from(xin) + at(pads, i) + at(pads, i + spatial)
                ),
            });
        }
        let extent = span / at(strides, i).max(1) + 1;
        let extent = u64::try_from(extent).map_err(|_| InferError::Overflow { operand: 0 })?;
        out.push(Dim::fixed(extent));
    }
    Ok(vec![TensorType::new(x.dtype, Shape(out))])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, ty};
    use crate::DType::{Bool, F16, F32, I4, I8, I32, U8};
    use crate::op::Op;

    fn gemm(trans_a: bool, trans_b: bool, has_c: bool) -> Op {
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a,
            trans_b,
            has_c,
        }
    }

    fn conv(strides: &[u64], pads: &[u64], dil: &[u64], groups: u64, bias: bool) -> Op {
        Op::Conv {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dil.to_vec(),
            groups,
            has_bias: bias,
        }
    }

    #[test]
    fn matmul_batched_and_promoted() {
        let out = ok1(&Op::MatMul, &[ty(F32, "B,256,256"), ty(F32, "B,256,64")]);
        assert_eq!(out, ty(F32, "B,256,64"));
        let out = ok1(&Op::MatMul, &[ty(F16, "B,1,S,64"), ty(F16, "H,64,S")]);
        assert_eq!(out, ty(F16, "B,H,S,S"));
        assert_eq!(ok1(&Op::MatMul, &[ty(F32, "K"), ty(F32, "K")]), ty(F32, ""));
        assert_eq!(
            ok1(&Op::MatMul, &[ty(F32, "K"), ty(F32, "B,K,7")]),
            ty(F32, "B,7")
        );
        assert_eq!(
            ok1(&Op::MatMul, &[ty(F32, "B,3,K"), ty(F32, "K")]),
            ty(F32, "B,3")
        );
        assert_eq!(
            ok1(&Op::MatMul, &[ty(I8, "4,8"), ty(U8, "8,2")]),
            ty(I32, "4,2")
        );
        assert_eq!(
            ok1(&Op::MatMul, &[ty(I4, "4,8"), ty(I4, "8,2")]),
            ty(I32, "4,2")
        );
        assert_eq!(
            ok1(&Op::MatMul, &[ty(I32, "4,8"), ty(I32, "8,2")]),
            ty(I32, "4,2")
        );
    }

    #[test]
    fn matmul_refusals() {
        let m = err(&Op::MatMul, &[ty(F32, "B,256,256"), ty(F32, "B,384,64")]);
        assert_eq!(
            m,
            "operand 1 has shape [B,384,64], expected inner dimension 256 to match operand 0 [B,256,256]"
        );
        let m = err(&Op::MatMul, &[ty(F32, "2,3,4"), ty(F32, "5,4,6")]);
        says(&m, &["operands 0 and 1 do not broadcast"]);
        let m = err(&Op::MatMul, &[ty(F32, "3,4"), ty(F16, "4,6")]);
        says(&m, &["operand 1", "f16", "f32 to match operand 0"]);
        let m = err(&Op::MatMul, &[ty(I8, "3,4"), ty(F32, "4,6")]);
        says(&m, &["operand 1", "i8, u8 or i4"]);
        let m = err(&Op::MatMul, &[ty(Bool, "3,4"), ty(Bool, "4,6")]);
        says(&m, &["operand 0", "bool"]);
        let m = err(&Op::MatMul, &[ty(F32, ""), ty(F32, "4,6")]);
        says(&m, &["operand 0", "scalars"]);
    }

    #[test]
    fn gemm_rule() {
        let out = ok1(
            &gemm(false, false, false),
            &[ty(F32, "M,K"), ty(F32, "K,N")],
        );
        assert_eq!(out, ty(F32, "M,N"));
        let out = ok1(
            &gemm(true, true, true),
            &[ty(F32, "K,M"), ty(F32, "N,K"), ty(F32, "N")],
        );
        assert_eq!(out, ty(F32, "M,N"));
        let m = err(&gemm(false, true, false), &[ty(F32, "M,K"), ty(F32, "K,N")]);
        says(&m, &["operand 1", "inner dimension K", "trans_b = true"]);
        let m = err(
            &gemm(false, false, true),
            &[ty(F32, "3,4"), ty(F32, "4,5"), ty(F32, "2,3,5")],
        );
        says(&m, &["operand 2", "broadcasts to the result [3,5]"]);
        let m = err(
            &gemm(false, false, false),
            &[ty(F32, "B,3,4"), ty(F32, "4,5")],
        );
        says(&m, &["operand 0", "rank 2"]);
        let m = err(
            &gemm(false, false, true),
            &[ty(F32, "3,4"), ty(F32, "4,5"), ty(F16, "5")],
        );
        says(&m, &["operand 2", "f16"]);
    }

    #[test]
    fn conv_rule() {
        // 3x3, stride 2, pad 1: floor((32 + 2 - 2 - 1)/2) + 1 = 16.
        let op = conv(&[2, 2], &[1, 1, 1, 1], &[1, 1], 1, true);
        let out = ok1(
            &op,
            &[ty(F32, "B,4,32,32"), ty(F32, "8,4,3,3"), ty(F32, "8")],
        );
        assert_eq!(out, ty(F32, "B,8,16,16"));
        // depthwise, dilation 2, 1-D: floor((10 - 2*2 - 1)/1) + 1 = 6.
        let op = conv(&[1], &[0, 0], &[2], 4, false);
        let out = ok1(&op, &[ty(F16, "1,4,10"), ty(F16, "4,1,3")]);
        assert_eq!(out, ty(F16, "1,4,6"));
    }

    #[test]
    fn conv_refusals() {
        let op = conv(&[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
        let m = err(&op, &[ty(F32, "B,4,H,W"), ty(F32, "8,4,3,3")]);
        says(&m, &["operand 0", "static extent along spatial axis 2"]);
        let m = err(&op, &[ty(F32, "1,4,8,8"), ty(F32, "8,3,3,3")]);
        says(&m, &["operand 1", "channels 4"]);
        let m = err(&op, &[ty(F32, "1,4,2,2"), ty(F32, "8,4,3,3")]);
        says(&m, &["operand 1", "no larger than the padded input"]);
        let bad = conv(&[1], &[0, 0, 0, 0], &[1, 1], 1, false);
        let m = err(&bad, &[ty(F32, "1,4,8,8"), ty(F32, "8,4,3,3")]);
        says(&m, &["attribute `strides`", "1 entries, expected 2"]);
        let zero = conv(&[0, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
        let m = err(&zero, &[ty(F32, "1,4,8,8"), ty(F32, "8,4,3,3")]);
        says(&m, &["attribute `strides`", "at least 1"]);
        let grouped = conv(&[1, 1], &[0, 0, 0, 0], &[1, 1], 2, false);
        let m = err(&grouped, &[ty(F32, "1,4,8,8"), ty(F32, "3,2,3,3")]);
        says(&m, &["output channels 3 divisible by groups 2"]);
        let biased = conv(&[1, 1], &[0, 0, 0, 0], &[1, 1], 1, true);
        let m = err(
            &biased,
            &[ty(F32, "1,4,8,8"), ty(F32, "8,4,3,3"), ty(F32, "4")],
        );
        says(&m, &["operand 2", "[4]", "[8]"]);
    }
}
