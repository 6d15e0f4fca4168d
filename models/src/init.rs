//! Seeded synthetic weights.
//!
//! One ChaCha8 stream per model, seeded from the configuration, drawn in the order the
//! builder creates parameters: the same configuration always gives the same bytes, on
//! every platform.

use dqc_ir::tensor::TensorError;
use dqc_ir::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Standard deviation of weight matrices, embeddings and convolution kernels (DiT's
/// `nn.init.normal_(std=0.02)`).
pub const WEIGHT_STD: f32 = 0.02;
/// Standard deviation of biases (small, non-zero, so every bias path is exercised).
pub const BIAS_STD: f32 = 0.01;

/// A deterministic source of weights.
#[derive(Clone, Debug)]
pub struct WeightInit {
    rng: ChaCha8Rng,
}

impl WeightInit {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> WeightInit {
        WeightInit {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One standard normal sample (Box–Muller, in f64).
    pub fn standard_normal(&mut self) -> f64 {
        // u1 in (0, 1] keeps the logarithm finite.
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An f32 tensor of `shape` with normal entries of standard deviation `std`.
    pub fn normal(&mut self, shape: &[u64], std: f32) -> Result<Tensor, TensorError> {
        let n = dqc_ir::tensor::checked_numel(shape)?;
        let values: Vec<f32> = (0..n)
            .map(|_| (self.standard_normal() * f64::from(std)) as f32)
            .collect();
        Tensor::from_f32(DType::F32, shape.to_vec(), &values)
    }

    /// A weight: normal with [`WEIGHT_STD`].
    pub fn weight(&mut self, shape: &[u64]) -> Result<Tensor, TensorError> {
        self.normal(shape, WEIGHT_STD)
    }

    /// A bias: normal with [`BIAS_STD`].
    pub fn bias(&mut self, shape: &[u64]) -> Result<Tensor, TensorError> {
        self.normal(shape, BIAS_STD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_the_right_moments() {
        let mut w = WeightInit::new(7);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| w.standard_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = WeightInit::new(1).weight(&[3, 5]).unwrap();
        let b = WeightInit::new(1).weight(&[3, 5]).unwrap();
        let c = WeightInit::new(2).weight(&[3, 5]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let max = a.to_f32_vec().iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max < 6.0 * WEIGHT_STD && max > 0.0);
    }
}
