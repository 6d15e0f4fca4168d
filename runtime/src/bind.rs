//! Checking a run's inputs against the signature and binding the symbolic dimensions.

use crate::error::RuntimeError;
use crate::plan::Signature;
use dqc_codegen::cpu::Bindings;
use dqc_codegen::spec::Program;
use dqc_ir::Tensor;
use std::collections::BTreeMap;

/// The inputs in signature order and the symbol values they imply.
pub(crate) struct Bound<'a> {
    pub inputs: Vec<&'a Tensor>,
    pub bindings: Bindings,
}

/// Check names (missing, unknown, duplicate), dtypes, ranks and static dims, solve every
/// symbol from the input shapes (dims such as `2*B` and `B*N` included), check that every
/// input agrees with the solution and that no symbol exceeds its maximum.
pub(crate) fn bind_inputs<'a>(
    sig: &Signature,
    program: &Program,
    given: &[(&str, &'a Tensor)],
) -> Result<Bound<'a>, RuntimeError> {
    let mut slots: Vec<Option<&'a Tensor>> = vec![None; sig.inputs.len()];
    for &(name, t) in given {
        let Some(pos) = sig.inputs.iter().position(|s| s.name == name) else {
            return Err(RuntimeError::UnknownInput {
                name: name.to_string(),
                inputs: sig
                    .inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if slots[pos].replace(t).is_some() {
            return Err(RuntimeError::DuplicateInput {
                name: name.to_string(),
            });
        }
    }
    let mut inputs = Vec::with_capacity(slots.len());
    for (s, t) in sig.inputs.iter().zip(slots) {
        let t = t.ok_or_else(|| RuntimeError::MissingInput {
            name: s.name.clone(),
            dtype: s.dtype,
            shape: s.shape.clone(),
        })?;
        if t.dtype() != s.dtype {
            return Err(RuntimeError::InputDType {
                name: s.name.clone(),
                expected: s.dtype,
                actual: t.dtype(),
            });
        }
        if t.shape().len() != s.shape.rank() {
            return Err(RuntimeError::InputShape {
                name: s.name.clone(),
                expected: s.shape.clone(),
                actual: t.shape().to_vec(),
                detail: format!("rank {}, expected rank {}", t.shape().len(), s.shape.rank()),
            });
        }
        inputs.push(t);
    }
    let bindings = solve(sig, &inputs)?;
    for sym in &program.symbols {
        let value = *bindings
            .get(&sym.name)
            .ok_or_else(|| RuntimeError::Unbound {
                symbol: sym.name.clone(),
            })?;
        if value > sym.max {
            return Err(RuntimeError::SymbolTooLarge {
                symbol: sym.name.clone(),
                value,
                max: sym.max,
            });
        }
    }
    Ok(Bound { inputs, bindings })
}

/// Solve the symbols dimension by dimension until every dimension is checked.
fn solve(sig: &Signature, inputs: &[&Tensor]) -> Result<Bindings, RuntimeError> {
    // (input position, axis); each is checked once all its symbols are bound.
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for (i, s) in sig.inputs.iter().enumerate() {
        for a in 0..s.shape.rank() {
            pending.push((i, a));
        }
    }
    let mut bindings: Bindings = BTreeMap::new();
    // Where each symbol's value came from, for messages.
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let before = pending.len();
        let mut still = Vec::new();
        for (i, a) in pending {
            let (Some(s), Some(t)) = (sig.inputs.get(i), inputs.get(i)) else {
                continue;
            };
            let (Some(dim), Some(&actual)) = (s.shape.dims().get(a), t.shape().get(a)) else {
                continue;
            };
            let shape_err = |detail: String| RuntimeError::InputShape {
                name: s.name.clone(),
                expected: s.shape.clone(),
                actual: t.shape().to_vec(),
                detail,
            };
            // The known part of the monomial and its unbound symbols.
            let mut known = dim.factor();
            let mut unbound: Vec<(&str, u32)> = Vec::new();
            for (sym, e) in dim.symbols() {
                match bindings.get(sym) {
                    Some(&v) => {
                        for _ in 0..*e {
                            known = known.checked_mul(v).ok_or_else(|| {
                                shape_err(format!("dimension {a} ({dim}) overflows"))
                            })?;
                        }
                    }
                    None => unbound.push((sym, *e)),
                }
            }
            match unbound.as_slice() {
                [] => {
                    if known != actual {
                        let from: Vec<String> = dim
                            .symbols()
                            .iter()
                            .filter_map(|(sym, _)| {
                                Some(format!(
                                    "{sym} = {} from {}",
                                    bindings.get(sym)?,
                                    origin.get(sym)?
                                ))
                            })
                            .collect();
                        let why = if from.is_empty() {
                            String::new()
                        } else {
                            format!(" with {}", from.join(", "))
                        };
                        return Err(shape_err(if dim.is_fixed() {
                            format!("dimension {a} is {actual}, expected {known}")
                        } else {
                            format!("dimension {a} is {actual}, but {dim} is {known}{why}")
                        }));
                    }
                }
                [(sym, 1)] => {
                    if known == 0 || actual % known != 0 || actual == 0 {
                        return Err(shape_err(format!(
                            "dimension {a} is {actual}, which gives no positive whole value of `{sym}` in {dim}"
                        )));
                    }
                    bindings.insert(sym.to_string(), actual / known);
                    origin.insert(sym.to_string(), format!("input `{}` dimension {a}", s.name));
                }
                _ => still.push((i, a)),
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(bindings);
        }
        if pending.len() == before {
            // No dimension could be solved: name a symbol that stays unknown.
            let symbol = pending
                .iter()
                .filter_map(|&(i, a)| sig.inputs.get(i)?.shape.dims().get(a))
                .flat_map(|d| d.symbols().iter())
                .map(|(s, _)| s.clone())
                .find(|s| !bindings.contains_key(s))
                .unwrap_or_default();
            return Err(RuntimeError::Unbound { symbol });
        }
    }
}
