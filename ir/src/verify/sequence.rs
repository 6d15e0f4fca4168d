//! Sequence rules: attention and the selective scan.
//!
//! Attention: `q: [B, Sq, H·D]`, `k: [B, Sk, Hkv·D]`, `v: [B, Sk, Hkv·Dv]` of one float
//! dtype; `H = heads` must be a multiple of `Hkv = kv_heads`; `D` and `Dv` are found by
//! exact monomial division; the optional mask is bool or float and broadcasts to
//! `[B, H, Sq, Sk]` without growing it. Output `[B, Sq, H·Dv]` of `q`'s dtype.
//!
//! Selective scan: `u, delta: [B, D, L]`, `A: [D, N]`, `Bm, Cm: [B, N, L]`, `Dskip: [D]`,
//! `z: [B, D, L]`, all of `u`'s float dtype; output `u`'s type.

use super::{InferError, broadcast, operand, want_float, want_rank, want_same_dtype, want_shape};
use crate::DType;
use crate::shape::{Dim, Shape, TensorType};

/// Dimension `i` of a shape already checked to have rank > `i`.
fn dim(t: &TensorType, i: usize) -> Dim {
    t.shape.dims().get(i).cloned().unwrap_or(Dim::fixed(1))
}

pub(super) fn attention(
    heads: u64,
    kv_heads: u64,
    has_mask: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(InferError::Attr {
            attr: "heads",
            reason: format!(
                "is {heads} with kv_heads = {kv_heads}; expected both at least 1 and heads a multiple of kv_heads"
            ),
        });
    }
    let q = operand(inputs, 0)?;
    let k = operand(inputs, 1)?;
    let v = operand(inputs, 2)?;
    want_float(0, q)?;
    want_same_dtype(1, k, 0, q)?;
    want_same_dtype(2, v, 0, q)?;
    want_rank(0, q, 3, "[B, Sq, H·D]")?;
    want_rank(1, k, 3, "[B, Sk, Hkv·D]")?;
    want_rank(2, v, 3, "[B, Sk, Hkv·Dv]")?;
    let (b, sq, qhd) = (dim(q, 0), dim(q, 1), dim(q, 2));
    let (sk, vhd) = (dim(k, 1), dim(v, 2));
    let h = Dim::fixed(heads);
    let hkv = Dim::fixed(kv_heads);
    let Some(d) = qhd.checked_div(&h) else {
        return Err(InferError::Shape {
            operand: 0,
            shape: q.shape.clone(),
            expected: format!("last dimension {qhd} divisible by heads = {heads}"),
        });
    };
    let expect_k = Shape(vec![
        b.clone(),
        sk.clone(),
        hkv.checked_mul(&d)
            .ok_or(InferError::Overflow { operand: 1 })?,
    ]);
    want_shape(
        1,
        k,
        &expect_k,
        "[B, Sk, kv_heads·D] with B and D from operand 0",
    )?;
    let Some(dv) = vhd.checked_div(&hkv) else {
        return Err(InferError::Shape {
            operand: 2,
            shape: v.shape.clone(),
            expected: format!("last dimension {vhd} divisible by kv_heads = {kv_heads}"),
        });
    };
    let expect_v = Shape(vec![b.clone(), sk.clone(), vhd.clone()]);
    want_shape(
        2,
        v,
        &expect_v,
        "[B, Sk, Hkv·Dv] with B and Sk from operands 0 and 1",
    )?;
    if has_mask {
        let mask = operand(inputs, 3)?;
        if mask.dtype != DType::Bool && !mask.dtype.is_float() {
            return Err(InferError::DType {
                operand: 3,
                actual: mask.dtype,
                expected: "bool or a float type".to_string(),
            });
        }
        let full = Shape(vec![b.clone(), h.clone(), sq.clone(), sk.clone()]);
        let grown = broadcast(3, &mask.shape, 0, &full)?;
        if grown != full {
            return Err(InferError::Shape {
                operand: 3,
                shape: mask.shape.clone(),
                expected: format!("a shape that broadcasts to [B, H, Sq, Sk] = {full}"),
            });
        }
    }
    let out_last = h
        .checked_mul(&dv)
        .ok_or(InferError::Overflow { operand: 2 })?;
    Ok(vec![TensorType::new(q.dtype, Shape(vec![b, sq, out_last]))])
}

pub(super) fn selective_scan(
    has_d: bool,
    has_z: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    let u = operand(inputs, 0)?;
    want_float(0, u)?;
    want_rank(0, u, 3, "[B, D, L]")?;
    let (b, d, l) = (dim(u, 0), dim(u, 1), dim(u, 2));
    let a = operand(inputs, 2)?;
    want_same_dtype(2, a, 0, u)?;
    want_rank(2, a, 2, "[D, N]")?;
    let n = dim(a, 1);
    let bdl = Shape(vec![b.clone(), d.clone(), l.clone()]);
    let bnl = Shape(vec![b, n, l]);
    let mut expected: Vec<(usize, Shape, &str)> = vec![
        (1, bdl.clone(), "[B, D, L] of operand 0 (delta)"),
        (
            2,
            Shape(vec![d.clone(), dim(a, 1)]),
            "[D, N] with D of operand 0 (A)",
        ),
        (3, bnl.clone(), "[B, N, L] with N of operand 2 (Bm)"),
        (4, bnl, "[B, N, L] with N of operand 2 (Cm)"),
    ];
    let mut next = 5;
    if has_d {
        expected.push((next, Shape(vec![d]), "[D] of operand 0 (Dskip)"));
        next += 1;
    }
    if has_z {
        expected.push((next, bdl, "[B, D, L] of operand 0 (z)"));
    }
    for (i, shape, why) in expected {
        let t = operand(inputs, i)?;
        want_same_dtype(i, t, 0, u)?;
        want_shape(i, t, &shape, why)?;
    }
    Ok(vec![u.clone()])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, ty};
    use crate::DType::{Bool, F16, F32, I32};
    use crate::op::Op;

    fn attn(heads: u64, kv_heads: u64, has_mask: bool) -> Op {
        Op::Attention {
            heads,
            kv_heads,
            scale: None,
            causal: false,
            has_mask,
        }
    }

    fn scan(has_d: bool, has_z: bool) -> Op {
        Op::SelectiveScan {
            delta_softplus: true,
            has_d,
            has_z,
        }
    }

    #[test]
    fn attention_rule() {
        let q = ty(F16, "B,256,384");
        let out = ok1(&attn(6, 6, false), &[q.clone(), q.clone(), q.clone()]);
        assert_eq!(out, q);
        // grouped-query: 8 query heads of 64, 2 kv heads, v head dim 32.
        let out = ok1(
            &attn(8, 2, true),
            &[
                ty(F32, "B,S,512"),
                ty(F32, "B,T,128"),
                ty(F32, "B,T,64"),
                ty(Bool, "1,1,S,T"),
            ],
        );
        assert_eq!(out, ty(F32, "B,S,256"));
        // symbolic head dim: q last dim 4*D.
        let out = ok1(
            &attn(4, 4, false),
            &[ty(F32, "B,S,4*D"), ty(F32, "B,S,4*D"), ty(F32, "B,S,4*D")],
        );
        assert_eq!(out, ty(F32, "B,S,4*D"));
    }

    #[test]
    fn attention_refusals() {
        let q = ty(F32, "B,256,384");
        let m = err(&attn(5, 5, false), &[q.clone(), q.clone(), q.clone()]);
        says(&m, &["operand 0", "384 divisible by heads = 5"]);
        let m = err(&attn(6, 4, false), &[q.clone(), q.clone(), q.clone()]);
        says(&m, &["attribute `heads`", "multiple of kv_heads"]);
        let m = err(
            &attn(6, 6, false),
            &[q.clone(), ty(F32, "B,256,192"), q.clone()],
        );
        says(&m, &["operand 1", "[B,256,192]", "expected [B,256,384]"]);
        let m = err(
            &attn(6, 6, false),
            &[q.clone(), q.clone(), ty(F32, "N,256,384")],
        );
        says(&m, &["operand 2", "[N,256,384]"]);
        let m = err(
            &attn(6, 6, true),
            &[q.clone(), q.clone(), q.clone(), ty(I32, "256,256")],
        );
        says(&m, &["operand 3", "bool or a float"]);
        let m = err(
            &attn(6, 6, true),
            &[q.clone(), q.clone(), q.clone(), ty(Bool, "2,B,6,256,256")],
        );
        says(&m, &["operand 3", "broadcasts to [B, H, Sq, Sk]"]);
        let m = err(
            &attn(6, 6, false),
            &[q.clone(), q.clone(), ty(F16, "B,256,384")],
        );
        says(&m, &["operand 2", "f16"]);
    }

    #[test]
    fn selective_scan_rule() {
        let bdl = ty(F32, "B,64,L");
        let a = ty(F32, "64,16");
        let bnl = ty(F32, "B,16,L");
        let out = ok1(
            &scan(true, true),
            &[
                bdl.clone(),
                bdl.clone(),
                a.clone(),
                bnl.clone(),
                bnl.clone(),
                ty(F32, "64"),
                bdl.clone(),
            ],
        );
        assert_eq!(out, bdl);
        let out = ok1(
            &scan(false, false),
            &[
                bdl.clone(),
                bdl.clone(),
                a.clone(),
                bnl.clone(),
                bnl.clone(),
            ],
        );
        assert_eq!(out, bdl);
        let m = err(
            &scan(false, false),
            &[
                bdl.clone(),
                bdl.clone(),
                a.clone(),
                ty(F32, "B,8,L"),
                bnl.clone(),
            ],
        );
        says(&m, &["operand 3", "[B,8,L]", "expected [B,16,L]"]);
        let m = err(
            &scan(true, false),
            &[
                bdl.clone(),
                bdl.clone(),
                a.clone(),
                bnl.clone(),
                bnl.clone(),
                ty(F32, "32"),
            ],
        );
        says(&m, &["operand 5", "Dskip"]);
        let m = err(
            &scan(false, false),
            &[
                bdl.clone(),
                bdl.clone(),
                ty(F32, "32,16"),
                bnl.clone(),
                bnl.clone(),
            ],
        );
        says(&m, &["operand 2", "(A)"]);
        let m = err(
            &scan(false, false),
            &[bdl.clone(), ty(F16, "B,64,L"), a, bnl.clone(), bnl],
        );
        says(&m, &["operand 1", "f16"]);
    }
}
