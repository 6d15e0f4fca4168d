//! Extraction cost: a roofline estimate of every kernel on the target.
//!
//! Each e-node (other than leaves and `reshape`, a free view of contiguous data) is one
//! kernel: its time is [`Target::roofline_seconds`] of the bytes it reads and writes and
//! the FLOPs it does, plus a fixed launch overhead ([`LAUNCH_SECONDS_CPU`] on the CPU,
//! [`LAUNCH_SECONDS_GPU`] on a GPU). A term costs the sum over its nodes, so a fused op
//! (LayerNorm, GELU, attention) that reads its inputs once is far cheaper than the chain
//! of elementwise and reduction kernels it replaces. Symbolic dimensions count as
//! [`SYMBOLIC_EXTENT`].

use dqc_ir::{DType, Op, Target, TensorType};
use egg::{CostFunction, Id, Language};

use super::lang::{TensorGraph, TensorLang, infer_node, node_op};

/// Launch (dispatch) overhead of one CPU kernel, in seconds.
pub const LAUNCH_SECONDS_CPU: f64 = 2e-7;
/// Launch overhead of one GPU kernel, in seconds.
pub const LAUNCH_SECONDS_GPU: f64 = 3e-6;
/// The extent assumed for a symbolic dimension.
pub const SYMBOLIC_EXTENT: u64 = 16;
/// Cost of an e-node whose type cannot be inferred (never chosen in practice).
const UNTYPED: f64 = 1e9;

/// The roofline cost function of one target over one e-graph.
pub struct RooflineCost<'a> {
    egraph: &'a TensorGraph,
    target: Target,
}

impl<'a> RooflineCost<'a> {
    /// Costs of kernels on `target`, reading types from `egraph`.
    pub fn new(egraph: &'a TensorGraph, target: Target) -> RooflineCost<'a> {
        RooflineCost { egraph, target }
    }

    fn ty(&self, id: Id) -> Option<&TensorType> {
        self.egraph[id].data.ty.as_ref()
    }

    /// Seconds of the kernel `node` alone.
    pub fn kernel_seconds(&self, node: &TensorLang) -> f64 {
        let Some((op, kids)) = node_op(node, |id| self.egraph[id].data.attr.clone()) else {
            return 0.0;
        };
        if matches!(op, Op::Reshape { .. }) {
            return 0.0;
        }
        let Some(out) = infer_node(self.egraph, node) else {
            return UNTYPED;
        };
        let kid_tys: Vec<&TensorType> = kids.iter().filter_map(|k| self.ty(*k)).collect();
        let n = elements(&out);
        let bytes: f64 = kid_tys.iter().map(|t| bytes(t)).sum::<f64>() + bytes(&out);
        let flops = flops(&op, n, &kid_tys);
        let peak = match out.dtype {
            DType::F16 | DType::BF16 => self.target.bf16_gflops,
            _ => self.target.f32_gflops,
        };
        let launch = if self.target.is_cpu() {
            LAUNCH_SECONDS_CPU
        } else {
            LAUNCH_SECONDS_GPU
        };
        self.target.roofline_seconds(bytes, flops, peak) + launch
    }
}

/// Element count with symbolic dimensions at [`SYMBOLIC_EXTENT`].
fn elements(t: &TensorType) -> f64 {
    t.shape
        .dims()
        .iter()
        .map(|d| {
            let sym: u32 = d.symbols().iter().map(|(_, e)| *e).sum();
            d.factor() as f64 * (SYMBOLIC_EXTENT as f64).powi(sym as i32)
        })
        .product()
}

fn bytes(t: &TensorType) -> f64 {
    elements(t) * t.dtype.bits() as f64 / 8.0
}

/// Last extent of `t` (1 if it has none).
fn last(t: Option<&&TensorType>) -> f64 {
    t.and_then(|t| t.shape.dims().last()).map_or(1.0, |d| {
        elements(&TensorType::new(DType::F32, dqc_ir::Shape(vec![d.clone()])))
    })
}

/// FLOPs of `op` producing `n` elements from operands `kids`.
fn flops(op: &Op, n: f64, kids: &[&TensorType]) -> f64 {
    use dqc_ir::op::UnaryOp as U;
    match op {
        Op::Binary(_) | Op::Where | Op::Cast { .. } => n,
        Op::Unary(U::Erf | U::Tanh | U::Sigmoid | U::Exp | U::Log) => 8.0 * n,
        Op::Unary(U::Sqrt | U::Rsqrt | U::Reciprocal) => 4.0 * n,
        Op::Unary(_) => n,
        Op::Silu => 9.0 * n,
        Op::Gelu { .. } => 16.0 * n,
        Op::Modulate => 3.0 * n,
        Op::MatMul | Op::Gemm { .. } => 2.0 * n * last(kids.first()),
        Op::Softmax { .. } => 5.0 * n,
        Op::Reduce { .. } => kids.first().map_or(n, |t| elements(t)),
        Op::LayerNorm { .. } => 8.0 * n,
        Op::RmsNorm { .. } => 5.0 * n,
        Op::Attention { heads, .. } => {
            // n = B·Sq·H·Dv; the logits are B·H·Sq·Sk.
            let h = (*heads).max(1) as f64;
            let sk = kids
                .get(1)
                .and_then(|t| t.shape.dims().get(1))
                .map_or(1.0, |d| {
                    elements(&TensorType::new(DType::F32, dqc_ir::Shape(vec![d.clone()])))
                });
            let qd = last(kids.first()) / h;
            let bsq = kids.first().map_or(1.0, |t| elements(t)) / (qd * h).max(1.0);
            let logits = bsq * h * sk;
            2.0 * logits * qd + 2.0 * n * sk + 5.0 * logits
        }
        Op::Input { .. }
        | Op::Constant(_)
        | Op::Conv { .. }
        | Op::GroupNorm { .. }
        | Op::SelectiveScan { .. }
        | Op::ArgReduce { .. }
        | Op::CumSum { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Pad { .. }
        | Op::Resize { .. }
        | Op::Quantize { .. }
        | Op::Dequantize { .. }
        | Op::QMatMul { .. }
        | Op::CacheRead { .. }
        | Op::CacheWrite { .. }
        | Op::StepGate { .. } => 0.0,
    }
}

impl CostFunction<TensorLang> for RooflineCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &TensorLang, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let own = self.kernel_seconds(enode);
        enode.fold(own, |acc, id| acc + costs(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::lang::{TypeAnalysis, ValInfo};
    use dqc_ir::graph::{NodeId, Value};
    use dqc_ir::{Shape, TensorType};
    use egg::{Extractor, RecExpr};

    /// Cost of `expr` (with `v0` an f32[8,1024,1024] value) on `target`.
    fn cost(expr: &str, target: &str) -> f64 {
        let mut eg = TensorGraph::new(TypeAnalysis::default());
        eg.analysis.values.push(ValInfo {
            value: Value::new(NodeId::new(0), 0),
            ty: TensorType::new(DType::F32, Shape::fixed(&[8, 1024, 1024])),
            scalar: None,
        });
        let expr: RecExpr<TensorLang> = expr.parse().unwrap_or_else(|e| panic!("{e}"));
        let root = eg.add_expr(&expr);
        eg.rebuild();
        let t = Target::parse(target).unwrap_or_else(|e| panic!("{e}"));
        let ex = Extractor::new(&eg, RooflineCost::new(&eg, t));
        ex.find_best_cost(root)
    }

    #[test]
    fn fused_gelu_is_cheaper_than_its_decomposition() {
        for target in ["cpu", "sm_90", "sm_100"] {
            let fused = cost("(gelu_tanh v0)", target);
            let tanh = "(tanh (mul (add v0 (mul (mul v0 (mul v0 v0)) 0.044715)) 0.7978846))";
            let parts = cost(&format!("(mul (mul v0 (add {tanh} 1)) 0.5)"), target);
            assert!(
                fused > 0.0 && fused * 4.0 < parts,
                "{target}: {fused} vs {parts}"
            );
        }
    }

    #[test]
    fn memory_bound_kernels_scale_with_bandwidth() {
        // A 32 MiB elementwise kernel is memory bound: faster on the faster memory.
        assert!(cost("(neg v0)", "sm_100") < cost("(neg v0)", "sm_90"));
        assert!(cost("(neg v0)", "sm_90") < cost("(neg v0)", "cpu"));
        // Three kernels in a chain cost three times one.
        let (one, three) = (cost("(neg v0)", "cpu"), cost("(neg (neg (neg v0)))", "cpu"));
        assert!((three / one - 3.0).abs() < 1e-9, "{one} {three}");
    }
}
