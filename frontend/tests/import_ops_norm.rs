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
