//! PTX of the convolution family on small specs (see `ptx_util` for what is checked).
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use ptx_util::{ptx_for, snapshot};

#[test]
fn conv2d_bias_relu() {
    let snaps = ptx_for(
        "graph @g(%x: f32[1,2,5,5], %w: f32[4,2,3,3], %b: f32[4]) -> (f32[1,4,3,3]) {
          %c = conv(%x, %w, %b) {strides = [2, 2], pads = [1, 1, 1, 1], dilations = [1, 1], groups = 1, has_bias = true}
          %r = relu(%c)
          return %r
        }",
        "conv",
    );
    snapshot("conv2d", snaps);
}

#[test]
fn depthwise_conv1d_mamba() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,4,9], %w: f32[4,1,3], %b: f32[4]) -> (f32[B,4,11]) {
          %c = conv(%x, %w, %b) {strides = [1], pads = [2, 2], dilations = [1], groups = 4, has_bias = true}
          return %c
        }",
        "conv",
    );
    snapshot("conv1d_depthwise", snaps);
}

#[test]
fn patchify_bf16() {
    ptx_for(
        "graph @g(%x: bf16[2,3,8,8], %w: bf16[6,3,2,2]) -> (bf16[2,6,4,4]) {
          %c = conv(%x, %w) {strides = [2, 2], pads = [0, 0, 0, 0], dilations = [1, 1], groups = 1, has_bias = false}
          return %c
        }",
        "conv",
    );
}

#[test]
fn conv3d_grouped_dilated() {
    ptx_for(
        "graph @g(%x: f16[1,4,5,6,7], %w: f16[6,2,2,3,2]) -> (f16[1,6,3,6,7]) {
          %c = conv(%x, %w) {strides = [1, 1, 1], pads = [0, 1, 1, 0, 1, 0], dilations = [2, 1, 1], groups = 2, has_bias = false}
          return %c
        }",
        "conv",
    );
}

/// The launch the executor makes: ⌈N·P / 64⌉ × ⌈M / 64⌉ blocks of 128 threads, no shared
/// memory.
#[test]
fn launch_tiles_pixels_by_channels() {
    use dqc_codegen::lower::{LowerOptions, lower};
    use dqc_codegen::ptx::abi::{Bindings, launch_config};
    let g = lower_util::parse(
        "graph @g(%x: f32[B,4,9], %w: f32[70,4,3]) -> (f32[B,70,7]) {
          %c = conv(%x, %w) {strides = [1], pads = [0, 0], dilations = [1], groups = 1, has_bias = false}
          return %c
        }",
    );
    let program = lower(&g, &LowerOptions::default()).unwrap().program;
    let i = program
        .kernels
        .iter()
        .position(|k| k.body.family() == "conv")
        .unwrap();
    let target = dqc_ir::Target::parse("sm_80").unwrap();
    let b: Bindings = [("B".to_string(), 10)].into_iter().collect();
    let l = launch_config(&program, i, &b, &target).unwrap();
    // 10 images × 7 pixels = 70 pixels → 2 blocks; 70 channels → 2 blocks
    assert_eq!(l.grid, [2, 2, 1]);
    assert_eq!(l.block, [128, 1, 1]);
    assert_eq!(l.shared_bytes, 0);
}
