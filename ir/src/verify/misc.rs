//! Caching rules: cache_write passes its operand's type through; step_gate takes `fresh`
//! and `cached` of one type, returns it, and needs a well-formed schedule (`every` with
//! `period >= 1`; `steps` sorted, unique and containing step 0). Sources (`input`,
//! `constant`, `cache_read`) return their declared type and are handled in `infer_op`.

use super::{InferError, operand};
use crate::op::StepSchedule;
use crate::shape::TensorType;

pub(super) fn cache_write(inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
    Ok(vec![operand(inputs, 0)?.clone()])
}

/// Check that a schedule is well formed.
fn check_schedule(schedule: &StepSchedule) -> Result<(), InferError> {
    let bad = |reason: String| {
        Err(InferError::Attr {
            attr: "schedule",
            reason,
        })
    };
    match schedule {
        StepSchedule::Always => Ok(()),
        StepSchedule::Every { period, .. } if *period == 0 => {
            bad("has period 0, expected at least 1".to_string())
        }
        StepSchedule::Every { .. } => Ok(()),
        StepSchedule::Steps(steps) => {
            if steps.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
                return bad(format!("{steps:?} is not sorted and unique"));
            }
            if steps.first() != Some(&0) {
                return bad(format!(
                    "{steps:?} does not contain step 0 (the first step must compute)"
                ));
            }
            Ok(())
        }
    }
}

pub(super) fn step_gate(
    schedule: &StepSchedule,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>, InferError> {
    check_schedule(schedule)?;
    let fresh = operand(inputs, 0)?;
    let cached = operand(inputs, 1)?;
    if fresh != cached {
        return Err(InferError::Shape {
            operand: 1,
            shape: cached.shape.clone(),
            expected: format!(
                "the type {fresh} of operand 0 (cached is {cached}; fresh and cached must be of one type)"
            ),
        });
    }
    Ok(vec![fresh.clone()])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests
mod tests {
    use super::super::testutil::{err, ok1, says, ty};
    use crate::DType::{F16, F32, I64};
    use crate::Tensor;
    use crate::op::{Op, StepSchedule};

    fn gate(schedule: StepSchedule) -> Op {
        Op::StepGate { schedule }
    }

    #[test]
    fn sources() {
        let t = ty(F32, "B,4");
        assert_eq!(
            ok1(
                &Op::Input {
                    index: 0,
                    ty: t.clone()
                },
                &[]
            ),
            t
        );
        let input = Op::Input {
            index: 0,
            ty: t.clone(),
        };
        says(&err(&input, &[t.clone()]), &["expected 0 operands, got 1"]);
        let c = Tensor::from_i64(I64, vec![2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(ok1(&Op::Constant(c.clone()), &[]), ty(I64, "2,3"));
        says(
            &err(&Op::Constant(c), &[t.clone()]),
            &["expected 0 operands, got 1"],
        );
        let read = Op::CacheRead {
            slot: "blk0".into(),
            ty: t.clone(),
        };
        assert_eq!(ok1(&read, &[]), t);
        says(&err(&read, &[t.clone()]), &["expected 0 operands, got 1"]);
    }

    #[test]
    fn cache_write_passes_through() {
        let t = ty(F16, "B,256,384");
        let w = Op::CacheWrite { slot: "s".into() };
        assert_eq!(ok1(&w, &[t.clone()]), t);
        says(&err(&w, &[]), &["expected 1 operands, got 0"]);
    }

    #[test]
    fn step_gate_rule() {
        let t = ty(F16, "B,256,384");
        for s in [
            StepSchedule::Always,
            StepSchedule::Every {
                period: 2,
                warmup: 3,
            },
            StepSchedule::Steps(vec![0, 5, 9]),
        ] {
            assert_eq!(ok1(&gate(s), &[t.clone(), t.clone()]), t);
        }
        let m = err(
            &gate(StepSchedule::Always),
            &[t.clone(), ty(F32, "B,256,384")],
        );
        says(&m, &["operand 1", "f16[B,256,384]", "f32[B,256,384]"]);
        let zero = gate(StepSchedule::Every {
            period: 0,
            warmup: 1,
        });
        says(
            &err(&zero, &[t.clone(), t.clone()]),
            &["attribute `schedule`", "period 0"],
        );
        let unsorted = gate(StepSchedule::Steps(vec![0, 4, 4]));
        says(
            &err(&unsorted, &[t.clone(), t.clone()]),
            &["not sorted and unique"],
        );
        let no_zero = gate(StepSchedule::Steps(vec![1, 4]));
        says(
            &err(&no_zero, &[t.clone(), t.clone()]),
            &["does not contain step 0"],
        );
        let empty = gate(StepSchedule::Steps(vec![]));
        says(&err(&empty, &[t.clone(), t]), &["does not contain step 0"]);
    }
}
