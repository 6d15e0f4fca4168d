//! Canonical forms that let codegen's lowering fuse kernels: a bias add after a 2-D
//! matmul becomes `gemm` with `c` (the GEMM epilogue), and a scalar factor on the query
//! of an attention folds into the attention's scale. Kernel grouping itself (elementwise
//! regions, epilogues, norm prologues) happens in codegen's lowering, not here.

use dqc_ir::Op;
use egg::{Id, Subst, rewrite};

use super::lang::{TensorGraph, TensorLang};
use super::rule::{Build, Rule, add_attr, attr, get, is_scalar, scalar};

/// The fusion rules.
pub fn rules() -> Vec<Rule> {
    vec![
        // a@b + c → gemm(a, b, c)   (a, b 2-D; c broadcast to [M, N])
        rewrite!("fuse-matmul-bias";          "(add (matmul ?a ?b) ?c)"       => { Build(gemm_bias) }),
        // c + a@b → gemm(a, b, c)
        rewrite!("fuse-matmul-bias-rev";      "(add ?c (matmul ?a ?b))"       => { Build(gemm_bias) }),
        // attention(q·s, k, v) → attention(q, k, v) with its scale times s
        rewrite!("fuse-attention-q-scale";    "(attention ?at (mul ?q ?s) ?k ?v)" => { Build(attention_scale) } if is_scalar("?s")),
    ]
}

fn rank(eg: &TensorGraph, id: Id) -> Option<usize> {
    eg[id].data.ty.as_ref().map(|t| t.shape.rank())
}

fn gemm_bias(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let (a, b, c) = (get(s, "?a")?, get(s, "?b")?, get(s, "?c")?);
    if rank(eg, a)? != 2 || rank(eg, b)? != 2 {
        return None;
    }
    let at = add_attr(
        eg,
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            has_c: true,
        },
    );
    Some(eg.add(TensorLang::Gemm([at, a, b, c])))
}

fn attention_scale(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let Op::Attention {
        heads,
        kv_heads,
        scale,
        causal,
        has_mask: false,
    } = attr(eg, s, "?at")?
    else {
        return None;
    };
    let factor = scalar(eg, s, "?s")?;
    let q = get(s, "?q")?;
    let qd = eg[q].data.ty.as_ref()?.shape.dims().last()?.as_fixed()?;
    let d = qd.checked_div(heads)?;
    let base = match scale {
        Some(v) => f64::from(v),
        None => 1.0 / (d as f64).sqrt(),
    };
    let a = add_attr(
        eg,
        Op::Attention {
            heads,
            kv_heads,
            scale: Some((base * factor) as f32),
            causal,
            has_mask: false,
        },
    );
    let (k, v) = (get(s, "?k")?, get(s, "?v")?);
    Some(eg.add(TensorLang::Attention([a, q, k, v])))
}
