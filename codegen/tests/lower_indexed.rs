//! Lowerings that read through tables or mirrored maps: reflect/edge pad, resize,
//! per-group / NVFP4 / MX (de)quantization and qmatmul. Each graph is lowered, run by the
//! reference executor and by the Cranelift CPU backend, and compared with the IR
//! interpreter.

mod cpu_common;
mod lower_util;

use cpu_common::Buf;
use dqc_codegen::cpu::{Bindings, CpuProgram};
use dqc_codegen::lower::Lowered;
use dqc_codegen::spec::BufferKind;
use dqc_ir::{DType, Graph, Tensor};
use lower_util::*;

const TOL: f32 = 1e-5;

/// Run a lowered program (fixed shapes) on the CPU backend; every buffer gets storage of
/// its own (aliases share their base's).
fn run_cpu(l: &Lowered, inputs: &[Tensor]) -> Vec<Tensor> {
    let p = &l.program;
    let mut bufs: Vec<Buf> = Vec::new();
    for b in &p.buffers {
        let numel: u64 = b
            .shape
            .as_fixed()
            .expect("fixed shapes in these tests")
            .iter()
            .product();
        bufs.push(match &b.kind {
            BufferKind::Input { index } => Buf::from_tensor(&inputs[*index as usize]),
            BufferKind::Weight { name } => {
                let t = &l.weights.iter().find(|(n, _)| n == name).expect("weight").1;
                Buf::from_tensor(t)
            }
            _ => Buf::zeros(b.dtype, numel as usize),
        });
    }
    let base = |mut i: usize| {
        while let BufferKind::Alias { base } = p.buffers[i].kind {
            i = base as usize;
        }
        i
    };
    let cp = CpuProgram::compile(p, &Bindings::new()).unwrap_or_else(|e| panic!("cpu: {e}"));
    for (i, k) in p.kernels.iter().enumerate() {
        let ptrs: Vec<*mut u8> = k
            .args
            .iter()
            .map(|&a| bufs[base(a as usize)].ptr())
            .collect();
        // SAFETY: every buffer is sized for its shape and 64-byte aligned.
        unsafe { cp.run_kernel(i, &ptrs) }.unwrap_or_else(|e| panic!("kernel {i}: {e}"));
    }
    p.outputs
        .iter()
        .map(|&o| {
            let b = &p.buffers[o as usize];
            let shape = b.shape.as_fixed().expect("fixed");
            Tensor::from_bytes(
                b.dtype,
                shape,
                bufs[base(o as usize)].bytes().to_vec().into(),
            )
            .expect("output tensor")
        })
        .collect()
}

/// Lower `g`; the reference executor and the CPU backend must both match the interpreter
/// (relative error ≤ `tol`; NaN matches NaN).
fn check_both(g: &Graph, inputs: &[Tensor], tol: f32) -> Lowered {
    let l = check_against_interp(g, inputs, tol);
    let want = dqc_ir::interp::run(g, inputs).expect("interp");
    let got = run_cpu(&l, inputs);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let r = rel_err(a, b);
        assert!(
            r <= tol,
            "cpu output {i}: rel err {r:e}\n got {:?}\nwant {:?}\n{}",
            a.to_f32_vec(),
            b.to_f32_vec(),
            dqc_codegen::lower::listing(&l.program)
        );
        let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.is_nan() == q.is_nan()),
            "cpu output {i}: NaN positions differ\n got {x:?}\nwant {y:?}"
        );
    }
    l
}

fn check_src(src: &str) -> Lowered {
    let g = parse(src);
    let inputs = inputs_for(&g, 2);
    check_both(&g, &inputs, TOL)
}

#[test]
fn reflect_and_edge_pad_are_one_elementwise_kernel() {
    for mode in ["reflect", "edge"] {
        let l = check_src(&format!(
            "graph @g(%x: f32[3,4]) -> (f32[6,8]) {{
              %t = tanh(%x)
              %p = pad(%t) {{pads = [2, 1, 1, 3], mode = {mode}}}
              return %p
            }}"
        ));
        assert_eq!(families(&l), vec!["elementwise"], "{mode}");
    }
    // By hand: [1, 2, 3] reflect (2, 2) and edge (1, 2).
    let g = parse(
        "graph @g(%x: f32[3]) -> (f32[7], f32[6]) {
          %r = pad(%x) {pads = [2, 2], mode = reflect}
          %e = pad(%x) {pads = [1, 2], mode = edge}
          return %r, %e
        }",
    );
    let x = Tensor::from_f32(DType::F32, vec![3], &[1.0, 2.0, 3.0]).unwrap();
    let l = check_both(&g, std::slice::from_ref(&x), TOL);
    let out = run_cpu(&l, &[x]);
    assert_eq!(out[0].to_f32_vec(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
    assert_eq!(out[1].to_f32_vec(), vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
}

#[test]
fn reflect_pad_of_a_transposed_input_and_after_a_slice() {
    check_src(
        "graph @g(%x: f32[4,5]) -> (f32[7,6]) {
          %t = transpose(%x) {perm = [1, 0]}
          %p = pad(%t) {pads = [1, 0, 1, 2], mode = reflect}
          %s = slice(%p) {axes = [0], starts = [0], ends = [7], steps = [1]}
          return %s
        }",
    );
}

#[test]
fn edge_and_reflect_pad_of_a_symbolic_batch() {
    for mode in ["reflect", "edge"] {
        let g = parse(&format!(
            "graph @g(%x: f32[B,3]) -> (f32[B,7]) {{
              %p = pad(%x) {{pads = [0, 2, 0, 2], mode = {mode}}}
              return %p
            }}"
        ));
        let inputs = inputs_for(&g, 3);
        check_against_interp(&g, &inputs, TOL);
    }
}

#[test]
fn nearest_resize_every_rounding_and_transform() {
    for rounding in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
        for coord in ["half_pixel", "asymmetric", "align_corners"] {
            for (from, to) in [("2,3", "5,7"), ("5,7", "3,2")] {
                let l = check_src(&format!(
                    "graph @g(%x: f32[1,{from}]) -> (f32[1,{to}]) {{
                      %r = resize(%x) {{size = [1,{to}], mode = nearest({rounding}), coord = {coord}}}
                      return %r
                    }}"
                ));
                assert_eq!(families(&l), vec!["elementwise"]);
            }
        }
    }
}

#[test]
fn nearest_resize_copies_integers_and_fuses_with_elementwise_work() {
    let g = parse(
        "graph @g(%x: i8[2,3], %y: f32[2,3]) -> (i8[4,6], f32[4,6]) {
          %r = resize(%x) {size = [4,6], mode = nearest(floor), coord = asymmetric}
          %e = exp(%y)
          %s = resize(%e) {size = [4,6], mode = nearest(round_prefer_ceil), coord = half_pixel}
          %n = neg(%s)
          return %r, %n
        }",
    );
    let x = Tensor::from_i64(DType::I8, vec![2, 3], &[-128, -1, 0, 5, 100, 127]).unwrap();
    let y = tensor(DType::F32, &[2, 3], 4);
    let l = check_both(&g, &[x, y], TOL);
    // exp is materialized (the gather needs a buffer); resize + neg are one kernel.
    assert_eq!(families(&l), vec!["elementwise"; 3]);
}

#[test]
fn linear_resize_up_and_down() {
    for coord in ["half_pixel", "asymmetric", "align_corners"] {
        check_src(&format!(
            "graph @g(%x: f32[2,3,4,5]) -> (f32[2,3,7,3]) {{
              %r = resize(%x) {{size = [2,3,7,3], mode = linear, coord = {coord}}}
              return %r
            }}"
        ));
    }
    // A half-precision input, one resized axis of a symbolic-batch tensor.
    let g = parse(
        "graph @g(%x: f16[B,4]) -> (f16[B,9]) {
          %r = resize(%x) {size = [B,9], mode = linear, coord = half_pixel}
          return %r
        }",
    );
    let inputs = inputs_for(&g, 2);
    check_against_interp(&g, &inputs, 2e-3);
}

#[test]
fn per_group_dequantize_with_ragged_groups_and_zero_point() {
    // axis 1 of [3, 7] in groups of 3: scales [3, 3] (the last group holds one element).
    let g = parse(
        "graph @g(%q: i8[3,7], %s: f32[3,3], %z: i8[3,3]) -> (f32[3,7]) {
          %d = dequantize(%q, %s, %z) {scheme = per_group(axis = 1, size = 3), has_zero_point = true, out = f32}
          return %d
        }",
    );
    let q: Vec<i64> = (0..21).map(|i| (i * 37 % 255) - 127).collect();
    let q = Tensor::from_i64(DType::I8, vec![3, 7], &q).unwrap();
    let s: Vec<f32> = (0..9).map(|i| 0.01 * (i + 1) as f32).collect();
    let s = Tensor::from_f32(DType::F32, vec![3, 3], &s).unwrap();
    let z = Tensor::from_i64(DType::I8, vec![3, 3], &[0, 1, -1, 2, -2, 3, -3, 4, 5]).unwrap();
    let l = check_both(&g, &[q, s, z], 0.0);
    assert_eq!(families(&l), vec!["elementwise"]);
    // axis 0, f16 output, fused into a following op
    check_src(
        "graph @g(%q: i8[5,4], %s: f32[2,4]) -> (f16[5,4]) {
          %d = dequantize(%q, %s) {scheme = per_group(axis = 0, size = 3), has_zero_point = false, out = f16}
          %t = neg(%d)
          return %t
        }",
    );
}

#[test]
fn per_group_quantize_round_trip() {
    let g = parse(
        "graph @g(%x: f32[2,10]) -> (i8[2,10], f32[2,10], f8e4m3[2,10]) {
          %s = constant() {value = dense<f32[2,3]> [0.01, 0.02, 0.05, 0.1, 0.003, 0.5]}
          %z = constant() {value = dense<i8[2,3]> [0, 3, -3, 1, -1, 7]}
          %q = quantize(%x, %s, %z) {dtype = i8, scheme = per_group(axis = -1, size = 4), has_zero_point = true}
          %d = dequantize(%q, %s, %z) {scheme = per_group(axis = -1, size = 4), has_zero_point = true, out = f32}
          %f = quantize(%x, %s) {dtype = f8e4m3, scheme = per_group(axis = -1, size = 4), has_zero_point = false}
          return %q, %d, %f
        }",
    );
    let inputs = inputs_for(&g, 1);
    check_both(&g, &inputs, 0.0);
}

/// An fp4 tensor of every code, f8e4m3 block scales and a tensor scale.
fn nvfp4_inputs() -> Vec<Tensor> {
    let codes: Vec<f32> = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
        .iter()
        .flat_map(|&v| [v, -v])
        .collect();
    let q: Vec<f32> = (0..2 * 40).map(|i| codes[i * 7 % 16]).collect();
    let q = Tensor::from_f32(DType::Fp4E2M1, vec![2, 40], &q).unwrap();
    let bs = Tensor::from_f32(
        DType::F8E4M3,
        vec![2, 3],
        &[0.5, 448.0, 0.001953125, 3.0, 0.0, 1.25],
    )
    .unwrap();
    let ts = Tensor::from_f32(DType::F32, vec![], &[0.37]).unwrap();
    vec![q, bs, ts]
}

#[test]
fn nvfp4_dequantize_is_exact() {
    let g = parse(
        "graph @g(%q: fp4e2m1[2,40], %b: f8e4m3[2,3], %t: f32[]) -> (f32[2,40], bf16[2,40]) {
          %d = dequantize(%q, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = f32}
          %h = dequantize(%q, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = bf16}
          return %d, %h
        }",
    );
    check_both(&g, &nvfp4_inputs(), 0.0);
}

#[test]
fn mx_dequantize_every_element_type_and_nan_scale() {
    for (dt, vals) in [
        ("f8e4m3", vec![448.0, -0.015625, 1.0, 3.5]),
        ("f8e5m2", vec![57344.0, -0.25, 1.0, 3.0]),
        ("fp4e2m1", vec![6.0, -0.5, 1.0, 3.0]),
        ("i8", vec![127.0, -128.0, 1.0, 64.0]),
    ] {
        let g = parse(&format!(
            "graph @g(%q: {dt}[40,2], %s: u8[2,2]) -> (f32[40,2]) {{
              %d = dequantize(%q, %s) {{scheme = mx(axis = 0), has_zero_point = false, out = f32}}
              return %d
            }}"
        ));
        let dtype = g
            .value_type(dqc_ir::graph::Value::new(g.inputs()[0], 0))
            .unwrap()
            .dtype;
        let qv: Vec<f32> = (0..80).map(|i| vals[i % 4]).collect();
        let q = Tensor::from_f32(dtype, vec![40, 2], &qv).unwrap();
        let s = Tensor::from_i64(DType::U8, vec![2, 2], &[127, 0, 255, 140]).unwrap();
        check_both(&g, &[q, s], 0.0);
    }
}

#[test]
fn qmatmul_dequantizes_into_a_temporary_and_runs_a_gemm() {
    // float activation × NVFP4 weight blocked along K
    let g = parse(
        "graph @g(%a: f32[3,40], %q: fp4e2m1[40,2], %b: f8e4m3[3,2], %t: f32[]) -> (f32[3,2]) {
          %m = qmatmul(%a, %q, %b, %t) {a_scheme = none, b_scheme = nvfp4(axis = 0), out = f32}
          %r = relu(%m)
          return %r
        }",
    );
    let nv = nvfp4_inputs();
    let q = Tensor::from_f32(DType::Fp4E2M1, vec![40, 2], &nv[0].to_f32_vec()).unwrap();
    let b = Tensor::from_f32(DType::F8E4M3, vec![3, 2], &nv[1].to_f32_vec()).unwrap();
    let a = tensor(DType::F32, &[3, 40], 9);
    let l = check_both(&g, &[a, q, b, nv[2].clone()], 1e-5);
    assert_eq!(families(&l), vec!["elementwise", "gemm"]);
    // per-group int8 activation (batched) × per-channel int8 weight
    let g = parse(
        "graph @g(%a: i8[2,3,8], %sa: f32[2,3,2], %q: i8[8,5], %sq: f32[5]) -> (f16[2,3,5]) {
          %m = qmatmul(%a, %sa, %q, %sq) {a_scheme = per_group(axis = 2, size = 4), b_scheme = per_channel(axis = 1), out = f16}
          return %m
        }",
    );
    let a: Vec<i64> = (0..48).map(|i| (i * 29 % 200) - 100).collect();
    let a = Tensor::from_i64(DType::I8, vec![2, 3, 8], &a).unwrap();
    let sa = tensor(DType::F32, &[2, 3, 2], 2);
    let q: Vec<i64> = (0..40).map(|i| (i * 13 % 250) - 125).collect();
    let q = Tensor::from_i64(DType::I8, vec![8, 5], &q).unwrap();
    let sq = tensor(DType::F32, &[5], 5);
    let l = check_both(&g, &[a, sa, q, sq], 2e-3);
    assert_eq!(families(&l), vec!["elementwise", "elementwise", "gemm"]);
}

#[test]
fn nvfp4_quantize_is_a_block_max_and_an_elementwise_kernel() {
    // blocks along the last axis (40 = 2 full blocks + a ragged one of 8), with a NaN, an
    // all-zero block and values that saturate the e4m3 block scale
    let g = parse(
        "graph @g(%x: f32[3,40], %t: f32[]) -> (fp4e2m1[3,40], f8e4m3[3,3], f32[3,40]) {
          %q, %b = quantize(%x, %t) {dtype = fp4e2m1, scheme = nvfp4(axis = -1), has_zero_point = false}
          %d = dequantize(%q, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = f32}
          return %q, %b, %d
        }",
    );
    let mut x: Vec<f32> = values(120, 11).iter().map(|v| v * 3.0).collect();
    x[5] = f32::NAN;
    for v in &mut x[40..56] {
        *v = 0.0;
    }
    x[100] = 9000.0;
    let x = Tensor::from_f32(DType::F32, vec![3, 40], &x).unwrap();
    let t = Tensor::from_f32(DType::F32, vec![], &[0.75]).unwrap();
    let l = check_both(&g, &[x, t], 0.0);
    assert_eq!(
        families(&l),
        vec!["row_reduce", "elementwise", "elementwise"]
    );
    // blocks along axis 0 of a 3-D bf16 input, the scales a graph output only
    let g = parse(
        "graph @g(%x: bf16[32,2,3], %t: f32[]) -> (f8e4m3[2,2,3], fp4e2m1[32,2,3]) {
          %q, %b = quantize(%x, %t) {dtype = fp4e2m1, scheme = nvfp4(axis = 0), has_zero_point = false}
          return %b, %q
        }",
    );
    let inputs = inputs_for(&g, 1);
    check_both(&g, &inputs, 0.0);
}

#[test]
fn mx_quantize_every_element_type() {
    // 3 rows × 70 (two full blocks of 32 and a ragged one of 6): an infinity, a NaN, an
    // all-zero block, subnormal and huge magnitudes, exact powers of two
    let mut x: Vec<f32> = values(210, 5).iter().map(|v| v * 5.0).collect();
    x[3] = f32::INFINITY;
    x[70 + 40] = f32::NAN;
    for v in &mut x[140..172] {
        *v = 0.0;
    }
    for (i, v) in x[172..204].iter_mut().enumerate() {
        *v = if i % 2 == 0 { 1e-41 } else { -3e-39 };
    }
    x[35] = 3.0e38;
    x[70] = 4.0;
    x[71] = -8.0;
    x[204] = 0.125;
    let x = Tensor::from_f32(DType::F32, vec![3, 70], &x).unwrap();
    for dt in ["fp4e2m1", "f8e4m3", "f8e5m2", "i8"] {
        let g = parse(&format!(
            "graph @g(%x: f32[3,70]) -> ({dt}[3,70], u8[3,3], f32[3,70]) {{
              %q, %s = quantize(%x) {{dtype = {dt}, scheme = mx(axis = -1), has_zero_point = false}}
              %d = dequantize(%q, %s) {{scheme = mx(axis = -1), has_zero_point = false, out = f32}}
              return %q, %s, %d
            }}"
        ));
        let l = check_both(&g, std::slice::from_ref(&x), 0.0);
        assert_eq!(
            families(&l),
            vec!["row_reduce", "elementwise", "elementwise"],
            "{dt}"
        );
    }
    // blocks along axis 0 of an f16 input
    let g = parse(
        "graph @g(%x: f16[40,3]) -> (u8[2,3], f8e4m3[40,3]) {
          %q, %s = quantize(%x) {dtype = f8e4m3, scheme = mx(axis = 0), has_zero_point = false}
          return %s, %q
        }",
    );
    let inputs = inputs_for(&g, 1);
    check_both(&g, &inputs, 0.0);
}
