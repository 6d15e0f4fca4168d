//! Shared helpers of the lowering tests: parse, lower, run the reference and the
//! interpreter, compare.
#![allow(dead_code)]

use dqc_codegen::lower::{LowerOptions, Lowered, lower};
use dqc_codegen::reference::{bind_symbols, run_program};
use dqc_ir::{DType, Graph, Tensor};

/// Parse and verify a `.dqc` graph.
pub fn parse(src: &str) -> Graph {
    let mut g = dqc_ir::text::parse(src, None).unwrap_or_else(|e| panic!("parse: {e}"));
    dqc_ir::verify::verify(&mut g).unwrap_or_else(|e| panic!("verify: {e}"));
    g
}

/// Deterministic values in [-2, 2).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// A tensor of deterministic values.
pub fn tensor(dtype: DType, shape: &[u64], seed: u64) -> Tensor {
    let n: u64 = shape.iter().product();
    Tensor::from_f32(dtype, shape.to_vec(), &values(n as usize, seed)).unwrap()
}

/// `max |a − b| / max(max |b|, 1e-6)`.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    assert_eq!(a.dtype(), b.dtype(), "dtypes differ");
    let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
    let scale = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let err = x.iter().zip(&y).fold(0f32, |m, (p, q)| {
        if p.to_bits() == q.to_bits() {
            m
        } else {
            m.max((p - q).abs())
        }
    });
    err / scale
}

/// Lower `g`, run the reference on `inputs` and compare every output with the
/// interpreter (relative error ≤ `tol`). Returns the lowering.
pub fn check_against_interp(g: &Graph, inputs: &[Tensor], tol: f32) -> Lowered {
    let lowered = lower(g, &LowerOptions::default()).unwrap_or_else(|e| panic!("lower: {e}"));
    let want = dqc_ir::interp::run(g, inputs).unwrap_or_else(|e| panic!("interp: {e}"));
    let bindings = bind_symbols(&lowered.program, inputs).unwrap_or_else(|e| panic!("bind: {e}"));
    let got =
        run_program(&lowered.program, &lowered.weights, inputs, &bindings).unwrap_or_else(|e| {
            panic!(
                "reference: {e}\n{}",
                dqc_codegen::lower::listing(&lowered.program)
            )
        });
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let r = rel_err(a, b);
        assert!(
            r <= tol,
            "output {i}: rel err {r:e}\n{}",
            dqc_codegen::lower::listing(&lowered.program)
        );
    }
    lowered
}

/// Random inputs for every graph input, symbols bound to `sym`.
pub fn inputs_for(g: &Graph, sym: u64) -> Vec<Tensor> {
    let mut b = std::collections::BTreeMap::new();
    for &id in g.inputs() {
        let ty = g.value_type(dqc_ir::graph::Value::new(id, 0)).unwrap();
        for d in ty.shape.dims() {
            for (s, _) in d.symbols() {
                b.insert(s.clone(), sym);
            }
        }
    }
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let ty = g.value_type(dqc_ir::graph::Value::new(id, 0)).unwrap();
            let shape = ty.shape.eval(&b).unwrap();
            tensor(ty.dtype, &shape, i as u64 + 7)
        })
        .collect()
}

/// Kernel family names of a lowering, in order.
pub fn families(l: &Lowered) -> Vec<&'static str> {
    l.program.kernels.iter().map(|k| k.body.family()).collect()
}
