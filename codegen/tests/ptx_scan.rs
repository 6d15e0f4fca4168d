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
