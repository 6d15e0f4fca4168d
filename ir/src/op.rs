//! The `Op` enum: every operation the IR knows, and nothing else.
//!
//! This is the single source of truth for operations. Code that handles ops matches on
//! [`Op`] exhaustively (no `_ =>` arm), so adding a variant is a compile error at every
//! place that must learn it: verifier, printer, parser, interpreter, frontend, backends.
//! `docs/add-an-op.md` is the checklist.
//!
//! Each variant documents its inputs (in order), attributes and outputs. Inputs marked
//! "optional" are present or absent as a flag on the variant says; the node's input count
//! must match exactly.

use crate::DType;
use crate::quant::QuantScheme;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x`
    Exp,
    /// natural logarithm
    Log,
    /// `√x`
    Sqrt,
    /// `1/√x`
    Rsqrt,
    /// `1/x`
    Reciprocal,
    /// hyperbolic tangent
    Tanh,
    /// `1/(1+e^-x)`
    Sigmoid,
    /// Gauss error function
    Erf,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// `ln(1+e^x)`
    Softplus,
    /// `max(x, 0)`
    Relu,
    /// round toward -∞
    Floor,
    /// round toward +∞
    Ceil,
    /// round half to even
    Round,
    /// -1, 0 or 1
    Sign,
    /// logical not (bool → bool)
    Not,
}

/// Elementwise functions of two arguments (numpy broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (integer division truncates toward zero)
    Div,
    /// `a ^ b`
    Pow,
    /// `max(a, b)`
    Max,
    /// `min(a, b)`
    Min,
    /// remainder with the sign of the divisor (Python `%`)
    Mod,
    /// `a == b` → bool
    Equal,
    /// `a < b` → bool
    Less,
    /// `a <= b` → bool
    LessEqual,
    /// `a > b` → bool
    Greater,
    /// `a >= b` → bool
    GreaterEqual,
    /// logical and (bool)
    And,
    /// logical or (bool)
    Or,
    /// logical xor (bool)
    Xor,
}

impl BinaryOp {
    /// True for comparisons and logical ops, whose result is bool.
    pub fn returns_bool(self) -> bool {
        match self {
            BinaryOp::Equal
            | BinaryOp::Less
            | BinaryOp::LessEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterEqual
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor => true,
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Max
            | BinaryOp::Min
            | BinaryOp::Mod => false,
        }
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReduceOp {
    /// sum
    Sum,
    /// arithmetic mean
    Mean,
    /// maximum
    Max,
    /// minimum
    Min,
    /// product
    Prod,
    /// `√(Σ x²)`
    L2,
}

/// How `Pad` fills the border.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PadMode {
    /// A constant value.
    Constant(f32),
    /// Mirror without repeating the edge (`[1,2,3] → 3,2,|1,2,3|,2,1`).
    Reflect,
    /// Repeat the edge value.
    Edge,
}

/// Interpolation of `Resize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResizeMode {
    /// Nearest neighbour, with the given rounding of the source coordinate.
    Nearest(NearestRounding),
    /// Linear (bilinear in 2-D) interpolation.
    Linear,
}

/// Rounding of the source coordinate in nearest-neighbour resize (ONNX `nearest_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NearestRounding {
    /// round half down (`ceil(x - 0.5)`)
    RoundPreferFloor,
    /// round half up (`floor(x + 0.5)`)
    RoundPreferCeil,
    /// `floor(x)`
    Floor,
    /// `ceil(x)`
    Ceil,
}

impl NearestRounding {
    /// Round the source coordinate `x` to a (not yet clamped) index.
    pub fn round(self, x: f64) -> f64 {
        match self {
            NearestRounding::RoundPreferFloor => (x - 0.5).ceil(),
            NearestRounding::RoundPreferCeil => (x + 0.5).floor(),
            NearestRounding::Floor => x.floor(),
            NearestRounding::Ceil => x.ceil(),
        }
    }
}

/// Mapping from output to input coordinates in `Resize` (ONNX
/// `coordinate_transformation_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CoordTransform {
    /// `x_in = (x_out + 0.5) / scale - 0.5`
    HalfPixel,
    /// `x_in = x_out / scale`
    Asymmetric,
    /// `x_in = x_out · (in - 1) / (out - 1)`
    AlignCorners,
}

impl CoordTransform {
    /// The input coordinate (unclamped, in f64) that output coordinate `o` maps to along
    /// an axis resized from `inp` to `out`. The interpreter and the lowering both use it,
    /// so their source positions agree bit for bit.
    pub fn source_coord(self, o: u64, inp: u64, out: u64) -> f64 {
        let (o, inp_f, out_f) = (o as f64, inp as f64, out as f64);
        let scale = out_f / inp_f;
        match self {
            CoordTransform::HalfPixel => (o + 0.5) / scale - 0.5,
            CoordTransform::Asymmetric => o / scale,
            CoordTransform::AlignCorners => {
                if out <= 1 {
                    0.0
                } else {
                    o * (inp_f - 1.0) / (out_f - 1.0)
                }
            }
        }
    }
}

/// Gelu flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum GeluApprox {
    /// exact, via erf
    Erf,
    /// tanh approximation
    Tanh,
}

/// Which denoising steps recompute a cached region (see [`Op::StepGate`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StepSchedule {
    /// Recompute on every step (caching disabled).
    Always,
    /// Recompute on the first `warmup` steps, then on every `period`-th step after them
    /// (steps `warmup, warmup+period, …`); reuse the cache otherwise.
    Every {
        /// Recompute every this many steps (≥ 1).
        period: u32,
        /// Steps at the start that always recompute.
        warmup: u32,
    },
    /// Recompute exactly on these steps (sorted, unique); step 0 must be among them.
    Steps(Vec<u32>),
}

impl StepSchedule {
    /// True if `step` recomputes under this schedule.
    pub fn recomputes(&self, step: u32) -> bool {
        match self {
            StepSchedule::Always => true,
            StepSchedule::Every { period, warmup } => {
                step < *warmup || (step - warmup).is_multiple_of((*period).max(1))
            }
            StepSchedule::Steps(s) => s.binary_search(&step).is_ok(),
        }
    }
}

/// An operation. See the module docs for the conventions.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ----- sources -------------------------------------------------------------------
    /// A graph input; `index` is its position in the signature. No inputs, one output of
    /// type `ty`.
    Input {
        /// Position in the graph's parameter list.
        index: usize,
        /// Declared type.
        ty: crate::TensorType,
    },
    /// A constant tensor (weights, scales, small literals). No inputs.
    Constant(Tensor),

    // ----- elementwise ---------------------------------------------------------------
    /// `f(x)`, same type as `x` (except `Not`: bool).
    Unary(UnaryOp),
    /// `f(a, b)` with numpy broadcasting; both operands have the same dtype. Comparisons
    /// and logical ops return bool.
    Binary(BinaryOp),
    /// `where(cond: bool, a, b)`, broadcast over all three.
    Where,
    /// Convert to `to`: float→float rounds to nearest even and saturates to the target's
    /// finite range for f8e4m3/fp4 (NaN stays NaN); float→int truncates toward zero and
    /// saturates; int→int wraps; anything→bool is `x != 0`.
    Cast {
        /// Target dtype.
        to: DType,
    },
    /// adaLN modulation `x·(1 + scale) + shift`. Inputs `x: [B, …, C]`, `shift: [B, C]`,
    /// `scale: [B, C]`; shift and scale broadcast over the middle axes.
    Modulate,

    // ----- contraction ---------------------------------------------------------------
    /// Numpy `matmul`: batch dimensions broadcast; 1-D operands are promoted and the
    /// promoted axis removed from the result. Float products accumulate in f64 and round once
    /// to the output dtype; integer operands give i32 (exact sums, saturated).
    MatMul,
    /// `alpha · op(A) · op(B) + beta · C`, `A`, `B` 2-D; inputs `a, b` and, if `has_c`,
    /// `c` (broadcast to the `[M, N]` result).
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of `c`.
        beta: f32,
        /// Use `Aᵀ`.
        trans_a: bool,
        /// Use `Bᵀ`.
        trans_b: bool,
        /// Whether the third input `c` is present.
        has_c: bool,
    },
    /// N-D convolution (1-D and 2-D are what exporters emit). Inputs `x: [N, C, *spatial]`,
    /// `w: [M, C/groups, *kernel]`, and `bias: [M]` if `has_bias`.
    Conv {
        /// Stride per spatial axis.
        strides: Vec<u64>,
        /// Padding: the begin of every spatial axis, then the end of every spatial axis.
        pads: Vec<u64>,
        /// Dilation per spatial axis.
        dilations: Vec<u64>,
        /// Number of groups (`C` and `M` divisible by it).
        groups: u64,
        /// Whether the bias input is present.
        has_bias: bool,
    },

    // ----- normalization -------------------------------------------------------------
    /// `(x - mean) / √(var + eps)` over the axes from `axis` to the last, then `· gamma +
    /// beta` if `affine` (inputs `x, gamma, beta`, both of the normalized trailing shape).
    LayerNorm {
        /// First normalized axis.
        axis: i64,
        /// Variance epsilon.
        eps: f32,
        /// Whether `gamma` and `beta` inputs are present.
        affine: bool,
    },
    /// `x / √(mean(x²) + eps)` over the axes from `axis` to the last, then `· gamma` if
    /// `affine` (inputs `x, gamma`).
    RmsNorm {
        /// First normalized axis.
        axis: i64,
        /// Epsilon.
        eps: f32,
        /// Whether the `gamma` input is present.
        affine: bool,
    },
    /// Group normalization of `x: [N, C, *]` over `C/groups` channels and all spatial
    /// positions; then per-channel `gamma: [C]`, `beta: [C]` if `affine`.
    GroupNorm {
        /// Number of groups.
        groups: u64,
        /// Epsilon.
        eps: f32,
        /// Whether `gamma` and `beta` inputs are present.
        affine: bool,
    },
    /// Softmax along `axis` (max-subtracted).
    Softmax {
        /// The normalized axis.
        axis: i64,
    },

    // ----- activations ---------------------------------------------------------------
    /// GELU: `erf` form `0.5·x·(1+erf(x/√2))`; `tanh` form
    /// `0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³)))`.
    Gelu {
        /// Which formula.
        approx: GeluApprox,
    },
    /// `x · sigmoid(x)` as its own op.
    Silu,

    // ----- attention and scan ----------------------------------------------------------
    /// Multi-head scaled dot-product attention on packed heads. Inputs `q: [B, Sq, H·D]`,
    /// `k: [B, Sk, Hkv·D]`, `v: [B, Sk, Hkv·Dv]`, and `mask` if `has_mask` (bool: true =
    /// attend; or float: added to the logits), broadcastable to `[B, H, Sq, Sk]`. Output
    /// `[B, Sq, H·Dv]`. `H` must be a multiple of `Hkv` (grouped-query attention).
    Attention {
        /// Query heads `H`.
        heads: u64,
        /// Key/value heads `Hkv` (= `heads` for plain multi-head attention).
        kv_heads: u64,
        /// Logit scale; `None` means `1/√D`.
        scale: Option<f32>,
        /// Mask out keys after the query position (`j > i + Sk - Sq`).
        causal: bool,
        /// Whether the mask input is present.
        has_mask: bool,
    },
    /// Mamba-1 selective scan. Inputs `u: [B, D, L]`, `delta: [B, D, L]`, `A: [D, N]`,
    /// `Bm: [B, N, L]`, `Cm: [B, N, L]`, then `Dskip: [D]` if `has_d`, then `z: [B, D, L]` if
    /// `has_z`. With `δ = softplus(delta)` if `delta_softplus` else `delta`:
    /// `h_t = exp(δ_t·A) ⊙ h_{t-1} + δ_t·Bm_t·u_t`, `y_t = ⟨Cm_t, h_t⟩ + Dskip·u_t`, then
    /// `y ·= silu(z)` if `has_z`. Output `y: [B, D, L]`.
    SelectiveScan {
        /// Apply softplus to `delta`.
        delta_softplus: bool,
        /// Whether the `Dskip` input is present.
        has_d: bool,
        /// Whether the gate input `z` is present.
        has_z: bool,
    },

    // ----- reductions ----------------------------------------------------------------
    /// Reduce over `axes` (empty = all axes).
    Reduce {
        /// Which reduction.
        op: ReduceOp,
        /// Reduced axes (may be negative).
        axes: Vec<i64>,
        /// Keep reduced axes as size 1.
        keepdims: bool,
    },
    /// Index of the max (or min) along `axis`, as i64.
    ArgReduce {
        /// Max (`true`) or min.
        max: bool,
        /// The axis.
        axis: i64,
        /// Keep the axis as size 1.
        keepdims: bool,
    },
    /// Inclusive (or exclusive) running sum along `axis`.
    CumSum {
        /// The axis.
        axis: i64,
        /// Exclude the current element.
        exclusive: bool,
        /// Run from the end.
        reverse: bool,
    },

    // ----- movement ------------------------------------------------------------------
    /// Reinterpret with a new shape of the same element count.
    Reshape {
        /// The new shape.
        shape: Shape,
    },
    /// Permute axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// ONNX-style slice with static bounds (clamped to the extent; negative indices count
    /// from the end; a step may be negative).
    Slice {
        /// Sliced axes.
        axes: Vec<i64>,
        /// Start per axis.
        starts: Vec<i64>,
        /// End (exclusive) per axis.
        ends: Vec<i64>,
        /// Step per axis (non-zero).
        steps: Vec<i64>,
    },
    /// Join inputs along `axis`.
    Concat {
        /// The axis.
        axis: i64,
    },
    /// Split along `axis` into pieces of the given sizes; one output per piece.
    Split {
        /// The axis.
        axis: i64,
        /// Size of each piece (sum = extent).
        sizes: Vec<u64>,
    },
    /// `take(data, indices, axis)`; indices (i64 or i32) may be negative.
    Gather {
        /// The axis of `data`.
        axis: i64,
    },
    /// Broadcast to `shape` (numpy rules).
    Expand {
        /// The target shape.
        shape: Shape,
    },
    /// Pad every axis: `pads` = begins of all axes, then ends of all axes.
    Pad {
        /// Padding amounts.
        pads: Vec<u64>,
        /// Fill mode.
        mode: PadMode,
    },
    /// Resize to `size` (the whole output shape).
    Resize {
        /// Output shape.
        size: Shape,
        /// Interpolation.
        mode: ResizeMode,
        /// Coordinate mapping.
        coord: CoordTransform,
    },

    // ----- quantization --------------------------------------------------------------
    /// Quantize `x` (float) to `dtype` under `scheme`, rounding half to even and
    /// saturating. Inputs and outputs by scheme:
    /// affine schemes: inputs `x, scale` (+ `zero_point` if `has_zero_point`), output `q`;
    /// `Nvfp4`: inputs `x, tensor_scale`, outputs `q, block_scale` (f8e4m3);
    /// `Mx`: input `x`, outputs `q, scale` (E8M0 in u8).
    Quantize {
        /// Element type of `q`.
        dtype: DType,
        /// The scheme.
        scheme: QuantScheme,
        /// Whether a zero point input is present.
        has_zero_point: bool,
    },
    /// Inverse of `Quantize`, to `out` (a float type). Inputs: affine schemes `q, scale` (+
    /// `zero_point`); `Nvfp4`: `q, block_scale, tensor_scale`; `Mx`: `q, scale`.
    Dequantize {
        /// The scheme.
        scheme: QuantScheme,
        /// Whether a zero point input is present.
        has_zero_point: bool,
        /// Output dtype.
        out: DType,
    },
    /// `matmul(a, dequantize(b))` (and `dequantize(a)` if `a_scheme` is set): each operand
    /// is dequantized to the f32 values `Dequantize` gives, products accumulate in f64 (exact
    /// for integer codes) and round once to `out`. Inputs: `a`,
    /// `a`'s dequantization inputs (if `a_scheme`), `b`, `b`'s dequantization inputs, in
    /// the order `Dequantize` takes them (no zero points). Output `out`.
    QMatMul {
        /// How `a` is quantized (`None`: `a` is a float activation).
        a_scheme: Option<QuantScheme>,
        /// How `b` (the weight, `[K, N]`) is quantized.
        b_scheme: QuantScheme,
        /// Output dtype.
        out: DType,
    },

    // ----- caching across denoising steps ---------------------------------------------
    /// Read the tensor stored in cache slot `slot` by an earlier step. No inputs; output
    /// type `ty`. Reading an empty slot is a runtime error.
    CacheRead {
        /// The slot name.
        slot: String,
        /// Type of the stored tensor.
        ty: crate::TensorType,
    },
    /// Store `x` into cache slot `slot` for later steps; outputs `x` unchanged.
    CacheWrite {
        /// The slot name.
        slot: String,
    },
    /// Choose between a freshly computed value and a cached one by the step number:
    /// inputs `fresh, cached` (same type); the output is `fresh` on steps where `schedule`
    /// recomputes and `cached` otherwise. Only the chosen input is evaluated, so the region
    /// that computes `fresh` is skipped on reuse steps.
    StepGate {
        /// When to recompute.
        schedule: StepSchedule,
    },
}

impl Op {
    /// The op's name in the text format (`layer_norm`, `matmul`, `add`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Constant(_) => "constant",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Cast { .. } => "cast",
            Op::Modulate => "modulate",
            Op::MatMul => "matmul",
            Op::Gemm { .. } => "gemm",
            Op::Conv { .. } => "conv",
            Op::LayerNorm { .. } => "layer_norm",
            Op::RmsNorm { .. } => "rms_norm",
            Op::GroupNorm { .. } => "group_norm",
            Op::Softmax { .. } => "softmax",
            Op::Gelu { .. } => "gelu",
            Op::Silu => "silu",
            Op::Attention { .. } => "attention",
            Op::SelectiveScan { .. } => "selective_scan",
            Op::Reduce { op, .. } => op.name(),
            Op::ArgReduce { max: true, .. } => "argmax",
            Op::ArgReduce { max: false, .. } => "argmin",
            Op::CumSum { .. } => "cumsum",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Split { .. } => "split",
            Op::Gather { .. } => "gather",
            Op::Expand { .. } => "expand",
            Op::Pad { .. } => "pad",
            Op::Resize { .. } => "resize",
            Op::Quantize { .. } => "quantize",
            Op::Dequantize { .. } => "dequantize",
            Op::QMatMul { .. } => "qmatmul",
            Op::CacheRead { .. } => "cache_read",
            Op::CacheWrite { .. } => "cache_write",
            Op::StepGate { .. } => "step_gate",
        }
    }

    /// Number of inputs this op takes, as its flags say. `None` for variadic ops
    /// (`Concat`: one or more).
    pub fn num_inputs(&self) -> Option<usize> {
        Some(match self {
            Op::Input { .. } | Op::Constant(_) | Op::CacheRead { .. } => 0,
            Op::Unary(_)
            | Op::Cast { .. }
            | Op::Gelu { .. }
            | Op::Silu
            | Op::Softmax { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::CumSum { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Split { .. }
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Resize { .. }
            | Op::CacheWrite { .. } => 1,
            Op::Binary(_) | Op::MatMul | Op::Gather { .. } | Op::StepGate { .. } => 2,
            Op::Where | Op::Modulate => 3,
            Op::Gemm { has_c, .. } => 2 + usize::from(*has_c),
            Op::Conv { has_bias, .. } => 2 + usize::from(*has_bias),
            Op::LayerNorm { affine, .. } | Op::GroupNorm { affine, .. } => {
                1 + 2 * usize::from(*affine)
            }
            Op::RmsNorm { affine, .. } => 1 + usize::from(*affine),
            Op::Attention { has_mask, .. } => 3 + usize::from(*has_mask),
            Op::SelectiveScan { has_d, has_z, .. } => 5 + usize::from(*has_d) + usize::from(*has_z),
            Op::Concat { .. } => return None,
            Op::Quantize {
                scheme,
                has_zero_point,
                ..
            } => match scheme {
                QuantScheme::Nvfp4 { .. } => 2,
                QuantScheme::Mx { .. } => 1,
                QuantScheme::PerTensor
                | QuantScheme::PerChannel { .. }
                | QuantScheme::PerGroup { .. } => 2 + usize::from(*has_zero_point),
            },
            Op::Dequantize {
                scheme,
                has_zero_point,
                ..
            } => 1 + dequant_extra_inputs(scheme) + usize::from(*has_zero_point),
            Op::QMatMul {
                a_scheme, b_scheme, ..
            } => {
                2 + a_scheme.as_ref().map_or(0, dequant_extra_inputs)
                    + dequant_extra_inputs(b_scheme)
            }
        })
    }

    /// Number of outputs.
    pub fn num_outputs(&self) -> usize {
        match self {
            Op::Split { sizes, .. } => sizes.len(),
            Op::Quantize {
                scheme: QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. },
                ..
            } => 2,
            Op::Input { .. }
            | Op::Constant(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::Modulate
            | Op::MatMul
            | Op::Gemm { .. }
            | Op::Conv { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::GroupNorm { .. }
            | Op::Softmax { .. }
            | Op::Gelu { .. }
            | Op::Silu
            | Op::Attention { .. }
            | Op::SelectiveScan { .. }
            | Op::Reduce { .. }
            | Op::ArgReduce { .. }
            | Op::CumSum { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Gather { .. }
            | Op::Expand { .. }
            | Op::Pad { .. }
            | Op::Resize { .. }
            | Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::QMatMul { .. }
            | Op::CacheRead { .. }
            | Op::CacheWrite { .. }
            | Op::StepGate { .. } => 1,
        }
    }
}

/// Inputs after `q` that `Dequantize` takes for a scheme (not counting a zero point).
pub fn dequant_extra_inputs(scheme: &QuantScheme) -> usize {
    match scheme {
        QuantScheme::Nvfp4 { .. } => 2,
        QuantScheme::PerTensor
        | QuantScheme::PerChannel { .. }
        | QuantScheme::PerGroup { .. }
        | QuantScheme::Mx { .. } => 1,
    }
}

impl UnaryOp {
    /// Every unary op.
    pub const ALL: [UnaryOp; 19] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Softplus,
        UnaryOp::Relu,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sign,
        UnaryOp::Not,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Reciprocal => "reciprocal",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Erf => "erf",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Relu => "relu",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Sign => "sign",
            UnaryOp::Not => "not",
        }
    }
}

impl BinaryOp {
    /// Every binary op.
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Mod,
        BinaryOp::Equal,
        BinaryOp::Less,
        BinaryOp::LessEqual,
        BinaryOp::Greater,
        BinaryOp::GreaterEqual,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Mod => "mod",
            BinaryOp::Equal => "equal",
            BinaryOp::Less => "less",
            BinaryOp::LessEqual => "less_equal",
            BinaryOp::Greater => "greater",
            BinaryOp::GreaterEqual => "greater_equal",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
        }
    }
}

impl ReduceOp {
    /// Every reduction.
    pub const ALL: [ReduceOp; 6] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::L2,
    ];

    /// Text-format name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
            ReduceOp::Prod => "reduce_prod",
            ReduceOp::L2 => "reduce_l2",
        }
    }
}
