//! Conformance of the resize converters on the ONNX node cases.

mod ops_harness;

#[test]
fn resize_conformance() {
    ops_harness::run_family("resize", &["test_resize_", "test_upsample"], 20);
}
