//! Inputs for a run: random ones from a plan's signature (for `check`), and dtype
//! adaptation of `.npz` arrays (numpy has no bf16: such inputs arrive as f32).

use anyhow::{Context, Result, bail};
use dqc_ir::{DType, Tensor};
use dqc_runtime::Plan;
use std::collections::BTreeMap;

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Random inputs for every input of `plan`'s signature: symbols take the values of `dims`
/// (default: their maxima); floats are uniform in `[-1, 1)` (rounded to the dtype),
/// integers uniform in `[0, int_max)`, bools fair coins.
pub fn random_inputs(
    plan: &Plan,
    dims: &BTreeMap<String, u64>,
    seed: u64,
    int_max: u64,
) -> Result<Vec<(String, Tensor)>> {
    let mut bindings: BTreeMap<String, u64> = plan
        .program()
        .symbols
        .iter()
        .map(|s| (s.name.clone(), s.max))
        .collect();
    for (k, &v) in dims {
        if !bindings.contains_key(k) {
            let known: Vec<&str> = bindings.keys().map(String::as_str).collect();
            bail!(
                "--dim {k}={v}: the plan has no symbol `{k}` (its symbols: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        bindings.insert(k.clone(), v);
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for s in &plan.signature().inputs {
        let shape = s.shape.eval(&bindings).with_context(|| {
            format!(
                "input `{}`: shape {} has an unbound symbol",
                s.name, s.shape
            )
        })?;
        let n: u64 = shape.iter().product();
        let n = usize::try_from(n).context("input too large")?;
        let t = if s.dtype.is_float() {
            let v: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
            Tensor::from_f32(s.dtype, shape, &v)?
        } else if s.dtype == DType::Bool {
            let v: Vec<i64> = (0..n).map(|_| (rng.next_u64() & 1) as i64).collect();
            Tensor::from_i64(s.dtype, shape, &v)?
        } else {
            let v: Vec<i64> = (0..n).map(|_| rng.below(int_max) as i64).collect();
            Tensor::from_i64(s.dtype, shape, &v)?
        };
        out.push((s.name.clone(), t));
    }
    Ok(out)
}

/// Convert f32 arrays to the dtype the plan expects for that input when it is a float type
/// numpy cannot store (bf16, f8); everything else is passed through unchanged (and
/// checked by the session).
pub fn adapt_inputs(plan: &Plan, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
    inputs
        .into_iter()
        .map(|(name, t)| {
            let want = plan
                .signature()
                .inputs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.dtype);
            match want {
                Some(d) if d != t.dtype() && d.is_float() && t.dtype() == DType::F32 => {
                    let c = Tensor::from_f32(d, t.shape().to_vec(), &t.to_f32_vec())?;
                    Ok((name, c))
                }
                _ => Ok((name, t)),
            }
        })
        .collect()
}

/// Outputs numpy cannot hold (bf16, f8, packed types) as f32, for writing `.npz` files.
pub fn storable(outputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    outputs
        .iter()
        .map(|(n, t)| {
            let keep = matches!(
                t.dtype(),
                DType::F32
                    | DType::F16
                    | DType::I64
                    | DType::I32
                    | DType::I8
                    | DType::U8
                    | DType::Bool
            );
            if keep {
                Ok((n.clone(), t.clone()))
            } else {
                Ok((
                    n.clone(),
                    Tensor::from_f32(DType::F32, t.shape().to_vec(), &t.to_f32_vec())?,
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let (x, y) = (a.unit(), b.unit());
            assert_eq!(x.to_bits(), y.to_bits());
            assert!((-1.0..1.0).contains(&x));
            assert!(a.below(5) < 5);
            b.below(5);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
