//! The `.dqc` text format: a printer and a pest parser with an exact round trip.
//!
//! `parse(&print(g), None)` rebuilds `g`: the same graph name, inputs, statements, names,
//! op attributes, constant bytes and type annotations, and `print` of the result is the
//! same text. The only things not kept bit for bit are NaN payloads (every NaN is printed
//! `nan` and read back as the dtype's canonical NaN), bool bytes other than 0/1 (read back
//! as 1) and the unused padding nibble of an odd-length i4/fp4e2m1 tensor (read back as 0).
//! Nodes that are not graph inputs but hold an `Op::Input` cannot be written (inputs are
//! the signature), and value names must be non-empty.
//!
//! # Example
//!
//! ```text
//! weights "block.safetensors"              // optional: file of external<…> constants
//! graph @block(%x: f32[B,256,384], %c: f32[B,384]) -> (f32[B,256,384]) {
//!   %h = layer_norm(%x) {axis = -1, eps = 1e-6, affine = false} : f32[B,256,384]
//!   %w = constant() {value = dense<f32[2,2]> [1, 2, 3.5, -0]} : f32[2,2]
//!   %big = constant() {value = external<f32[384,384]> "blocks.0.attn.qkv.weight"}
//!   %a, %b = split(%h) {axis = 2, sizes = [192, 192]} : f32[B,256,192], f32[B,256,192]
//!   %r = reshape(%a) {shape = [256*B,192]}
//!   %ts = constant() {value = dense<f32[]> [1]}
//!   %q, %s = quantize(%r, %ts) {dtype = fp4e2m1, scheme = nvfp4(axis = -1), has_zero_point = false}
//!   %"onnx::Mul_7" = mul(%a, %b)
//!   %old = cache_read() {slot = "block0", ty = f32[B,256,192]}
//!   %y = step_gate(%"onnx::Mul_7", %old) {schedule = every(period = 2, warmup = 1)}
//!   return %y
//! }
//! ```
//!
//! # Syntax
//!
//! - **Header**: `graph @NAME(%in: TYPE, …) -> (TYPE | ?, …) { STATEMENTS return %v, … }`.
//!   Inputs are the signature, not statements. The printer writes each result's type when
//!   it is known and `?` otherwise; the parser checks the number of results against
//!   `return`, and a written type against the returned value's known type (its input type
//!   or annotation).
//! - **Names**: `%` or `@` followed by one or more of `A-Z a-z 0-9 _ . $ / : -` (a `:` may
//!   not end a bare name, so write `%x: f32[4]` with a space), or a quoted string
//!   `%"any name"` with the escapes `\"`, `\\`, `\n`, `\t`, `\r`, `\0` and `\u{HEX}`. Value
//!   names are unique and non-empty.
//! - **Statements**: `%a, %b = OP(%x, %y) {k = v, …} : TYPE, TYPE`. `OP` is
//!   [`crate::Op::name`]; the operand count must match the op and its flags (`has_c`,
//!   `affine`, …), the number of names its results. Values are defined before use; the
//!   printer lists statements in [`crate::Graph::topo_order`]. The `{…}` block is left out
//!   for ops without attributes. The trailing `: TYPE, …` annotation is printed when the node
//!   has inferred types and recorded with [`crate::Graph::set_types`] when parsed (the
//!   verifier, not the parser, checks it against inference).
//! - **Types**: `DTYPE[DIMS]` with dtype names from [`crate::DType::name`] and dims that are
//!   products of integers and symbols: `[B,256*B,B*N]` (a symbol that is not an identifier
//!   is quoted: `"seq len"`).
//! - **Comments**: `//` to the end of the line.
//!
//! # Attributes
//!
//! Each op prints its attributes in a fixed order; the parser accepts any order, and
//! reports unknown, duplicate, missing and mistyped ones.
//!
//! | op | attributes |
//! |---|---|
//! | unary and binary ops (`neg`, `add`, `less_equal`, …), `where`, `modulate`, `matmul`, `silu` | none |
//! | `constant` | `value = dense<TYPE> [v, …]` or `external<TYPE> "key"` |
//! | `cast` | `to = DTYPE` |
//! | `gemm` | `alpha = F, beta = F, trans_a = B, trans_b = B, has_c = B` |
//! | `conv` | `strides = [..], pads = [..], dilations = [..], groups = N, has_bias = B` |
//! | `layer_norm`, `rms_norm` | `axis = I, eps = F, affine = B` |
//! | `group_norm` | `groups = N, eps = F, affine = B` |
//! | `softmax`, `concat`, `gather` | `axis = I` |
//! | `gelu` | `approx = erf \| tanh` |
//! | `attention` | `heads = N, kv_heads = N, scale = none \| F, causal = B, has_mask = B` |
//! | `selective_scan` | `delta_softplus = B, has_d = B, has_z = B` |
//! | `reduce_sum`, `reduce_mean`, `reduce_max`, `reduce_min`, `reduce_prod`, `reduce_l2` | `axes = [..], keepdims = B` |
//! | `argmax`, `argmin` | `axis = I, keepdims = B` |
//! | `cumsum` | `axis = I, exclusive = B, reverse = B` |
//! | `reshape`, `expand` | `shape = [DIMS]` |
//! | `transpose` | `perm = [..]` |
//! | `slice` | `axes = [..], starts = [..], ends = [..], steps = [..]` |
//! | `split` | `axis = I, sizes = [..]` |
//! | `pad` | `pads = [..], mode = constant(F) \| reflect \| edge` |
//! | `resize` | `size = [DIMS], mode = nearest(round_prefer_floor \| round_prefer_ceil \| floor \| ceil) \| linear, coord = half_pixel \| asymmetric \| align_corners` |
//! | `quantize` | `dtype = DTYPE, scheme = SCHEME, has_zero_point = B` |
//! | `dequantize` | `scheme = SCHEME, has_zero_point = B, out = DTYPE` |
//! | `qmatmul` | `a_scheme = none \| SCHEME, b_scheme = SCHEME, out = DTYPE` |
//! | `cache_read` | `slot = "name", ty = TYPE` |
//! | `cache_write` | `slot = "name"` |
//! | `step_gate` | `schedule = always \| every(period = N, warmup = N) \| steps([N, …])` |
//!
//! `SCHEME` is the [`crate::QuantScheme`] display form: `per_tensor`,
//! `per_channel(axis = 0)`, `per_group(axis = 1, size = 64)`, `nvfp4(axis = -1)`,
//! `mx(axis = -1)`. `B` is `true`/`false`.
//!
//! # Numbers
//!
//! Floats (attributes and literal elements) are printed in Rust's shortest round-trip form
//! of the f32 (`1e-6`, `0.1`, `-0.0`; literal elements drop a trailing `.0`), with `inf`,
//! `-inf` and `nan` spelled out, so parsing gives back the identical bits. Integers are
//! exact up to i64.
//!
//! # Constants
//!
//! `dense<DTYPE[SHAPE]> [v, …]` lists every element decoded: integers for integer dtypes
//! (including i4), `true`/`false` for bool, the exact decoded value for float dtypes
//! (including f8e4m3, f8e5m2 and fp4e2m1, whose values are all exact in decimal). Parsing
//! re-encodes them with [`crate::Tensor::from_i64`] / [`crate::Tensor::from_f32`] and
//! refuses a literal the dtype cannot hold exactly (an out-of-range integer, `0.1` as f16),
//! so the bytes round trip. `external<DTYPE[SHAPE]> "key"` takes the tensor from a
//! [`WeightStore`]; its dtype and shape must match. [`print_with_weights`] and
//! [`write_model`] move constants with more than `inline_limit` elements out to external
//! storage under their value name.
//!
//! # Files
//!
//! [`write_model`] writes `FILE.dqc` and, if any constant is external, `FILE.safetensors`
//! next to it, naming it in a first line `weights "FILE.safetensors"`. [`read_model`]
//! reads the `.dqc` and maps the named weights file (a path relative to the `.dqc`'s
//! folder; absolute paths and `..` are refused). See [`SafetensorsWeights`] for how dtypes
//! are stored.

mod attrs;
mod constant;
mod error;
mod parse;
mod print;
mod reader;
mod value;
mod weights;

#[cfg(test)]
mod tests;

use std::path::{Component, Path};

pub use error::{ParseError, ParseErrorKind, TextError, WeightsError};
pub use weights::{SafetensorsWeights, WeightStore, from_st, to_st, write_safetensors};

use crate::graph::Graph;
use crate::tensor::Tensor;

/// Print `graph` with every constant inline. Statements follow
/// [`Graph::topo_order`]; a graph with a cycle is printed in insertion order after an
/// `// error:` comment (and does not parse back).
pub fn print(graph: &Graph) -> String {
    print::print_graph(graph, usize::MAX).0
}

/// Print `graph`, writing constants with more than `inline_limit` elements as
/// `external<TYPE> "NAME"` (NAME = the constant's value name). Returns the text and those
/// constants, keyed by name, in statement order. The text has no `weights` line; parse it
/// with the returned list as the [`WeightStore`].
pub fn print_with_weights(graph: &Graph, inline_limit: usize) -> (String, Vec<(String, Tensor)>) {
    print::print_graph(graph, inline_limit)
}

/// Parse `.dqc` text. `weights` resolves `external<…>` constants (a `weights "…"` line is
/// accepted and ignored here; [`read_model`] acts on it). Errors carry the line and column
/// of the offending token.
pub fn parse(src: &str, weights: Option<&dyn WeightStore>) -> Result<Graph, ParseError> {
    parse::parse_graph(src, weights)
}

/// Read a `.dqc` file and, if it has a `weights "NAME"` line, map `NAME` (relative to the
/// file's folder, no absolute path, no `..`) as the weight store.
pub fn read_model(path: &Path) -> Result<Graph, TextError> {
    let src = std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let perr = |error| TextError::Parse {
        path: path.to_path_buf(),
        error,
    };
    let file = parse::parse_rule(&src, parse::Rule::file).map_err(perr)?;
    let store = match parse::weights_decl(&file, &src).map_err(perr)? {
        None => None,
        Some((name, _)) => {
            let rel = Path::new(&name);
            let plain = !name.is_empty()
                && rel
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !plain {
                return Err(TextError::WeightsPath {
                    path: path.to_path_buf(),
                    name,
                });
            }
            let dir = path.parent().unwrap_or(Path::new(""));
            Some(SafetensorsWeights::open(&dir.join(rel))?)
        }
    };
    parse::parse_graph(&src, store.as_ref().map(|s| s as &dyn WeightStore)).map_err(perr)
}

/// Write `graph` to `path` (a `.dqc` file). Constants with more than `inline_limit`
/// elements go to a safetensors file next to it, named after `path` with the extension
/// `.safetensors`, which the text names in its `weights` line. Both files are written
/// atomically (temporary file, sync, rename); the weights first.
pub fn write_model(path: &Path, graph: &Graph, inline_limit: usize) -> Result<(), TextError> {
    let (text, external) = print::print_graph(graph, inline_limit);
    let text = if external.is_empty() {
        text
    } else {
        let stem = path.file_stem().ok_or_else(|| TextError::NotAFile {
            path: path.to_path_buf(),
        })?;
        let mut name = stem.to_os_string();
        name.push(".safetensors");
        let wpath = path.with_file_name(&name);
        let name = name.to_str().ok_or_else(|| TextError::NotAFile {
            path: path.to_path_buf(),
        })?;
        write_safetensors(&wpath, &external)?;
        format!("weights {}\n{text}", print::quote(name))
    };
    weights::write_atomic(path, text.as_bytes()).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })
}
