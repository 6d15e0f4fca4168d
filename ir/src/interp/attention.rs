//! Multi-head scaled dot-product attention on packed heads, with grouped-query heads.
//!
//! `q: [B, Sq, H·D]`, `k: [B, Sk, Hkv·D]`, `v: [B, Sk, Hkv·Dv]` (one float dtype), optional
//! `mask` of rank ≤ 4 that numpy-broadcasts to `[B, H, Sq, Sk]`: bool (true = attend) or any
//! float dtype (added to the logits). Query head `h` reads key/value head `h / (H / Hkv)`.
//! Causal masking removes keys `j > i + Sk − Sq`.
//!
//! Logits `scale · ⟨q, k⟩` (scale defaults to `1/√D`), the softmax (max-subtracted) and the
//! weighted sum of values are all computed in f64 and rounded once into q's dtype. A row
//! whose every key is masked (or whose logits are all −∞) yields zeros, not NaN.

use super::util::{
    broadcast_offset, broadcasts_to, from_f64, new_numel, require_float, require_rank, shape_str,
    strides, values_f64,
};
use super::{InterpError, op_err};
use crate::DType;
use crate::tensor::Tensor;

/// Evaluate `Attention` (see the module docs).
pub(super) fn attention(
    inputs: &[Tensor],
    heads: u64,
    kv_heads: u64,
    scale: Option<f32>,
    causal: bool,
    has_mask: bool,
) -> Result<Tensor, InterpError> {
    let expected = 3 + usize::from(has_mask);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "attention takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    require_float(q, "attention q")?;
    for (t, what) in [(k, "attention k"), (v, "attention v")] {
        if t.dtype() != q.dtype() {
            return Err(op_err(format!(
                "{what}: expected dtype {} (q's), got {}",
                q.dtype(),
                t.dtype()
            )));
        }
    }
    require_rank(q, 3, "attention q ([B, Sq, H·D])")?;
    require_rank(k, 3, "attention k ([B, Sk, Hkv·D])")?;
    require_rank(v, 3, "attention v ([B, Sk, Hkv·Dv])")?;
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(op_err(format!(
            "attention: heads ({heads}) must be a positive multiple of kv_heads ({kv_heads})"
        )));
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let (b, sq, sk) = (qs[0], qs[1], ks[1]);
    if qs[2] % heads != 0 || qs[2] == 0 {
        return Err(op_err(format!(
            "attention q: last dimension of {} must be a positive multiple of heads = {heads}",
            shape_str(qs)
        )));
    }
    let d = qs[2] / heads;
    if ks[0] != b || ks[2] != kv_heads * d {
        return Err(op_err(format!(
            "attention k: expected [{b}, Sk, {}] (Hkv·D with D = {d}), got {}",
            kv_heads * d,
            shape_str(ks)
        )));
    }
    if vs[0] != b || vs[1] != sk || vs[2] % kv_heads != 0 {
        return Err(op_err(format!(
            "attention v: expected [{b}, {sk}, Hkv·Dv] with Hkv = {kv_heads}, got {}",
            shape_str(vs)
        )));
    }
    let dv = vs[2] / kv_heads;
    let full = [b, heads, sq, sk];
    let mask = if has_mask {
        let m = &inputs[3];
        if m.shape().len() > 4 || !broadcasts_to(m.shape(), &full) {
            return Err(op_err(format!(
                "attention mask: shape {} does not broadcast to [B, H, Sq, Sk] = {}",
                shape_str(m.shape()),
                shape_str(&full)
            )));
        }
        if m.dtype() != DType::Bool && !m.dtype().is_float() {
            return Err(op_err(format!(
                "attention mask: expected bool or a float dtype, got {}",
                m.dtype()
            )));
        }
        Some((m.dtype() == DType::Bool, values_f64(m), m.shape().to_vec()))
    } else {
        None
    };
    let out_shape = vec![b, sq, heads * dv];
    new_numel(&out_shape)?;
    let (qv, kv, vv) = (values_f64(q), values_f64(k), values_f64(v));
    let (b, sq, sk, h, hkv, d, dv) = (
        b as usize,
        sq as usize,
        sk as usize,
        heads as usize,
        kv_heads as usize,
        d as usize,
        dv as usize,
    );
    let group = h / hkv;
    let scale = scale.map_or(1.0 / (d as f64).sqrt(), f64::from);
    let mask_strides = mask.as_ref().map(|(_, _, s)| strides(s));
    let mut out = vec![0f64; b * sq * h * dv];
    let mut logits = vec![0f64; sk];
    let mut allowed = vec![false; sk];
    for bi in 0..b {
        for hi in 0..h {
            let g = hi / group;
            for i in 0..sq {
                let qoff = (bi * sq + i) * h * d + hi * d;
                for j in 0..sk {
                    let koff = (bi * sk + j) * hkv * d + g * d;
                    let dot: f64 = (0..d).map(|p| qv[qoff + p] * kv[koff + p]).sum();
                    let mut l = scale * dot;
                    let mut ok = !(causal && j as i128 > i as i128 + sk as i128 - sq as i128);
                    if let (Some((is_bool, mv, ms)), Some(mst)) = (&mask, &mask_strides) {
                        let mval = mv[broadcast_offset(&[bi, hi, i, j], ms, mst)];
                        if *is_bool {
                            ok &= mval != 0.0;
                        } else {
                            l += mval;
                        }
                    }
                    logits[j] = l;
                    allowed[j] = ok;
                }
                let max = (0..sk).filter(|&j| allowed[j]).map(|j| logits[j]).fold(
                    f64::NEG_INFINITY,
                    |a, x| if x > a || x.is_nan() { x } else { a },
                );
                let ooff = (bi * sq + i) * h * dv + hi * dv;
                if max == f64::NEG_INFINITY {
                    continue; // fully masked row: zeros
                }
                let mut denom = 0f64;
                for j in 0..sk {
                    logits[j] = if allowed[j] {
                        (logits[j] - max).exp()
                    } else {
                        0.0
                    };
                    denom += logits[j];
                }
                for j in 0..sk {
                    if !allowed[j] {
                        continue;
                    }
                    let p = logits[j] / denom;
                    let voff = (bi * sk + j) * hkv * dv + g * dv;
                    for e in 0..dv {
                        out[ooff + e] += p * vv[voff + e];
                    }
                }
            }
        }
    }
    from_f64(q.dtype(), out_shape, &out)
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

    fn op(heads: u64, kv_heads: u64, scale: Option<f32>, causal: bool, mask: bool) -> Op {
        Op::Attention {
            heads,
            kv_heads,
            scale,
            causal,
            has_mask: mask,
        }
    }

    fn run(op: Op, inputs: &[Tensor]) -> Vec<f32> {
        eval_op(&op, inputs, &Bindings::new())
            .unwrap()
            .remove(0)
            .to_f32_vec()
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn one_head_matches_hand_softmax() {
        // D = 1, Sq = 1, Sk = 2: logits = q·k / √1 = [1·1, 1·2] = [1, 2].
        let q = t(&[1, 1, 1], &[1.]);
        let k = t(&[1, 2, 1], &[1., 2.]);
        let v = t(&[1, 2, 2], &[10., 0., 0., 10.]);
        let r = run(
            op(1, 1, None, false, false),
            &[q.clone(), k.clone(), v.clone()],
        );
        let p0 = 1.0 / (1.0 + 1f64.exp()); // e^1/(e^1+e^2)
        close(&r, &[10.0 * p0, 10.0 * (1.0 - p0)]);
        // Explicit scale 0 → uniform weights.
        let r = run(op(1, 1, Some(0.0), false, false), &[q, k, v]);
        close(&r, &[5.0, 5.0]);
    }

    #[test]
    fn default_scale_is_inverse_sqrt_d() {
        // D = 4: q = k0 = [1,1,1,1] → logit 4/2 = 2; k1 = 0 → logit 0.
        let q = t(&[1, 1, 4], &[1.; 4]);
        let k = t(&[1, 2, 4], &[1., 1., 1., 1., 0., 0., 0., 0.]);
        let v = t(&[1, 2, 1], &[1., 0.]);
        let r = run(op(1, 1, None, false, false), &[q, k, v]);
        close(&r, &[1.0 / (1.0 + (-2f64).exp())]);
    }

    #[test]
    fn causal_with_fewer_queries_than_keys() {
        // Sq = 2, Sk = 3: query 0 sees keys 0..=1, query 1 sees keys 0..=2. Scale 0 → mean.
        let q = t(&[1, 2, 1], &[1., 1.]);
        let k = t(&[1, 3, 1], &[0., 0., 0.]);
        let v = t(&[1, 3, 1], &[3., 6., 9.]);
        let r = run(op(1, 1, Some(0.0), true, false), &[q, k, v]);
        close(&r, &[4.5, 6.0]);
    }

    #[test]
    fn grouped_query_heads_share_kv() {
        // H = 2, Hkv = 1, D = 1, Sk = 1: both heads read the single kv head.
        let q = t(&[1, 1, 2], &[1., -1.]);
        let k = t(&[1, 1, 1], &[5.]);
        let v = t(&[1, 1, 2], &[7., 8.]);
        let r = run(op(2, 1, None, false, false), &[q, k, v]);
        close(&r, &[7., 8., 7., 8.]);
        // H = 4, Hkv = 2: heads 0,1 → kv 0; heads 2,3 → kv 1 (one key each).
        let q = t(&[1, 1, 4], &[1.; 4]);
        let k = t(&[1, 1, 2], &[1., 1.]);
        let v = t(&[1, 1, 2], &[3., 4.]);
        let r = run(op(4, 2, None, false, false), &[q, k, v]);
        close(&r, &[3., 3., 4., 4.]);
    }

    #[test]
    fn bool_and_float_masks() {
        let q = t(&[1, 2, 1], &[1., 1.]);
        let k = t(&[1, 2, 1], &[0., 0.]);
        let v = t(&[1, 2, 1], &[2., 4.]);
        // Bool mask [Sq, Sk]: row 0 attends key 1 only; row 1 attends nothing → zeros.
        let m = Tensor::from_f32(DType::Bool, vec![2, 2], &[0., 1., 0., 0.]).unwrap();
        let r = run(
            op(1, 1, None, false, true),
            &[q.clone(), k.clone(), v.clone(), m],
        );
        close(&r, &[4.0, 0.0]);
        // Float mask [Sk] broadcast: additive ln(3) on key 1 → weights 1/4, 3/4.
        let m = t(&[2], &[0., 3f32.ln()]);
        let r = run(
            op(1, 1, None, false, true),
            &[q.clone(), k.clone(), v.clone(), m],
        );
        close(&r, &[3.5, 3.5]);
        // −∞ everywhere → zeros.
        let m = t(&[1, 1, 1, 1], &[f32::NEG_INFINITY]);
        let r = run(
            op(1, 1, None, false, true),
            &[q.clone(), k.clone(), v.clone(), m],
        );
        close(&r, &[0.0, 0.0]);
        // A mask that does not broadcast is refused.
        let m = t(&[3], &[0.; 3]);
        assert!(
            eval_op(
                &op(1, 1, None, false, true),
                &[q, k, v, m],
                &Bindings::new()
            )
            .is_err()
        );
    }

    #[test]
    fn shape_errors() {
        let q = t(&[1, 1, 3], &[0.; 3]);
        let k = t(&[1, 1, 3], &[0.; 3]);
        let v = t(&[1, 1, 3], &[0.; 3]);
        assert!(
            eval_op(
                &op(2, 1, None, false, false),
                &[q.clone(), k.clone(), v.clone()],
                &Bindings::new()
            )
            .is_err()
        );
        assert!(
            eval_op(
                &op(3, 2, None, false, false),
                &[q.clone(), k.clone(), v.clone()],
                &Bindings::new()
            )
            .is_err()
        );
        let k2 = t(&[1, 2, 3], &[0.; 6]);
        let e = eval_op(&op(1, 1, None, false, false), &[q, k2, v], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("attention v"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn matches_naive_per_head(
            b in 1usize..3, sq in 1usize..4, sk in 1usize..4, hkv in 1usize..3, group in 1usize..3,
            d in 1usize..4, dv in 1usize..3, causal in any::<bool>(),
            seed in proptest::collection::vec(-3.0f32..3.0, 64..65),
        ) {
            let h = hkv * group;
            let fill = |n: usize, s: usize| -> Vec<f32> { (0..n).map(|i| seed[(i * s + s) % 64]).collect() };
            let qv = fill(b * sq * h * d, 3);
            let kv = fill(b * sk * hkv * d, 5);
            let vv = fill(b * sk * hkv * dv, 7);
            let r = run(
                op(h as u64, hkv as u64, None, causal, false),
                &[
                    t(&[b as u64, sq as u64, (h * d) as u64], &qv),
                    t(&[b as u64, sk as u64, (hkv * d) as u64], &kv),
                    t(&[b as u64, sk as u64, (hkv * dv) as u64], &vv),
                ],
            );
            let scale = 1.0 / (d as f64).sqrt();
            for bi in 0..b {
                for hi in 0..h {
                    let g = hi / group;
                    for i in 0..sq {
                        let keys: Vec<usize> = (0..sk)
                            .filter(|&j| !causal || j + sq <= i + sk)
                            .collect();
                        let s: Vec<f64> = keys.iter().map(|&j| {
                            (0..d).map(|p| qv[(bi * sq + i) * h * d + hi * d + p] as f64
                                * kv[(bi * sk + j) * hkv * d + g * d + p] as f64).sum::<f64>() * scale
                        }).collect();
                        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for c in 0..dv {
                            let want: f64 = if keys.is_empty() { 0.0 } else {
                                keys.iter().zip(&e).map(|(&j, w)| w / z
                                    * vv[(bi * sk + j) * hkv * dv + g * dv + c] as f64).sum()
                            };
                            let got = r[(bi * sq + i) * h * dv + hi * dv + c] as f64;
                            prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
