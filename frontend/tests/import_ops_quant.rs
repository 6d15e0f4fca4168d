//! Conformance of the quantization converters on the ONNX node cases.

mod ops_harness;

#[test]
fn quant_conformance() {
    ops_harness::run_family(
        "quant",
        &[
            "test_quantizelinear",
            "test_dequantizelinear",
            "test_dynamicquantizelinear",
        ],
        10,
    );
}
