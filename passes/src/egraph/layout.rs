//! Layout rules: transpose and reshape chains fold, identities vanish, and transposes
//! move outward through elementwise ops so that chains meet and cancel (the e-graph keeps
//! both forms; extraction keeps the one with fewer transposes).

use dqc_ir::Op;
use egg::{Id, Subst, rewrite};

use super::lang::TensorGraph;
use super::lang::TensorLang;
use super::rule::{Build, Rule, add_attr, attr, get, is_scalar, typed};

/// The layout rules.
pub fn rules() -> Vec<Rule> {
    let mut rules = vec![
        // transpose(transpose(x, p), q) → transpose(x, p∘q), or x if p∘q is the identity
        rewrite!("transpose-transpose"; "(transpose ?q (transpose ?p ?x))" => { Build(compose_transposes) }),
        // transpose(x, identity) → x
        rewrite!("transpose-identity";  "(transpose ?p ?x)"                => { Build(identity_transpose) }),
        // reshape(reshape(x, s), t) → reshape(x, t)
        rewrite!("reshape-reshape";     "(reshape ?t (reshape ?s ?x))"     => { typed("(reshape ?t ?x)") }),
        // reshape(x, shape(x)) → x
        rewrite!("reshape-identity";    "(reshape ?s ?x)"                  => { typed("?x") }),
        // transpose(x)·c → transpose(x·c)   (c a scalar constant)
        rewrite!("transpose-mul-scalar"; "(mul (transpose ?p ?x) ?c)"      => { typed("(transpose ?p (mul ?x ?c))") } if is_scalar("?c")),
    ];
    // f(transpose(x)) → transpose(f(x))   (f elementwise of one argument)
    for f in [
        "neg",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "erf",
        "tanh",
        "sigmoid",
        "silu",
        "gelu_erf",
        "gelu_tanh",
    ] {
        rules.push(rewrite!(format!("{f}-transpose"); {super::rule::pat(&format!("({f} (transpose ?p ?x))"))} => { typed(&format!("(transpose ?p ({f} ?x))")) }));
    }
    rules
}

fn perm(eg: &TensorGraph, s: &Subst, v: &str) -> Option<Vec<usize>> {
    if let Op::Transpose { perm } = attr(eg, s, v)? {
        Some(perm)
    } else {
        None
    }
}

fn compose_transposes(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let (p, q) = (perm(eg, s, "?p")?, perm(eg, s, "?q")?);
    let x = get(s, "?x")?;
    let composed: Vec<usize> = q
        .iter()
        .map(|&i| p.get(i).copied())
        .collect::<Option<_>>()?;
    if composed.iter().enumerate().all(|(i, &a)| i == a) {
        return Some(x);
    }
    let a = add_attr(eg, Op::Transpose { perm: composed });
    Some(eg.add(TensorLang::Transpose([a, x])))
}

fn identity_transpose(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let p = perm(eg, s, "?p")?;
    p.iter()
        .enumerate()
        .all(|(i, &a)| i == a)
        .then(|| get(s, "?x"))
        .flatten()
}
