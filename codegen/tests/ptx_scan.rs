//! PTX of the selective-scan family on small specs (see `ptx_util` for what is checked).
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use ptx_util::{ptx_for, snapshot};

#[test]
fn selective_scan_with_skip_and_gate() {
    let snaps = ptx_for(
        "graph @g(%u: f32[B,2,L], %d: f32[B,2,L], %a: f32[2,2], %b: f32[B,2,L], %c: f32[B,2,L], %s: f32[2], %z: f32[B,2,L]) -> (f32[B,2,L]) {
          %y = selective_scan(%u, %d, %a, %b, %c, %s, %z) {delta_softplus = true, has_d = true, has_z = true}
          return %y
        }",
        "selective_scan",
    );
    snapshot("selective_scan", snaps);
}

#[test]
fn selective_scan_plain_bf16_state16() {
    ptx_for(
        "graph @g(%u: bf16[1,4,5], %d: bf16[1,4,5], %a: bf16[4,16], %b: bf16[1,16,5], %c: bf16[1,16,5]) -> (bf16[1,4,5]) {
          %y = selective_scan(%u, %d, %a, %b, %c) {delta_softplus = false, has_d = false, has_z = false}
          return %y
        }",
        "selective_scan",
    );
}

/// The launch the executor makes: one thread per (batch, channel), 128 per block.
#[test]
fn launch_one_thread_per_channel() {
    use dqc_codegen::lower::{LowerOptions, lower};
    use dqc_codegen::ptx::abi::{Bindings, launch_config};
    let g = lower_util::parse(
        "graph @g(%u: f32[B,100,3], %d: f32[B,100,3], %a: f32[100,4], %b: f32[B,4,3], %c: f32[B,4,3]) -> (f32[B,100,3]) {
          %y = selective_scan(%u, %d, %a, %b, %c) {delta_softplus = true, has_d = false, has_z = false}
          return %y
        }",
    );
    let program = lower(&g, &LowerOptions::default()).unwrap().program;
    let i = program
        .kernels
        .iter()
        .position(|k| k.body.family() == "selective_scan")
        .unwrap();
    let target = dqc_ir::Target::parse("sm_80").unwrap();
    let b: Bindings = [("B".to_string(), 3)].into_iter().collect();
    let l = launch_config(&program, i, &b, &target).unwrap();
    assert_eq!(l.grid, [3, 1, 1]);
    assert_eq!(l.block, [128, 1, 1]);
    assert_eq!(l.shared_bytes, 0);
}

/// A symbolic state size is refused with a precise error, not wrong code.
#[test]
fn symbolic_state_is_unsupported() {
    use dqc_codegen::lower::{LowerOptions, lower};
    use dqc_codegen::ptx::{PtxError, compile_program};
    let g = lower_util::parse(
        "graph @g(%u: f32[1,2,3], %d: f32[1,2,3], %a: f32[2,N], %b: f32[1,N,3], %c: f32[1,N,3]) -> (f32[1,2,3]) {
          %y = selective_scan(%u, %d, %a, %b, %c) {delta_softplus = false, has_d = false, has_z = false}
          return %y
        }",
    );
    let program = lower(&g, &LowerOptions::default()).unwrap().program;
    let target = dqc_ir::Target::parse("sm_90").unwrap();
    match compile_program(&program, &target) {
        Err(PtxError::Unsupported { what, .. }) => {
            assert!(what.contains("symbolic state"), "{what}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
