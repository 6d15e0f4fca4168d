//! dqc-models: graph builders for the model families dqc targets.
//!
//! - [`dit`] — DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers"): the
//!   whole class-conditional model, and single adaLN-Zero blocks for benchmarks.
//!
//! Weights are synthetic: drawn from a seeded generator ([`init::WeightInit`]), so a model
//! is reproducible from its configuration alone. They exercise every op with realistic
//! magnitudes; they are not trained weights.
#![warn(missing_docs)]

pub mod dit;
pub mod init;

/// Errors from the model builders.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A configuration field is out of range or inconsistent with another.
    #[error("invalid {model} configuration: `{field}` {message}")]
    InvalidConfig {
        /// Model family (`dit`).
        model: &'static str,
        /// The offending field.
        field: &'static str,
        /// Why it is refused.
        message: String,
    },
    /// The graph builder refused a node (a bug in the model builder, reported rather
    /// than panicking).
    #[error(transparent)]
    Build(#[from] dqc_ir::builder::BuildError),
    /// A weight tensor could not be created (its shape is too large).
    #[error(transparent)]
    Tensor(#[from] dqc_ir::tensor::TensorError),
}
