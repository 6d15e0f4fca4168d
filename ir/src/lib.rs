//! dqc-ir: the graph IR of dqc.
//!
//! - [`DType`] — element types including f8e4m3, f8e5m2, i4 and fp4e2m1, with bit-exact
//!   conversions in [`numeric`];
//! - [`quant::QuantScheme`] — per-tensor, per-channel, per-group, NVFP4 and MX scales;
//! - [`shape`] — shapes with static and symbolic dimensions and broadcasting;
//! - [`op::Op`] — the one op enum;
//! - [`graph::Graph`] — the dataflow graph (petgraph), built with [`builder::Builder`];
//! - [`verify`] — type and shape inference and checking;
//! - [`text`] — the `.dqc` text format (printer and pest parser, exact round trip);
//! - [`interp`] — the reference interpreter, the oracle for passes and kernels;
//! - [`npz`] — `.npy`/`.npz` files for inputs and outputs.
#![warn(missing_docs)]

pub mod builder;
pub mod dtype;
pub mod graph;
pub mod interp;
pub mod npz;
pub mod numeric;
pub mod op;
pub mod quant;
pub mod shape;
pub mod target;
pub mod tensor;
pub mod text;
pub mod verify;

pub use dtype::DType;
pub use graph::{Graph, Node, NodeId, Value};
pub use op::Op;
pub use quant::QuantScheme;
pub use shape::{Dim, Shape, TensorType};
pub use target::Target;
pub use tensor::{SharedBytes, Tensor};
