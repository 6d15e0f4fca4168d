//! Directional algebraic simplifications that put terms in the forms the pattern rules
//! expect. Scalar constants go to the right of `mul`/`add` (never a blanket
//! commutativity: only a constant moves); divisions by constants become multiplications;
//! powers 2 and 3 become products; `1/√x` becomes `rsqrt`; scalar factors move out of
//! matrix products (so the two `·√s` factors exporters put on Q and Kᵀ meet in one
//! logit scale).

use egg::{Id, Subst, rewrite};

use super::lang::{TensorGraph, TensorLang};
use super::rule::{
    Build, Rule, add_num, get, is_const, is_scalar, not_scalar, same_type, scalar, typed,
};
use dqc_ir::DType;

/// The algebra rules.
pub fn rules() -> Vec<Rule> {
    vec![
        // c·x → x·c   (c a scalar constant, x not)
        rewrite!("mul-const-right";   "(mul ?c ?x)"          => { typed("(mul ?x ?c)") } if is_scalar("?c") if not_scalar("?x")),
        // c+x → x+c
        rewrite!("add-const-right";   "(add ?c ?x)"          => { typed("(add ?x ?c)") } if is_scalar("?c") if not_scalar("?x")),
        // x·1 → x
        rewrite!("mul-one";           "(mul ?x ?c)"          => { typed("?x") } if is_const("?c", 1.0) if same_type("?x")),
        // x+0 → x
        rewrite!("add-zero";          "(add ?x ?c)"          => { typed("?x") } if is_const("?c", 0.0) if same_type("?x")),
        // x−0 → x
        rewrite!("sub-zero";          "(sub ?x ?c)"          => { typed("?x") } if is_const("?c", 0.0) if same_type("?x")),
        // x/1 → x
        rewrite!("div-one";           "(div ?x ?c)"          => { typed("?x") } if is_const("?c", 1.0) if same_type("?x")),
        // −(−x) → x
        rewrite!("neg-neg";           "(neg (neg ?x))"       => { typed("?x") }),
        // x/c → x·(1/c)   (f32, c a non-zero scalar constant)
        rewrite!("div-const";         "(div ?x ?c)"          => { Build(div_const) } if is_scalar("?c") if not_scalar("?x")),
        // (x·a)·b → x·(a·b)   (a, b scalar constants)
        rewrite!("mul-mul-const";     "(mul (mul ?x ?a) ?b)" => { Build(mul_mul_const) } if is_scalar("?a") if is_scalar("?b") if not_scalar("?x")),
        // 1/x → reciprocal(x)
        rewrite!("one-over";          "(div ?c ?x)"          => { typed("(reciprocal ?x)") } if is_const("?c", 1.0)),
        // x² → x·x
        rewrite!("pow-two";           "(pow ?x ?c)"          => { typed("(mul ?x ?x)") } if is_const("?c", 2.0)),
        // x³ → x·(x·x)
        rewrite!("pow-three";         "(pow ?x ?c)"          => { typed("(mul ?x (mul ?x ?x))") } if is_const("?c", 3.0)),
        // (x·x)·x → x·(x·x)
        rewrite!("cube-assoc";        "(mul (mul ?x ?x) ?x)" => { typed("(mul ?x (mul ?x ?x))") }),
        // x^½ → √x
        rewrite!("pow-half";          "(pow ?x ?c)"          => { typed("(sqrt ?x)") } if is_const("?c", 0.5)),
        // 1/√x → rsqrt(x)
        rewrite!("reciprocal-sqrt";   "(reciprocal (sqrt ?x))" => { typed("(rsqrt ?x)") }),
        // a/√b → a·rsqrt(b)
        rewrite!("div-sqrt";          "(div ?a (sqrt ?b))"   => { typed("(mul ?a (rsqrt ?b))") }),
        // (a·s)@b → (a@b)·s   (s a scalar constant)
        rewrite!("matmul-scale-left"; "(matmul (mul ?a ?s) ?b)" => { typed("(mul (matmul ?a ?b) ?s)") } if is_scalar("?s")),
        // a@(b·s) → (a@b)·s
        rewrite!("matmul-scale-right"; "(matmul ?a (mul ?b ?s))" => { typed("(mul (matmul ?a ?b) ?s)") } if is_scalar("?s")),
    ]
}

/// Whether the class bound to `v` is f32 (rules only make f32 scalars).
fn is_f32(eg: &TensorGraph, s: &Subst, v: &str) -> bool {
    get(s, v)
        .and_then(|id| eg[id].data.ty.as_ref())
        .is_some_and(|t| t.dtype == DType::F32)
}

fn div_const(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let c = scalar(eg, s, "?c")?;
    if c == 0.0 || !c.is_finite() || !is_f32(eg, s, "?x") {
        return None;
    }
    let x = get(s, "?x")?;
    let inv = add_num(eg, (1.0 / c) as f32);
    Some(eg.add(TensorLang::Mul([x, inv])))
}

fn mul_mul_const(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let (a, b) = (scalar(eg, s, "?a")?, scalar(eg, s, "?b")?);
    if !is_f32(eg, s, "?x") {
        return None;
    }
    let x = get(s, "?x")?;
    let ab = add_num(eg, (a * b) as f32);
    Some(eg.add(TensorLang::Mul([x, ab])))
}
