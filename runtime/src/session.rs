//! `Session`: runs a loaded plan.

use crate::bind::bind_inputs;
use crate::error::RuntimeError;
use crate::exec::cpu::CpuExecutor;
use crate::plan::Plan;
use dqc_codegen::cpu::Bindings;
use dqc_ir::Tensor;

/// An executable instance of a plan: the activation arena, the resolved weights and the
/// kernels compiled so far (one compilation per distinct set of symbol values).
///
/// Runs take `&self`; concurrent runs on one session are serialized on its arena.
pub struct Session {
    plan: Plan,
    exec: CpuExecutor,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("plan", &self.plan).finish()
    }
}

impl Session {
    /// Prepare `plan` for execution: allocate its arena and resolve its weights.
    ///
    /// Refuses plans for targets other than `cpu` ([`RuntimeError::UnsupportedTarget`]);
    /// the CUDA executor comes later.
    pub fn new(plan: &Plan) -> Result<Session, RuntimeError> {
        let target = plan.target();
        if !target.is_cpu() {
            return Err(RuntimeError::UnsupportedTarget {
                target: target.name.to_string(),
            });
        }
        Ok(Session {
            plan: plan.clone(),
            exec: CpuExecutor::new(plan)?,
        })
    }

    /// The plan this session runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Check `inputs` against the signature and return the symbol values they imply,
    /// without running anything. Refuses (see [`RuntimeError`]): a missing, unknown or
    /// repeated name, a wrong dtype, a wrong rank or dimension, dimensions that disagree
    /// on a symbol's value, a symbol no input determines, a symbol above its maximum.
    pub fn bind(&self, inputs: &[(&str, &Tensor)]) -> Result<Bindings, RuntimeError> {
        let p = &self.plan;
        Ok(bind_inputs(p.signature(), p.program(), inputs)?.bindings)
    }

    /// Run the plan on `inputs` (by name, any order) and return the outputs, named and
    /// in signature order. The inputs are checked as [`Session::bind`] describes before
    /// anything runs; the kernels are compiled on the first run with a new set of symbol
    /// values. A failing kernel is reported with its index and name.
    pub fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let p = &self.plan;
        let bound = bind_inputs(p.signature(), p.program(), inputs)?;
        self.exec.run(p, &bound.inputs, &bound.bindings)
    }

    /// [`Session::run`] with owned names, as `dqc_ir::npz::read_npz` returns them.
    pub fn run_named(
        &self,
        inputs: &[(String, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        self.run(&refs)
    }

    /// Start timing every kernel of every later run (a small overhead per kernel);
    /// [`Session::profile`] reads the totals.
    pub fn enable_profiling(&mut self) {
        let n = self.plan.program().kernels.len();
        self.exec.enable_profiling(n);
    }

    /// Accumulated `(time, runs)` per kernel, in kernel order, if profiling is on.
    pub fn profile(&self) -> Option<Vec<(std::time::Duration, u64)>> {
        self.exec.profile()
    }

    /// Number of distinct symbol bindings compiled so far.
    pub fn compiled_variants(&self) -> usize {
        self.exec.variants()
    }
}
