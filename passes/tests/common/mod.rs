//! Helpers shared by the pass tests: op histograms, random inputs, output comparison.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use dqc_ir::{DType, Graph, Tensor};
use dqc_passes::{PassOptions, Pipeline, PipelineReport};

/// Op name → count.
pub fn histogram(g: &Graph) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for id in g.node_ids() {
        *h.entry(g.node(id).op.name().to_string()).or_insert(0) += 1;
    }
    h
}

/// `a → b` lines for every op whose count differs, plus unchanged counts.
pub fn histogram_diff(before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>) -> String {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = String::new();
    for n in names {
        let (a, b) = (
            before.get(n).copied().unwrap_or(0),
            after.get(n).copied().unwrap_or(0),
        );
        if a == b {
            out.push_str(&format!("{n:<14} {a}\n"));
        } else {
            out.push_str(&format!("{n:<14} {a} -> {b}\n"));
        }
    }
    out
}

/// Run the standard pipeline with only `pass` enabled.
pub fn run_only(g: &mut Graph, pass: &str) -> Result<PipelineReport, String> {
    let pipeline = Pipeline::standard();
    let opts = PassOptions {
        disabled: pipeline
            .names()
            .into_iter()
            .filter(|n| *n != pass)
            .map(String::from)
            .collect(),
        ..PassOptions::default()
    };
    if opts.disabled.len() == pipeline.names().len() {
        return Err(format!("no pass `{pass}`"));
    }
    pipeline.run(g, &opts).map_err(|e| e.to_string())
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// Random inputs for `g`'s signature, every symbolic dimension 2.
pub fn random_inputs(g: &Graph, rng: &mut Rng) -> Result<Vec<Tensor>, String> {
    let bindings: BTreeMap<String, u64> = g
        .input_values()
        .iter()
        .filter_map(|v| g.value_type(*v))
        .flat_map(|t| {
            t.shape
                .dims()
                .iter()
                .flat_map(|d| d.symbols().iter().map(|(s, _)| (s.clone(), 2u64)))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out = Vec::new();
    for v in g.input_values() {
        let ty = g.value_type(v).ok_or("untyped input")?;
        let shape = ty.shape.eval(&bindings).ok_or("unbound symbol")?;
        let n: u64 = shape.iter().product();
        let t = match ty.dtype {
            DType::I64 | DType::I32 => {
                let vals: Vec<i64> = (0..n).map(|_| (rng.next() % 3) as i64).collect();
                Tensor::from_i64(ty.dtype, shape, &vals)
            }
            DType::Bool => {
                let vals: Vec<i64> = (0..n).map(|_| (rng.next() % 2) as i64).collect();
                Tensor::from_i64(ty.dtype, shape, &vals)
            }
            d => {
                let vals: Vec<f32> = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
                Tensor::from_f32(d, shape, &vals)
            }
        }
        .map_err(|e| e.to_string())?;
        out.push(t);
    }
    Ok(out)
}

/// `max |got − want| / max |want|` (0 when both are exactly equal).
pub fn rel_error(got: &Tensor, want: &Tensor) -> Result<f32, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (a, b) = (got.to_f32_vec(), want.to_f32_vec());
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    if err == 0.0 {
        return Ok(0.0);
    }
    Ok(err / scale.max(f32::MIN_POSITIVE))
}

/// Check that `before` and `after` agree on `inputs` within `tol` relative error.
pub fn same_outputs(
    before: &Graph,
    after: &Graph,
    inputs: &[Tensor],
    tol: f32,
) -> Result<(), String> {
    let a = dqc_ir::interp::run(before, inputs).map_err(|e| format!("before: {e}"))?;
    let b = dqc_ir::interp::run(after, inputs).map_err(|e| format!("after: {e}"))?;
    for (i, (x, y)) in b.iter().zip(&a).enumerate() {
        let rel = rel_error(x, y)?;
        if rel.is_nan() || rel > tol {
            return Err(format!("output {i}: relative error {rel:e} > {tol:e}"));
        }
    }
    Ok(())
}
