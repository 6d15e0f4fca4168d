//! Conformance of the activation converters on the ONNX node cases.

mod ops_harness;

#[test]
fn activation_conformance() {
    ops_harness::run_family(
        "activation",
        &[
            "test_gelu",
            "test_relu",
            "test_leakyrelu",
            "test_prelu",
            "test_elu",
            "test_selu",
            "test_celu",
            "test_hardsigmoid",
            "test_hardswish",
            "test_mish",
            "test_softsign",
            "test_clip",
            "test_trilu",
            "test_tril",
            "test_triu",
        ],
        20,
    );
}
