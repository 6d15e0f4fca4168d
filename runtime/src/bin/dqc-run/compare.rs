//! Comparing two tensors: max absolute and relative error and an allclose-style verdict.

use dqc_ir::Tensor;

/// How closely two outputs agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    /// Largest `|got - want|`.
    pub max_abs: f64,
    /// Largest `|got - want| / |want|` over elements where `want` is not tiny (below
    /// `1e-6 · max|want|` elements are skipped for this figure).
    pub max_rel: f64,
    /// Elements outside `atol + rtol·|want|` (or differing in NaN-ness; integers: unequal).
    pub bad: usize,
    /// Elements compared.
    pub len: usize,
    /// Largest `|want|` (the scale the default `atol` is taken from).
    pub scale: f64,
    /// The first element outside tolerance: flat index, got, want.
    pub first_bad: Option<(usize, f64, f64)>,
}

impl Diff {
    /// Whether every element is within tolerance.
    pub fn ok(&self) -> bool {
        self.bad == 0
    }
}

/// Why two tensors cannot be compared.
#[derive(Debug, PartialEq)]
pub enum Mismatch {
    /// Different shapes.
    Shape(Vec<u64>, Vec<u64>),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Shape(a, b) => write!(f, "shape {a:?} differs from the reference's {b:?}"),
        }
    }
}

/// Compare `got` with the reference `want`. Float elements pass within
/// `atol + rtol·|want|`, where `atol` defaults to `rtol · max|want|`: an error within `rtol`
/// of the tensor's scale passes anywhere (near the zeros of a sum, where elementwise
/// relative error means nothing), so the check is a max-norm relative error; NaN
/// must match NaN, infinities must be equal. Integer and bool outputs (both tensors of an
/// integer dtype) must be equal.
pub fn compare(
    got: &Tensor,
    want: &Tensor,
    rtol: f64,
    atol: Option<f64>,
) -> Result<Diff, Mismatch> {
    if got.shape() != want.shape() {
        return Err(Mismatch::Shape(got.shape().to_vec(), want.shape().to_vec()));
    }
    let exact = !got.dtype().is_float() && !want.dtype().is_float();
    let (g, w): (Vec<f64>, Vec<f64>) = if exact {
        (
            got.to_i64_vec().iter().map(|&v| v as f64).collect(),
            want.to_i64_vec().iter().map(|&v| v as f64).collect(),
        )
    } else {
        (
            got.to_f32_vec().iter().map(|&v| f64::from(v)).collect(),
            want.to_f32_vec().iter().map(|&v| f64::from(v)).collect(),
        )
    };
    let scale = w
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let atol = if exact {
        0.0
    } else {
        atol.unwrap_or(rtol * scale)
    };
    let tiny = 1e-6 * scale;
    let mut d = Diff {
        max_abs: 0.0,
        max_rel: 0.0,
        bad: 0,
        len: w.len(),
        scale,
        first_bad: None,
    };
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let before = d.bad;
        if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
            let same = (a.is_nan() && b.is_nan()) || a == b;
            if !same {
                d.bad += 1;
                d.max_abs = f64::INFINITY;
                d.first_bad.get_or_insert((i, a, b));
            }
            continue;
        }
        let e = (a - b).abs();
        d.max_abs = d.max_abs.max(e);
        if b.abs() > tiny {
            d.max_rel = d.max_rel.max(e / b.abs());
        }
        let tol = if exact { 0.0 } else { atol + rtol * b.abs() };
        if e > tol {
            d.bad += 1;
        }
        if d.bad > before && d.first_bad.is_none() {
            d.first_bad = Some((i, a, b));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dqc_ir::DType;

    fn f(v: &[f32]) -> Tensor {
        Tensor::from_f32(DType::F32, vec![v.len() as u64], v).unwrap()
    }

    #[test]
    fn equal_tensors_pass() {
        let d = compare(&f(&[1., -2., 0.]), &f(&[1., -2., 0.]), 1e-3, None).unwrap();
        assert_eq!(
            (d.max_abs, d.max_rel, d.bad, d.len, d.scale),
            (0.0, 0.0, 0, 3, 2.0)
        );
        assert!(d.ok());
    }

    #[test]
    fn relative_tolerance_applies_per_element() {
        // With atol 0: 100 vs 100.05 (rel 5e-4) passes at 1e-3; 1 vs 1.01 (rel 1e-2) fails.
        let d = compare(&f(&[100.05, 1.01]), &f(&[100., 1.]), 1e-3, Some(0.0)).unwrap();
        assert_eq!(d.bad, 1);
        assert!((d.max_rel - 0.01).abs() < 1e-6, "{d:?}");
        assert!((d.max_abs - 0.05).abs() < 1e-4, "{d:?}");
    }

    #[test]
    fn small_errors_near_zero_use_the_scale() {
        // atol = 1e-3 · 100 = 0.1: an error of 0.05 at a zero passes, 0.5 fails.
        let d = compare(&f(&[100., 0.05]), &f(&[100., 0.]), 1e-3, None).unwrap();
        assert!(d.ok(), "{d:?}");
        let d = compare(&f(&[100., 0.5]), &f(&[100., 0.]), 1e-3, None).unwrap();
        assert_eq!(d.bad, 1);
        let d = compare(&f(&[100., 0.5]), &f(&[100., 0.]), 1e-3, Some(1.0)).unwrap();
        assert!(d.ok());
        let d = compare(&f(&[100., 0.05]), &f(&[100., 0.]), 1e-3, Some(0.0)).unwrap();
        assert_eq!(d.bad, 1);
    }

    #[test]
    fn nan_must_match_nan() {
        let d = compare(&f(&[f32::NAN, 1.]), &f(&[f32::NAN, 1.]), 1e-3, None).unwrap();
        assert!(d.ok());
        let d = compare(&f(&[f32::NAN, 1.]), &f(&[0., 1.]), 1e-3, None).unwrap();
        assert_eq!(d.bad, 1);
        assert!(matches!(d.first_bad, Some((0, g, w)) if g.is_nan() && w == 0.0));
        assert!(d.max_abs.is_infinite());
        let d = compare(&f(&[f32::INFINITY]), &f(&[f32::INFINITY]), 1e-3, None).unwrap();
        assert!(d.ok());
        let d = compare(&f(&[f32::INFINITY]), &f(&[f32::NEG_INFINITY]), 1e-3, None).unwrap();
        assert_eq!(d.bad, 1);
    }

    #[test]
    fn integers_must_be_equal() {
        let a = Tensor::from_i64(DType::I64, vec![2], &[3, 4]).unwrap();
        let b = Tensor::from_i64(DType::I64, vec![2], &[3, 5]).unwrap();
        let d = compare(&a, &b, 0.5, None).unwrap();
        assert_eq!((d.bad, d.max_abs), (1, 1.0));
        assert_eq!(d.first_bad, Some((1, 4.0, 5.0)));
    }

    #[test]
    fn shapes_must_agree() {
        let e = compare(&f(&[1., 2.]), &f(&[1.]), 1e-3, None).unwrap_err();
        assert_eq!(e.to_string(), "shape [2] differs from the reference's [1]");
    }
}
