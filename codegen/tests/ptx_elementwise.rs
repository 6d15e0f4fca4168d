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
    snapshot("elementwise", snaps);
}
