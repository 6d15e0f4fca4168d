//! Shapes with static and symbolic dimensions.
//!
//! A dimension is a monomial: a static factor times a product of named symbols
//! (`256`, `B`, `2*B`, `B*N`). That is enough to express the reshapes that split and merge
//! batch and sequence axes (`[B,256,384] → [B*256,384]`) while keeping shape checks exact.
//! Sums of symbols are not representable; an op that would need one is refused by the
//! verifier with a message that says so.

use std::collections::BTreeMap;
use std::fmt;

/// One dimension: `factor * Π symbols`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Dim {
    factor: u64,
    /// Symbol names with their (positive) exponents, sorted by name.
    syms: Vec<(String, u32)>,
}

impl Dim {
    /// A static dimension.
    pub fn fixed(n: u64) -> Dim {
        Dim {
            factor: n,
            syms: Vec::new(),
        }
    }

    /// A symbolic dimension named `name` (e.g. `B`).
    pub fn sym(name: impl Into<String>) -> Dim {
        Dim {
            factor: 1,
            syms: vec![(name.into(), 1)],
        }
    }

    /// The value if the dimension is static.
    pub fn as_fixed(&self) -> Option<u64> {
        if self.syms.is_empty() {
            Some(self.factor)
        } else {
            None
        }
    }

    /// True if the dimension has no symbols.
    pub fn is_fixed(&self) -> bool {
        self.syms.is_empty()
    }

    /// The static factor.
    pub fn factor(&self) -> u64 {
        self.factor
    }

    /// The symbols and their exponents, sorted by name.
    pub fn symbols(&self) -> &[(String, u32)] {
        &self.syms
    }

    /// Product of two dimensions. `None` if the static factor overflows.
    pub fn checked_mul(&self, other: &Dim) -> Option<Dim> {
        let factor = self.factor.checked_mul(other.factor)?;
        if factor == 0 {
            return Some(Dim::fixed(0));
        }
        let mut map: BTreeMap<String, u32> = BTreeMap::new();
        for (s, e) in self.syms.iter().chain(other.syms.iter()) {
            *map.entry(s.clone()).or_insert(0) += e;
        }
        Some(Dim {
            factor,
            syms: map.into_iter().collect(),
        })
    }

    /// Exact quotient `self / other`, if `other` divides `self` as a monomial.
    pub fn checked_div(&self, other: &Dim) -> Option<Dim> {
        if other.factor == 0 || !self.factor.is_multiple_of(other.factor) {
            return None;
        }
        let mut map: BTreeMap<String, u32> = self.syms.iter().cloned().collect();
        for (s, e) in &other.syms {
            let have = map.get_mut(s)?;
            if *have < *e {
                return None;
            }
            *have -= e;
            if *have == 0 {
                map.remove(s);
            }
        }
        Some(Dim {
            factor: self.factor / other.factor,
            syms: map.into_iter().collect(),
        })
    }

    /// Substitute concrete values for symbols. `None` if a symbol has no binding or the
    /// product overflows.
    pub fn eval(&self, bindings: &BTreeMap<String, u64>) -> Option<u64> {
        let mut v = self.factor;
        for (s, e) in &self.syms {
            let b = *bindings.get(s)?;
            for _ in 0..*e {
                v = v.checked_mul(b)?;
            }
        }
        Some(v)
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::fixed(n)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Dim {
        Dim::sym(s)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        if self.factor != 1 || self.syms.is_empty() {
            write!(f, "{}", self.factor)?;
            first = false;
        }
        for (s, e) in &self.syms {
            for _ in 0..*e {
                if !first {
                    f.write_str("*")?;
                }
                f.write_str(s)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A tensor shape: a list of dimensions (rank 0 is a scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape of static dimensions.
    pub fn fixed(dims: &[u64]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::fixed(d)).collect())
    }

    /// The scalar shape `[]`.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// All dimensions as static values, if none is symbolic.
    pub fn as_fixed(&self) -> Option<Vec<u64>> {
        self.0.iter().map(Dim::as_fixed).collect()
    }

    /// Product of all dimensions, `None` on overflow.
    pub fn numel(&self) -> Option<Dim> {
        self.0
            .iter()
            .try_fold(Dim::fixed(1), |acc, d| acc.checked_mul(d))
    }

    /// Resolve a possibly negative axis (`-1` = last) against this rank.
    pub fn axis(&self, axis: i64) -> Option<usize> {
        normalize_axis(axis, self.rank())
    }

    /// Substitute symbol values, giving concrete extents.
    pub fn eval(&self, bindings: &BTreeMap<String, u64>) -> Option<Vec<u64>> {
        self.0.iter().map(|d| d.eval(bindings)).collect()
    }

    /// Numpy-style broadcast of two shapes (align from the right; a dimension of 1
    /// stretches). Equal symbolic dimensions broadcast to themselves; a symbol against a
    /// different non-1 dimension is an error, since it cannot be proven equal.
    pub fn broadcast(&self, other: &Shape) -> Result<Shape, BroadcastError> {
        let rank = self.rank().max(other.rank());
        let one = Dim::fixed(1);
        let mut out = Vec::with_capacity(rank);
        for i in 0..rank {
            let a = dim_from_right(self, rank, i).unwrap_or(&one);
            let b = dim_from_right(other, rank, i).unwrap_or(&one);
            let d = if a == b || *b == one {
                a.clone()
            } else if *a == one {
                b.clone()
            } else {
                return Err(BroadcastError {
                    left: self.clone(),
                    right: other.clone(),
                    axis: i,
                });
            };
            out.push(d);
        }
        Ok(Shape(out))
    }
}

fn dim_from_right(s: &Shape, rank: usize, i: usize) -> Option<&Dim> {
    let offset = rank - s.rank();
    if i < offset {
        None
    } else {
        s.0.get(i - offset)
    }
}

/// Resolve `axis` in `[-rank, rank)` to `[0, rank)`.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Some(a as usize)
    } else {
        None
    }
}

/// Two shapes that cannot be broadcast together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shapes {left} and {right} do not broadcast (dimension {axis} of the aligned result)")]
pub struct BroadcastError {
    /// Left operand.
    pub left: Shape,
    /// Right operand.
    pub right: Shape,
    /// Aligned axis where they disagree.
    pub axis: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<Vec<Dim>> for Shape {
    fn from(v: Vec<Dim>) -> Shape {
        Shape(v)
    }
}

/// The type of a value: element type and shape, written `f32[B,256,384]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TensorType {
    /// Element type.
    pub dtype: crate::DType,
    /// Shape.
    pub shape: Shape,
}

impl TensorType {
    /// Build a type.
    pub fn new(dtype: crate::DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[&str]) -> Shape {
        Shape(
            d.iter()
                .map(|x| match x.parse::<u64>() {
                    Ok(n) => Dim::fixed(n),
                    Err(_) => Dim::sym(*x),
                })
                .collect(),
        )
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(
            s(&["B", "1", "4"]).broadcast(&s(&["3", "1"])).unwrap(),
            s(&["B", "3", "4"])
        );
        assert_eq!(s(&["B"]).broadcast(&s(&["B"])).unwrap(), s(&["B"]));
        assert!(s(&["B"]).broadcast(&s(&["N"])).is_err());
        assert!(s(&["2"]).broadcast(&s(&["3"])).is_err());
        assert_eq!(s(&[]).broadcast(&s(&["5"])).unwrap(), s(&["5"]));
    }

    #[test]
    fn monomials() {
        let b = Dim::sym("B");
        let d = b.checked_mul(&Dim::fixed(256)).unwrap();
        assert_eq!(d.to_string(), "256*B");
        assert_eq!(d.checked_div(&Dim::fixed(256)).unwrap(), b);
        assert_eq!(d.checked_div(&b).unwrap(), Dim::fixed(256));
        assert!(d.checked_div(&Dim::sym("N")).is_none());
        let bn = b.checked_mul(&Dim::sym("N")).unwrap();
        assert_eq!(bn.to_string(), "B*N");
        let mut m = BTreeMap::new();
        m.insert("B".to_string(), 2);
        m.insert("N".to_string(), 5);
        assert_eq!(bn.eval(&m), Some(10));
    }
}
