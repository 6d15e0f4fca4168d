//! Conformance of the normalization and softmax converters on the ONNX node cases.

mod ops_harness;

#[test]
fn norm_conformance() {
    ops_harness::run_family(
        "norm",
        &[
            "test_layer_normalization",
            "test_rms_normalization",
            "test_group_normalization",
            "test_instancenorm",
            "test_softmax",
            "test_logsoftmax",
        ],
        40,
    );
}

mod ops_build;

use ops_build::{attr_i, init, max_diff, one_node, ramp, run};

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
