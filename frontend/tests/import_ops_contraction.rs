//! Conformance of the contraction converters on the ONNX node cases.

mod ops_harness;

#[test]
fn contraction_conformance() {
    ops_harness::run_family(
        "contraction",
        &[
            "test_matmul",
            "test_gemm",
            "test_einsum",
            "test_matmulinteger",
        ],
        15,
    );
}
