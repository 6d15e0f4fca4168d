//! Conformance of the convolution converter on the ONNX node cases.

mod ops_harness;

#[test]
fn conv_conformance() {
    ops_harness::run_family("conv", &["test_conv_", "test_basic_conv"], 5);
}

mod ops_build;

use dqc_ir::Op;
use ops_build::{attr_is, attr_s, import, init, one_node};

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
