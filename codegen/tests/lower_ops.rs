//! One tiny graph per lowering rule: lower it, run the reference executor and compare
//! with the IR interpreter; check the kernel structure the rule promises.

mod lower_util;

use dqc_codegen::lower::{LowerError, LowerOptions, lower};
use dqc_codegen::spec::{BufferKind, Kernel};
use dqc_ir::{DType, Tensor};
use lower_util::*;

const TOL: f32 = 1e-5;

fn check(src: &str) -> dqc_codegen::lower::Lowered {
    let g = parse(src);
    let inputs = inputs_for(&g, 2);
    check_against_interp(&g, &inputs, TOL)
}

#[test]
fn elementwise_chain_is_one_kernel() {
    let l = check(
        "graph @g(%x: f32[B,3,4], %y: f32[4]) -> (f32[B,3,4]) {
          %a = mul(%x, %y)
          %h = constant() {value = dense<f32[]> [0.5]}
          %b = add(%a, %h)
          %c = tanh(%b)
          %d = gelu(%c) {approx = tanh}
          %e = silu(%d)
          return %e
        }",
    );
    assert_eq!(families(&l), vec!["elementwise"]);
    // The scalar constant is inlined, not a weight.
    assert!(l.weights.is_empty());
}

#[test]
fn shared_producer_is_materialized_once() {
    let l = check(
        "graph @g(%x: f32[2,8]) -> (f32[2,8], f32[2,8]) {
          %s = sigmoid(%x)
          %a = mul(%s, %x)
          %b = add(%s, %s)
          return %a, %b
        }",
    );
    assert_eq!(families(&l), vec!["elementwise"; 3]);
    assert!(
        l.program
            .buffers
            .iter()
            .any(|b| matches!(b.kind, BufferKind::Activation { .. }))
    );
}

#[test]
fn where_cast_and_comparisons() {
    check(
        "graph @g(%x: f32[3,5], %y: f32[3,5]) -> (f32[3,5], i32[3,5]) {
          %c = less(%x, %y)
          %w = where(%c, %x, %y)
          %i = cast(%w) {to = i32}
          %n = not(%c)
          %f = cast(%n) {to = f32}
          %z = add(%w, %f)
          return %z, %i
        }",
    );
}

#[test]
fn modulate_and_layer_norm_fuse_into_one_row_kernel() {
    let l = check(
        "graph @g(%x: f32[B,4,8], %sh: f32[B,8], %sc: f32[B,8], %gm: f32[8], %bt: f32[8]) -> (f32[B,4,8]) {
          %n = layer_norm(%x, %gm, %bt) {axis = -1, eps = 1e-6, affine = true}
          %m = modulate(%n, %sh, %sc)
          return %m
        }",
    );
    assert_eq!(families(&l), vec!["row_reduce"]);
}

#[test]
fn rms_norm_with_prologue() {
    let l = check(
        "graph @g(%x: f32[3,8], %r: f32[3,8], %gm: f32[8]) -> (f32[3,8]) {
          %a = add(%x, %r)
          %n = rms_norm(%a, %gm) {axis = 1, eps = 1e-5, affine = true}
          return %n
        }",
    );
    assert_eq!(families(&l), vec!["row_reduce"]);
}

#[test]
fn matmul_with_bias_gelu_residual_epilogue() {
    let l = check(
        "graph @g(%x: f32[B,4,6], %w: f32[6,5], %b: f32[5], %r: f32[B,4,5]) -> (f32[B,4,5]) {
          %m = matmul(%x, %w)
          %a = add(%b, %m)
          %g = gelu(%a) {approx = erf}
          %y = add(%g, %r)
          return %y
        }",
    );
    assert_eq!(families(&l), vec!["gemm"]);
}

#[test]
fn matmul_transposed_operand_is_a_stride() {
    let l = check(
        "graph @g(%x: f32[2,3,4], %w: f32[5,4]) -> (f32[2,3,5]) {
          %t = transpose(%w) {perm = [1, 0]}
          %m = matmul(%x, %t)
          return %m
        }",
    );
    assert_eq!(families(&l), vec!["gemm"]);
}

#[test]
fn matmul_broadcast_batches_and_vectors() {
    check(
        "graph @g(%a: f32[2,1,3,4], %b: f32[5,4,2], %v: f32[4], %u: f32[3]) -> (f32[2,5,3,2], f32[2,1,3], f32[2,5,2]) {
          %m = matmul(%a, %b)
          %mv = matmul(%a, %v)
          %vm = matmul(%u, %m)
          return %m, %mv, %vm
        }",
    );
}

#[test]
fn gemm_trans_alpha_beta() {
    let l = check(
        "graph @g(%a: f32[4,3], %b: f32[5,4], %c: f32[5]) -> (f32[3,5]) {
          %y = gemm(%a, %b, %c) {alpha = 0.5, beta = 2.0, trans_a = true, trans_b = true, has_c = true}
          return %y
        }",
    );
    assert_eq!(families(&l), vec!["gemm"]);
}

#[test]
fn softmax_last_and_middle_axis() {
    check(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,3,4], f32[2,3,4]) {
          %a = softmax(%x) {axis = -1}
          %b = softmax(%x) {axis = 1}
          return %a, %b
        }",
    );
}

#[test]
fn softmax_middle_axis_feeds_elementwise() {
    check(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,3,4]) {
          %b = softmax(%x) {axis = 1}
          %c = mul(%b, %x)
          return %c
        }",
    );
}

#[test]
fn reductions_any_axes() {
    check(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,1,4], f32[3], f32[2,4], f32[], i64[2,4], f32[2,3,4]) {
          %a = reduce_mean(%x) {axes = [1], keepdims = true}
          %b = reduce_sum(%x) {axes = [0, 2], keepdims = false}
          %c = reduce_max(%x) {axes = [-2], keepdims = false}
          %d = reduce_l2(%x) {axes = [], keepdims = false}
          %e = argmax(%x) {axis = 1, keepdims = false}
          %f = cumsum(%x) {axis = 1, exclusive = false, reverse = true}
          return %a, %b, %c, %d, %e, %f
        }",
    );
}

#[test]
fn reduce_epilogue_fuses() {
    let l = check(
        "graph @g(%x: f32[3,4]) -> (f32[3]) {
          %a = reduce_mean(%x) {axes = [1], keepdims = false}
          %b = sqrt(%a)
          return %b
        }",
    );
    assert_eq!(families(&l), vec!["row_reduce"]);
}

#[test]
fn group_norm() {
    check(
        "graph @g(%x: f32[2,4,3,3], %gm: f32[4], %bt: f32[4]) -> (f32[2,4,3,3]) {
          %n = group_norm(%x, %gm, %bt) {groups = 2, eps = 1e-5, affine = true}
          return %n
        }",
    );
}

#[test]
fn movement_folds_into_maps() {
    let l = check(
        "graph @g(%x: f32[2,6,4]) -> (f32[3,2,4]) {
          %t = transpose(%x) {perm = [1, 0, 2]}
          %s = slice(%t) {axes = [0], starts = [1], ends = [6], steps = [2]}
          %e = exp(%s)
          return %e
        }",
    );
    assert_eq!(families(&l), vec!["elementwise"]);
}

#[test]
fn reshape_split_expand_concat_pad() {
    let l = check(
        "graph @g(%x: f32[2,6], %y: f32[1,3]) -> (f32[2,3,2], f32[2,8], f32[4,5]) {
          %r = reshape(%x) {shape = [2,3,2]}
          %n = neg(%r)
          %a, %b = split(%x) {axis = 1, sizes = [2, 4]}
          %e = expand(%y) {shape = [2,3]}
          %c = concat(%a, %e, %e) {axis = 1}
          %cc = slice(%c) {axes = [0], starts = [0], ends = [1], steps = [1]}
          %p = pad(%b) {pads = [1, 0, 1, 1], mode = constant(0.5)}
          return %n, %c, %p
        }",
    );
    assert!(families(&l).iter().all(|f| *f == "elementwise"));
}

#[test]
fn reshape_of_transposed_value_that_merges_axes() {
    check(
        "graph @g(%x: f32[2,3,4]) -> (f32[4,6]) {
          %t = transpose(%x) {perm = [2, 0, 1]}
          %r = reshape(%t) {shape = [4,6]}
          %a = abs(%r)
          return %a
        }",
    );
}

#[test]
fn reshape_of_computed_value_that_merges_axes() {
    check(
        "graph @g(%x: f32[2,3,4]) -> (f32[6,4]) {
          %e = exp(%x)
          %r = reshape(%e) {shape = [6,4]}
          %a = abs(%r)
          return %a
        }",
    );
}

#[test]
fn slice_of_concat_picks_pieces() {
    let l = check(
        "graph @g(%x: f32[2,4]) -> (f32[2,8]) {
          %s = sin(%x)
          %c = cos(%x)
          %k = concat(%s, %c) {axis = -1}
          %a = slice(%k) {axes = [1], starts = [4], ends = [8], steps = [1]}
          %b = slice(%k) {axes = [1], starts = [0], ends = [4], steps = [1]}
          %y = concat(%a, %b) {axis = -1}
          return %y
        }",
    );
    assert!(families(&l).iter().all(|f| *f == "elementwise"));
}

#[test]
fn gather_embedding() {
    let g = parse(
        "graph @g(%w: f32[5,3], %i: i64[B,2]) -> (f32[B,2,3]) {
          %e = gather(%w, %i) {axis = 0}
          %y = mul(%e, %e)
          return %y
        }",
    );
    let w = tensor(DType::F32, &[5, 3], 1);
    let i = Tensor::from_i64(DType::I64, vec![2, 2], &[0, 4, -1, 2]).unwrap();
    let l = check_against_interp(&g, &[w, i], TOL);
    assert_eq!(families(&l), vec!["elementwise"]);
}

#[test]
fn conv_with_bias_epilogue() {
    let l = check(
        "graph @g(%x: f32[1,2,5,5], %w: f32[4,2,3,3], %b: f32[4]) -> (f32[1,4,3,3]) {
          %c = conv(%x, %w, %b) {strides = [2, 2], pads = [1, 1, 1, 1], dilations = [1, 1], groups = 1, has_bias = true}
          %r = relu(%c)
          return %r
        }",
    );
    assert_eq!(families(&l), vec!["conv"]);
}

#[test]
fn attention_on_packed_heads_and_mask() {
    let l = check(
        "graph @g(%q: f32[2,3,8], %k: f32[2,4,4], %v: f32[2,4,4], %m: f32[3,4]) -> (f32[2,3,8]) {
          %a = attention(%q, %k, %v, %m) {heads = 2, kv_heads = 1, scale = none, causal = false, has_mask = true}
          return %a
        }",
    );
    assert_eq!(families(&l), vec!["attention"]);
}

#[test]
fn attention_on_split_projection_is_strided() {
    let l = check(
        "graph @g(%x: f32[2,3,12]) -> (f32[2,3,4]) {
          %q, %k, %v = split(%x) {axis = 2, sizes = [4, 4, 4]}
          %a = attention(%q, %k, %v) {heads = 2, kv_heads = 2, scale = 0.3, causal = true, has_mask = false}
          return %a
        }",
    );
    assert_eq!(families(&l), vec!["attention"]);
}

#[test]
fn selective_scan() {
    check(
        "graph @g(%u: f32[1,2,3], %d: f32[1,2,3], %a: f32[2,2], %b: f32[1,2,3], %c: f32[1,2,3], %s: f32[2], %z: f32[1,2,3]) -> (f32[1,2,3]) {
          %y = selective_scan(%u, %d, %a, %b, %c, %s, %z) {delta_softplus = true, has_d = true, has_z = true}
          return %y
        }",
    );
}

#[test]
fn outputs_that_are_inputs_or_views_are_copied() {
    let l = check(
        "graph @g(%x: f32[2,3]) -> (f32[2,3], f32[3,2], f32[2,3]) {
          %t = transpose(%x) {perm = [1, 0]}
          return %x, %t, %x
        }",
    );
    assert_eq!(families(&l), vec!["elementwise"; 3]);
    assert_eq!(l.program.outputs.len(), 3);
}

#[test]
fn memory_is_planned_with_reuse() {
    // A chain of materialized values: each is read by two consumers, so each gets a buffer;
    // dead ones are reused.
    let l = check(
        "graph @g(%x: f32[64]) -> (f32[64]) {
          %a = exp(%x)
          %b = mul(%a, %a)
          %c = mul(%b, %b)
          %d = mul(%c, %c)
          %e = mul(%d, %d)
          return %e
        }",
    );
    let acts: Vec<u64> = l
        .program
        .buffers
        .iter()
        .filter_map(|b| match b.kind {
            BufferKind::Activation { offset } => Some(offset),
            _ => None,
        })
        .collect();
    assert_eq!(acts.len(), 4);
    assert_eq!(l.peak_bytes, 2 * 256, "two live buffers at a time, reused");
    assert_eq!(l.program.arena_bytes, l.peak_bytes);
}

#[test]
fn symbols_are_listed_with_maxima() {
    let g = parse(
        "graph @g(%x: f32[B,N]) -> (f32[B,N]) {
          %y = exp(%x)
          return %y
        }",
    );
    let mut o = LowerOptions::default();
    o.symbol_max.insert("B".into(), 4);
    let l = lower(&g, &o).unwrap();
    let s: Vec<(String, u64)> = l
        .program
        .symbols
        .iter()
        .map(|s| (s.name.clone(), s.max))
        .collect();
    assert_eq!(s, vec![("B".into(), 4), ("N".into(), 16)]);
}

#[test]
fn unsupported_ops_name_the_node() {
    let g = parse(
        "graph @g(%x: f32[1,1,2,2]) -> (f32[1,1,2,2]) {
          %r = cache_write(%x) {slot = \"s\"}
          return %r
        }",
    );
    let err = lower(&g, &LowerOptions::default()).unwrap_err();
    match &err {
        LowerError::Unsupported { node, op, .. } => {
            assert_eq!(node, "r");
            assert_eq!(op, "cache_write");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn listing_shows_fused_expressions() {
    let g = parse(
        "graph @g(%x: f32[4,6], %w: f32[6,5], %b: f32[5]) -> (f32[4,5]) {
          %m = matmul(%x, %w)
          %a = add(%m, %b)
          %g = gelu(%a) {approx = tanh}
          return %g
        }",
    );
    let l = lower(&g, &LowerOptions::default()).unwrap();
    let text = dqc_codegen::lower::listing(&l.program);
    assert!(text.contains("gelu_tanh(acc + a2[j])"), "{text}");
    assert!(matches!(l.program.kernels[0].body, Kernel::Gemm(_)));
}

#[test]
fn dequantize_per_channel_with_zero_point_is_elementwise() {
    let g = parse(
        "graph @g(%q: i8[3,4], %s: f32[3], %z: i8[3], %w: f32[4,2]) -> (f32[3,2]) {
          %d = dequantize(%q, %s, %z) {scheme = per_channel(axis = 0), has_zero_point = true, out = f32}
          %m = matmul(%d, %w)
          return %m
        }",
    );
    let q = Tensor::from_i64(
        DType::I8,
        vec![3, 4],
        &[-128, -5, 0, 7, 127, 3, -1, 9, 2, 2, -70, 100],
    )
    .unwrap();
    let s = Tensor::from_f32(DType::F32, vec![3], &[0.5, 0.03125, 1.7]).unwrap();
    let z = Tensor::from_i64(DType::I8, vec![3], &[3, -2, 0]).unwrap();
    let w = tensor(DType::F32, &[4, 2], 3);
    let l = check_against_interp(&g, &[q, s, z, w], TOL);
    assert_eq!(families(&l), vec!["elementwise", "gemm"]);
}

#[test]
fn half_precision_rounds_like_the_interpreter() {
    check(
        "graph @g(%x: f16[2,4,8], %w: f16[8,8], %g: f16[8], %b: f16[8]) -> (f16[2,4,8]) {
          %n = layer_norm(%x, %g, %b) {axis = -1, eps = 1e-5, affine = true}
          %m = matmul(%n, %w)
          %y = gelu(%m) {approx = tanh}
          %z = add(%y, %x)
          return %z
        }",
    );
}

#[test]
fn symbolic_reshapes_merge_and_split_batch() {
    let l = check(
        "graph @g(%x: f32[B,4,6], %w: f32[6,3]) -> (f32[B,4,3]) {
          %r = reshape(%x) {shape = [4*B,6]}
          %m = matmul(%r, %w)
          %s = reshape(%m) {shape = [B,4,3]}
          %t = tanh(%s)
          return %t
        }",
    );
    assert_eq!(families(&l), vec!["gemm", "elementwise"]);
}

#[test]
fn affine_quantize_is_elementwise() {
    // int8 per tensor with a zero point, then dequantized back
    let l = check(
        "graph @g(%x: f32[B,3,8]) -> (i8[B,3,8], f32[B,3,8]) {
          %s = constant() {value = dense<f32[]> [0.02]}
          %z = constant() {value = dense<i8[]> [-3]}
          %q = quantize(%x, %s, %z) {dtype = i8, scheme = per_tensor, has_zero_point = true}
          %d = dequantize(%q, %s, %z) {scheme = per_tensor, has_zero_point = true, out = f32}
          return %q, %d
        }",
    );
    assert!(families(&l).iter().all(|f| *f == "elementwise"));
    // fp8 per channel (the last axis)
    let l = check(
        "graph @g(%x: f32[B,3,4]) -> (f8e4m3[B,3,4]) {
          %s = constant() {value = dense<f32[4]> [0.01, 0.1, 1, 3]}
          %q = quantize(%x, %s) {dtype = f8e4m3, scheme = per_channel(axis = -1), has_zero_point = false}
          return %q
        }",
    );
    assert_eq!(families(&l), vec!["elementwise"]);
}
