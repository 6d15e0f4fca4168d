//! Hand-built one-node models for the compute converters (contraction, convolution,
//! normalization): imported and run against naive references, or checked for the IR
//! they lower to. The ONNX node conformance cases are in `import_conformance.rs`.

mod common;
mod ops_build;

mod contraction {

    use std::collections::BTreeMap;

    use crate::ops_build::{attr_s, import, max_diff, one_node, ramp, run};

    /// Naive einsum over explicit labels (no ellipsis): sum over every label assignment.
    fn naive_einsum(eq: &str, ops: &[(&[u64], &[f32])]) -> (Vec<u64>, Vec<f32>) {
        let (lhs, out) = eq.split_once("->").expect("explicit");
        let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
        let out: Vec<char> = out.chars().collect();
        let mut size = BTreeMap::new();
        for (t, (dims, _)) in terms.iter().zip(ops) {
            for (c, d) in t.iter().zip(dims.iter()) {
                size.insert(*c, *d);
            }
        }
        let labels: Vec<char> = size.keys().copied().collect();
        let out_dims: Vec<u64> = out.iter().map(|c| size[c]).collect();
        let mut res = vec![0.0f32; out_dims.iter().product::<u64>() as usize];
        let total: u64 = labels.iter().map(|c| size[c]).product();
        for flat in 0..total {
            let mut rem = flat;
            let mut val = BTreeMap::new();
            for c in labels.iter().rev() {
                val.insert(*c, rem % size[c]);
                rem /= size[c];
            }
            let index = |t: &[char], dims: &[u64]| -> usize {
                t.iter()
                    .zip(dims)
                    .fold(0u64, |acc, (c, d)| acc * d + val[c]) as usize
            };
            let mut p = 1.0f32;
            for (t, (dims, data)) in terms.iter().zip(ops) {
                p *= data[index(t, dims)];
            }
            res[index(&out, &out_dims)] += p;
        }
        (out_dims, res)
    }

    fn check_einsum(eq: &str, shapes: &[&[u64]]) {
        let datas: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| ramp(s.iter().product::<u64>() as usize, i as u32 + 1))
            .collect();
        let ops: Vec<(&[u64], &[f32])> = shapes
            .iter()
            .zip(&datas)
            .map(|(s, d)| (*s, d.as_slice()))
            .collect();
        let (out_dims, want) = naive_einsum(eq, &ops);
        let names = ["a", "b", "c"];
        let inputs: Vec<(&str, &[u64])> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (names[i], *s))
            .collect();
        let m = one_node(
            "Einsum",
            12,
            &inputs,
            vec![],
            vec![attr_s("equation", eq)],
            &out_dims,
        );
        let feeds: Vec<(&[u64], Vec<f32>)> = shapes
            .iter()
            .zip(&datas)
            .map(|(s, d)| (*s, d.clone()))
            .collect();
        let got = run(&m, &feeds);
        assert!(max_diff(&got, &want) < 1e-4, "{eq}: {got:?} vs {want:?}");
    }

    #[test]
    fn einsum_patterns_exporters_emit() {
        check_einsum("bhid,bhjd->bhij", &[&[2, 3, 4, 5], &[2, 3, 6, 5]]);
        check_einsum("bhij,bhjd->bhid", &[&[2, 3, 4, 6], &[2, 3, 6, 5]]);
        check_einsum("nhwpqc->nchpwq", &[&[1, 2, 3, 2, 2, 4]]);
        check_einsum("i,j->ij", &[&[3], &[4]]);
        check_einsum("ij,jk,kl->il", &[&[2, 3], &[3, 4], &[4, 2]]);
        check_einsum("bij->bj", &[&[2, 3, 4]]);
        check_einsum("ik,jk->ij", &[&[3, 5], &[4, 5]]);
    }

    #[test]
    fn einsum_transpose_is_one_transpose() {
        let m = one_node(
            "Einsum",
            12,
            &[("a", &[1, 2, 3, 2, 2, 4])],
            vec![],
            vec![attr_s("equation", "nhwpqc->nchpwq")],
            &[1, 4, 2, 2, 3, 2],
        );
        let g = import(&m).expect("import");
        let ops: Vec<&str> = g.node_ids().map(|n| g.node(n).op.name()).collect();
        assert_eq!(
            ops.iter().filter(|o| **o == "transpose").count(),
            1,
            "{ops:?}"
        );
        assert!(!ops.contains(&"matmul"), "{ops:?}");
    }

    #[test]
    fn einsum_diagonals() {
        check_einsum("ii->i", &[&[3, 3]]);
        check_einsum("ii->", &[&[3, 3]]);
        check_einsum("bii,bij->bj", &[&[2, 3, 3], &[2, 3, 4]]);
    }

    #[test]
    fn einsum_diagonal_of_unequal_axes_is_refused_clearly() {
        let m = one_node(
            "Einsum",
            12,
            &[("a", &[3, 4])],
            vec![],
            vec![attr_s("equation", "ii->i")],
            &[3],
        );
        let e = import(&m).expect_err("diagonal");
        assert!(e.contains("diagonal") && e.contains("equation"), "{e}");
    }
}

mod conv {

    use crate::ops_build::{attr_is, attr_s, import, init, one_node};
    use dqc_ir::Op;

    fn conv_pads(auto_pad: &str) -> Vec<u64> {
        // x [1, 1, 4, 4], w [1, 1, 3, 3], stride 2: out 2×2, total padding 1 per axis.
        let m = one_node(
            "Conv",
            11,
            &[("x", &[1, 1, 4, 4])],
            vec![init("w", &[1, 1, 3, 3], &[1.0; 9])],
            vec![attr_s("auto_pad", auto_pad), attr_is("strides", &[2, 2])],
            &[1, 1, 2, 2],
        );
        let g = import(&m).expect("import");
        g.node_ids()
            .find_map(|n| match &g.node(n).op {
                Op::Conv { pads, .. } => Some(pads.clone()),
                _ => None,
            })
            .expect("a conv node")
    }

    #[test]
    fn auto_pad_puts_the_odd_padding_where_the_spec_says() {
        assert_eq!(conv_pads("SAME_UPPER"), vec![0, 0, 1, 1]);
        assert_eq!(conv_pads("SAME_LOWER"), vec![1, 1, 0, 0]);
        assert_eq!(conv_pads("VALID"), vec![0, 0, 0, 0]);
    }
}

mod norm {

    use crate::ops_build::{attr_i, init, max_diff, one_node, ramp, run};

    /// Softmax (or log-softmax) of rows of length `inner`.
    fn rows(x: &[f32], inner: usize, log: bool) -> Vec<f32> {
        x.chunks(inner)
            .flat_map(|r| {
                let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
                r.iter()
                    .map(move |v| {
                        if log {
                            v - m - s.ln()
                        } else {
                            (v - m).exp() / s
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn softmax_before_13_normalizes_the_flattened_tail() {
        let x = ramp(24, 3);
        for (op, log) in [("Softmax", false), ("LogSoftmax", true)] {
            // opset 11, axis 1 on [2, 3, 4]: rows of 12.
            let m = one_node(
                op,
                11,
                &[("x", &[2, 3, 4])],
                vec![],
                vec![attr_i("axis", 1)],
                &[2, 3, 4],
            );
            let got = run(&m, &[(&[2, 3, 4], x.clone())]);
            assert!(max_diff(&got, &rows(&x, 12, log)) < 1e-5, "{op} opset 11");
            // opset 13, axis 1: along the middle axis only — differs from the rows of 12.
            let m = one_node(
                op,
                13,
                &[("x", &[2, 3, 4])],
                vec![],
                vec![attr_i("axis", -1)],
                &[2, 3, 4],
            );
            let got = run(&m, &[(&[2, 3, 4], x.clone())]);
            assert!(max_diff(&got, &rows(&x, 4, log)) < 1e-5, "{op} opset 13");
        }
    }

    #[test]
    fn group_norm_opset_18_scale_is_per_group() {
        // x [1, 4, 2], 2 groups; scale/bias per group (opset 18).
        let x = ramp(8, 5);
        let m = one_node(
            "GroupNormalization",
            18,
            &[("x", &[1, 4, 2])],
            vec![init("s", &[2], &[2.0, -1.0]), init("b", &[2], &[0.5, 1.0])],
            vec![attr_i("num_groups", 2)],
            &[1, 4, 2],
        );
        let got = run(&m, &[(&[1, 4, 2], x.clone())]);
        let mut want = Vec::new();
        for (g, chunk) in x.chunks(4).enumerate() {
            let mean: f32 = chunk.iter().sum::<f32>() / 4.0;
            let var: f32 = chunk.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 4.0;
            let (s, b) = [(2.0, 0.5), (-1.0, 1.0)][g];
            want.extend(
                chunk
                    .iter()
                    .map(|v| (v - mean) / (var + 1e-5).sqrt() * s + b),
            );
        }
        assert!(max_diff(&got, &want) < 1e-4, "{got:?} vs {want:?}");
    }
}
