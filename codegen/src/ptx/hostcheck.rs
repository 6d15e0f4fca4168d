//! Host checks of the value code (tests only): the same `Kb` routines the kernels use are
//! built into an ordinary host function, JIT-compiled by LLVM for the build machine, and
//! compared bit for bit with `dqc_ir::numeric` (narrow-format rounding, encoding, decoding)
//! or against f64 references (math). Only the NVPTX approximation intrinsics differ in host
//! mode (`ex2.approx` → `llvm.exp2`, `lg2.approx` → `llvm.log2`); everything around them —
//! range reduction, polynomials, special cases — is what runs on the GPU.

use super::builder::{Kb, R, Val};
use crate::spec::{Elementwise, Exprs, Kernel, KernelSpec};
use dqc_ir::numeric::{E2M1, E4M3, E4M3FNUZ, E5M2, E5M2FNUZ, MiniFloat};
use dqc_ir::{DType, Shape, Target};
use inkwell::OptimizationLevel;
use inkwell::context::Context;
use inkwell::targets::{InitializationConfig, Target as LlvmTarget};

type HostFn = unsafe extern "C" fn(*mut u32, *const *mut u8, *const i64, i64);

fn spec() -> KernelSpec {
    KernelSpec {
        name: "hostcheck".into(),
        args: vec![],
        writes: vec![],
        body: Kernel::Elementwise(Elementwise {
            shape: Shape::scalar(),
            exprs: Exprs::new(),
            outputs: vec![],
        }),
    }
}

/// The host JIT lowers an f32 → bf16 conversion to a call of the compiler-runtime routine
/// `__truncsfbf2`, which the process does not export: map it to this one (round to
/// nearest even, NaN kept quiet). The x86-64 ABI returns a `__bf16` in the low 16 bits of
/// `xmm0`, where an `f32` return puts its low bits.
extern "C" fn trunc_sf_bf2(x: f32) -> f32 {
    f32::from_bits(u32::from(half::bf16::from_f32(x).to_bits()))
}

/// A JIT engine for `m` with the runtime routines its code may call mapped.
fn engine<'c>(m: &inkwell::module::Module<'c>) -> inkwell::execution_engine::ExecutionEngine<'c> {
    // The call is made by the x86 backend, not by the IR: declare the routine so the
    // engine's symbol table can map it by name.
    let cx = m.get_context();
    let f = m.get_function("__truncsfbf2").unwrap_or_else(|| {
        let ty = cx.bf16_type().fn_type(&[cx.f32_type().into()], false);
        m.add_function("__truncsfbf2", ty, None)
    });
    let ee = m
        .create_jit_execution_engine(OptimizationLevel::None)
        .unwrap();
    ee.add_global_mapping(&f, trunc_sf_bf2 as *const () as usize);
    ee
}

/// `out[i] = body(in[i])` for `i < n`, generated with `Kb` and run on the host.
fn run<F>(in_dt: DType, out_dt: DType, input: &[u8], n: usize, body: F) -> Vec<u8>
where
    F: for<'c, 'k> Fn(&Kb<'c, 'k>, Val<'c>) -> R<Val<'c>>,
{
    LlvmTarget::initialize_native(&InitializationConfig::default()).unwrap();
    let cx = Context::create();
    let m = cx.create_module("hostcheck");
    let spec = spec();
    let target = Target::parse("sm_90").unwrap();
    let mut kb = Kb::new_host(&cx, &m, &spec, vec![in_dt, out_dt], vec![], &target);
    let count = kb.host_count();
    let (zero, one) = (kb.i64c(0), kb.i64c(1));
    kb.for_loop(zero, count, one, |kb, i| {
        let v = kb.load(0, i)?;
        let r = body(kb, v)?;
        kb.store(1, i, r)
    })
    .unwrap();
    kb.ret().unwrap();
    m.verify().unwrap_or_else(|e| panic!("{}", e.to_string()));
    let ee = engine(&m);
    // SAFETY: the function was generated with exactly the `HostFn` signature.
    let f = unsafe { ee.get_function::<HostFn>("hostcheck") }.unwrap();
    let mut out = vec![0u8; out_dt.storage_bytes(n)];
    let mut fault = 0u32;
    assert!(input.len() >= in_dt.storage_bytes(n));
    // SAFETY: `input` holds n elements of in_dt and `out` n of out_dt; the function reads
    // and writes only elements below n.
    let argv = [input.as_ptr() as *mut u8, out.as_mut_ptr()];
    unsafe { f.call(&mut fault, argv.as_ptr(), std::ptr::null(), n as i64) };
    assert_eq!(fault, 0);
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_f32_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Values that exercise a format: every representable value, its neighbours, the
/// midpoints between neighbours (ties), beyond-max values, specials, and a sweep.
fn probe_values(fmt: &MiniFloat, codes: u32) -> Vec<f32> {
    let mut reps: Vec<f32> = (0..codes)
        .map(|c| fmt.decode(c as u8))
        .filter(|v| v.is_finite())
        .collect();
    reps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    reps.dedup();
    let mut v = Vec::new();
    for w in reps.windows(2) {
        let mid = (w[0] + w[1]) / 2.0;
        v.extend([
            w[0],
            mid,
            f32::from_bits(mid.to_bits() + 1),
            f32::from_bits(mid.to_bits().wrapping_sub(1)),
        ]);
    }
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-30,
        -1e-30,
        1e30,
        -1e30,
    ]);
    let mut x = 1e-6f32;
    while x < 1e6 {
        v.extend([x, -x]);
        x *= 1.013;
    }
    v
}

fn check_format(dt: DType, fmt: MiniFloat, codes: u32) {
    let vals = probe_values(&fmt, codes);
    let n = vals.len();
    let out = run(DType::F32, dt, &f32_bytes(&vals), n, |kb, v| kb.fix(dt, v));
    let want = dqc_ir::numeric::encode_f32(dt, &vals);
    for i in 0..n {
        let (g, w) = if codes == 16 {
            (
                (out[i / 2] >> (4 * (i % 2))) & 15,
                (want[i / 2] >> (4 * (i % 2))) & 15,
            )
        } else {
            (out[i], want[i])
        };
        assert_eq!(
            g,
            w,
            "{dt}: value {} ({:#x}) encodes to {g:#x}, want {w:#x}",
            vals[i],
            vals[i].to_bits()
        );
    }
    // decoding: every code
    let all: Vec<u8> = if codes == 16 {
        (0..8u8).map(|c| (2 * c) | ((2 * c + 1) << 4)).collect()
    } else {
        (0..=255u8).collect()
    };
    let out = run(dt, DType::F32, &all, codes as usize, |_, v| Ok(v));
    let got = from_f32_bytes(&out);
    for (c, g) in got.iter().enumerate() {
        let w = fmt.decode(c as u8);
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{dt}: code {c:#x} decodes to {g}, want {w}"
        );
    }
}

#[test]
fn e4m3_matches_ir() {
    check_format(DType::F8E4M3, E4M3, 256);
}

#[test]
fn e5m2_matches_ir() {
    check_format(DType::F8E5M2, E5M2, 256);
}

#[test]
fn e4m3fnuz_matches_ir() {
    check_format(DType::F8E4M3Fnuz, E4M3FNUZ, 256);
}

#[test]
fn e5m2fnuz_matches_ir() {
    check_format(DType::F8E5M2Fnuz, E5M2FNUZ, 256);
}

#[test]
fn e2m1_matches_ir() {
    check_format(DType::Fp4E2M1, E2M1, 16);
}

#[test]
fn int4_round_trips() {
    let vals: Vec<i64> = (-20..20).collect();
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let out = run(DType::I64, DType::I4, &bytes, vals.len(), |kb, v| {
        kb.fix(DType::I4, v)
    });
    let back = run(DType::I4, DType::I64, &out, vals.len(), |_, v| Ok(v));
    for (i, c) in back.chunks_exact(8).enumerate() {
        let g = i64::from_le_bytes(c.try_into().unwrap());
        let w = (vals[i] << 60) >> 60;
        assert_eq!(g, w, "i4 of {}", vals[i]);
    }
}

fn check_math(
    name: &str,
    f: fn(f64) -> f64,
    lo: f32,
    hi: f32,
    abs: f64,
    rel: f64,
    body: for<'c, 'k> fn(&Kb<'c, 'k>, Val<'c>) -> R<Val<'c>>,
) {
    let n = 20_000;
    let vals: Vec<f32> = (0..n)
        .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
        .collect();
    let out = from_f32_bytes(&run(DType::F32, DType::F32, &f32_bytes(&vals), n, body));
    let mut worst = (0.0f64, 0.0f32);
    for (x, g) in vals.iter().zip(&out) {
        let w = f(*x as f64);
        let err = (*g as f64 - w).abs();
        let bound = abs + rel * w.abs();
        if err / bound > worst.0 {
            worst = (err / bound, *x);
        }
        assert!(err <= bound, "{name}({x}) = {g}, want {w} (error {err:e})");
    }
    eprintln!(
        "{name}: worst error {:.3} of the bound, at {}",
        worst.0, worst.1
    );
}

#[test]
fn exp_is_accurate() {
    check_math("exp", f64::exp, -87.0, 88.0, 1e-37, 4e-7, |kb, v| {
        Ok(Val::F(kb.exp(kb.as_f(v)?)?))
    });
}

#[test]
fn tanh_is_accurate() {
    check_math("tanh", f64::tanh, -12.0, 12.0, 3e-7, 3e-6, |kb, v| {
        Ok(Val::F(kb.tanh(kb.as_f(v)?)?))
    });
}

#[test]
fn erf_is_accurate() {
    check_math("erf", libm::erf, -6.0, 6.0, 3e-7, 1e-6, |kb, v| {
        Ok(Val::F(kb.erf(kb.as_f(v)?)?))
    });
}

#[test]
fn sigmoid_is_accurate() {
    check_math(
        "sigmoid",
        |x| 1.0 / (1.0 + (-x).exp()),
        -40.0,
        40.0,
        1e-30,
        1e-6,
        |kb, v| Ok(Val::F(kb.sigmoid(kb.as_f(v)?)?)),
    );
}

#[test]
fn log_is_accurate() {
    check_math("log", f64::ln, 1e-6, 1e6, 2e-7, 1e-6, |kb, v| {
        Ok(Val::F(kb.log(kb.as_f(v)?)?))
    });
}

/// Lower `src` (elementwise kernels only), run every kernel's generated body on the host (a
/// sequential loop instead of the grid-stride mapping) and compare the outputs with the
/// reference executor.
fn check_elementwise(src: &str, sym: u64) {
    use crate::lower::{LowerOptions, lower};
    use crate::reference::{bind_symbols, run_program};
    use crate::spec::BufferKind;
    let mut g = dqc_ir::text::parse(src, None).unwrap();
    dqc_ir::verify::verify(&mut g).unwrap();
    let lowered = lower(&g, &LowerOptions::default()).unwrap();
    let p = &lowered.program;
    assert!(
        p.kernels.iter().all(|k| k.body.family() == "elementwise"),
        "only elementwise kernels run on the host"
    );
    // inputs: deterministic values of each dtype
    let mut b = std::collections::BTreeMap::new();
    for s in &p.symbols {
        b.insert(s.name.clone(), sym);
    }
    let inputs: Vec<dqc_ir::Tensor> = p
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let buf = &p.buffers[id as usize];
            let shape = buf.shape.eval(&b).unwrap();
            let n: u64 = shape.iter().product();
            let vals: Vec<f32> = (0..n)
                .map(|j| (((j * 7919 + i as u64 * 104_729) % 2000) as f32 - 1000.0) / 137.0)
                .collect();
            let bytes = dqc_ir::numeric::encode_f32(buf.dtype, &vals);
            dqc_ir::Tensor::from_bytes(buf.dtype, shape, bytes.into()).unwrap()
        })
        .collect();
    let bindings = bind_symbols(p, &inputs).unwrap();
    let want = run_program(p, &lowered.weights, &inputs, &bindings).unwrap();
    // every buffer its own allocation (aliases share their base's)
    let base_of = |mut id: u32| {
        while let BufferKind::Alias { base } = p.buffers[id as usize].kind {
            id = base;
        }
        id
    };
    let mut data: Vec<Vec<u8>> = p
        .buffers
        .iter()
        .map(|buf| {
            let n = buf.shape.eval(&bindings).unwrap().iter().product::<u64>() as usize;
            match &buf.kind {
                BufferKind::Input { index } => inputs[*index as usize].bytes().to_vec(),
                BufferKind::Weight { name } => lowered
                    .weights
                    .iter()
                    .find(|(w, _)| w == name)
                    .unwrap()
                    .1
                    .bytes()
                    .to_vec(),
                BufferKind::Output { .. } | BufferKind::Activation { .. } => {
                    vec![0u8; buf.dtype.storage_bytes(n) + 8]
                }
                BufferKind::Alias { .. } => Vec::new(),
            }
        })
        .collect();
    LlvmTarget::initialize_native(&InitializationConfig::default()).unwrap();
    let target = Target::parse("sm_90").unwrap();
    for k in &p.kernels {
        let cx = Context::create();
        let m = cx.create_module("hostcheck");
        let arg_dtypes = k
            .args
            .iter()
            .map(|&a| p.buffers[a as usize].dtype)
            .collect();
        let syms: Vec<String> = p.symbols.iter().map(|s| s.name.clone()).collect();
        let mut kb = Kb::new_host(&cx, &m, k, arg_dtypes, syms, &target);
        super::families::generate(&mut kb).unwrap();
        m.verify().unwrap_or_else(|e| panic!("{}", e.to_string()));
        let ee = engine(&m);
        // SAFETY: generated with the `HostFn` signature.
        let f = unsafe { ee.get_function::<HostFn>(&k.name) }.unwrap();
        let argv: Vec<*mut u8> = k
            .args
            .iter()
            .map(|&a| data[base_of(a) as usize].as_mut_ptr())
            .collect();
        let symv: Vec<i64> = p.symbols.iter().map(|s| bindings[&s.name] as i64).collect();
        let mut fault = 0u32;
        // SAFETY: every argument buffer holds its full shape at these bindings; the kernel
        // reads and writes inside them (the lowering's index maps stay in bounds).
        unsafe { f.call(&mut fault, argv.as_ptr(), symv.as_ptr(), 0) };
        assert_eq!(fault, 0, "kernel {}", k.name);
    }
    for (oi, &ob) in p.outputs.iter().enumerate() {
        let dt = p.buffers[ob as usize].dtype;
        let got = &data[base_of(ob) as usize][..want[oi].bytes().len()];
        let w = want[oi].bytes();
        if dt.is_float() {
            let numel = want[oi].shape().iter().product::<u64>() as usize;
            let gv = dqc_ir::numeric::decode_f32(dt, got, numel);
            let wv = dqc_ir::numeric::decode_f32(dt, w, numel);
            for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
                let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 2e-6 + 2e-5 * b.abs();
                assert!(ok, "output {oi} element {i}: got {a}, want {b}");
            }
        } else {
            assert_eq!(got, w, "output {oi} ({dt})");
        }
    }
}

#[test]
fn elementwise_arena_matches_reference() {
    check_elementwise(
        "graph @g(%x: f32[B,3,4], %y: f32[4], %i: i64[B,3,4]) -> (f32[B,3,4], i64[B,3,4], f32[B,3,4]) {
          %a = mul(%x, %y)
          %h = constant() {value = dense<f32[]> [0.5]}
          %b = add(%a, %h)
          %c = tanh(%b)
          %d = gelu(%c) {approx = erf}
          %e = silu(%d)
          %f = sigmoid(%e)
          %g2 = gelu(%f) {approx = tanh}
          %j = constant() {value = dense<i64[]> [3]}
          %k = mod(%i, %j)
          %l = div(%i, %j)
          %m = add(%k, %l)
          %n = exp(%g2)
          return %g2, %m, %n
        }",
        3,
    );
}

#[test]
fn movement_and_concat_match_reference() {
    check_elementwise(
        "graph @g(%x: f32[B,3,4], %y: f32[B,2,4]) -> (f32[B,4,5]) {
          %c = concat(%x, %y) {axis = 1}
          %t = transpose(%c) {perm = [0, 2, 1]}
          %r = relu(%t)
          %p = pad(%r) {pads = [0, 0, 0, 0, 0, 0], mode = constant(0)}
          return %p
        }",
        2,
    );
}

#[test]
fn affine_quantize_matches_reference() {
    check_elementwise(
        "graph @g(%x: f32[B,3,8]) -> (i8[B,3,8], f32[B,3,8], f8e4m3[B,3,8]) {
          %s = constant() {value = dense<f32[]> [0.02]}
          %z = constant() {value = dense<i8[]> [-3]}
          %q = quantize(%x, %s, %z) {dtype = i8, scheme = per_tensor, has_zero_point = true}
          %d = dequantize(%q, %s, %z) {scheme = per_tensor, has_zero_point = true, out = f32}
          %c = constant() {value = dense<f32[8]> [0.01, 0.1, 1, 3, 0.5, 0.25, 2, 7]}
          %f = quantize(%x, %c) {dtype = f8e4m3, scheme = per_channel(axis = -1), has_zero_point = false}
          return %q, %d, %f
        }",
        2,
    );
}

#[test]
fn mirrored_pads_and_resizes_match_reference() {
    check_elementwise(
        "graph @g(%x: f32[B,3,4]) -> (f32[B,7,6], f32[B,5,9], f32[B,6,2]) {
          %e = exp(%x)
          %r = pad(%e) {pads = [0, 2, 1, 0, 2, 1], mode = reflect}
          %d = pad(%e) {pads = [0, 1, 2, 0, 1, 3], mode = edge}
          %c = neg(%d)
          %n = resize(%e) {size = [B,5,9], mode = nearest(round_prefer_floor), coord = half_pixel}
          %l = resize(%e) {size = [B,6,2], mode = linear, coord = align_corners}
          %s = add(%n, %c)
          return %r, %s, %l
        }",
        2,
    );
}

#[test]
fn per_group_dequantize_matches_reference() {
    check_elementwise(
        "graph @g(%q: i8[B,7], %s: f32[B,3], %z: i8[B,3]) -> (f32[B,7]) {
          %d = dequantize(%q, %s, %z) {scheme = per_group(axis = 1, size = 3), has_zero_point = true, out = f32}
          return %d
        }",
        2,
    );
}

#[test]
fn nvfp4_dequantize_matches_reference() {
    check_elementwise(
        "graph @g(%f: fp4e2m1[B,40], %b: f8e4m3[B,3], %t: f32[]) -> (f32[B,40]) {
          %n = dequantize(%f, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = f32}
          return %n
        }",
        2,
    );
}

#[test]
fn mx_dequantize_matches_reference() {
    check_elementwise(
        "graph @g(%m: f8e4m3[B,40], %e: u8[B,2]) -> (f32[B,40]) {
          %x8 = dequantize(%m, %e) {scheme = mx(axis = 1), has_zero_point = false, out = f32}
          return %x8
        }",
        2,
    );
}

#[test]
fn per_group_quantize_matches_reference() {
    check_elementwise(
        "graph @g(%x: f32[B,10], %gs: f32[B,3]) -> (i8[B,10]) {
          %qq = quantize(%x, %gs) {dtype = i8, scheme = per_group(axis = 1, size = 4), has_zero_point = false}
          return %qq
        }",
        2,
    );
}

#[test]
fn bf16_stores_round_to_nearest_even() {
    // Ties both ways, the largest finite values, overflow, subnormals, ±0, ±inf, NaN.
    let vals: Vec<f32> = [
        1.0f32,
        f32::from_bits(0x3f80_8000),
        f32::from_bits(0x3f81_8000),
        f32::from_bits(0x3f80_8001),
        -2.5,
        3.389_531_4e38,
        f32::MAX,
        1e-40,
        -1e-45,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]
    .to_vec();
    let n = vals.len();
    let out = run(DType::F32, DType::BF16, &f32_bytes(&vals), n, |kb, v| {
        kb.fix(DType::BF16, v)
    });
    let want = dqc_ir::numeric::encode_f32(DType::BF16, &vals);
    for i in 0..n {
        let (g, w) = (
            u16::from_le_bytes([out[2 * i], out[2 * i + 1]]),
            u16::from_le_bytes([want[2 * i], want[2 * i + 1]]),
        );
        let nan = |b: u16| b & 0x7f80 == 0x7f80 && b & 0x7f != 0;
        assert!(
            g == w || (nan(g) && nan(w)),
            "{}: got {g:#06x}, want {w:#06x}",
            vals[i]
        );
    }
}

#[test]
fn bf16_elementwise_kernel_matches_reference() {
    check_elementwise(
        "graph @g(%x: bf16[B,3,8], %y: f32[8]) -> (bf16[B,3,8], f32[B,3,8]) {
          %c = cast(%x) {to = f32}
          %a = mul(%c, %y)
          %s = silu(%a)
          %b = cast(%s) {to = bf16}
          return %b, %s
        }",
        2,
    );
}
