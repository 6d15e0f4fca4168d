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
    // transpose(concat(a, b; k), p) → concat(transpose(a, p), transpose(b, p); p⁻¹(k))
    rules.push(rewrite!("transpose-concat"; "(transpose ?p (concat ?c ?a ?b))" => { Build(transpose_concat) }));
    // reshape(concat(reshape(a), reshape(b); k)) → concat(a, b; k)   (reshapes only after axis k)
    rules.push(rewrite!("reshape-concat"; "(reshape ?r (concat ?c (reshape ?ra ?a) (reshape ?rb ?b)))" => { Build(reshape_concat) }));
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

fn concat_axis(eg: &TensorGraph, s: &Subst, rank: usize) -> Option<usize> {
    if let Op::Concat { axis } = attr(eg, s, "?c")? {
        dqc_ir::shape::normalize_axis(axis, rank)
    } else {
        None
    }
}

fn transpose_concat(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let p = perm(eg, s, "?p")?;
    let k = concat_axis(eg, s, p.len())?;
    let new_axis = p.iter().position(|&a| a == k)?;
    let (a, b) = (get(s, "?a")?, get(s, "?b")?);
    let pa = add_attr(eg, Op::Transpose { perm: p });
    let ta = eg.add(TensorLang::Transpose([pa, a]));
    let tb = eg.add(TensorLang::Transpose([pa, b]));
    let c = add_attr(
        eg,
        Op::Concat {
            axis: new_axis as i64,
        },
    );
    Some(eg.add(TensorLang::Concat(vec![c, ta, tb].into_boxed_slice())))
}

fn reshape_concat(eg: &mut TensorGraph, class: Id, s: &Subst) -> Option<Id> {
    let dims = |id: Id| eg[id].data.ty.as_ref().map(|t| t.shape.dims().to_vec());
    let out = dims(class)?;
    let (a, b) = (get(s, "?a")?, get(s, "?b")?);
    let (da, db) = (dims(a)?, dims(b)?);
    // The parts as the concat sees them (after their reshapes).
    let ra = dims(eg.lookup(TensorLang::Reshape([get(s, "?ra")?, a]))?)?;
    let rb = dims(eg.lookup(TensorLang::Reshape([get(s, "?rb")?, b]))?)?;
    let k = concat_axis(eg, s, ra.len())?;
    let rank = out.len();
    // The part reshapes keep every axis up to k and the parts agree with the result
    // outside axis k: all reshapes only regroup the axes after k.
    let ok = da.len() == rank
        && db.len() == rank
        && k < rank
        && ra.get(..=k) == da.get(..=k)
        && rb.get(..=k) == db.get(..=k)
        && da.get(..k) == out.get(..k)
        && db.get(..k) == out.get(..k)
        && da.get(k + 1..) == out.get(k + 1..)
        && db.get(k + 1..) == out.get(k + 1..);
    if !ok {
        return None;
    }
    let c = add_attr(eg, Op::Concat { axis: k as i64 });
    Some(eg.add(TensorLang::Concat(vec![c, a, b].into_boxed_slice())))
}
