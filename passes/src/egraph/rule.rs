//! Rule helpers: type-checked appliers and the small named predicates rules use as
//! conditions.
//!
//! Every rule's right-hand side goes through [`union_checked`]: the new term is merged
//! into the matched class only if its inferred type equals the class's type, so a rule
//! can never change a value's shape or dtype (e.g. `x·1 → x` where the `1` broadcast `x`
//! to a larger shape is refused).

use dqc_ir::Op;
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

use super::lang::{OpAttr, Scalar, TensorGraph, TensorLang, TypeAnalysis};

/// A rewrite of the tensor language.
pub type Rule = Rewrite<TensorLang, TypeAnalysis>;

/// Union `new` into `class` if both have the same known type; the ids that changed.
pub fn union_checked(egraph: &mut TensorGraph, class: Id, new: Id) -> Vec<Id> {
    let (a, b) = (&egraph[class].data.ty, &egraph[new].data.ty);
    if a.is_none() || a != b {
        return Vec::new();
    }
    if egraph.union(class, new) {
        vec![class]
    } else {
        Vec::new()
    }
}

/// A pattern right-hand side, type-checked (see the module docs).
pub struct Typed(pub Pattern<TensorLang>);

/// Parse `rhs` as a type-checked right-hand side.
///
/// Rule files pass fixed strings only (never input), and a unit test builds every rule,
/// so a malformed pattern is caught there.
pub fn typed(rhs: &str) -> Typed {
    Typed(pat(rhs))
}

/// Parse a left-hand side written with `format!` (fixed strings; see [`typed`]).
pub fn pat(src: &str) -> Pattern<TensorLang> {
    src.parse()
        .unwrap_or_else(|e| panic!("malformed rule pattern `{src}`: {e}"))
}

impl Applier<TensorLang, TypeAnalysis> for Typed {
    fn apply_one(
        &self,
        egraph: &mut TensorGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<TensorLang>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let new = egraph.add_instantiation(&self.0.ast, subst);
        union_checked(egraph, eclass, new)
    }

    fn vars(&self) -> Vec<Var> {
        self.0.vars()
    }
}

/// A right-hand side computed by a function of the match (for rules that compute
/// attributes: composed permutations, norm axes, attention heads). The function returns
/// the new term's class or `None` to decline; the result is type-checked.
pub struct Build<F>(pub F);

impl<F> Applier<TensorLang, TypeAnalysis> for Build<F>
where
    F: Fn(&mut TensorGraph, Id, &Subst) -> Option<Id> + Send + Sync,
{
    fn apply_one(
        &self,
        egraph: &mut TensorGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<TensorLang>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        match (self.0)(egraph, eclass, subst) {
            Some(new) => union_checked(egraph, eclass, new),
            None => Vec::new(),
        }
    }
}

/// The pattern variable `?name` (rule files use literal names).
pub fn var(name: &str) -> Var {
    Var::from(Symbol::from(name))
}

/// The class bound to `v`.
pub fn get(subst: &Subst, v: &str) -> Option<Id> {
    subst.get(var(v)).copied()
}

/// The scalar value of the class bound to `v`.
pub fn scalar(egraph: &TensorGraph, subst: &Subst, v: &str) -> Option<f64> {
    egraph[get(subst, v)?].data.scalar
}

/// The attribute op of the class bound to `v`.
pub fn attr(egraph: &TensorGraph, subst: &Subst, v: &str) -> Option<Op> {
    egraph[get(subst, v)?].data.attr.clone()
}

/// Add an attribute leaf for `op`.
pub fn add_attr(egraph: &mut TensorGraph, op: Op) -> Id {
    egraph.add(TensorLang::Attr(OpAttr::new(op)))
}

/// Add an f32 scalar leaf.
pub fn add_num(egraph: &mut TensorGraph, v: f32) -> Id {
    egraph.add(TensorLang::Num(Scalar::new(v)))
}

/// Whether `a` is within 1e-5 relative of `b`.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1e-30)
}

/// Condition: `?v` is a one-element float constant equal to `value` (1e-5 relative).
pub fn is_const(v: &'static str, value: f64) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, _, s| scalar(eg, s, v).is_some_and(|c| close(c, value))
}

/// Condition: `?v` is a one-element float constant.
pub fn is_scalar(v: &'static str) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, _, s| scalar(eg, s, v).is_some()
}

/// Condition: `?v` is not a one-element float constant.
pub fn not_scalar(v: &'static str) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, _, s| scalar(eg, s, v).is_none()
}

/// Condition: `?v` has the type of the matched class.
pub fn same_type(v: &'static str) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, class, s| {
        get(s, v).is_some_and(|id| eg[id].data.ty.is_some() && eg[id].data.ty == eg[class].data.ty)
    }
}

/// Condition: `?a` is a `reduce_mean` over exactly the trailing axes of `?x`, keeping
/// dimensions (what a normalization over the last axes computes).
pub fn is_last_axes(
    a: &'static str,
    x: &'static str,
) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, _, s| first_reduced_axis(eg, s, a, x).is_some()
}

/// The first of the trailing axes `?a` (a keepdims `reduce_mean`) reduces of `?x`.
pub fn first_reduced_axis(eg: &TensorGraph, s: &Subst, a: &str, x: &str) -> Option<usize> {
    let Some(Op::Reduce {
        axes,
        keepdims: true,
        ..
    }) = attr(eg, s, a)
    else {
        return None;
    };
    let rank = eg[get(s, x)?].data.ty.as_ref()?.shape.rank();
    let mut norm: Vec<usize> = axes
        .iter()
        .map(|&ax| dqc_ir::shape::normalize_axis(ax, rank))
        .collect::<Option<Vec<_>>>()?;
    norm.sort_unstable();
    norm.dedup();
    let first = rank.checked_sub(norm.len())?;
    (!norm.is_empty() && norm.iter().enumerate().all(|(i, &ax)| ax == first + i)).then_some(first)
}

/// Condition: `?a` is a softmax over the last axis of `?x`.
pub fn is_last_axis(
    a: &'static str,
    x: &'static str,
) -> impl Fn(&mut TensorGraph, Id, &Subst) -> bool {
    move |eg, _, s| {
        let Some(Op::Softmax { axis }) = attr(eg, s, a) else {
            return false;
        };
        let rank = get(s, x)
            .and_then(|id| eg[id].data.ty.as_ref())
            .map(|t| t.shape.rank());
        rank.is_some_and(|r| dqc_ir::shape::normalize_axis(axis, r) == Some(r.saturating_sub(1)))
    }
}
