//! Conformance of the reduction converters on the ONNX node cases.

mod ops_harness;

#[test]
fn reduce_conformance() {
    ops_harness::run_family(
        "reduce",
        &["test_reduce_", "test_argmax", "test_argmin", "test_cumsum"],
        50,
    );
}
