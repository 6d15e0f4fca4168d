//! The tensor language of the e-graph and its type analysis.
//!
//! E-nodes are the ops recognition works on. Ops with attributes (`transpose`,
//! `reshape`, `expand`, `concat`, `reduce_mean`, `softmax`, the fused norms, `attention`, `gemm`) take the
//! attribute as their first child: an [`TensorLang::Attr`] leaf holding the whole
//! [`Op`], so `(transpose ?p ?x)` binds `?p` to the permutation. Leaves are graph
//! values (`v12`, [`ValRef`]: an index into [`TypeAnalysis::values`]), attribute leaves,
//! and f32 scalars made by rules ([`Scalar`]).
//!
//! [`TypeAnalysis`] gives every e-class its [`TensorType`] (by [`dqc_ir::verify::infer_op`]
//! from the children's types) and, for scalar constants, their value; rules read both
//! through the predicates in [`super::predicates`].

use std::fmt;
use std::str::FromStr;

use dqc_ir::graph::Value;
use dqc_ir::op::{BinaryOp, GeluApprox, ReduceOp, UnaryOp};
use dqc_ir::{DType, Op, Shape, TensorType};
use egg::{Analysis, DidMerge, Id};

/// An op carried by an attribute leaf, compared by its debug form.
#[derive(Clone, Debug)]
pub struct OpAttr {
    key: String,
    /// The op (with its attributes).
    pub op: Op,
}

impl OpAttr {
    /// Wrap `op`.
    pub fn new(op: Op) -> OpAttr {
        OpAttr {
            key: format!("{op:?}"),
            op,
        }
    }
}

impl PartialEq for OpAttr {
    fn eq(&self, other: &OpAttr) -> bool {
        self.key == other.key
    }
}
impl Eq for OpAttr {}
impl PartialOrd for OpAttr {
    fn partial_cmp(&self, other: &OpAttr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OpAttr {
    fn cmp(&self, other: &OpAttr) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}
impl std::hash::Hash for OpAttr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}
impl fmt::Display for OpAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.key)
    }
}
impl FromStr for OpAttr {
    type Err = String;
    /// Attributes are never written in patterns (bind them to a variable instead).
    fn from_str(s: &str) -> Result<OpAttr, String> {
        Err(format!("`{s}` is not an attribute"))
    }
}

/// A graph value seen as an opaque leaf: index into [`TypeAnalysis::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValRef(pub u32);

impl fmt::Display for ValRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
impl FromStr for ValRef {
    type Err = String;
    fn from_str(s: &str) -> Result<ValRef, String> {
        s.strip_prefix('v')
            .and_then(|n| n.parse().ok())
            .map(ValRef)
            .ok_or_else(|| format!("`{s}` is not a value reference"))
    }
}

/// An f32 scalar constant (type `f32[]`) made by a rule, compared by its bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scalar(u32);

impl Scalar {
    /// The scalar `v`.
    pub fn new(v: f32) -> Scalar {
        Scalar(v.to_bits())
    }
    /// Its value.
    pub fn value(self) -> f32 {
        f32::from_bits(self.0)
    }
}
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}
impl FromStr for Scalar {
    type Err = String;
    fn from_str(s: &str) -> Result<Scalar, String> {
        s.parse::<f32>()
            .map(Scalar::new)
            .map_err(|_| format!("`{s}` is not a number"))
    }
}

pub use def::TensorLang;

/// The language definition (its variants are documented by their op names: each is the
/// text-format op of the same name; see [`node_op`]).
#[allow(missing_docs)]
mod def {
    use super::{OpAttr, Scalar, ValRef};
    use egg::{Id, define_language};

    define_language! {
        /// The tensor ops recognition works on (see the module docs).
        pub enum TensorLang {
            "add" = Add([Id; 2]),
            "sub" = Sub([Id; 2]),
            "mul" = Mul([Id; 2]),
            "div" = Div([Id; 2]),
            "pow" = Pow([Id; 2]),
            "neg" = Neg(Id),
            "sqrt" = Sqrt(Id),
            "rsqrt" = Rsqrt(Id),
            "reciprocal" = Reciprocal(Id),
            "erf" = Erf(Id),
            "tanh" = Tanh(Id),
            "sigmoid" = Sigmoid(Id),
            "matmul" = MatMul([Id; 2]),
            "silu" = Silu(Id),
            "gelu_erf" = GeluErf(Id),
            "gelu_tanh" = GeluTanh(Id),
            "modulate" = Modulate([Id; 3]),
            "softmax" = Softmax([Id; 2]),
            "reduce_mean" = ReduceMean([Id; 2]),
            "transpose" = Transpose([Id; 2]),
            "reshape" = Reshape([Id; 2]),
            "expand" = Expand([Id; 2]),
            "concat" = Concat(Box<[Id]>),
            "layer_norm" = LayerNorm([Id; 2]),
            "layer_norm_affine" = LayerNormAffine([Id; 4]),
            "rms_norm" = RmsNorm([Id; 2]),
            "rms_norm_affine" = RmsNormAffine([Id; 3]),
            "attention" = Attention([Id; 4]),
            "attention_masked" = AttentionMasked([Id; 5]),
            "gemm" = Gemm([Id; 4]),
            Num(Scalar),
            Val(ValRef),
            Attr(OpAttr),
        }
    }
}

/// A graph value entering the e-graph as a leaf.
#[derive(Clone, Debug)]
pub struct ValInfo {
    /// The value in the graph.
    pub value: Value,
    /// Its type.
    pub ty: TensorType,
    /// Its value if it is a float constant with one element.
    pub scalar: Option<f64>,
}

/// The analysis: per-class type, scalar value and attribute op.
#[derive(Clone, Debug, Default)]
pub struct TypeAnalysis {
    /// The graph values behind the `Val` leaves.
    pub values: Vec<ValInfo>,
}

/// What the analysis knows about an e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// The type, if inference accepted the class's nodes.
    pub ty: Option<TensorType>,
    /// The value of a one-element float constant.
    pub scalar: Option<f64>,
    /// The op of an attribute leaf.
    pub attr: Option<Op>,
}

/// The e-graph type used throughout.
pub type TensorGraph = egg::EGraph<TensorLang, TypeAnalysis>;

/// The [`Op`] an e-node stands for and its operand children (without the attribute
/// child), or `None` for leaves and for an attribute child that is missing or of the
/// wrong kind. `attr` gives the op stored in an attribute class.
pub fn node_op(node: &TensorLang, attr: impl Fn(Id) -> Option<Op>) -> Option<(Op, Vec<Id>)> {
    use TensorLang as T;
    let un = |u: UnaryOp, x: &Id| Some((Op::Unary(u), vec![*x]));
    let bin = |b: BinaryOp, xs: &[Id; 2]| Some((Op::Binary(b), xs.to_vec()));
    // Attribute ops: the first child's op must be of the expected kind.
    let with_attr = |kids: &[Id], ok: fn(&Op) -> bool| {
        let (first, rest) = kids.split_first()?;
        let op = attr(*first).filter(ok)?;
        Some((op, rest.to_vec()))
    };
    match node {
        T::Add(xs) => bin(BinaryOp::Add, xs),
        T::Sub(xs) => bin(BinaryOp::Sub, xs),
        T::Mul(xs) => bin(BinaryOp::Mul, xs),
        T::Div(xs) => bin(BinaryOp::Div, xs),
        T::Pow(xs) => bin(BinaryOp::Pow, xs),
        T::Neg(x) => un(UnaryOp::Neg, x),
        T::Sqrt(x) => un(UnaryOp::Sqrt, x),
        T::Rsqrt(x) => un(UnaryOp::Rsqrt, x),
        T::Reciprocal(x) => un(UnaryOp::Reciprocal, x),
        T::Erf(x) => un(UnaryOp::Erf, x),
        T::Tanh(x) => un(UnaryOp::Tanh, x),
        T::Sigmoid(x) => un(UnaryOp::Sigmoid, x),
        T::MatMul(xs) => Some((Op::MatMul, xs.to_vec())),
        T::Silu(x) => Some((Op::Silu, vec![*x])),
        T::GeluErf(x) => Some((
            Op::Gelu {
                approx: GeluApprox::Erf,
            },
            vec![*x],
        )),
        T::GeluTanh(x) => Some((
            Op::Gelu {
                approx: GeluApprox::Tanh,
            },
            vec![*x],
        )),
        T::Modulate(xs) => Some((Op::Modulate, xs.to_vec())),
        T::Softmax(k) => with_attr(k, |o| matches!(o, Op::Softmax { .. })),
        T::ReduceMean(k) => with_attr(k, |o| {
            matches!(
                o,
                Op::Reduce {
                    op: ReduceOp::Mean,
                    ..
                }
            )
        }),
        T::Transpose(k) => with_attr(k, |o| matches!(o, Op::Transpose { .. })),
        T::Reshape(k) => with_attr(k, |o| matches!(o, Op::Reshape { .. })),
        T::Expand(k) => with_attr(k, |o| matches!(o, Op::Expand { .. })),
        T::Concat(k) => with_attr(k, |o| matches!(o, Op::Concat { .. })),
        T::LayerNorm(k) => with_attr(k, |o| matches!(o, Op::LayerNorm { affine: false, .. })),
        T::LayerNormAffine(k) => with_attr(k, |o| matches!(o, Op::LayerNorm { affine: true, .. })),
        T::RmsNorm(k) => with_attr(k, |o| matches!(o, Op::RmsNorm { affine: false, .. })),
        T::RmsNormAffine(k) => with_attr(k, |o| matches!(o, Op::RmsNorm { affine: true, .. })),
        T::Attention(k) => with_attr(k, |o| {
            matches!(
                o,
                Op::Attention {
                    has_mask: false,
                    ..
                }
            )
        }),
        T::AttentionMasked(k) => {
            with_attr(k, |o| matches!(o, Op::Attention { has_mask: true, .. }))
        }
        T::Gemm(k) => with_attr(k, |o| matches!(o, Op::Gemm { has_c: true, .. })),
        T::Num(_) | T::Val(_) | T::Attr(_) => None,
    }
}

/// The e-node for `op` applied to operand classes `kids` (with `attr` the class of its
/// attribute leaf, added by the caller for attribute ops), or `None` if the op is not in
/// the language.
pub fn op_node(op: &Op, attr: Option<Id>, kids: &[Id]) -> Option<TensorLang> {
    use TensorLang as T;
    let two = |k: &[Id]| -> Option<[Id; 2]> { k.try_into().ok() };
    let one = |k: &[Id]| -> Option<Id> {
        match k {
            [x] => Some(*x),
            _ => None,
        }
    };
    let with = |k: &[Id]| -> Option<Vec<Id>> {
        let mut v = vec![attr?];
        v.extend_from_slice(k);
        Some(v)
    };
    Some(match op {
        Op::Binary(b) => match b {
            BinaryOp::Add => T::Add(two(kids)?),
            BinaryOp::Sub => T::Sub(two(kids)?),
            BinaryOp::Mul => T::Mul(two(kids)?),
            BinaryOp::Div => T::Div(two(kids)?),
            BinaryOp::Pow => T::Pow(two(kids)?),
            BinaryOp::Max
            | BinaryOp::Min
            | BinaryOp::Mod
            | BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor => return None,
        },
        Op::Unary(u) => match u {
            UnaryOp::Neg => T::Neg(one(kids)?),
            UnaryOp::Sqrt => T::Sqrt(one(kids)?),
            UnaryOp::Rsqrt => T::Rsqrt(one(kids)?),
            UnaryOp::Reciprocal => T::Reciprocal(one(kids)?),
            UnaryOp::Erf => T::Erf(one(kids)?),
            UnaryOp::Tanh => T::Tanh(one(kids)?),
            UnaryOp::Sigmoid => T::Sigmoid(one(kids)?),
            UnaryOp::Abs
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Softplus
            | UnaryOp::Relu
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Sign
            | UnaryOp::Not => return None,
        },
        Op::MatMul => T::MatMul(two(kids)?),
        Op::Silu => T::Silu(one(kids)?),
        Op::Gelu { approx } => match approx {
            GeluApprox::Erf => T::GeluErf(one(kids)?),
            GeluApprox::Tanh => T::GeluTanh(one(kids)?),
        },
        Op::Modulate => T::Modulate(kids.try_into().ok()?),
        Op::Softmax { .. } => T::Softmax(with(kids)?.try_into().ok()?),
        Op::Reduce {
            op: ReduceOp::Mean, ..
        } => T::ReduceMean(with(kids)?.try_into().ok()?),
        Op::Transpose { .. } => T::Transpose(with(kids)?.try_into().ok()?),
        Op::Reshape { .. } => T::Reshape(with(kids)?.try_into().ok()?),
        Op::Expand { .. } => T::Expand(with(kids)?.try_into().ok()?),
        Op::Concat { .. } => T::Concat(with(kids)?.into_boxed_slice()),
        Op::LayerNorm { affine: false, .. } => T::LayerNorm(with(kids)?.try_into().ok()?),
        Op::LayerNorm { affine: true, .. } => T::LayerNormAffine(with(kids)?.try_into().ok()?),
        Op::RmsNorm { affine: false, .. } => T::RmsNorm(with(kids)?.try_into().ok()?),
        Op::RmsNorm { affine: true, .. } => T::RmsNormAffine(with(kids)?.try_into().ok()?),
        Op::Attention {
            has_mask: false, ..
        } => T::Attention(with(kids)?.try_into().ok()?),
        Op::Attention { has_mask: true, .. } => T::AttentionMasked(with(kids)?.try_into().ok()?),
        Op::Gemm { has_c: true, .. } => T::Gemm(with(kids)?.try_into().ok()?),
        Op::Gemm { has_c: false, .. }
        | Op::Reduce { .. }
        | Op::Input { .. }
        | Op::Constant(_)
        | Op::Where
        | Op::Cast { .. }
        | Op::Conv { .. }
        | Op::GroupNorm { .. }
        | Op::SelectiveScan { .. }
        | Op::ArgReduce { .. }
        | Op::CumSum { .. }
        | Op::Slice { .. }
        | Op::Split { .. }
        | Op::Gather { .. }
        | Op::Pad { .. }
        | Op::Resize { .. }
        | Op::Quantize { .. }
        | Op::Dequantize { .. }
        | Op::QMatMul { .. }
        | Op::CacheRead { .. }
        | Op::CacheWrite { .. }
        | Op::StepGate { .. } => return None,
    })
}

/// The type of `node` from its children's classes, by [`dqc_ir::verify::infer_op`].
pub fn infer_node(egraph: &TensorGraph, node: &TensorLang) -> Option<TensorType> {
    let (op, kids) = node_op(node, |id| egraph[id].data.attr.clone())?;
    let tys: Option<Vec<&TensorType>> = kids.iter().map(|k| egraph[*k].data.ty.as_ref()).collect();
    dqc_ir::verify::infer_op(&op, &tys?)
        .ok()?
        .into_iter()
        .next()
}

impl Analysis<TensorLang> for TypeAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut TensorGraph, enode: &TensorLang, _id: Id) -> ClassData {
        let none = ClassData {
            ty: None,
            scalar: None,
            attr: None,
        };
        match enode {
            TensorLang::Attr(a) => ClassData {
                attr: Some(a.op.clone()),
                ..none
            },
            TensorLang::Num(s) => ClassData {
                ty: Some(TensorType::new(DType::F32, Shape::scalar())),
                scalar: Some(f64::from(s.value())),
                attr: None,
            },
            TensorLang::Val(r) => match egraph.analysis.values.get(r.0 as usize) {
                Some(info) => ClassData {
                    ty: Some(info.ty.clone()),
                    scalar: info.scalar,
                    attr: None,
                },
                None => none,
            },
            other => ClassData {
                ty: infer_node(egraph, other),
                ..none
            },
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let mut changed_a = false;
        let mut changed_b = false;
        for_field(&mut a.ty, b.ty, &mut changed_a, &mut changed_b);
        for_field(&mut a.scalar, b.scalar, &mut changed_a, &mut changed_b);
        for_field(&mut a.attr, b.attr, &mut changed_a, &mut changed_b);
        DidMerge(changed_a, changed_b)
    }
}

/// Keep `a` if set, else take `b`; record which side learned something.
fn for_field<T>(a: &mut Option<T>, b: Option<T>, changed_a: &mut bool, changed_b: &mut bool) {
    match (a.is_some(), b.is_some()) {
        (false, true) => {
            *a = b;
            *changed_a = true;
        }
        (true, false) => *changed_b = true,
        _ => {}
    }
}
