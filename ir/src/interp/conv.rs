//! N-D grouped convolution (ONNX `Conv` without auto-padding).
//!
//! `x: [N, C, *spatial]`, `w: [M, C/groups, *kernel]`, optional `bias: [M]`, all of one
//! float dtype. Output `[N, M, *out]` with
//! `out_d = ⌊(in_d + pad_begin_d + pad_end_d − dilation_d·(k_d − 1) − 1) / stride_d⌋ + 1`.
//! Empty `strides`, `pads` or `dilations` mean the ONNX defaults (1, 0, 1). Products are
//! accumulated in f64 (bias included) and rounded once.

use super::util::{
    from_f64, new_numel, next_index, require_float, require_shape, shape_str, strides, values_f64,
};
use super::{InterpError, op_err};
use crate::tensor::Tensor;

/// Per-axis attributes, defaulted and checked against the spatial rank.
fn per_axis(attr: &[u64], len: usize, default: u64, name: &str) -> Result<Vec<u64>, InterpError> {
    if attr.is_empty() {
        return Ok(vec![default; len]);
    }
    if attr.len() != len {
        return Err(op_err(format!(
            "conv: expected {len} {name} (one per {}), got {}",
            if name == "pads" {
                "spatial axis begin and end"
            } else {
                "spatial axis"
            },
            attr.len()
        )));
    }
    Ok(attr.to_vec())
}

/// Evaluate `Conv` (see the module docs).
pub(super) fn conv(
    inputs: &[Tensor],
    strides_attr: &[u64],
    pads_attr: &[u64],
    dilations_attr: &[u64],
    groups: u64,
    has_bias: bool,
) -> Result<Tensor, InterpError> {
    let expected = 2 + usize::from(has_bias);
    if inputs.len() != expected {
        return Err(op_err(format!(
            "conv takes {expected} operands, got {}",
            inputs.len()
        )));
    }
    let (x, w) = (&inputs[0], &inputs[1]);
    require_float(x, "conv x")?;
    for (t, what) in inputs[1..].iter().zip(["conv w", "conv bias"]) {
        if t.dtype() != x.dtype() {
            return Err(op_err(format!(
                "{what}: expected dtype {} (x's), got {}",
                x.dtype(),
                t.dtype()
            )));
        }
    }
    let xs = x.shape();
    let ws = w.shape();
    if xs.len() < 3 {
        return Err(op_err(format!(
            "conv x: expected [N, C, *spatial] with at least one spatial axis, got {}",
            shape_str(xs)
        )));
    }
    let sr = xs.len() - 2;
    if ws.len() != xs.len() {
        return Err(op_err(format!(
            "conv w: expected rank {} ([M, C/groups, *kernel]), got {}",
            xs.len(),
            shape_str(ws)
        )));
    }
    if groups == 0 {
        return Err(op_err("conv: groups must be at least 1"));
    }
    let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    if c % groups != 0 || m % groups != 0 || cg != c / groups {
        return Err(op_err(format!(
            "conv: with {groups} groups, x {} and w {} need C and M divisible by groups and w's dimension 1 = C/groups = {}",
            shape_str(xs),
            shape_str(ws),
            c / groups
        )));
    }
    if has_bias {
        require_shape(&inputs[2], &[m], "conv bias")?;
    }
    let st = per_axis(strides_attr, sr, 1, "strides")?;
    let pads = per_axis(pads_attr, 2 * sr, 0, "pads")?;
    let dil = per_axis(dilations_attr, sr, 1, "dilations")?;
    if st.contains(&0) || dil.contains(&0) {
        return Err(op_err("conv: strides and dilations must be at least 1"));
    }
    let sp_in = &xs[2..];
    let kern = &ws[2..];
    let mut sp_out = Vec::with_capacity(sr);
    for d in 0..sr {
        let padded = sp_in[d] as u128 + pads[d] as u128 + pads[sr + d] as u128;
        let span = (dil[d] as u128) * (kern[d] as u128).saturating_sub(1) + 1;
        if kern[d] == 0 || padded < span {
            return Err(op_err(format!(
                "conv: spatial axis {d}: padded input {padded} is shorter than the dilated kernel {span}"
            )));
        }
        let extent = u64::try_from((padded - span) / st[d] as u128 + 1)
            .map_err(|_| op_err(format!("conv: spatial axis {d}: output extent overflows")))?;
        sp_out.push(extent);
    }
    let mut out_shape = vec![n, m];
    out_shape.extend(&sp_out);
    let total = new_numel(&out_shape)?;
    let (xv, wv) = (values_f64(x), values_f64(w));
    let bias = has_bias.then(|| values_f64(&inputs[2]));
    let (xst, wst) = (strides(xs), strides(ws));
    let mg = m / groups;
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return from_f64(x.dtype(), out_shape, &out);
    }
    let kvol = new_numel(kern)?;
    // Iterate the output in row-major order: (n, m, *spatial).
    let mut idx = vec![0usize; out_shape.len()];
    let mut kidx = vec![0usize; sr];
    loop {
        let (b, oc) = (idx[0], idx[1]);
        let g = oc as u64 / mg;
        let mut acc = bias.as_ref().map_or(0.0, |bv| bv[oc]);
        for ci in 0..cg as usize {
            let ic = g as usize * cg as usize + ci;
            let xbase = b * xst[0] + ic * xst[1];
            let wbase = oc * wst[0] + ci * wst[1];
            if kvol == 0 {
                continue;
            }
            kidx.iter_mut().for_each(|k| *k = 0);
            loop {
                let mut xoff = xbase;
                let mut woff = wbase;
                let mut inside = true;
                for d in 0..sr {
                    // Position in the unpadded input; may fall into the padding.
                    let pos = idx[2 + d] as i128 * st[d] as i128 - pads[d] as i128
                        + kidx[d] as i128 * dil[d] as i128;
                    if pos < 0 || pos >= sp_in[d] as i128 {
                        inside = false;
                        break;
                    }
                    xoff += pos as usize * xst[2 + d];
                    woff += kidx[d] * wst[2 + d];
                }
                if inside {
                    acc += xv[xoff] * wv[woff];
                }
                if !next_index(&mut kidx, kern) {
                    break;
                }
            }
        }
        out.push(acc);
        if !next_index(&mut idx, &out_shape) {
            break;
        }
    }
    from_f64(x.dtype(), out_shape, &out)
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

    fn conv_op(strides: &[u64], pads: &[u64], dil: &[u64], groups: u64, bias: bool) -> Op {
        Op::Conv {
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dil.to_vec(),
            groups,
            has_bias: bias,
        }
    }

    fn run(op: Op, inputs: &[Tensor]) -> Tensor {
        eval_op(&op, inputs, &Bindings::new()).unwrap().remove(0)
    }

    #[test]
    fn conv1d_pad_stride_dilation() {
        // x = [1,2,3,4,5], w = [1,10] dilated by 2 → taps at i and i+2; pads (1, 2);
        // padded = [0,1,2,3,4,5,0,0]; stride 2 → positions 0,2,4 (span 3 ≤ 8 → 3 outputs).
        let x = t(&[1, 1, 5], &[1., 2., 3., 4., 5.]);
        let w = t(&[1, 1, 2], &[1., 10.]);
        let b = t(&[1], &[0.5]);
        let r = run(conv_op(&[2], &[1, 2], &[2], 1, true), &[x, w, b]);
        assert_eq!(r.shape(), &[1, 1, 3]);
        // p0: 0 + 10·2 = 20; p2: 2 + 10·4 = 42; p4: 4 + 10·0 = 4; plus 0.5.
        assert_eq!(r.to_f32_vec(), vec![20.5, 42.5, 4.5]);
    }

    #[test]
    fn conv2d_depthwise_and_grouped() {
        // Depthwise: 2 channels, groups = 2, 2×2 kernels on 2×2 inputs, no padding.
        let x = t(&[1, 2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let w = t(&[2, 1, 2, 2], &[1., 0., 0., 1., 0., 1., 1., 0.]);
        let r = run(conv_op(&[], &[], &[], 2, false), &[x.clone(), w]);
        assert_eq!(r.shape(), &[1, 2, 1, 1]);
        assert_eq!(r.to_f32_vec(), vec![1. + 4., 6. + 7.]);
        // Grouped with 2 output channels per group on 1×1 kernels: ch0,ch1 ← x ch0; ch2,ch3 ← x ch1.
        let w = t(&[4, 1, 1, 1], &[1., -1., 2., 0.5]);
        let r = run(conv_op(&[1, 1], &[0, 0, 0, 0], &[1, 1], 2, false), &[x, w]);
        assert_eq!(r.shape(), &[1, 4, 2, 2]);
        assert_eq!(
            r.to_f32_vec(),
            vec![
                1., 2., 3., 4., -1., -2., -3., -4., 10., 12., 14., 16., 2.5, 3., 3.5, 4.
            ]
        );
    }

    #[test]
    fn conv_errors() {
        let x = t(&[1, 3, 4], &[0.; 12]);
        let w = t(&[2, 3, 5], &[0.; 30]);
        let e = eval_op(
            &conv_op(&[], &[], &[], 1, false),
            &[x.clone(), w],
            &Bindings::new(),
        );
        assert!(e.unwrap_err().to_string().contains("shorter"));
        let w = t(&[2, 2, 1], &[0.; 4]);
        assert!(
            eval_op(
                &conv_op(&[], &[], &[], 1, false),
                &[x.clone(), w.clone()],
                &Bindings::new()
            )
            .is_err()
        );
        let w = t(&[2, 3, 1], &[0.; 6]);
        assert!(
            eval_op(
                &conv_op(&[0], &[], &[], 1, false),
                &[x.clone(), w.clone()],
                &Bindings::new()
            )
            .is_err()
        );
        assert!(
            eval_op(
                &conv_op(&[1, 1], &[], &[], 1, false),
                &[x, w],
                &Bindings::new()
            )
            .is_err()
        );
    }

    /// Direct 2-D formula, written independently of the N-D odometer.
    #[allow(clippy::too_many_arguments)]
    fn naive2d(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        st: [usize; 2],
        pads: [usize; 4],
        dil: [usize; 2],
        groups: usize,
    ) -> (Vec<usize>, Vec<f32>) {
        let [n, c, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) / st[0] + 1;
        let ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) / st[1] + 1;
        let mut out = vec![0f32; n * m * oh * ow];
        for b in 0..n {
            for o in 0..m {
                let g = o / (m / groups);
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut s = 0f64;
                        for ci in 0..cg {
                            let ic = g * cg + ci;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (y * st[0] + ky * dil[0]) as i64 - pads[0] as i64;
                                    let ix = (xo * st[1] + kx * dil[1]) as i64 - pads[1] as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                        continue;
                                    }
                                    let xv = x[((b * c + ic) * h + iy as usize) * wd + ix as usize];
                                    let wv = w[((o * cg + ci) * kh + ky) * kw + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((b * m + o) * oh + y) * ow + xo] = s as f32;
                    }
                }
            }
        }
        (vec![n, m, oh, ow], out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn conv2d_matches_direct_formula(
            groups in 1usize..3, cg in 1usize..3, mg in 1usize..3,
            h in 1usize..6, wd in 1usize..6, kh in 1usize..3, kw in 1usize..3,
            sy in 1usize..3, sx in 1usize..3, dy in 1usize..3, dx in 1usize..3,
            pads in proptest::array::uniform4(0usize..3),
            seed in proptest::collection::vec(-4i32..5, 32..33),
        ) {
            let c = groups * cg;
            let m = groups * mg;
            prop_assume!(h + pads[0] + pads[2] > dy * (kh - 1));
            prop_assume!(wd + pads[1] + pads[3] > dx * (kw - 1));
            let xv: Vec<f32> = (0..c * h * wd).map(|i| seed[i % 32] as f32 * 0.5).collect();
            let wv: Vec<f32> = (0..m * cg * kh * kw).map(|i| seed[(i * 5 + 1) % 32] as f32).collect();
            let x = t(&[1, c as u64, h as u64, wd as u64], &xv);
            let w = t(&[m as u64, cg as u64, kh as u64, kw as u64], &wv);
            let op = conv_op(
                &[sy as u64, sx as u64],
                &pads.map(|p| p as u64),
                &[dy as u64, dx as u64],
                groups as u64,
                false,
            );
            let r = run(op, &[x, w]);
            let (shape, expect) = naive2d(
                &xv, [1, c, h, wd], &wv, [m, cg, kh, kw], [sy, sx], pads, [dy, dx], groups,
            );
            let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            prop_assert_eq!(r.shape(), shape.as_slice());
            prop_assert_eq!(r.to_f32_vec(), expect);
        }
    }
}
