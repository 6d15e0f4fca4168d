//! Binding symbolic dimensions from the shapes of a run's inputs.

use crate::spec::Program;
use dqc_ir::{Dim, Tensor};
use std::collections::BTreeMap;

/// Why symbols could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Wrong number of inputs.
    #[error("the program takes {expected} inputs, {actual} were given")]
    InputCount {
        /// Inputs of the program.
        expected: usize,
        /// Inputs given.
        actual: usize,
    },
    /// An input has the wrong rank.
    #[error("input {index} (`{name}`): expected rank {expected}, got shape {actual:?}")]
    Rank {
        /// Position.
        index: usize,
        /// Buffer name.
        name: String,
        /// Declared rank.
        expected: usize,
        /// Given shape.
        actual: Vec<u64>,
    },
    /// A dimension disagrees with the declared one under the bindings found so far.
    #[error("input {index} (`{name}`) axis {axis}: declared {declared}, got {actual}")]
    Mismatch {
        /// Position.
        index: usize,
        /// Buffer name.
        name: String,
        /// Axis.
        axis: usize,
        /// Declared dimension.
        declared: String,
        /// Given extent.
        actual: u64,
    },
    /// A symbol no input shape determines.
    #[error("symbol `{0}` is not determined by the input shapes")]
    Unbound(String),
    /// A symbol bound above the maximum the program was planned for.
    #[error("symbol `{name}` = {value} exceeds its planned maximum {max}")]
    AboveMax {
        /// Symbol.
        name: String,
        /// Value found.
        value: u64,
        /// Planned maximum.
        max: u64,
    },
}

/// Infer the value of every symbol of `program`'s input shapes from the given tensors.
///
/// A dimension with a single unbound symbol of exponent 1 (`B`, `2*B`, `B*N` once `N` is
/// known) binds it; dimensions are visited repeatedly until nothing new is bound, then
/// every dimension is checked against the bindings. Symbols above their planned maximum
/// (`program.symbols`) are refused, since the arena was laid out for the maxima.
pub fn bind_symbols(
    program: &Program,
    inputs: &[Tensor],
) -> Result<BTreeMap<String, u64>, SymbolError> {
    if inputs.len() != program.inputs.len() {
        return Err(SymbolError::InputCount {
            expected: program.inputs.len(),
            actual: inputs.len(),
        });
    }
    let mut decl = Vec::new();
    for (index, (&id, t)) in program.inputs.iter().zip(inputs).enumerate() {
        let Some(b) = program.buffers.get(id as usize) else {
            return Err(SymbolError::Unbound(format!("input buffer {id}")));
        };
        if b.shape.rank() != t.shape().len() {
            return Err(SymbolError::Rank {
                index,
                name: b.name.clone(),
                expected: b.shape.rank(),
                actual: t.shape().to_vec(),
            });
        }
        for (axis, (d, &n)) in b.shape.dims().iter().zip(t.shape()).enumerate() {
            decl.push((index, b.name.clone(), axis, d.clone(), n));
        }
    }
    let mut bindings = BTreeMap::new();
    loop {
        let mut changed = false;
        for (_, _, _, d, n) in &decl {
            if let Some((s, v)) = solve(d, *n, &bindings) {
                bindings.insert(s, v);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (index, name, axis, d, n) in &decl {
        for (s, _) in d.symbols() {
            if !bindings.contains_key(s) {
                return Err(SymbolError::Unbound(s.clone()));
            }
        }
        if d.eval(&bindings) != Some(*n) {
            return Err(SymbolError::Mismatch {
                index: *index,
                name: name.clone(),
                axis: *axis,
                declared: d.to_string(),
                actual: *n,
            });
        }
    }
    for s in &program.symbols {
        match bindings.get(&s.name) {
            None => return Err(SymbolError::Unbound(s.name.clone())),
            Some(&v) if v > s.max => {
                return Err(SymbolError::AboveMax {
                    name: s.name.clone(),
                    value: v,
                    max: s.max,
                });
            }
            Some(_) => {}
        }
    }
    Ok(bindings)
}

/// The binding a dimension determines, if it has exactly one unbound symbol of exponent 1
/// and the rest divides the extent.
fn solve(d: &Dim, n: u64, bindings: &BTreeMap<String, u64>) -> Option<(String, u64)> {
    let unbound: Vec<&(String, u32)> = d
        .symbols()
        .iter()
        .filter(|(s, _)| !bindings.contains_key(s))
        .collect();
    let [(s, 1)] = unbound.as_slice() else {
        return None;
    };
    let mut rest = d.factor();
    for (x, e) in d.symbols() {
        if x == s {
            continue;
        }
        for _ in 0..*e {
            rest = rest.checked_mul(*bindings.get(x)?)?;
        }
    }
    if rest == 0 || !n.is_multiple_of(rest) {
        return None;
    }
    Some((s.clone(), n / rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Buffer, BufferKind, Symbol};
    use dqc_ir::{DType, Shape};

    fn program(shapes: &[Shape]) -> Program {
        let mut p = Program::default();
        for (i, s) in shapes.iter().enumerate() {
            p.buffers.push(Buffer {
                name: format!("in{i}"),
                dtype: DType::F32,
                shape: s.clone(),
                kind: BufferKind::Input { index: i as u32 },
            });
            p.inputs.push(i as u32);
        }
        p.symbols = vec![Symbol {
            name: "B".into(),
            max: 8,
        }];
        p
    }

    fn t(shape: &[u64]) -> Tensor {
        Tensor::zeros(DType::F32, shape.to_vec()).unwrap()
    }

    #[test]
    fn binds_from_a_multiple() {
        let two_b = Dim::sym("B").checked_mul(&Dim::fixed(2)).unwrap();
        let p = program(&[
            Shape(vec![two_b, Dim::fixed(3)]),
            Shape(vec![Dim::sym("B")]),
        ]);
        let b = bind_symbols(&p, &[t(&[8, 3]), t(&[4])]).unwrap();
        assert_eq!(b.get("B"), Some(&4));
        let err = bind_symbols(&p, &[t(&[8, 3]), t(&[5])]).unwrap_err();
        assert!(
            matches!(err, SymbolError::Mismatch { index: 1, .. }),
            "{err}"
        );
        let err = bind_symbols(&p, &[t(&[7, 3]), t(&[5])]).unwrap_err();
        assert!(
            matches!(err, SymbolError::Mismatch { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_above_max_and_bad_rank() {
        let p = program(&[Shape(vec![Dim::sym("B")])]);
        assert!(matches!(
            bind_symbols(&p, &[t(&[9])]),
            Err(SymbolError::AboveMax { value: 9, .. })
        ));
        assert!(matches!(
            bind_symbols(&p, &[t(&[2, 2])]),
            Err(SymbolError::Rank { .. })
        ));
    }
}
