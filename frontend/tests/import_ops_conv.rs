//! Conformance of the convolution converter on the ONNX node cases.

mod ops_harness;

#[test]
fn conv_conformance() {
    ops_harness::run_family("conv", &["test_conv_", "test_basic_conv"], 5);
}
