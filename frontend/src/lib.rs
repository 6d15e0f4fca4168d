//! dqc-frontend: model import.
//!
//! This crate will own the ONNX protobuf schema (hand-written `prost` messages), the op
//! registry (one file per op family under `onnx/ops/`), the ONNX → `dqc_ir::Graph`
//! conversion, and constant folding of the shape-computation subgraphs that exporters emit.
//! It depends only on `dqc-ir`. See `docs/` and `../shared/docs/DESIGN.md`.
