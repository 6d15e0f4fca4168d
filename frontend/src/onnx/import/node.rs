//! [`NodeView`]: one ONNX node as a converter sees it — its names, its opset and typed
//! access to its attributes, with errors that name the node and the attribute.

use std::path::Path;

use dqc_ir::Tensor;

use crate::FrontendError;
use crate::onnx::load::OnnxModel;
use crate::onnx::proto::{AttributeProto, AttributeType, NodeProto};

/// A node being converted.
#[derive(Clone, Copy)]
pub struct NodeView<'m> {
    model: &'m OnnxModel,
    node: &'m NodeProto,
    index: usize,
    opset: i64,
}

impl<'m> NodeView<'m> {
    /// A view of `node`, the `index`-th node of the model's main graph (in file order),
    /// converted under `opset` (the version imported for its domain).
    pub fn new(model: &'m OnnxModel, node: &'m NodeProto, index: usize, opset: i64) -> Self {
        NodeView {
            model,
            node,
            index,
            opset,
        }
    }

    /// The protobuf node.
    pub fn proto(&self) -> &'m NodeProto {
        self.node
    }

    /// The model the node belongs to.
    pub fn model(&self) -> &'m OnnxModel {
        self.model
    }

    /// The model file, for errors.
    pub fn path(&self) -> &'m Path {
        self.model.path()
    }

    /// Operator type, e.g. `Reshape`.
    pub fn op_type(&self) -> &'m str {
        &self.node.op_type
    }

    /// The opset version the node is converted under.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Position of the node in the graph's node list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// `` `name` (#index, OpType) `` — how errors name the node.
    pub fn describe(&self) -> String {
        if self.node.name.is_empty() {
            format!("#{} ({})", self.index, self.node.op_type)
        } else {
            format!(
                "`{}` (#{}, {})",
                self.node.name, self.index, self.node.op_type
            )
        }
    }

    /// Base name for IR values made by this node: its first output's name (the ONNX
    /// tensor name), else the node name, else `OpType_index`.
    pub fn name(&self) -> String {
        match self.node.output.first() {
            Some(o) if !o.is_empty() => o.clone(),
            _ if !self.node.name.is_empty() => self.node.name.clone(),
            _ => format!("{}_{}", self.node.op_type, self.index),
        }
    }

    /// Name for a helper value of a composite expansion: `{node}.{suffix}`, where `node`
    /// is the node's name (or its first output's name if it has none).
    pub fn sub(&self, suffix: &str) -> String {
        let base = if self.node.name.is_empty() {
            self.name()
        } else {
            self.node.name.clone()
        };
        format!("{base}.{suffix}")
    }

    /// Number of input slots (including omitted optional ones written as `""`).
    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Name of input `i` (`""` when omitted or beyond the list).
    pub fn input_name(&self, i: usize) -> &'m str {
        self.node.input.get(i).map_or("", String::as_str)
    }

    /// Number of output slots.
    pub fn num_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// Name of output `i` (`""` when omitted or beyond the list).
    pub fn output_name(&self, i: usize) -> &'m str {
        self.node.output.get(i).map_or("", String::as_str)
    }

    /// The attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&'m AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// True if the attribute is present.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// An attribute error naming this node.
    pub fn attr_error(&self, attr: &str, reason: impl Into<String>) -> FrontendError {
        FrontendError::Attribute {
            path: self.path().to_path_buf(),
            node: self.describe(),
            attr: attr.to_string(),
            reason: reason.into(),
        }
    }

    /// A conversion error naming this node.
    pub fn error(&self, reason: impl Into<String>) -> FrontendError {
        FrontendError::Convert {
            path: self.path().to_path_buf(),
            node: self.describe(),
            reason: reason.into(),
        }
    }

    /// An input error naming this node and input `index`.
    pub fn input_error(&self, index: usize, reason: impl Into<String>) -> FrontendError {
        FrontendError::NodeInput {
            path: self.path().to_path_buf(),
            node: self.describe(),
            index,
            input: self.input_name(index).to_string(),
            reason: reason.into(),
        }
    }

    fn typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&'m AttributeProto>, FrontendError> {
        let Some(a) = self.attr(name) else {
            return Ok(None);
        };
        // Writers that predate the `type` field leave it 0; accept those when the field
        // the caller wants is the one that is set.
        if a.r#type == want as i32 || a.r#type == AttributeType::Undefined as i32 {
            return Ok(Some(a));
        }
        Err(self.attr_error(
            name,
            format!(
                "expected {}, found {}",
                type_name(want as i32),
                type_name(a.r#type)
            ),
        ))
    }

    /// Integer attribute, or `default` when absent.
    pub fn attr_i(&self, name: &str, default: i64) -> Result<i64, FrontendError> {
        Ok(self
            .typed(name, AttributeType::Int)?
            .map_or(default, |a| a.i))
    }

    /// Required integer attribute.
    pub fn attr_i_req(&self, name: &str) -> Result<i64, FrontendError> {
        self.typed(name, AttributeType::Int)?
            .map(|a| a.i)
            .ok_or_else(|| self.attr_error(name, "required but missing"))
    }

    /// Integer list attribute, `None` when absent.
    pub fn attr_is(&self, name: &str) -> Result<Option<Vec<i64>>, FrontendError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    /// Float attribute, or `default` when absent.
    pub fn attr_f(&self, name: &str, default: f32) -> Result<f32, FrontendError> {
        Ok(self
            .typed(name, AttributeType::Float)?
            .map_or(default, |a| a.f))
    }

    /// Float list attribute, `None` when absent.
    pub fn attr_fs(&self, name: &str) -> Result<Option<Vec<f32>>, FrontendError> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    /// String attribute (UTF-8), or `default` when absent.
    pub fn attr_s(&self, name: &str, default: &str) -> Result<String, FrontendError> {
        match self.typed(name, AttributeType::String)? {
            None => Ok(default.to_string()),
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| self.attr_error(name, "the string is not valid UTF-8")),
        }
    }

    /// Tensor attribute converted to a [`Tensor`], `None` when absent.
    pub fn attr_tensor(&self, name: &str) -> Result<Option<Tensor>, FrontendError> {
        match self.typed(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => match &a.t {
                Some(t) => self.model.tensor(t).map(Some),
                None => Err(self.attr_error(name, "the tensor is missing")),
            },
        }
    }
}

fn type_name(t: i32) -> &'static str {
    match t {
        0 => "an untyped attribute",
        1 => "a float (FLOAT)",
        2 => "an integer (INT)",
        3 => "a string (STRING)",
        4 => "a tensor (TENSOR)",
        5 => "a graph (GRAPH)",
        6 => "a list of floats (FLOATS)",
        7 => "a list of integers (INTS)",
        8 => "a list of strings (STRINGS)",
        9 => "a list of tensors (TENSORS)",
        10 => "a list of graphs (GRAPHS)",
        11 => "a sparse tensor (SPARSE_TENSOR)",
        12 => "a list of sparse tensors (SPARSE_TENSORS)",
        13 => "a type proto (TYPE_PROTO)",
        14 => "a list of type protos (TYPE_PROTOS)",
        _ => "an attribute of unknown type",
    }
}
