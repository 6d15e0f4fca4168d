//! ONNX → `dqc_ir::Graph`.
//!
//! [`import_model`] walks the nodes of a loaded [`OnnxModel`] in topological order and
//! hands each to the converter the [`Registry`] holds for its (domain, op type, opset).
//! Converters read their inputs as [`OVal`]s — compile-time constants, symbolic shape
//! values ([`OVal::Dims`]) or run-time graph values — and emit IR nodes through [`Ctx`],
//! which folds ops whose inputs are all known. Shape subgraphs (`Shape → Gather → Concat →
//! Reshape`) therefore vanish into the attributes of the ops that consume them.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use dqc_ir::verify::verify;
use dqc_ir::{Dim, Graph, Op, Shape, Tensor, TensorType};

use crate::FrontendError;
use crate::onnx::load::{OnnxModel, load_model};
use crate::onnx::types::tensor_type;

pub mod ctx;
pub mod node;
pub mod oval;
pub mod registry;

pub use ctx::Ctx;
pub use node::NodeView;
pub use oval::OVal;
pub use registry::{ConvertFn, Registry};

/// Load and import the model at `path` with the default registry.
pub fn import_file(path: &Path) -> Result<Graph, FrontendError> {
    import_model(&load_model(path)?)
}

/// Import `model` with [`crate::onnx::ops::default_registry`].
pub fn import_model(model: &OnnxModel) -> Result<Graph, FrontendError> {
    import_with(model, &crate::onnx::ops::default_registry())
}

/// Import `model` with the converters of `registry`.
///
/// The graph's inputs are the model's runtime inputs (graph inputs that are not
/// initializers), with `dim_param` names turned into valid IR symbols (see
/// [`sanitize_symbol`]); its outputs are the model's outputs. Value names are the ONNX
/// tensor names (made unique). Dead nodes are removed and the result is verified.
///
/// Errors: an op without a converter ([`FrontendError::UnsupportedOp`], with close
/// names), a converter's error (naming the node), or a graph that does not verify.
pub fn import_with(model: &OnnxModel, registry: &Registry) -> Result<Graph, FrontendError> {
    import_with_constants(model, registry, &BTreeMap::new())
}

/// Import `model`, binding the runtime inputs named in `constants` to those tensors
/// instead of making them graph inputs ("freezing" them: shapes, axes or sizes fed as
/// inputs then fold at compile time). A frozen tensor must match the input's declared
/// dtype and rank.
pub fn import_with_constants(
    model: &OnnxModel,
    registry: &Registry,
    constants: &BTreeMap<String, Tensor>,
) -> Result<Graph, FrontendError> {
    let path = model.path();
    let gname = &model.graph().name;
    let mut ctx = Ctx::new(model, if gname.is_empty() { "main" } else { gname });
    for (name, t) in model.initializers() {
        ctx.set(name, OVal::Const(t.clone()));
    }
    let mut symbols = SymbolNames::default();
    for vi in model.runtime_inputs() {
        let ty = tensor_type(vi, path)?;
        if let Some(t) = constants.get(&vi.name) {
            if t.dtype() != ty.dtype || t.shape().len() != ty.shape.rank() {
                return Err(FrontendError::BadValueType {
                    path: path.to_path_buf(),
                    value: vi.name.clone(),
                    reason: format!(
                        "the frozen value {} does not match the declared type {ty}",
                        t.ty()
                    ),
                });
            }
            ctx.set(&vi.name, OVal::Const(t.clone()));
            continue;
        }
        let ty = symbols.rename_type(&ty);
        let v = ctx.graph_mut().add_input(&vi.name, ty);
        ctx.set(&vi.name, OVal::Node(v));
    }
    let nodes = &model.graph().node;
    for &index in model.node_order() {
        let Some(proto) = nodes.get(index) else {
            continue;
        };
        let opset = model.opset_version(&proto.domain).unwrap_or(0);
        let view = NodeView::new(model, proto, index, opset);
        ctx.begin(view);
        let is_local_function = model
            .proto()
            .functions
            .iter()
            .any(|f| f.name == proto.op_type && f.domain == proto.domain);
        let convert = match registry.lookup(&proto.domain, &proto.op_type, opset) {
            Ok(f) => f,
            Err(_) if is_local_function => {
                return Err(view.error(format!(
                    "`{}` is a model-local function, which dqc does not inline; export with \
                     functions inlined (e.g. `onnx.inliner.inline_local_functions`)",
                    proto.op_type
                )));
            }
            Err(_) => return Err(registry.unsupported(&view, &proto.domain, opset)),
        };
        let outs = convert(&mut ctx, &view)?;
        for (i, name) in proto.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match outs.get(i) {
                Some(v) => ctx.set(name, v.clone()),
                None => {
                    return Err(view.error(format!(
                        "output {i} (`{name}`) is not produced by the converter (it makes {} outputs)",
                        outs.len()
                    )));
                }
            }
        }
    }
    let mut outputs = Vec::new();
    for vo in model.outputs() {
        let v = ctx
            .get(&vo.name)
            .cloned()
            .ok_or_else(|| FrontendError::MissingOutput {
                path: path.to_path_buf(),
                graph: model.graph().name.clone(),
                output: vo.name.clone(),
            })?;
        outputs.push(ctx.materialize(&v, &vo.name)?);
    }
    let mut graph = ctx.into_graph();
    // Outputs carry the model's output names where the converter named the producing
    // node otherwise (a runtime returns outputs by these names). Inputs and constants
    // keep theirs: they are not renamed from under other users' meaning.
    for (vo, &v) in model.outputs().iter().zip(&outputs) {
        let is_source = matches!(graph.node(v.node).op, Op::Input { .. } | Op::Constant(_));
        if !is_source && graph.value_name(v) != vo.name {
            graph.rename_value(v, &vo.name);
        }
    }
    graph.set_outputs(outputs);
    graph.remove_dead();
    verify(&mut graph).map_err(|source| FrontendError::Verify {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(graph)
}

/// Turn an ONNX `dim_param` (or an unknown-dim name such as `x:0`) into a valid IR
/// symbol: characters other than ASCII letters, digits and `_` become `_`, and a name
/// that starts with a digit (or is empty) gets a `d` in front.
pub fn sanitize_symbol(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'd');
    }
    s
}

/// Sanitized symbol names, kept distinct: two different ONNX names never map to one
/// symbol.
#[derive(Default)]
struct SymbolNames {
    map: BTreeMap<String, String>,
    used: HashSet<String>,
}

impl SymbolNames {
    fn rename(&mut self, original: &str) -> String {
        if let Some(s) = self.map.get(original) {
            return s.clone();
        }
        let base = sanitize_symbol(original);
        let mut cand = base.clone();
        let mut k = 1;
        while self.used.contains(&cand) {
            cand = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(cand.clone());
        self.map.insert(original.to_string(), cand.clone());
        cand
    }

    fn rename_dim(&mut self, d: &Dim) -> Dim {
        let mut out = Dim::fixed(d.factor());
        for (s, e) in d.symbols() {
            let sym = Dim::sym(self.rename(s));
            for _ in 0..*e {
                out = out.checked_mul(&sym).unwrap_or_else(|| out.clone());
            }
        }
        out
    }

    fn rename_type(&mut self, ty: &TensorType) -> TensorType {
        let dims = ty.shape.dims().iter().map(|d| self.rename_dim(d)).collect();
        TensorType::new(ty.dtype, Shape(dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_sanitized_and_kept_distinct() {
        assert_eq!(sanitize_symbol("batch_size"), "batch_size");
        assert_eq!(sanitize_symbol("x:2"), "x_2");
        assert_eq!(sanitize_symbol("2d"), "d2d");
        assert_eq!(sanitize_symbol(""), "d");
        let mut s = SymbolNames::default();
        assert_eq!(s.rename("a-b"), "a_b");
        assert_eq!(s.rename("a_b"), "a_b_1");
        assert_eq!(s.rename("a-b"), "a_b");
    }
}
