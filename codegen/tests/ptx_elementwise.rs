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

/// Reads through lookup tables and mirrored maps: reflect pad, nearest and linear resize,
/// per-group / NVFP4 / MX dequantization (gathers of block scales, the E8M0 table).
#[test]
fn indexed_reads() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,3,4], %q: i8[B,7], %s: f32[B,3], %f: fp4e2m1[B,40], %b: f8e4m3[B,3], %t: f32[], %m: f8e4m3[B,40], %e: u8[B,2]) -> (f32[B,7,6], f32[B,6,2], f32[B,7], f32[B,40], f32[B,40]) {
          %r = pad(%x) {pads = [0, 2, 1, 0, 2, 1], mode = reflect}
          %l = resize(%x) {size = [B,6,2], mode = linear, coord = half_pixel}
          %d = dequantize(%q, %s) {scheme = per_group(axis = 1, size = 3), has_zero_point = false, out = f32}
          %n = dequantize(%f, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = f32}
          %x8 = dequantize(%m, %e) {scheme = mx(axis = 1), has_zero_point = false, out = f32}
          return %r, %l, %d, %n, %x8
        }",
        "elementwise",
    );
    snapshot("elementwise_indexed", snaps);
}

/// NVFP4 and MX quantize (block-max row reductions and the codes) and a qmatmul
/// (dequantized temporaries and a GEMM) generate and assemble for every target.
#[test]
fn block_quantize_and_qmatmul_assemble() {
    ptx_for(
        "graph @g(%x: f32[4,40], %t: f32[], %w: fp4e2m1[40,8], %ws: f8e4m3[3,8]) -> (fp4e2m1[4,40], f8e4m3[4,3], f32[4,8], i8[4,40], u8[4,2]) {
          %q, %b = quantize(%x, %t) {dtype = fp4e2m1, scheme = nvfp4(axis = -1), has_zero_point = false}
          %m = qmatmul(%x, %w, %ws, %t) {a_scheme = none, b_scheme = nvfp4(axis = 0), out = f32}
          %mq, %ms = quantize(%x) {dtype = i8, scheme = mx(axis = -1), has_zero_point = false}
          return %q, %b, %m, %mq, %ms
        }",
        "row_reduce",
    );
}
