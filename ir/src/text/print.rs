//! The printer: `Graph` → `.dqc` text. The spellings here are the ones `parse.rs` and
//! `attrs.rs` read back; every float is printed so that it parses to the same bits.

use std::fmt::Write as _;

use crate::DType;
use crate::graph::{Graph, Node, NodeId};
use crate::op::Op;
use crate::shape::{Dim, Shape, TensorType};
use crate::tensor::Tensor;

use super::attrs::op_attrs;

/// Print `graph`. Constants with more than `inline_limit` elements are written as
/// `external<…> "NAME"` (NAME = the value name) and returned.
pub(crate) fn print_graph(graph: &Graph, inline_limit: usize) -> (String, Vec<(String, Tensor)>) {
    let mut out = String::new();
    let mut external = Vec::new();
    let order: Vec<NodeId> = match graph.topo_order() {
        Ok(o) => o,
        Err(e) => {
            // A cyclic graph has no valid text; print it anyway so it can be looked at
            // (parsing it back reports the use before definition).
            let _ = writeln!(out, "// error: {e}; statements are in insertion order");
            graph.node_ids().collect()
        }
    };
    let _ = write!(out, "graph @{}(", name(&graph.name));
    for (i, &id) in graph.inputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let node = graph.node(id);
        let ty = match &node.op {
            Op::Input { ty, .. } => ty.clone(),
            _ => node.output_types().first().cloned().unwrap_or_else(unknown),
        };
        let _ = write!(out, "%{}: {}", name(node.name()), tensor_type(&ty));
    }
    out.push_str(") -> (");
    for (i, v) in graph.outputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match graph.value_type(*v) {
            Some(t) => out.push_str(&tensor_type(t)),
            None => out.push('?'),
        }
    }
    out.push_str(") {\n");
    for id in order {
        let node = graph.node(id);
        if matches!(node.op, Op::Input { .. }) {
            continue;
        }
        statement(&mut out, graph, node, inline_limit, &mut external);
    }
    out.push_str("  return");
    for (i, v) in graph.outputs().iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        let _ = write!(out, "%{}", name(graph.value_name(*v)));
    }
    out.push_str("\n}\n");
    (out, external)
}

/// A placeholder type for the impossible case of an input node without a type.
fn unknown() -> TensorType {
    TensorType::new(DType::F32, Shape::scalar())
}

fn statement(
    out: &mut String,
    graph: &Graph,
    node: &Node,
    inline_limit: usize,
    external: &mut Vec<(String, Tensor)>,
) {
    out.push_str("  ");
    for (i, n) in node.output_names().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "%{}", name(n));
    }
    let _ = write!(out, " = {}(", node.op.name());
    for (i, v) in node.inputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "%{}", name(graph.value_name(*v)));
    }
    out.push(')');
    let attrs: Vec<(&'static str, String)> = match &node.op {
        Op::Constant(t) => {
            let v = if t.numel() > inline_limit {
                external.push((node.name().to_string(), t.clone()));
                format!("external<{}> {}", tensor_type(&t.ty()), quote(node.name()))
            } else {
                dense(t)
            };
            vec![("value", v)]
        }
        op => op_attrs(op),
    };
    if !attrs.is_empty() {
        out.push_str(" {");
        for (i, (k, v)) in attrs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{k} = {v}");
        }
        out.push('}');
    }
    let types = node.output_types();
    if !types.is_empty() {
        out.push_str(" : ");
        for (i, t) in types.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&tensor_type(t));
        }
    }
    out.push('\n');
}

/// `dense<dtype[shape]> [v, …]` with every element decoded exactly.
pub(crate) fn dense(t: &Tensor) -> String {
    let mut s = format!("dense<{}> [", tensor_type(&t.ty()));
    match t.dtype() {
        DType::Bool => {
            for (i, v) in t.to_i64_vec().iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(if *v != 0 { "true" } else { "false" });
            }
        }
        DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4 => {
            for (i, v) in t.to_i64_vec().iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{v}");
            }
        }
        DType::F32
        | DType::F16
        | DType::BF16
        | DType::F8E4M3
        | DType::F8E5M2
        | DType::F8E4M3Fnuz
        | DType::F8E5M2Fnuz
        | DType::Fp4E2M1 => {
            for (i, v) in t.to_f32_vec().iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&float_compact(*v));
            }
        }
    }
    s.push(']');
    s
}

/// An f32 in Rust's shortest round-trip form (`1.0`, `1e-6`, `-0.0`), with `inf`, `-inf`
/// and `nan` spelled out.
pub(crate) fn float(v: f32) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Like [`float`] without a trailing `.0` (`2`, `3.5`, `-0`), for literal tensors.
fn float_compact(v: f32) -> String {
    let s = float(v);
    match s.strip_suffix(".0") {
        Some(t) => t.to_string(),
        None => s,
    }
}

/// A name as written after `%` or `@`: bare when it only has name characters (a `:` must
/// not end it), else quoted.
pub(crate) fn name(n: &str) -> String {
    let bare_char = |c: char| c.is_ascii_alphanumeric() || "_.$/-:".contains(c);
    if !n.is_empty() && n.chars().all(bare_char) && !n.ends_with(':') {
        n.to_string()
    } else {
        quote(n)
    }
}

/// A quoted string: `"` and `\` escaped, `\n`, `\t`, `\r`, `\0`, other control characters as
/// `\u{…}`; everything else as is.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dimension: `256`, `B`, `256*B`, `B*N`; symbols that are not identifiers (or are `inf`
/// or `nan`) are quoted.
pub(crate) fn dim(d: &Dim) -> String {
    let mut parts: Vec<String> = Vec::new();
    if d.factor() != 1 || d.symbols().is_empty() {
        parts.push(d.factor().to_string());
    }
    for (s, e) in d.symbols() {
        // `inf` and `nan` would read as numbers in an attribute shape.
        let s = if is_ident(s) && s != "inf" && s != "nan" {
            s.clone()
        } else {
            quote(s)
        };
        for _ in 0..*e {
            parts.push(s.clone());
        }
    }
    parts.join("*")
}

/// A shape: `[B,256,384]`.
pub(crate) fn shape(s: &Shape) -> String {
    let dims: Vec<String> = s.dims().iter().map(dim).collect();
    format!("[{}]", dims.join(","))
}

/// A tensor type: `f32[B,256,384]`.
pub(crate) fn tensor_type(t: &TensorType) -> String {
    format!("{}{}", t.dtype, shape(&t.shape))
}
