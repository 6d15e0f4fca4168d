//! MatMul and Gemm.
//!
//! Floats: every operand is decoded to its f32 value, products are accumulated in f64 and
//! the sum is rounded once to f32 and then encoded into the operands' dtype. Integers
//! (i4, i8, u8, i32, i64, mixed widths allowed): products are accumulated exactly in i128
//! and the result saturates to i32 (i64 if either operand is i64) — saturation, not
//! wrapping, so an overflow is visible as a clamped value rather than garbage.

use super::util::{
    broadcast_offset, broadcast_shapes, broadcasts_to, from_f64, new_numel, require_float,
    require_rank, shape_str, strides, values_f64,
};
use super::{InterpError, op_err};
use crate::DType;
use crate::tensor::Tensor;

/// How a (batched) matrix product walks its operands.
pub(super) struct MatmulPlan {
    /// Shape of the result (with promoted 1-D axes removed).
    pub out_shape: Vec<u64>,
    /// Rows of each product.
    pub m: usize,
    /// Contracted extent.
    pub k: usize,
    /// Columns of each product.
    pub n: usize,
    /// For each batch (row-major over the broadcast batch shape), the element offsets of
    /// its `[M, K]` block of `a` and its `[K, N]` block of `b`.
    pub pairs: Vec<(usize, usize)>,
}

/// Plan numpy `matmul` of shapes `a` and `b`: batch axes broadcast, a 1-D `a` is a row
/// vector and a 1-D `b` a column vector, each promoted axis removed from the result.
pub(super) fn plan(a: &[u64], b: &[u64]) -> Result<MatmulPlan, InterpError> {
    if a.is_empty() || b.is_empty() {
        return Err(op_err(format!(
            "matmul needs operands of rank ≥ 1, got {} and {}",
            shape_str(a),
            shape_str(b)
        )));
    }
    let a2: Vec<u64> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<u64> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let (m, ka) = (a2[ra - 2], a2[ra - 1]);
    let (kb, n) = (b2[rb - 2], b2[rb - 1]);
    if ka != kb {
        return Err(op_err(format!(
            "matmul: contracted dimensions differ: a {} has K = {ka}, b {} has K = {kb}",
            shape_str(a),
            shape_str(b)
        )));
    }
    let (ba, bb) = (&a2[..ra - 2], &b2[..rb - 2]);
    let batch = broadcast_shapes(ba, bb).map_err(|_| {
        op_err(format!(
            "matmul: batch dimensions {} and {} do not broadcast",
            shape_str(ba),
            shape_str(bb)
        ))
    })?;
    let mut out_shape = batch.clone();
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    new_numel(&out_shape)?;
    let nbatch = new_numel(&batch)?;
    let (m, k, n) = (m as usize, ka as usize, n as usize);
    let (sa, sb) = (strides(ba), strides(bb));
    let mut pairs = Vec::with_capacity(nbatch);
    if nbatch > 0 {
        let mut idx = vec![0usize; batch.len()];
        loop {
            let oa = broadcast_offset(&idx, ba, &sa) * m * k;
            let ob = broadcast_offset(&idx, bb, &sb) * k * n;
            pairs.push((oa, ob));
            if !super::util::next_index(&mut idx, &batch) {
                break;
            }
        }
    }
    Ok(MatmulPlan {
        out_shape,
        m,
        k,
        n,
        pairs,
    })
}

/// Run `plan` over flat operand values: `acc = mac(acc, a, b)` over `K` from `zero`.
pub(super) fn contract<T: Copy, A: Copy>(
    plan: &MatmulPlan,
    a: &[T],
    b: &[T],
    zero: A,
    mac: impl Fn(A, T, T) -> A,
) -> Vec<A> {
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let mut out = Vec::with_capacity(plan.pairs.len() * m * n);
    for &(oa, ob) in &plan.pairs {
        for i in 0..m {
            for j in 0..n {
                let mut acc = zero;
                for p in 0..k {
                    acc = mac(acc, a[oa + i * k + p], b[ob + p * n + j]);
                }
                out.push(acc);
            }
        }
    }
    out
}

/// Float matmul of f64 values with f64 accumulation, encoded into `out`.
pub(super) fn matmul_values(
    plan: &MatmulPlan,
    a: &[f64],
    b: &[f64],
    out: DType,
) -> Result<Tensor, InterpError> {
    let v = contract(plan, a, b, 0.0f64, |acc, x, y| acc + x * y);
    from_f64(out, plan.out_shape.clone(), &v)
}

/// Numpy `matmul` (see the module docs for dtypes and accumulation).
pub(super) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    let p = plan(a.shape(), b.shape())?;
    let (da, db) = (a.dtype(), b.dtype());
    if da.is_float() && db.is_float() {
        if da != db {
            return Err(op_err(format!(
                "matmul: operands must have the same float dtype, got {da} and {db}"
            )));
        }
        return matmul_values(&p, &values_f64(a), &values_f64(b), da);
    }
    if da.is_int() && db.is_int() {
        let out = if da == DType::I64 || db == DType::I64 {
            DType::I64
        } else {
            DType::I32
        };
        let v = contract(&p, &a.to_i64_vec(), &b.to_i64_vec(), 0i128, |acc, x, y| {
            acc + i128::from(x) * i128::from(y)
        });
        let clamped: Vec<i64> = v
            .into_iter()
            .map(|x| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
            .collect();
        return Ok(Tensor::from_i64(out, p.out_shape, &clamped)?);
    }
    Err(op_err(format!(
        "matmul: expected two float operands of one dtype or two integer operands, got {da} and {db}"
    )))
}

/// `alpha · op(a) · op(b) + beta · c`; float operands of one dtype, `a`, `b` 2-D, `c`
/// (if present) broadcastable to `[M, N]`. Computed in f64, encoded into `a`'s dtype.
pub(super) fn gemm(
    inputs: &[Tensor],
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
    has_c: bool,
) -> Result<Tensor, InterpError> {
    let expected = 2 + usize::from(has_c);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "gemm takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let (a, b) = (&inputs[0], &inputs[1]);
    require_float(a, "gemm a")?;
    require_rank(a, 2, "gemm a")?;
    require_rank(b, 2, "gemm b")?;
    let dtype = a.dtype();
    for (t, what) in inputs[1..].iter().zip(["gemm b", "gemm c"]) {
        if t.dtype() != dtype {
            return Err(op_err(format!(
                "{what}: expected dtype {dtype} (a's), got {}",
                t.dtype()
            )));
        }
    }
    let (ar, ac) = (a.shape()[0] as usize, a.shape()[1] as usize);
    let (br, bc) = (b.shape()[0] as usize, b.shape()[1] as usize);
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(op_err(format!(
            "gemm: op(a) is [{m},{ka}] but op(b) is [{kb},{n}] (trans_a = {ta}, trans_b = {tb})"
        )));
    }
    let out_shape = vec![m as u64, n as u64];
    let c = if has_c {
        let c = &inputs[2];
        if !broadcasts_to(c.shape(), &out_shape) {
            return Err(op_err(format!(
                "gemm c: shape {} does not broadcast to the result {}",
                shape_str(c.shape()),
                shape_str(&out_shape)
            )));
        }
        Some((values_f64(c), c.shape().to_vec(), strides(c.shape())))
    } else {
        None
    };
    let (av, bv) = (values_f64(a), values_f64(b));
    let a_at = |i: usize, p: usize| if ta { av[p * ac + i] } else { av[i * ac + p] };
    let b_at = |p: usize, j: usize| if tb { bv[j * bc + p] } else { bv[p * bc + j] };
    let (alpha, beta) = (f64::from(alpha), f64::from(beta));
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..ka).map(|p| a_at(i, p) * b_at(p, j)).sum();
            let mut v = alpha * dot;
            if let Some((cv, cs, cst)) = &c {
                v += beta * cv[broadcast_offset(&[i, j], cs, cst)];
            }
            out.push(v);
        }
    }
    from_f64(dtype, out_shape, &out)
}

#[cfg(test)]
mod tests {
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use crate::{DType, Tensor};
    use proptest::prelude::*;

    fn t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn run(op: Op, inputs: &[Tensor]) -> Tensor {
        eval_op(&op, inputs, &Bindings::new()).unwrap().remove(0)
    }

    #[test]
    fn matmul_2x2() {
        let a = t(&[2, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2], &[5., 6., 7., 8.]);
        let r = run(Op::MatMul, &[a, b]);
        assert_eq!(r.shape(), &[2, 2]);
        assert_eq!(r.to_f32_vec(), vec![19., 22., 43., 50.]);
    }

    #[test]
    fn matmul_batch_broadcast() {
        // a: [2,1,2] (two 1×2 rows), b: [2,1] shared → [2,1,1].
        let a = t(&[2, 1, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 1], &[10., 1.]);
        let r = run(Op::MatMul, &[a, b]);
        assert_eq!(r.shape(), &[2, 1, 1]);
        assert_eq!(r.to_f32_vec(), vec![12., 34.]);
        // a: [1,2,2] against b: [3,2,1] → [3,2,1].
        let a = t(&[1, 2, 2], &[1., 0., 0., 1.]);
        let b = t(&[3, 2, 1], &[1., 2., 3., 4., 5., 6.]);
        let r = run(Op::MatMul, &[a, b]);
        assert_eq!(r.shape(), &[3, 2, 1]);
        assert_eq!(r.to_f32_vec(), vec![1., 2., 3., 4., 5., 6.]);
    }

    #[test]
    fn matmul_vectors() {
        let v = t(&[2], &[1., 2.]);
        let m = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let r = run(Op::MatMul, &[v.clone(), m.clone()]);
        assert_eq!(r.shape(), &[3]);
        assert_eq!(r.to_f32_vec(), vec![9., 12., 15.]);
        let w = t(&[3], &[1., 0., -1.]);
        let r = run(Op::MatMul, &[m, w.clone()]);
        assert_eq!(r.shape(), &[2]);
        assert_eq!(r.to_f32_vec(), vec![-2., -2.]);
        let r = run(Op::MatMul, &[w.clone(), w]);
        assert_eq!(r.shape(), &[] as &[u64]);
        assert_eq!(r.to_f32_vec(), vec![2.]);
    }

    #[test]
    fn matmul_integers_to_i32_saturating() {
        let a = Tensor::from_i64(DType::I8, vec![1, 2], &[-128, 127]).unwrap();
        let b = Tensor::from_i64(DType::U8, vec![2, 1], &[255, 3]).unwrap();
        let r = run(Op::MatMul, &[a, b]);
        assert_eq!(r.dtype(), DType::I32);
        assert_eq!(r.to_i64_vec(), vec![-128 * 255 + 381]);
        let big = Tensor::from_i64(DType::I32, vec![1, 2], &[i32::MAX as i64; 2]).unwrap();
        let r = run(
            Op::MatMul,
            &[big.clone(), big.reshaped(vec![2, 1]).unwrap()],
        );
        assert_eq!(r.to_i64_vec(), vec![i32::MAX as i64]);
    }

    #[test]
    fn matmul_f16_rounds_once() {
        let a = Tensor::from_f32(DType::F16, vec![1, 2], &[1.0, 1.0]).unwrap();
        let b = Tensor::from_f32(DType::F16, vec![2, 1], &[2048.0, 1.0]).unwrap();
        let r = run(Op::MatMul, &[a, b]);
        assert_eq!(r.dtype(), DType::F16);
        // 2049 is a tie in f16 (spacing 2 above 2048) and rounds to even: 2048.
        assert_eq!(r.to_f32_vec(), vec![2048.0]);
    }

    #[test]
    fn matmul_errors() {
        let a = t(&[2, 3], &[0.; 6]);
        let e = eval_op(&Op::MatMul, &[a.clone(), a.clone()], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("K = 3"), "{e}");
        let h = Tensor::from_f32(DType::F16, vec![3, 2], &[0.; 6]).unwrap();
        assert!(eval_op(&Op::MatMul, &[a.clone(), h], &Bindings::new()).is_err());
        let b3 = t(&[2, 3, 2], &[0.; 12]);
        let a3 = t(&[3, 2, 3], &[0.; 18]);
        let e = eval_op(&Op::MatMul, &[a3, b3], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("broadcast"), "{e}");
    }

    #[test]
    fn gemm_transposes_and_c() {
        // A = [[1,2],[3,4]] given transposed; B = [[1,0],[1,1]] given transposed.
        let at = t(&[2, 2], &[1., 3., 2., 4.]);
        let bt = t(&[2, 2], &[1., 1., 0., 1.]);
        let c = t(&[2], &[10., 20.]);
        let op = Op::Gemm {
            alpha: 2.0,
            beta: 0.5,
            trans_a: true,
            trans_b: true,
            has_c: true,
        };
        let r = run(op, &[at, bt, c]);
        // A·B = [[3,2],[7,4]]; 2·AB + 0.5·[10,20] = [[11,14],[19,18]].
        assert_eq!(r.to_f32_vec(), vec![11., 14., 19., 18.]);
        let a = t(&[1, 3], &[1., 2., 3.]);
        let b = t(&[2, 3], &[1., 1., 1., 0., 1., 0.]);
        let op = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
            has_c: false,
        };
        assert_eq!(run(op, &[a.clone(), b.clone()]).to_f32_vec(), vec![6., 2.]);
        let bad = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            has_c: false,
        };
        assert!(eval_op(&bad, &[a, b], &Bindings::new()).is_err());
    }

    fn naive(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; batch * m * n];
        for z in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0f64;
                    for p in 0..k {
                        s += a[z * m * k + i * k + p] as f64 * b[z * k * n + p * n + j] as f64;
                    }
                    out[z * m * n + i * n + j] = s as f32;
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matmul_matches_triple_loop(
            batch in 1usize..3, m in 1usize..4, k in 1usize..5, n in 1usize..4,
            seed in proptest::collection::vec(-8i32..8, 64..65),
            share_b in any::<bool>(),
        ) {
            let av: Vec<f32> = (0..batch * m * k).map(|i| seed[i % 64] as f32 * 0.25).collect();
            let bn = if share_b { k * n } else { batch * k * n };
            let bv: Vec<f32> = (0..bn).map(|i| seed[(i * 7 + 3) % 64] as f32 - 0.5).collect();
            let a = t(&[batch as u64, m as u64, k as u64], &av);
            let b = if share_b {
                t(&[k as u64, n as u64], &bv)
            } else {
                t(&[batch as u64, k as u64, n as u64], &bv)
            };
            let r = run(Op::MatMul, &[a, b]);
            let bfull: Vec<f32> = if share_b {
                (0..batch).flat_map(|_| bv.iter().copied()).collect()
            } else {
                bv.clone()
            };
            prop_assert_eq!(r.shape(), &[batch as u64, m as u64, n as u64]);
            prop_assert_eq!(r.to_f32_vec(), naive(&av, &bfull, batch, m, k, n));
        }
    }
}
