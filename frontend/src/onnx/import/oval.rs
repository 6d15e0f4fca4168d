//! [`OVal`]: what an ONNX tensor name stands for during import, and [`SymInt`] /
//! [`SymInts`], the integers of a shape computation that may be symbolic.

use std::fmt;

use dqc_ir::{DType, Dim, Tensor, Value};

/// The value of an ONNX tensor name while a model is imported.
#[derive(Clone, Debug)]
pub enum OVal {
    /// Known at compile time (an initializer, a `Constant`, or a folded subgraph).
    Const(Tensor),
    /// A 0-D or 1-D integer tensor whose entries are known at compile time as integers or
    /// monomials of symbols, at least one of them symbolic — what `Shape` gives on a
    /// tensor with symbolic dimensions, and arithmetic on that. (Fully static results are
    /// [`OVal::Const`]; [`OVal::ints`] keeps that normal form.)
    Dims(SymInts),
    /// A value computed at run time by the IR graph.
    Node(Value),
}

/// One integer known at compile time: a static value (possibly negative) or a symbolic
/// dimension (a monomial with at least one symbol, so ≥ 1 at run time).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymInt {
    /// A static integer.
    Int(i64),
    /// A symbolic dimension (never static: static values are [`SymInt::Int`]).
    Sym(Dim),
}

impl SymInt {
    /// The normal form of a dimension: static → [`SymInt::Int`] (saturating at `i64::MAX`).
    pub fn from_dim(d: Dim) -> SymInt {
        match d.as_fixed() {
            Some(v) => SymInt::Int(i64::try_from(v).unwrap_or(i64::MAX)),
            None => SymInt::Sym(d),
        }
    }

    /// As a dimension, if non-negative.
    pub fn as_dim(&self) -> Option<Dim> {
        match self {
            SymInt::Int(v) => u64::try_from(*v).ok().map(Dim::fixed),
            SymInt::Sym(d) => Some(d.clone()),
        }
    }

    /// The static value, if any.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            SymInt::Int(v) => Some(*v),
            SymInt::Sym(_) => None,
        }
    }

    /// Exact product, if representable (a negative integer times a symbol is not).
    pub fn mul(&self, o: &SymInt) -> Option<SymInt> {
        match (self, o) {
            (SymInt::Int(a), SymInt::Int(b)) => a.checked_mul(*b).map(SymInt::Int),
            (SymInt::Int(0), SymInt::Sym(_)) | (SymInt::Sym(_), SymInt::Int(0)) => {
                Some(SymInt::Int(0))
            }
            _ => Some(SymInt::from_dim(self.as_dim()?.checked_mul(&o.as_dim()?)?)),
        }
    }

    /// Quotient with ONNX integer division (truncation) for static values; a symbolic
    /// dividend must be divisible exactly as a monomial.
    pub fn div(&self, o: &SymInt) -> Option<SymInt> {
        match (self, o) {
            (SymInt::Int(a), SymInt::Int(b)) => a.checked_div(*b).map(SymInt::Int),
            (SymInt::Int(_), SymInt::Sym(_)) => None,
            (SymInt::Sym(a), _) => Some(SymInt::from_dim(a.checked_div(&o.as_dim()?)?)),
        }
    }

    /// Sum, if representable (static values, or a symbol plus 0).
    pub fn add(&self, o: &SymInt) -> Option<SymInt> {
        match (self, o) {
            (SymInt::Int(a), SymInt::Int(b)) => a.checked_add(*b).map(SymInt::Int),
            (x, SymInt::Int(0)) | (SymInt::Int(0), x) => Some(x.clone()),
            _ => None,
        }
    }

    /// Difference, if representable (static values, a symbol minus 0 or minus itself).
    pub fn sub(&self, o: &SymInt) -> Option<SymInt> {
        match (self, o) {
            (SymInt::Int(a), SymInt::Int(b)) => a.checked_sub(*b).map(SymInt::Int),
            (x, SymInt::Int(0)) => Some(x.clone()),
            (SymInt::Sym(a), SymInt::Sym(b)) if a == b => Some(SymInt::Int(0)),
            _ => None,
        }
    }

    /// `self == o` if decidable: equal monomials are equal, a symbol (≥ 1) is never
    /// equal to a value ≤ 0; a symbol against another value is undecided.
    pub fn equals(&self, o: &SymInt) -> Option<bool> {
        match (self, o) {
            (SymInt::Int(a), SymInt::Int(b)) => Some(a == b),
            (SymInt::Sym(a), SymInt::Sym(b)) if a == b => Some(true),
            (SymInt::Sym(_), SymInt::Int(v)) | (SymInt::Int(v), SymInt::Sym(_)) if *v <= 0 => {
                Some(false)
            }
            _ => None,
        }
    }
}

impl fmt::Display for SymInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymInt::Int(v) => write!(f, "{v}"),
            SymInt::Sym(d) => write!(f, "{d}"),
        }
    }
}

/// A 0-D or 1-D integer tensor of [`SymInt`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymInts {
    /// The entries (exactly one when `scalar`).
    pub vals: Vec<SymInt>,
    /// 0-D (a scalar) rather than 1-D.
    pub scalar: bool,
    /// The ONNX element type it stands for: `i64` or `i32`.
    pub dtype: DType,
}

impl SymInts {
    /// A 1-D i64 vector.
    pub fn vector(vals: Vec<SymInt>) -> SymInts {
        SymInts {
            vals,
            scalar: false,
            dtype: DType::I64,
        }
    }

    /// The shape of the tensor it stands for.
    pub fn shape(&self) -> Vec<u64> {
        if self.scalar {
            Vec::new()
        } else {
            vec![self.vals.len() as u64]
        }
    }

    /// The tensor, if every entry is static.
    pub fn to_tensor(&self) -> Option<Tensor> {
        let vals: Option<Vec<i64>> = self.vals.iter().map(SymInt::as_int).collect();
        Tensor::from_i64(self.dtype, self.shape(), &vals?).ok()
    }

    /// The entries of an integer tensor of rank ≤ 1.
    pub fn from_tensor(t: &Tensor) -> Option<SymInts> {
        if !matches!(t.dtype(), DType::I64 | DType::I32) || t.shape().len() > 1 {
            return None;
        }
        Some(SymInts {
            vals: t.to_i64_vec().into_iter().map(SymInt::Int).collect(),
            scalar: t.shape().is_empty(),
            dtype: t.dtype(),
        })
    }
}

impl fmt::Display for SymInts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.vals.iter().map(ToString::to_string).collect();
        if self.scalar {
            write!(f, "{}", parts.join(""))
        } else {
            write!(f, "[{}]", parts.join(", "))
        }
    }
}

impl OVal {
    /// The value of `ints`: a constant if every entry is static, else [`OVal::Dims`].
    pub fn ints(ints: SymInts) -> OVal {
        match ints.to_tensor() {
            Some(t) => OVal::Const(t),
            None => OVal::Dims(ints),
        }
    }

    /// The tensor, if the value is known at compile time in full.
    pub fn as_const(&self) -> Option<Tensor> {
        match self {
            OVal::Const(t) => Some(t.clone()),
            OVal::Dims(d) => d.to_tensor(),
            OVal::Node(_) => None,
        }
    }

    /// True for values known at compile time in full.
    pub fn is_const(&self) -> bool {
        match self {
            OVal::Const(_) => true,
            OVal::Dims(d) => d.vals.iter().all(|v| v.as_int().is_some()),
            OVal::Node(_) => false,
        }
    }

    /// The entries as [`SymInts`], for a [`OVal::Dims`] or an integer constant of rank ≤ 1.
    pub fn sym_ints(&self) -> Option<SymInts> {
        match self {
            OVal::Dims(d) => Some(d.clone()),
            OVal::Const(t) => SymInts::from_tensor(t),
            OVal::Node(_) => None,
        }
    }

    /// True for a symbolic [`OVal::Dims`].
    pub fn is_dims(&self) -> bool {
        matches!(self, OVal::Dims(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b() -> SymInt {
        SymInt::Sym(Dim::sym("B"))
    }

    #[test]
    fn symbolic_arithmetic_is_exact_or_refused() {
        let two_b = b().mul(&SymInt::Int(2));
        assert_eq!(
            two_b.as_ref().map(ToString::to_string).as_deref(),
            Some("2*B")
        );
        assert_eq!(
            two_b.as_ref().and_then(|x| x.div(&SymInt::Int(2))),
            Some(b())
        );
        assert_eq!(
            two_b.as_ref().and_then(|x| x.div(&b())),
            Some(SymInt::Int(2))
        );
        assert_eq!(b().div(&SymInt::Int(2)), None);
        assert_eq!(b().mul(&SymInt::Int(-1)), None);
        assert_eq!(b().mul(&SymInt::Int(0)), Some(SymInt::Int(0)));
        assert_eq!(b().add(&SymInt::Int(0)), Some(b()));
        assert_eq!(b().add(&SymInt::Int(1)), None);
        assert_eq!(b().sub(&b()), Some(SymInt::Int(0)));
        assert_eq!(b().equals(&SymInt::Int(-1)), Some(false));
        assert_eq!(b().equals(&SymInt::Int(0)), Some(false));
        assert_eq!(b().equals(&SymInt::Int(3)), None);
        assert_eq!(b().equals(&b()), Some(true));
    }

    #[test]
    fn normal_form_of_values() {
        let v = SymInts::vector(vec![SymInt::Int(3), SymInt::Int(-1)]);
        assert!(matches!(OVal::ints(v), OVal::Const(_)));
        let v = SymInts::vector(vec![b(), SymInt::Int(-1)]);
        let o = OVal::ints(v);
        assert!(o.is_dims() && !o.is_const());
        assert_eq!(
            o.sym_ints().map(|s| s.to_string()).as_deref(),
            Some("[B, -1]")
        );
    }

    proptest! {
        #[test]
        fn static_arithmetic_agrees_with_i64(a in -1000i64..1000, c in -1000i64..1000) {
            let (x, y) = (SymInt::Int(a), SymInt::Int(c));
            prop_assert_eq!(x.add(&y), Some(SymInt::Int(a + c)));
            prop_assert_eq!(x.sub(&y), Some(SymInt::Int(a - c)));
            prop_assert_eq!(x.mul(&y), Some(SymInt::Int(a * c)));
            prop_assert_eq!(x.div(&y), a.checked_div(c).map(SymInt::Int));
            prop_assert_eq!(x.equals(&y), Some(a == c));
        }

        #[test]
        fn products_divide_back(k in 1i64..1000) {
            let p = b().mul(&SymInt::Int(k));
            prop_assert_eq!(p.as_ref().and_then(|p| p.div(&SymInt::Int(k))), Some(b()));
            prop_assert_eq!(p.and_then(|p| p.div(&b())), Some(SymInt::Int(k)));
        }
    }
}
