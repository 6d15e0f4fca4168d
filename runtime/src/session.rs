//! `Session`: runs a loaded plan.

use crate::bind::bind_inputs;
use crate::error::RuntimeError;
use crate::exec::cpu::CpuExecutor;
#[cfg(feature = "cuda")]
use crate::exec::cuda::CudaExecutor;
use crate::plan::Plan;
use dqc_codegen::cpu::Bindings;
use dqc_ir::Tensor;

/// Where a session runs its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The plan's own target: the CPU for `cpu` plans, GPU 0 for GPU plans.
    #[default]
    Auto,
    /// The host CPU (Cranelift), whatever the plan's target: a plan's program is target
    /// independent, so a GPU plan runs here too (`dqc-run check` compares the two).
    Cpu,
    /// The CUDA GPU of this ordinal; needs a GPU plan and the `cuda` feature.
    Cuda(usize),
}

/// The executor behind a session.
enum Exec {
    Cpu(CpuExecutor),
    #[cfg(feature = "cuda")]
    Cuda(Box<CudaExecutor>),
}

/// An executable instance of a plan: the activation arena, the resolved weights and the
/// kernels compiled or loaded (on the CPU, one compilation per distinct set of symbol
/// values; on a GPU, the plan's PTX modules and the weights uploaded once).
///
/// Runs take `&self`; concurrent runs on one session are serialized on its arena.
pub struct Session {
    plan: Plan,
    exec: Exec,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("plan", &self.plan).finish()
    }
}

impl Session {
    /// Prepare `plan` for execution on its own target ([`Device::Auto`]): see
    /// [`Session::on_device`].
    pub fn new(plan: &Plan) -> Result<Session, RuntimeError> {
        Session::on_device(plan, Device::Auto)
    }

    /// Prepare `plan` for execution on `device`: allocate its arena and resolve (on a GPU:
    /// upload) its weights; on a GPU also load the PTX.
    ///
    /// Refuses: a GPU plan when this runtime was built without the `cuda` feature
    /// ([`RuntimeError::UnsupportedTarget`]); [`Device::Cuda`] for a `cpu` plan
    /// ([`RuntimeError::NotGpuPlan`]); on a GPU, everything the CUDA executor refuses (no
    /// driver, a GPU that cannot run the plan's architecture, PTX that does not load).
    pub fn on_device(plan: &Plan, device: Device) -> Result<Session, RuntimeError> {
        let target = plan.target();
        let exec = match device {
            Device::Cpu => Exec::Cpu(CpuExecutor::new(plan)?),
            Device::Auto if target.is_cpu() => Exec::Cpu(CpuExecutor::new(plan)?),
            Device::Cuda(_) if target.is_cpu() => return Err(RuntimeError::NotGpuPlan),
            Device::Auto | Device::Cuda(_) => {
                #[cfg(feature = "cuda")]
                {
                    let ordinal = match device {
                        Device::Cuda(n) => n,
                        Device::Auto | Device::Cpu => 0,
                    };
                    Exec::Cuda(Box::new(CudaExecutor::new(plan, ordinal)?))
                }
                #[cfg(not(feature = "cuda"))]
                return Err(RuntimeError::UnsupportedTarget {
                    target: target.name.to_string(),
                });
            }
        };
        Ok(Session {
            plan: plan.clone(),
            exec,
        })
    }

    /// Where this session runs, in words (`cpu`, or the GPU's name, architecture and
    /// driver version).
    pub fn device_description(&self) -> String {
        match &self.exec {
            Exec::Cpu(_) => "cpu (Cranelift)".into(),
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => c.describe(),
        }
    }

    /// The GPU this session runs on, if any.
    pub fn gpu(&self) -> Option<&crate::gpu::DeviceArch> {
        match &self.exec {
            Exec::Cpu(_) => None,
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => Some(c.device()),
        }
    }

    /// Whether this session runs on a GPU.
    pub fn is_gpu(&self) -> bool {
        match &self.exec {
            Exec::Cpu(_) => false,
            #[cfg(feature = "cuda")]
            Exec::Cuda(_) => true,
        }
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
        match &self.exec {
            Exec::Cpu(c) => c.run(p, &bound.inputs, &bound.bindings),
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => c.run(p, &bound.inputs, &bound.bindings),
        }
    }

    /// On a GPU session: run once on `inputs` (checked as [`Session::run`] checks them),
    /// then time `iters` forwards of the kernels alone (inputs already on the device, no
    /// copies), each between two CUDA events, after `warmup` untimed ones; with `graph`,
    /// each forward is one launch of a CUDA graph captured from the kernel sequence.
    /// Returns the milliseconds of each forward; `None` on a CPU session (time
    /// [`Session::run`] there).
    pub fn time_device(
        &self,
        inputs: &[(&str, &Tensor)],
        warmup: usize,
        iters: usize,
        graph: bool,
    ) -> Result<Option<Vec<f64>>, RuntimeError> {
        let p = &self.plan;
        let bound = bind_inputs(p.signature(), p.program(), inputs)?;
        let _ = (&bound, warmup, iters, graph);
        match &self.exec {
            Exec::Cpu(_) => Ok(None),
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => c
                .time(p, &bound.inputs, &bound.bindings, warmup, iters, graph)
                .map(Some),
        }
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
    /// On a GPU each kernel is timed with a pair of CUDA events (the kernels of one run
    /// still run back to back on one stream; [`Session::time_device`] is not profiled).
    pub fn enable_profiling(&mut self) {
        let n = self.plan.program().kernels.len();
        match &mut self.exec {
            Exec::Cpu(c) => c.enable_profiling(n),
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => c.enable_profiling(n),
        }
    }

    /// Accumulated `(time, runs)` per kernel, in kernel order, if profiling is on.
    pub fn profile(&self) -> Option<Vec<(std::time::Duration, u64)>> {
        match &self.exec {
            Exec::Cpu(c) => c.profile(),
            #[cfg(feature = "cuda")]
            Exec::Cuda(c) => c.profile(),
        }
    }

    /// Number of distinct symbol bindings compiled so far (always 0 on a GPU, where the
    /// PTX takes the symbols as parameters and is loaded once).
    pub fn compiled_variants(&self) -> usize {
        match &self.exec {
            Exec::Cpu(c) => c.variants(),
            #[cfg(feature = "cuda")]
            Exec::Cuda(_) => 0,
        }
    }
}
