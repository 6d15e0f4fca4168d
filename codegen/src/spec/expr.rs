//! Expression arenas: the elementwise part of every kernel family.

use dqc_ir::op::{BinaryOp, GeluApprox, UnaryOp};
use dqc_ir::{DType, Dim};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Index of a node in an [`Exprs`] arena.
pub type ExprId = u32;

/// `coeff · dim`, a signed multiple of a (possibly symbolic) dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Term {
    /// Signed coefficient.
    pub coeff: i64,
    /// The dimension monomial.
    pub dim: Dim,
}

impl Term {
    /// The constant `c`.
    pub fn constant(c: i64) -> Term {
        Term {
            coeff: c,
            dim: Dim::fixed(1),
        }
    }

    /// `1 · dim`.
    pub fn of(dim: Dim) -> Term {
        Term { coeff: 1, dim }
    }

    /// Value under `bindings`; `None` if a symbol is unbound or the value overflows.
    pub fn eval(&self, bindings: &BTreeMap<String, u64>) -> Option<i64> {
        let d = i64::try_from(self.dim.eval(bindings)?).ok()?;
        self.coeff.checked_mul(d)
    }
}

/// A sum of [`Term`]s (empty = 0).
pub type Poly = Vec<Term>;

/// Evaluate a [`Poly`]; `None` if a symbol is unbound or the value overflows.
pub fn eval_poly(p: &[Term], bindings: &BTreeMap<String, u64>) -> Option<i64> {
    p.iter()
        .try_fold(0i64, |acc, t| acc.checked_add(t.eval(bindings)?))
}

/// How iteration coordinates address an argument: element offset
/// `offset + Σ coord[d] · strides[d]` (one stride per iteration axis; 0 broadcasts).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexMap {
    /// Element offset.
    pub offset: Poly,
    /// One stride per iteration axis.
    pub strides: Vec<Term>,
}

/// A literal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    /// A float literal (of the node's float dtype).
    F(f64),
    /// An integer literal (of the node's integer dtype).
    I(i64),
    /// A boolean literal.
    B(bool),
}

/// One expression node. Operands are earlier nodes of the same arena.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// The element of argument `arg` at `map(coord)`.
    Load {
        /// Argument index.
        arg: u32,
        /// Addressing.
        map: IndexMap,
    },
    /// Gather: the element of argument `arg` at `map(coord) + i·axis_stride`, where `i` is
    /// the integer value of `index`, negative values counting from `axis_len`. An index
    /// outside `[-axis_len, axis_len)` makes the kernel fail with an error naming it.
    Gather {
        /// Argument index of the data.
        arg: u32,
        /// Addressing of the non-gathered axes.
        map: IndexMap,
        /// The index expression (integer).
        index: ExprId,
        /// Stride of the gathered axis of the data.
        axis_stride: Term,
        /// Extent of the gathered axis.
        axis_len: Dim,
    },
    /// A literal.
    Const(Scalar),
    /// The iteration coordinate along `axis`, as i64.
    Coord {
        /// Axis of the iteration space.
        axis: u32,
    },
    /// The value the kernel computed (GEMM sum, normalized element, reduction result) at
    /// the current coordinate. Only in epilogues.
    Acc,
    /// Unary function.
    Unary {
        /// Which one.
        op: UnaryOp,
        /// Operand.
        x: ExprId,
    },
    /// Binary function (same operand dtypes; comparisons give bool).
    Binary {
        /// Which one.
        op: BinaryOp,
        /// Left operand.
        a: ExprId,
        /// Right operand.
        b: ExprId,
    },
    /// `cond ? a : b`.
    Select {
        /// Condition (bool).
        cond: ExprId,
        /// Value if true.
        a: ExprId,
        /// Value if false.
        b: ExprId,
    },
    /// Conversion with the semantics of `ir::Op::Cast`.
    Cast {
        /// Operand.
        x: ExprId,
    },
    /// GELU.
    Gelu {
        /// Formula.
        approx: GeluApprox,
        /// Operand.
        x: ExprId,
    },
    /// `x · sigmoid(x)`.
    Silu {
        /// Operand.
        x: ExprId,
    },
    /// Piecewise by coordinate (concat, pad): piece `i` is chosen when
    /// `bounds[i] <= coord[axis] < bounds[i+1]` (`bounds[0] = 0`, and the last piece runs to
    /// the end). Only the chosen piece is evaluated, so pieces may load out of range of
    /// the others.
    Piecewise {
        /// Axis of the iteration space.
        axis: u32,
        /// Start of each piece (`pieces.len()` entries, the first 0).
        bounds: Vec<Poly>,
        /// One expression per piece.
        pieces: Vec<ExprId>,
    },
}

/// A node and its result dtype.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExprNode {
    /// Result dtype.
    pub dtype: DType,
    /// The expression.
    pub expr: Expr,
}

/// An arena of expression nodes; operands always precede their users.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Exprs {
    /// The nodes, in dependency order.
    pub nodes: Vec<ExprNode>,
}

impl Exprs {
    /// An empty arena.
    pub fn new() -> Exprs {
        Exprs::default()
    }

    /// Append a node and return its id.
    pub fn push(&mut self, dtype: DType, expr: Expr) -> ExprId {
        self.nodes.push(ExprNode { dtype, expr });
        (self.nodes.len() - 1) as ExprId
    }

    /// The node `id`, if it exists.
    pub fn get(&self, id: ExprId) -> Option<&ExprNode> {
        self.nodes.get(id as usize)
    }

    /// Operands of `expr`, in order.
    pub fn operands(expr: &Expr) -> Vec<ExprId> {
        match expr {
            Expr::Load { .. } | Expr::Const(_) | Expr::Coord { .. } | Expr::Acc => vec![],
            Expr::Gather { index, .. } => vec![*index],
            Expr::Unary { x, .. } | Expr::Cast { x } | Expr::Gelu { x, .. } | Expr::Silu { x } => {
                vec![*x]
            }
            Expr::Binary { a, b, .. } => vec![*a, *b],
            Expr::Select { cond, a, b } => vec![*cond, *a, *b],
            Expr::Piecewise { pieces, .. } => pieces.clone(),
        }
    }

    /// Check that every operand precedes its user. Returns the first offending node.
    pub fn check_order(&self) -> Result<(), ExprId> {
        for (i, n) in self.nodes.iter().enumerate() {
            if Exprs::operands(&n.expr).iter().any(|&o| o as usize >= i) {
                return Err(i as ExprId);
            }
        }
        Ok(())
    }
}
