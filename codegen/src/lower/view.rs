//! Strided views of buffers and affine coordinate maps: the algebra that folds movement
//! ops (transpose, slice, expand, reshape, split) into index maps.
//!
//! A [`View`] places the elements of a value in a buffer: element `coord` is at
//! `offset + Σ coord[d]·strides[d]`. A [`CMap`] says which coordinate of a value a
//! kernel's iteration coordinate `it` stands for: value axis `d` is
//! `off[d] + Σ coef·it[axis]` (a constant for a broadcast axis, a permutation for a
//! transpose, `start + step·it` for a slice, a linear combination for a split reshape).
//! Strides and coefficients are [`Term`]s (a signed multiple of a dimension monomial), so
//! symbolic shapes stay symbolic.

use crate::spec::{IndexMap, Poly, Term};
use dqc_ir::{Dim, Shape};

/// Placement of a value's elements in a buffer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct View {
    /// Element offset.
    pub offset: Poly,
    /// One stride per axis of the value.
    pub strides: Vec<Term>,
}

/// How one value axis depends on the iteration coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AxisMap {
    /// Constant part.
    pub off: Poly,
    /// `(iteration axis, coefficient)` pairs.
    pub terms: Vec<(u32, Term)>,
}

/// One [`AxisMap`] per value axis.
pub(crate) type CMap = Vec<AxisMap>;

/// `t` with a dimension of static factor 1 (the factor moved into the coefficient).
pub(crate) fn norm_term(coeff: i64, dim: &Dim) -> Option<Term> {
    let f = i64::try_from(dim.factor()).ok()?;
    let coeff = coeff.checked_mul(f)?;
    if coeff == 0 {
        return Some(Term::constant(0));
    }
    let dim = dim.checked_div(&Dim::fixed(dim.factor()))?;
    Some(Term { coeff, dim })
}

/// `a · b`.
pub(crate) fn mul_term(a: &Term, b: &Term) -> Option<Term> {
    let d = a.dim.checked_mul(&b.dim)?;
    norm_term(a.coeff.checked_mul(b.coeff)?, &d)
}

/// `p · t`.
pub(crate) fn mul_poly(p: &Poly, t: &Term) -> Option<Poly> {
    p.iter().map(|x| mul_term(x, t)).collect()
}

/// Merge terms of equal dimension and drop zeros.
pub(crate) fn simplify(p: &Poly) -> Poly {
    let mut out: Vec<Term> = Vec::new();
    for t in p {
        let Some(t) = norm_term(t.coeff, &t.dim) else {
            out.push(t.clone());
            continue;
        };
        if t.coeff == 0 {
            continue;
        }
        if let Some(o) = out.iter_mut().find(|o| o.dim == t.dim) {
            o.coeff += t.coeff;
        } else {
            out.push(t);
        }
    }
    out.retain(|t| t.coeff != 0);
    out
}

/// `p` as a single term, if it is one (0 for the empty sum).
pub(crate) fn as_term(p: &Poly) -> Option<Term> {
    let p = simplify(p);
    match p.as_slice() {
        [] => Some(Term::constant(0)),
        [t] => Some(t.clone()),
        _ => None,
    }
}

/// `p` as a constant, if it has no symbols.
pub(crate) fn as_const(p: &Poly) -> Option<i64> {
    let p = simplify(p);
    match p.as_slice() {
        [] => Some(0),
        [t] if t.dim.is_fixed() => Some(t.coeff * t.dim.factor() as i64),
        _ => None,
    }
}

/// `1 · d` as a term.
pub(crate) fn dim_term(d: &Dim) -> Option<Term> {
    norm_term(1, d)
}

/// Row-major strides of `shape`.
pub(crate) fn dense_strides(shape: &Shape) -> Option<Vec<Term>> {
    let mut out = vec![Term::constant(0); shape.rank()];
    let mut acc = Dim::fixed(1);
    for (i, d) in shape.dims().iter().enumerate().rev() {
        out[i] = dim_term(&acc)?;
        acc = acc.checked_mul(d)?;
    }
    Some(out)
}

impl View {
    /// The dense row-major view of a buffer of `shape`.
    pub fn dense(shape: &Shape) -> Option<View> {
        Some(View {
            offset: Vec::new(),
            strides: dense_strides(shape)?,
        })
    }

    /// True if this is the dense row-major layout of `shape` at offset 0 (size-1 axes may
    /// have any stride).
    pub fn is_dense(&self, shape: &Shape) -> bool {
        let Some(d) = dense_strides(shape) else {
            return false;
        };
        as_const(&self.offset) == Some(0)
            && self.strides.len() == d.len()
            && shape
                .dims()
                .iter()
                .zip(self.strides.iter().zip(&d))
                .all(|(n, (a, b))| {
                    *n == Dim::fixed(1) || simplify(&vec![a.clone()]) == simplify(&vec![b.clone()])
                })
    }

    /// The index map of this view read at coordinates `cmap` of a rank-`rank` space.
    pub fn index_map(&self, cmap: &CMap, rank: usize) -> Option<IndexMap> {
        if cmap.len() != self.strides.len() {
            return None;
        }
        let mut offset = self.offset.clone();
        let mut strides: Vec<Poly> = vec![Vec::new(); rank];
        for (am, s) in cmap.iter().zip(&self.strides) {
            offset.extend(mul_poly(&am.off, s)?);
            for (k, c) in &am.terms {
                strides.get_mut(*k as usize)?.push(mul_term(c, s)?);
            }
        }
        Some(IndexMap {
            offset: simplify(&offset),
            strides: strides.iter().map(as_term).collect::<Option<_>>()?,
        })
    }

    /// The view of `reshape(self)` from `from` to `to`, if it needs no copy: the axes of
    /// each group of `from` merged or split by the reshape must be contiguous with each
    /// other.
    pub fn reshape(&self, from: &Shape, to: &Shape) -> Option<View> {
        let one = Dim::fixed(1);
        let old: Vec<(Dim, Term)> = from
            .dims()
            .iter()
            .cloned()
            .zip(self.strides.iter().cloned())
            .filter(|(d, _)| *d != one)
            .collect();
        let new: Vec<(usize, Dim)> = to
            .dims()
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, d)| *d != one)
            .collect();
        if self.is_dense(from) {
            return Some(View {
                offset: self.offset.clone(),
                strides: dense_strides(to)?,
            });
        }
        let mut strides = vec![Term::constant(0); to.rank()];
        let (mut oi, mut ni) = (0, 0);
        while oi < old.len() || ni < new.len() {
            let mut po = old.get(oi)?.0.clone();
            let mut pn = new.get(ni)?.1.clone();
            let (mut oj, mut nj) = (oi + 1, ni + 1);
            while po != pn {
                if pn.checked_div(&po).is_some() && oj < old.len() {
                    po = po.checked_mul(&old[oj].0)?;
                    oj += 1;
                } else if po.checked_div(&pn).is_some() && nj < new.len() {
                    pn = pn.checked_mul(&new[nj].1)?;
                    nj += 1;
                } else {
                    return None;
                }
            }
            // The old group must be contiguous.
            for w in old[oi..oj].windows(2) {
                let want = mul_term(&w[1].1, &dim_term(&w[1].0)?)?;
                if simplify(&vec![w[0].1.clone()]) != simplify(&vec![want]) {
                    return None;
                }
            }
            let mut s = old.get(oj.checked_sub(1)?)?.1.clone();
            for k in (ni..nj).rev() {
                let (pos, d) = &new[k];
                strides[*pos] = s.clone();
                s = mul_term(&s, &dim_term(d)?)?;
            }
            oi = oj;
            ni = nj;
        }
        Some(View {
            offset: self.offset.clone(),
            strides,
        })
    }
}

/// The identity map of a rank-`rank` space.
pub(crate) fn identity(rank: usize) -> CMap {
    (0..rank)
        .map(|k| AxisMap {
            off: Vec::new(),
            terms: vec![(k as u32, Term::constant(1))],
        })
        .collect()
}

/// The constant axis map `c`.
pub(crate) fn const_axis(c: i64) -> AxisMap {
    AxisMap {
        off: if c == 0 {
            Vec::new()
        } else {
            vec![Term::constant(c)]
        },
        terms: Vec::new(),
    }
}

/// Map of an operand of shape `from` broadcast (numpy rules) to a value of shape `to`
/// whose map is `cmap`.
pub(crate) fn broadcast(cmap: &CMap, from: &Shape, to: &Shape) -> Option<CMap> {
    let shift = to.rank().checked_sub(from.rank())?;
    let one = Dim::fixed(1);
    from.dims()
        .iter()
        .enumerate()
        .map(|(d, n)| {
            let t = to.dims().get(d + shift)?;
            if *n == one && *t != one {
                Some(const_axis(0))
            } else {
                cmap.get(d + shift).cloned()
            }
        })
        .collect()
}

/// `a + b·k` for an axis map `a` scaled by `k` (used for split reshapes).
pub(crate) fn scale_axis(a: &AxisMap, k: &Term) -> Option<AxisMap> {
    Some(AxisMap {
        off: mul_poly(&a.off, k)?,
        terms: a
            .terms
            .iter()
            .map(|(ax, c)| Some((*ax, mul_term(c, k)?)))
            .collect::<Option<_>>()?,
    })
}

/// Sum of axis maps.
pub(crate) fn add_axis(a: &AxisMap, b: &AxisMap) -> AxisMap {
    let mut off = a.off.clone();
    off.extend(b.off.iter().cloned());
    let mut terms = a.terms.clone();
    terms.extend(b.terms.iter().cloned());
    AxisMap {
        off: simplify(&off),
        terms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[u64]) -> Shape {
        Shape::fixed(d)
    }

    fn consts(v: &View) -> Vec<i64> {
        v.strides
            .iter()
            .map(|t| as_const(&vec![t.clone()]).unwrap())
            .collect()
    }

    #[test]
    fn reshape_of_dense_is_dense() {
        let v = View::dense(&s(&[2, 3, 4])).unwrap();
        let r = v.reshape(&s(&[2, 3, 4]), &s(&[6, 4])).unwrap();
        assert_eq!(consts(&r), vec![4, 1]);
        let r = v.reshape(&s(&[2, 3, 4]), &s(&[2, 1, 12])).unwrap();
        assert_eq!(consts(&r)[0], 12);
        assert_eq!(consts(&r)[2], 1);
        let r = v.reshape(&s(&[2, 3, 4]), &s(&[2, 3, 2, 2])).unwrap();
        assert_eq!(consts(&r), vec![12, 4, 2, 1]);
    }

    #[test]
    fn reshape_of_transpose_merging_is_refused() {
        // [3, 4] transposed to [4, 3]: strides [1, 4]; merging to [12] needs a copy.
        let t = View {
            offset: vec![],
            strides: vec![Term::constant(1), Term::constant(4)],
        };
        assert!(t.reshape(&s(&[4, 3]), &s(&[12])).is_none());
        // Splitting an axis of the transposed view is fine.
        let r = t.reshape(&s(&[4, 3]), &s(&[2, 2, 3])).unwrap();
        assert_eq!(consts(&r), vec![2, 1, 4]);
    }

    #[test]
    fn symbolic_reshape() {
        let b = Dim::sym("B");
        let from = Shape(vec![b.clone(), Dim::fixed(16), Dim::fixed(32)]);
        let to = Shape(vec![
            b.checked_mul(&Dim::fixed(16)).unwrap(),
            Dim::fixed(32),
        ]);
        let v = View::dense(&from).unwrap();
        let r = v.reshape(&from, &to).unwrap();
        assert_eq!(consts(&r), vec![32, 1]);
        let back = r.reshape(&to, &from).unwrap();
        assert_eq!(consts(&back), vec![512, 32, 1]);
    }
}
