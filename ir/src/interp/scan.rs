//! Mamba-1 selective scan.
//!
//! Inputs `u: [B, D, L]`, `delta: [B, D, L]`, `A: [D, N]`, `Bm: [B, N, L]`, `Cm: [B, N, L]`,
//! optional `Dskip: [D]`, optional `z: [B, D, L]`, all float (dtypes may differ; the output
//! takes `u`'s). Per channel `(b, d)` the state `h ∈ ℝᴺ` starts at zero and, with
//! `δ = softplus(delta)` when asked (`ln(1 + eˣ)`, `x` itself above 20):
//! `h_t = exp(δ_t·A[d]) ⊙ h_{t−1} + δ_t·Bm_t·u_t`, `y_t = ⟨Cm_t, h_t⟩ + Dskip[d]·u_t`, then
//! `y_t ·= z_t·sigmoid(z_t)`. Everything is computed in f64 and rounded once.

use super::util::{from_f64, require_float, require_shape, shape_str, values_f64};
use super::{InterpError, op_err};
use crate::tensor::Tensor;

/// `ln(1 + eˣ)`, stable for large `x`.
fn softplus(x: f64) -> f64 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

/// `x · sigmoid(x)`.
fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Evaluate `SelectiveScan` (see the module docs).
pub(super) fn selective_scan(
    inputs: &[Tensor],
    softplus_delta: bool,
    has_d: bool,
    has_z: bool,
) -> Result<Tensor, InterpError> {
    let expected = 5 + usize::from(has_d) + usize::from(has_z);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "selective_scan takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let u = &inputs[0];
    let names = ["u", "delta", "A", "Bm", "Cm", "Dskip", "z"];
    if u.shape().len() != 3 {
        return Err(op_err(format!(
            "selective_scan u: expected [B, D, L], got {}",
            shape_str(u.shape())
        )));
    }
    let (bs, ds, ls) = (u.shape()[0], u.shape()[1], u.shape()[2]);
    let a = &inputs[2];
    if a.shape().len() != 2 || a.shape()[0] != ds {
        return Err(op_err(format!(
            "selective_scan A: expected [{ds}, N], got {}",
            shape_str(a.shape())
        )));
    }
    let ns = a.shape()[1];
    require_shape(&inputs[1], &[bs, ds, ls], "selective_scan delta")?;
    require_shape(&inputs[3], &[bs, ns, ls], "selective_scan Bm")?;
    require_shape(&inputs[4], &[bs, ns, ls], "selective_scan Cm")?;
    let dskip = has_d.then(|| &inputs[5]);
    let z = has_z.then(|| &inputs[5 + usize::from(has_d)]);
    if let Some(t) = dskip {
        require_shape(t, &[ds], "selective_scan Dskip")?;
    }
    if let Some(t) = z {
        require_shape(t, &[bs, ds, ls], "selective_scan z")?;
    }
    for (i, t) in inputs.iter().enumerate() {
        let name = if i < 5 {
            names[i]
        } else if has_d && i == 5 {
            "Dskip"
        } else {
            "z"
        };
        require_float(t, &format!("selective_scan {name}"))?;
    }
    let (uv, dv, av, bv, cv) = (
        values_f64(u),
        values_f64(&inputs[1]),
        values_f64(a),
        values_f64(&inputs[3]),
        values_f64(&inputs[4]),
    );
    let skip = dskip.map(values_f64);
    let zv = z.map(values_f64);
    let (bs, ds, ls, ns) = (bs as usize, ds as usize, ls as usize, ns as usize);
    let mut out = vec![0f64; bs * ds * ls];
    let mut h = vec![0f64; ns];
    for b in 0..bs {
        for d in 0..ds {
            h.iter_mut().for_each(|x| *x = 0.0);
            for t in 0..ls {
                let i = (b * ds + d) * ls + t;
                let raw = dv[i];
                let delta = if softplus_delta { softplus(raw) } else { raw };
                let x = uv[i];
                let mut y = 0.0;
                for (n, hn) in h.iter_mut().enumerate() {
                    let bc = (b * ns + n) * ls + t;
                    *hn = (delta * av[d * ns + n]).exp() * *hn + delta * bv[bc] * x;
                    y += cv[bc] * *hn;
                }
                if let Some(s) = &skip {
                    y += s[d] * x;
                }
                if let Some(zv) = &zv {
                    y *= silu(zv[i]);
                }
                out[i] = y;
            }
        }
    }
    from_f64(u.dtype(), vec![bs as u64, ds as u64, ls as u64], &out)
}

#[cfg(test)]
mod tests {
    use super::softplus;
    use crate::interp::{Bindings, eval_op};
    use crate::op::Op;
    use crate::{DType, Tensor};

    fn t(shape: &[u64], v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, shape.to_vec(), v).unwrap()
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!(
                (*x as f64 - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(100.0), 100.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert!(softplus(-800.0) >= 0.0);
    }

    #[test]
    fn length_two_by_hand() {
        // B = 1, D = 1, N = 2, L = 2; δ = [0.5, 1], A = [-1, -2], u = [2, 3],
        // Bm[:, t] = [1, 2] then [0, 1], Cm[:, t] = [1, 1] then [2, -1], Dskip = 0.5.
        let u = t(&[1, 1, 2], &[2., 3.]);
        let delta = t(&[1, 1, 2], &[0.5, 1.]);
        let a = t(&[1, 2], &[-1., -2.]);
        let bm = t(&[1, 2, 2], &[1., 0., 2., 1.]);
        let cm = t(&[1, 2, 2], &[1., 2., 1., -1.]);
        let dskip = t(&[1], &[0.5]);
        let op = Op::SelectiveScan {
            delta_softplus: false,
            has_d: true,
            has_z: false,
        };
        let r = eval_op(&op, &[u, delta.clone(), a, bm, cm, dskip], &Bindings::new()).unwrap();
        // t = 0: h = [0.5·1·2, 0.5·2·2] = [1, 2]; y = 1 + 2 + 0.5·2 = 4.
        // t = 1: h0 = e^-1·1 + 1·0·3 = e^-1; h1 = e^-2·2 + 1·1·3; y = 2h0 − h1 + 1.5.
        let (h0, h1) = ((-1f64).exp(), 2.0 * (-2f64).exp() + 3.0);
        close(&r[0].to_f32_vec(), &[4.0, 2.0 * h0 - h1 + 1.5]);
    }

    #[test]
    fn softplus_delta_and_gate() {
        // N = 1, L = 1, A = 0: h = δ·Bm·u, y = Cm·h · silu(z).
        let u = t(&[1, 1, 1], &[2.]);
        let delta = t(&[1, 1, 1], &[0.]);
        let a = t(&[1, 1], &[0.]);
        let bm = t(&[1, 1, 1], &[1.]);
        let cm = t(&[1, 1, 1], &[3.]);
        let z = t(&[1, 1, 1], &[1.]);
        let op = Op::SelectiveScan {
            delta_softplus: true,
            has_d: false,
            has_z: true,
        };
        let r = eval_op(&op, &[u, delta, a, bm, cm, z], &Bindings::new()).unwrap();
        let silu1 = 1.0 / (1.0 + (-1f64).exp());
        close(&r[0].to_f32_vec(), &[3.0 * 2f64.ln() * 2.0 * silu1]);
    }

    #[test]
    fn shape_errors() {
        let u = t(&[1, 2, 3], &[0.; 6]);
        let a = t(&[2, 4], &[0.; 8]);
        let bm = t(&[1, 4, 3], &[0.; 12]);
        let bad = t(&[1, 3, 3], &[0.; 9]);
        let op = Op::SelectiveScan {
            delta_softplus: false,
            has_d: false,
            has_z: false,
        };
        let ok = eval_op(
            &op,
            &[u.clone(), u.clone(), a.clone(), bm.clone(), bm.clone()],
            &Bindings::new(),
        );
        assert!(ok.is_ok());
        let e = eval_op(&op, &[u.clone(), u.clone(), a, bm, bad], &Bindings::new()).unwrap_err();
        assert!(e.to_string().contains("Cm"), "{e}");
    }
}
