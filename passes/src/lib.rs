//! dqc-passes: graph-to-graph rewrites.
//!
//! This crate will own the `Pass` trait and the ordered pipeline (verifier after every
//! pass, `--dump-after`, `--disable-pass`), e-graph rewrites with egg (one rule file per
//! topic), calibration and per-layer precision selection, cache/skip insertion across
//! denoising steps, attention tiling and memory planning. It depends only on `dqc-ir`.
