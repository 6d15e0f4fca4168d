//! Conformance of the attention converters on the ONNX node cases.

mod ops_harness;

#[test]
fn attention_conformance() {
    ops_harness::run_family(
        "attention",
        &["test_attention_", "test_rotary_embedding"],
        10,
    );
}
