//! PTX of the elementwise family on small specs (see `ptx_util` for what is checked).
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use ptx_util::{ptx_for, snapshot};

#[test]
fn elementwise() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,8,16], %y: f32[16], %i: i64[B,8,16]) -> (f32[B,8,16], i64[B,8,16]) {
          %a = mul(%x, %y)
          %h = constant() {value = dense<f32[]> [0.5]}
          %b = add(%a, %h)
          %c = tanh(%b)
          %d = gelu(%c) {approx = erf}
          %e = silu(%d)
          %j = constant() {value = dense<i64[]> [3]}
          %k = mod(%i, %j)
          return %e, %k
        }",
        "elementwise",
    );
    // the f32 output of a last axis of 16 takes the 4-wide path
    for (t, text) in &snaps {
        assert!(
            text.contains("st.global.v4") || text.contains("st.global.v2.b64"),
            "{t}: no 16-byte store"
        );
    }
    snapshot("elementwise", snaps);
}

/// Narrow formats: loads and stores of f16, bf16, every fp8, packed fp4 and int4 (atomics on
/// the containing word), casts between them.
#[test]
fn narrow_formats() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,4,6], %h: f16[6], %b: bf16[6]) -> (f8e4m3[B,4,6], f8e5m2[B,4,6], f8e4m3fnuz[B,4,6], f8e5m2fnuz[B,4,6], fp4e2m1[B,4,6], i4[B,4,6], bf16[B,4,6]) {
          %hf = cast(%h) {to = f32}
          %bf = cast(%b) {to = f32}
          %s = add(%x, %hf)
          %t = mul(%s, %bf)
          %a = cast(%t) {to = f8e4m3}
          %c = cast(%t) {to = f8e5m2}
          %d = cast(%t) {to = f8e4m3fnuz}
          %e = cast(%t) {to = f8e5m2fnuz}
          %f = cast(%t) {to = fp4e2m1}
          %i = cast(%t) {to = i4}
          %g = cast(%t) {to = bf16}
          return %a, %c, %d, %e, %f, %i, %g
        }",
        "elementwise",
    );
    // the stores of packed outputs must be atomic
    let sm80 = &snaps.iter().find(|(t, _)| t == "sm_80").unwrap().1;
    assert!(sm80.contains("atom.global.and.b32"), "{sm80}");
    assert!(sm80.contains("atom.global.or.b32"), "{sm80}");
    snapshot("elementwise_narrow", snaps);
}
