//! `KernelSpec`: the kernel families dqc generates code for, and `Program`, the lowered form
//! of a whole graph that a plan carries.
//!
//! A spec is a small parameterized description, not a loop language. Shapes stay symbolic
//! (`ir::Dim`, e.g. `B`); a backend resolves them with the run's bindings (`B = 2`) when it
//! generates code — the CPU backend JIT-compiles at that point, the PTX backend passes the
//! resolved sizes as kernel parameters.
//!
//! Conventions shared by every family:
//! - A kernel names its operands by *argument index*: `KernelSpec::args[i]` is the buffer
//!   bound to argument `i`; `KernelSpec::writes` lists the arguments it writes. A written
//!   argument is never read by the same kernel.
//! - Every buffer is dense and row-major in its own shape. Reading a view of it (transposed,
//!   sliced, broadcast) goes through an [`IndexMap`]: element offset
//!   `offset + Σ coord[d]·strides[d]` over the kernel's iteration coordinates.
//! - Fused elementwise work (prologues, epilogues, whole elementwise kernels) is an
//!   expression arena, [`Exprs`]: nodes refer to earlier nodes by [`ExprId`].

mod expr;
mod program;

pub use expr::{Expr, ExprId, ExprNode, Exprs, IndexMap, Poly, Scalar, Term, eval_poly};
pub use program::{Buffer, BufferId, BufferKind, Program, Symbol};

use dqc_ir::op::GeluApprox;
use dqc_ir::{DType, Dim, Shape};
use serde::{Deserialize, Serialize};

/// One kernel: its family body, its arguments and which of them it writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelSpec {
    /// Readable name, derived from the IR node it came from (`blocks.0.attn.qkv`).
    pub name: String,
    /// Buffers bound to the arguments, by argument index.
    pub args: Vec<BufferId>,
    /// Argument indices this kernel writes (its outputs).
    pub writes: Vec<u32>,
    /// The family and its parameters.
    pub body: Kernel,
}

/// The kernel families.
// A program holds tens to hundreds of kernels in one Vec: the size difference between
// variants costs nothing worth an extra indirection on every access.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    /// Fused elementwise: every output element is an expression of loads.
    Elementwise(Elementwise),
    /// Per-row reduction with a fused prologue and epilogue (norms, softmax, reductions,
    /// arg-reductions, running sums).
    RowReduce(RowReduce),
    /// (Batched) matrix product with a fused epilogue.
    Gemm(Gemm),
    /// Multi-head scaled dot-product attention (online softmax).
    Attention(Attention),
    /// N-D convolution (implicit GEMM) with a fused epilogue.
    Conv(Conv),
    /// Mamba-1 selective scan.
    SelectiveScan(SelectiveScan),
}

impl Kernel {
    /// The family name used in listings (`elementwise`, `row_reduce`, `gemm`, …).
    pub fn family(&self) -> &'static str {
        match self {
            Kernel::Elementwise(_) => "elementwise",
            Kernel::RowReduce(_) => "row_reduce",
            Kernel::Gemm(_) => "gemm",
            Kernel::Attention(_) => "attention",
            Kernel::Conv(_) => "conv",
            Kernel::SelectiveScan(_) => "selective_scan",
        }
    }
}

/// Fused elementwise kernel over the iteration space `shape`.
///
/// For every coordinate of `shape` (row-major), each `(arg, expr)` of `outputs` stores the
/// value of `expr` at element `linear(coord)` of argument `arg` (a dense buffer of shape
/// `shape`, dtype of the expression).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Elementwise {
    /// Iteration space = the shape of every output.
    pub shape: Shape,
    /// The expressions.
    pub exprs: Exprs,
    /// `(argument written, expression stored)`.
    pub outputs: Vec<(u32, ExprId)>,
}

/// What a [`RowReduce`] computes along each row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RowOp {
    /// `(x - mean) / √(var + eps)` (biased variance). Output per element.
    LayerNorm {
        /// Variance epsilon.
        eps: f32,
    },
    /// `x / √(mean(x²) + eps)`. Output per element.
    RmsNorm {
        /// Epsilon.
        eps: f32,
    },
    /// `e^(x - max) / Σ e^(x - max)`. Output per element.
    Softmax,
    /// `x - max - ln Σ e^(x - max)`. Output per element.
    LogSoftmax,
    /// A reduction to one value per row.
    Reduce(dqc_ir::op::ReduceOp),
    /// Index (i64) of the first maximum (`max`) or minimum along the row. One per row.
    ArgReduce {
        /// Max or min.
        max: bool,
    },
    /// Running sum along the row. Output per element.
    CumSum {
        /// Exclude the current element.
        exclusive: bool,
        /// Run from the end of the row.
        reverse: bool,
    },
}

impl RowOp {
    /// True when the output has one value per row (reductions), false when it has one per
    /// element (norms, softmax, running sums).
    pub fn reduces(&self) -> bool {
        match self {
            RowOp::Reduce(_) | RowOp::ArgReduce { .. } => true,
            RowOp::LayerNorm { .. }
            | RowOp::RmsNorm { .. }
            | RowOp::Softmax
            | RowOp::LogSoftmax
            | RowOp::CumSum { .. } => false,
        }
    }
}

/// Row reduction over the trailing axes `axis..` of the iteration space `shape`.
///
/// The row input is the expression `input` evaluated at each coordinate of `shape` (the
/// prologue: loads through index maps, so the reduced axes need not be contiguous in
/// memory, plus any fused elementwise work). `op` turns each row into results; then
/// `epilogue` (where [`Expr::Acc`] is the result) is evaluated at each *output* coordinate
/// and stored densely into argument `out`. The output space is `shape` for per-element ops
/// and `shape[..axis]` for reductions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowReduce {
    /// Iteration space; rows are `shape[..axis]`, a row is `shape[axis..]`.
    pub shape: Shape,
    /// First reduced axis.
    pub axis: u32,
    /// What is computed per row.
    pub op: RowOp,
    /// Prologue and epilogue expressions.
    pub exprs: Exprs,
    /// The row element (prologue), in f32 for float ops.
    pub input: ExprId,
    /// The stored value; uses [`Expr::Acc`].
    pub epilogue: ExprId,
    /// The argument written.
    pub out: u32,
}

/// One matrix operand of a [`Gemm`]: element `(batch…, i, j)` is at
/// `offset + Σ batch[d]·batch_strides[d] + i·row_stride + j·col_stride` of argument `arg`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatOperand {
    /// Argument index.
    pub arg: u32,
    /// Element offset.
    pub offset: Poly,
    /// One stride per batch axis of the GEMM (0 for a broadcast axis).
    pub batch_strides: Vec<Term>,
    /// Stride between rows.
    pub row_stride: Term,
    /// Stride between columns.
    pub col_stride: Term,
}

/// `out[batch…, m, n] = epilogue(alpha · Σ_k A[batch…, m, k] · B[batch…, k, n])`.
///
/// The output argument `out` is dense of shape `batch ++ [m, n]`, dtype `out_dtype`; the
/// epilogue sees the scaled product as [`Expr::Acc`] and the coordinates
/// `batch ++ [m, n]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gemm {
    /// Batch shape (may be empty).
    pub batch: Shape,
    /// Rows of the output.
    pub m: Dim,
    /// Columns of the output.
    pub n: Dim,
    /// Contraction length.
    pub k: Dim,
    /// Left operand, `[m, k]` per batch.
    pub a: MatOperand,
    /// Right operand, `[k, n]` per batch.
    pub b: MatOperand,
    /// Element type of A and B.
    pub in_dtype: DType,
    /// Accumulator type (f32 for float inputs, i32 for integer inputs).
    pub acc_dtype: DType,
    /// Scale of the product.
    pub alpha: f32,
    /// Epilogue expressions.
    pub exprs: Exprs,
    /// The stored value; uses [`Expr::Acc`].
    pub epilogue: ExprId,
    /// The argument written.
    pub out: u32,
}

/// A `[batch, seq, heads, dim]` view of an attention operand: element `(b, s, h, d)` is at
/// `offset + b·batch_stride + s·seq_stride + h·head_stride + d` of argument `arg` (the head
/// dimension is contiguous).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadsView {
    /// Argument index.
    pub arg: u32,
    /// Element offset.
    pub offset: Poly,
    /// Stride between batch entries.
    pub batch_stride: Term,
    /// Stride between sequence positions.
    pub seq_stride: Term,
    /// Stride between heads.
    pub head_stride: Term,
}

/// Scaled dot-product attention, written to argument `out` as dense `[batch, sq, heads·dv]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    /// Batch size.
    pub batch: Dim,
    /// Query length.
    pub sq: Dim,
    /// Key/value length.
    pub sk: Dim,
    /// Query heads.
    pub heads: u64,
    /// Key/value heads (divides `heads`).
    pub kv_heads: u64,
    /// Q·K head dimension.
    pub head_dim: u64,
    /// V head dimension.
    pub v_head_dim: u64,
    /// Logit scale.
    pub scale: f32,
    /// Mask keys after the query position (`j > i + sk - sq`).
    pub causal: bool,
    /// Queries.
    pub q: HeadsView,
    /// Keys.
    pub k: HeadsView,
    /// Values.
    pub v: HeadsView,
    /// Optional mask read at coordinates `[batch, head, i, j]`: bool (true = attend) or
    /// float (added to the logits).
    pub mask: Option<(u32, IndexMap, DType)>,
    /// Element type of q, k, v and out.
    pub dtype: DType,
    /// The argument written.
    pub out: u32,
}

/// N-D convolution of `x: [N, C, *spatial]` with `w: [M, C/groups, *kernel]`, written densely
/// to argument `out` as `[N, M, *out_spatial]`; the epilogue sees the sum (without bias) as
/// [`Expr::Acc`] at the output coordinates and adds the bias if any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    /// Input argument (dense).
    pub x: u32,
    /// Weight argument (dense).
    pub w: u32,
    /// Input shape.
    pub x_shape: Shape,
    /// Weight shape.
    pub w_shape: Shape,
    /// Output shape.
    pub out_shape: Shape,
    /// Stride per spatial axis.
    pub strides: Vec<u64>,
    /// Begins of every spatial axis, then ends.
    pub pads: Vec<u64>,
    /// Dilation per spatial axis.
    pub dilations: Vec<u64>,
    /// Groups.
    pub groups: u64,
    /// Element type of x, w and the accumulation input.
    pub dtype: DType,
    /// Epilogue expressions.
    pub exprs: Exprs,
    /// The stored value; uses [`Expr::Acc`].
    pub epilogue: ExprId,
    /// The argument written.
    pub out: u32,
}

/// Mamba-1 selective scan (see `ir::Op::SelectiveScan`), all operands dense:
/// `u, delta, z: [B, D, L]`, `a: [D, N]`, `bm, cm: [B, N, L]`, `d: [D]`; output `[B, D, L]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectiveScan {
    /// Batch.
    pub batch: Dim,
    /// Channels `D`.
    pub channels: Dim,
    /// Sequence length `L`.
    pub len: Dim,
    /// State size `N`.
    pub state: Dim,
    /// Apply softplus to delta.
    pub delta_softplus: bool,
    /// Argument indices.
    pub u: u32,
    /// `delta`.
    pub delta: u32,
    /// `A`.
    pub a: u32,
    /// `B`.
    pub bm: u32,
    /// `C`.
    pub cm: u32,
    /// Skip weights `D`, if any.
    pub d: Option<u32>,
    /// Gate `z`, if any.
    pub z: Option<u32>,
    /// The argument written.
    pub out: u32,
}

/// Describe a GELU variant for listings.
pub fn gelu_name(approx: GeluApprox) -> &'static str {
    match approx {
        GeluApprox::Erf => "gelu_erf",
        GeluApprox::Tanh => "gelu_tanh",
    }
}
