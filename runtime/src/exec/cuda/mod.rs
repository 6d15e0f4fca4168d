//! The CUDA executor: runs a GPU plan's PTX kernels (see `dqc_codegen::ptx::abi` for the
//! contract with the generator).
//!
//! At session creation: load the driver, open the GPU, check its architecture against the
//! plan's target, JIT-load every PTX module and look up one entry per kernel, upload the
//! weights once and allocate the activation arena (`Program::arena_bytes`) and the fault
//! word. Per run: copy the inputs to device buffers (kept and reused while large enough),
//! zero the outputs' device buffers, clear the fault word, launch every kernel in order on one stream, copy the outputs back,
//! synchronize, and turn a nonzero fault word into [`RuntimeError::Fault`].

mod driver;

use crate::error::RuntimeError;
use crate::exec::arch::{DeviceArch, check_arch};
use crate::exec::device_layout::{Bases, buffer_addrs, buffer_sizes, pack_params};
use crate::plan::Plan;
use dqc_codegen::cpu::Bindings;
use dqc_codegen::ptx::abi::{self, LaunchConfig};
use dqc_codegen::spec::{BufferKind, Program};
use dqc_ir::tensor::Storage;
use dqc_ir::{Target, Tensor};
use driver::{DeviceMem, Event, Gpu, Module, Stream, describe, driver_err};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Dynamic shared memory a kernel may use without opting in.
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

/// A kernel's entry.
struct Function {
    raw: cudarc::driver::sys::CUfunction,
}

// SAFETY: a function handle is an identifier valid in its context on any thread; it is
// used only while the module that owns it is loaded (both live in the executor).
unsafe impl Send for Function {}
// SAFETY: as above.
unsafe impl Sync for Function {}

/// Per-run device buffers and per-kernel launch state, behind the executor's lock.
#[derive(Default)]
struct State {
    /// Device copies of the inputs, by signature position.
    inputs: Vec<Option<DeviceMem>>,
    /// Device buffers of the outputs, by signature position.
    outputs: Vec<Option<DeviceMem>>,
    /// The dynamic shared-memory limit set on each kernel so far.
    shared_set: Vec<u32>,
}

/// Runs a GPU plan on one CUDA device.
pub(crate) struct CudaExecutor {
    // Field order is drop order: everything on the device goes before `gpu` releases the
    // context (and `Drop` binds the context first).
    state: Mutex<State>,
    functions: Vec<Function>,
    modules: Vec<Module>,
    /// The uploaded weights (kept alive; kernels address them through `weight_addr`).
    _weights: Vec<DeviceMem>,
    /// Device address of each weight buffer (0 for other buffers).
    weight_addr: Vec<u64>,
    arena: DeviceMem,
    fault: DeviceMem,
    stream: Stream,
    target: Target,
    /// Synchronize after every kernel (`DQC_CUDA_SYNC=1`) to name a kernel that faults.
    sync_each: bool,
    /// Per-kernel accumulated time (CUDA events) and run count, when profiling is on.
    profile: Option<Mutex<Vec<(Duration, u64)>>>,
    gpu: Gpu,
}

impl Drop for CudaExecutor {
    fn drop(&mut self) {
        // The fields free device memory, unload modules and destroy the stream next; they
        // need the context current on this thread and no work in flight.
        if self.gpu.bind().is_ok() {
            let _ = self.stream.synchronize();
        }
    }
}

fn first_panic_line(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the CUDA bindings panicked".into())
}

impl CudaExecutor {
    /// Prepare `plan` on GPU `ordinal`. Refuses: no driver ([`RuntimeError::NoDriver`]), a
    /// GPU that cannot run the plan's architecture ([`RuntimeError::ArchMismatch`]), PTX
    /// the driver cannot load ([`RuntimeError::PtxLoad`], with the JIT log), missing
    /// modules or entries, weights that do not fit.
    pub(crate) fn new(plan: &Plan, ordinal: usize) -> Result<CudaExecutor, RuntimeError> {
        // The bindings panic on a missing library or entry point; `load_driver` checks both
        // first, and this turns anything it could not foresee into an error as well.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            CudaExecutor::create(plan, ordinal)
        }))
        .unwrap_or_else(|p| {
            Err(RuntimeError::NoDriver {
                detail: first_panic_line(p.as_ref()),
            })
        })
    }

    fn create(plan: &Plan, ordinal: usize) -> Result<CudaExecutor, RuntimeError> {
        driver::load_driver()?;
        let gpu = Gpu::open(ordinal)?;
        let target = plan.target();
        check_arch(&target, &gpu.arch)?;
        let program = plan.program();
        let mut modules = Vec::new();
        let mut module_index: BTreeMap<&str, usize> = BTreeMap::new();
        let entries = abi::entry_names(program);
        let mut functions = Vec::with_capacity(program.kernels.len());
        for (i, k) in program.kernels.iter().enumerate() {
            let mname = abi::module_name(&k.body);
            let mi = match module_index.get(mname) {
                Some(&mi) => mi,
                None => {
                    let ptx = plan
                        .ptx_modules()
                        .iter()
                        .find(|m| m.name == mname)
                        .ok_or_else(|| RuntimeError::MissingModule {
                            index: i,
                            kernel: k.name.clone(),
                            module: mname.to_string(),
                        })?;
                    modules.push(Module::load(mname, &ptx.text)?);
                    module_index.insert(mname, modules.len() - 1);
                    modules.len() - 1
                }
            };
            // kernels with identical code share the first one's entry (abi::entry_names)
            let entry = entries
                .get(i)
                .cloned()
                .unwrap_or_else(|| abi::entry_name(i));
            let raw = modules
                .get(mi)
                .ok_or_else(|| RuntimeError::MissingModule {
                    index: i,
                    kernel: k.name.clone(),
                    module: mname.to_string(),
                })?
                .function(&entry)
                .map_err(|e| RuntimeError::PtxLoad {
                    module: mname.to_string(),
                    message: format!(
                        "entry `{entry}` of kernel #{i} `{}` not found: {}",
                        k.name,
                        describe(e)
                    ),
                    log: String::new(),
                })?;
            functions.push(Function { raw });
        }
        // Everything at creation goes through the executor's stream, which does not
        // synchronize with the legacy default stream, and is waited for before returning.
        let stream = Stream::new()?;
        let (weights, weight_addr) = upload_weights(plan, &stream)?;
        let arena = DeviceMem::alloc(program.arena_bytes, "activation arena")?;
        // Zeroed once, like the CPU executor's arena.
        stream
            .memset(arena.addr(), 0, arena.len())
            .map_err(driver_err("clearing the activation arena"))?;
        let fault = DeviceMem::alloc(4, "fault word")?;
        stream
            .synchronize()
            .map_err(driver_err("uploading the weights"))?;
        let sync_each = std::env::var("DQC_CUDA_SYNC").is_ok_and(|v| !v.is_empty() && v != "0");
        Ok(CudaExecutor {
            state: Mutex::new(State {
                shared_set: vec![DEFAULT_SHARED_LIMIT; program.kernels.len()],
                ..State::default()
            }),
            functions,
            modules,
            _weights: weights,
            weight_addr,
            arena,
            fault,
            stream,
            target,
            sync_each,
            profile: None,
            gpu,
        })
    }

    /// Time every kernel of every later [`CudaExecutor::run`] with CUDA events (an event
    /// pair per kernel; [`CudaExecutor::profile`] reads the totals).
    pub(crate) fn enable_profiling(&mut self, kernels: usize) {
        self.profile = Some(Mutex::new(vec![Default::default(); kernels]));
    }

    /// Accumulated `(time, runs)` per kernel, if profiling is on.
    pub(crate) fn profile(&self) -> Option<Vec<(Duration, u64)>> {
        self.profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// The GPU this executor runs on.
    pub(crate) fn device(&self) -> &DeviceArch {
        &self.gpu.arch
    }

    /// A one-line description: name, architecture, driver version.
    pub(crate) fn describe(&self) -> String {
        let a = &self.gpu.arch;
        format!(
            "{} ({}, driver CUDA {}, {} PTX modules)",
            a.name,
            a.sm(),
            driver::driver_version(),
            self.modules.len()
        )
    }

    /// Run the program on `inputs` (signature order, checked against the signature) under
    /// `bindings`; returns the outputs in signature order.
    pub(crate) fn run(
        &self,
        plan: &Plan,
        inputs: &[&Tensor],
        bindings: &Bindings,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.gpu.bind()?;
        let program = plan.program();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (sizes, addrs) = self.prepare(&mut state, program, inputs, bindings)?;
        self.clear_fault()?;
        let events = match &self.profile {
            Some(_) => Some(
                (0..=program.kernels.len())
                    .map(|_| timing(Event::new()))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        self.launch_all(
            &mut state,
            program,
            bindings,
            &addrs,
            self.sync_each,
            events.as_deref(),
        )?;
        // Queue the copies back, then wait once.
        let mut host: Vec<Vec<u8>> = Vec::with_capacity(program.outputs.len());
        for (pos, &id) in program.outputs.iter().enumerate() {
            let size = sizes.get(id as usize).copied().unwrap_or(0);
            let len =
                usize::try_from(size).map_err(|_| RuntimeError::Alloc(format!("{size} bytes")))?;
            let mut buf = vec![0u8; len];
            let src = state
                .outputs
                .get(pos)
                .and_then(|m| m.as_ref())
                .map(DeviceMem::addr)
                .ok_or_else(|| RuntimeError::Size {
                    buffer: format!("output {pos}"),
                    problem: "has no device buffer".into(),
                })?;
            if len > 0 {
                // SAFETY: the device buffer holds at least `size` bytes (ensured by
                // `prepare`); `buf` is not touched before the synchronize below.
                unsafe { self.stream.download(&mut buf, src) }
                    .map_err(driver_err("copying an output from the GPU"))?;
            }
            host.push(buf);
        }
        let word = self.finish()?;
        drop(state);
        if let (Some(ev), Some(p)) = (&events, &self.profile) {
            let mut p = p.lock().unwrap_or_else(PoisonError::into_inner);
            for (slot, pair) in p.iter_mut().zip(ev.windows(2)) {
                if let [a, b] = pair {
                    let ms = timing(a.elapsed_ms(b))?;
                    slot.0 += Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3);
                    slot.1 += 1;
                }
            }
        }
        if word != 0 {
            return Err(RuntimeError::Fault {
                message: abi::describe_fault(word, program),
            });
        }
        let mut result = Vec::with_capacity(host.len());
        for ((pos, &id), bytes) in program.outputs.iter().enumerate().zip(host) {
            result.push(crate::exec::output_tensor(plan, pos, id, bindings, |_| {
                Ok(Storage::Owned(Arc::from(bytes)))
            })?);
        }
        Ok(result)
    }

    /// Run once (checking the results as [`CudaExecutor::run`] does), then time `iters`
    /// forwards of the kernels alone, inputs already on the device, each between two CUDA
    /// events, after `warmup` untimed ones. With `graph`, the kernel sequence is captured
    /// once into a CUDA graph and each forward is one graph launch. Returns milliseconds
    /// per forward.
    pub(crate) fn time(
        &self,
        plan: &Plan,
        inputs: &[&Tensor],
        bindings: &Bindings,
        warmup: usize,
        iters: usize,
        graph: bool,
    ) -> Result<Vec<f64>, RuntimeError> {
        self.run(plan, inputs, bindings)?;
        let program = plan.program();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, addrs) = self.prepare(&mut state, program, inputs, bindings)?;
        self.stream
            .synchronize()
            .map_err(|e| RuntimeError::Execution {
                message: describe(e),
            })?;
        let captured = if graph {
            self.stream
                .begin_capture()
                .map_err(driver_err("starting a CUDA graph capture"))?;
            let launched = self.launch_all(&mut state, program, bindings, &addrs, false, None);
            let ended = self.stream.end_capture();
            launched?;
            Some(ended.map_err(driver_err("capturing the kernels into a CUDA graph"))?)
        } else {
            None
        };
        let forward = |state: &mut State| -> Result<(), RuntimeError> {
            match &captured {
                Some(g) => g
                    .launch(&self.stream)
                    .map_err(driver_err("launching the CUDA graph")),
                None => self.launch_all(state, program, bindings, &addrs, false, None),
            }
        };
        for _ in 0..warmup {
            forward(&mut state)?;
        }
        let (start, end) = (timing(Event::new())?, timing(Event::new())?);
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            timing(start.record(&self.stream))?;
            forward(&mut state)?;
            timing(end.record(&self.stream))?;
            ms.push(f64::from(timing(start.elapsed_ms(&end))?));
        }
        let word = self.finish()?;
        if word != 0 {
            return Err(RuntimeError::Fault {
                message: abi::describe_fault(word, program),
            });
        }
        Ok(ms)
    }

    /// Copy the inputs to their device buffers (growing them as needed), make sure every
    /// output has a device buffer, and compute every buffer's size and address.
    fn prepare(
        &self,
        state: &mut State,
        program: &Program,
        inputs: &[&Tensor],
        bindings: &Bindings,
    ) -> Result<(Vec<u64>, Vec<u64>), RuntimeError> {
        let sizes = buffer_sizes(program, bindings)?;
        state.inputs.resize_with(inputs.len(), || None);
        state.outputs.resize_with(program.outputs.len(), || None);
        for (i, b) in program.buffers.iter().enumerate() {
            let size = sizes.get(i).copied().unwrap_or(0);
            match &b.kind {
                BufferKind::Input { index } => {
                    let pos = *index as usize;
                    let t = inputs.get(pos).ok_or_else(|| RuntimeError::Size {
                        buffer: b.name.clone(),
                        problem: format!("input {index} was not given"),
                    })?;
                    if t.bytes().len() as u64 != size {
                        return Err(RuntimeError::Size {
                            buffer: b.name.clone(),
                            problem: format!(
                                "the input has {} bytes, the binding needs {size}",
                                t.bytes().len()
                            ),
                        });
                    }
                    let slot = state
                        .inputs
                        .get_mut(pos)
                        .ok_or_else(|| RuntimeError::Size {
                            buffer: b.name.clone(),
                            problem: format!("input {index} is not in the signature"),
                        })?;
                    let mem = ensure(slot, size, &b.name)?;
                    if size > 0 {
                        // SAFETY: `mem` holds at least `size` bytes; the tensor outlives the
                        // run, which synchronizes the stream before returning.
                        unsafe { self.stream.upload(mem.addr(), t.bytes()) }.map_err(
                            driver_err(format!("copying input `{}` to the GPU", b.name)),
                        )?;
                    }
                }
                BufferKind::Output { index } => {
                    let slot = state.outputs.get_mut(*index as usize).ok_or_else(|| {
                        RuntimeError::Size {
                            buffer: b.name.clone(),
                            problem: format!("output {index} is not in the output list"),
                        }
                    })?;
                    let mem = ensure(slot, size, &b.name)?;
                    // Outputs start zeroed, as on the CPU (where they are fresh pages).
                    let len = usize::try_from(size)
                        .map_err(|_| RuntimeError::Alloc(format!("{size} bytes")))?;
                    if len > 0 {
                        self.stream
                            .memset(mem.addr(), 0, len)
                            .map_err(driver_err(format!("clearing output `{}`", b.name)))?;
                    }
                }
                BufferKind::Weight { .. }
                | BufferKind::Activation { .. }
                | BufferKind::Alias { .. } => {}
            }
        }
        let input_addrs: Vec<u64> = state
            .inputs
            .iter()
            .map(|m| m.as_ref().map_or(0, DeviceMem::addr))
            .collect();
        let output_addrs: Vec<u64> = state
            .outputs
            .iter()
            .map(|m| m.as_ref().map_or(0, DeviceMem::addr))
            .collect();
        let addrs = buffer_addrs(
            program,
            &Bases {
                arena: self.arena.addr(),
                weights: &self.weight_addr,
                inputs: &input_addrs,
                outputs: &output_addrs,
            },
        )?;
        Ok((sizes, addrs))
    }

    fn clear_fault(&self) -> Result<(), RuntimeError> {
        self.stream
            .memset(self.fault.addr(), 0, 4)
            .map_err(driver_err("clearing the fault word"))
    }

    /// Queue the fault word's copy, synchronize, and return it.
    fn finish(&self) -> Result<u32, RuntimeError> {
        let mut word = [0u8; 4];
        // SAFETY: the fault buffer holds at least 4 bytes; `word` lives until the
        // synchronize below.
        unsafe { self.stream.download(&mut word, self.fault.addr()) }
            .map_err(driver_err("reading the fault word"))?;
        self.stream
            .synchronize()
            .map_err(|e| RuntimeError::Execution {
                message: describe(e),
            })?;
        Ok(u32::from_le_bytes(word))
    }

    /// Launch every kernel in order; with `sync_each`, wait after each one so that an
    /// execution error names its kernel; with `events` (one more than the kernels), record
    /// event `i` before kernel `i` and the last after all.
    fn launch_all(
        &self,
        state: &mut State,
        program: &Program,
        bindings: &Bindings,
        addrs: &[u64],
        sync_each: bool,
        events: Option<&[Event]>,
    ) -> Result<(), RuntimeError> {
        let record = |i: usize| match events.and_then(|e| e.get(i)) {
            Some(e) => timing(e.record(&self.stream)),
            None => Ok(()),
        };
        for (i, spec) in program.kernels.iter().enumerate() {
            record(i)?;
            let family = spec.body.family();
            let config_err = |problem: String| RuntimeError::LaunchConfig {
                index: i,
                name: spec.name.clone(),
                family: family.to_string(),
                problem,
            };
            let cfg: LaunchConfig = abi::launch_config(program, i, bindings, &self.target)
                .map_err(|e| config_err(e.to_string()))?;
            if cfg.shared_bytes > self.gpu.max_shared_optin {
                return Err(config_err(format!(
                    "{cfg} needs more shared memory than the GPU allows per block ({} B)",
                    self.gpu.max_shared_optin
                )));
            }
            let f = self
                .functions
                .get(i)
                .ok_or_else(|| config_err("has no loaded entry".into()))?;
            let launch_err = |message: String| RuntimeError::Launch {
                index: i,
                name: spec.name.clone(),
                family: family.to_string(),
                config: cfg.to_string(),
                message,
            };
            if let Some(set) = state.shared_set.get_mut(i)
                && cfg.shared_bytes > *set
            {
                driver::set_max_dynamic_shared(f.raw, cfg.shared_bytes).map_err(|e| {
                    launch_err(format!(
                        "setting the dynamic shared memory limit: {}",
                        describe(e)
                    ))
                })?;
                *set = cfg.shared_bytes;
            }
            let mut params = pack_params(self.fault.addr(), i, spec, addrs, program, bindings)?;
            // SAFETY: `params` follow the entry's parameter list (abi: fault word, kernel
            // index, one address per argument, one i64 per symbol); every address points into a live
            // device allocation of at least the size the buffer needs under `bindings`
            // (arena at the maxima, inputs and outputs sized by `prepare`, weights
            // uploaded whole); they stay alive until the stream is synchronized.
            unsafe {
                driver::launch(
                    f.raw,
                    cfg.grid,
                    cfg.block,
                    cfg.shared_bytes,
                    &self.stream,
                    &mut params,
                )
            }
            .map_err(|e| launch_err(describe(e)))?;
            if sync_each {
                self.stream
                    .synchronize()
                    .map_err(|e| launch_err(format!("while running: {}", describe(e))))?;
            }
        }
        record(program.kernels.len())
    }
}

/// A driver error while timing.
fn timing<T>(r: Result<T, cudarc::driver::result::DriverError>) -> Result<T, RuntimeError> {
    r.map_err(driver_err("timing with CUDA events"))
}

/// Make `slot` hold a device buffer of at least `size` bytes.
fn ensure<'a>(
    slot: &'a mut Option<DeviceMem>,
    size: u64,
    what: &str,
) -> Result<&'a DeviceMem, RuntimeError> {
    let big_enough = slot.as_ref().is_some_and(|m| m.len() as u64 >= size);
    if !big_enough {
        *slot = None;
        *slot = Some(DeviceMem::alloc(size, what)?);
    }
    slot.as_ref()
        .ok_or_else(|| RuntimeError::Alloc(what.to_string()))
}

/// Upload each distinct weight once; returns the allocations and each buffer's address.
/// The copies are queued on `stream`; the caller synchronizes it while `plan` (which owns
/// the bytes) is alive.
fn upload_weights(
    plan: &Plan,
    stream: &Stream,
) -> Result<(Vec<DeviceMem>, Vec<u64>), RuntimeError> {
    let program = plan.program();
    let mut mems: Vec<DeviceMem> = Vec::new();
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    let mut addr = vec![0u64; program.buffers.len()];
    for (i, b) in program.buffers.iter().enumerate() {
        let BufferKind::Weight { name } = &b.kind else {
            continue;
        };
        let a = match by_name.get(name.as_str()) {
            Some(&a) => a,
            None => {
                let bytes = plan.weight_bytes(name).ok_or_else(|| RuntimeError::Size {
                    buffer: b.name.clone(),
                    problem: format!("weight `{name}` is not in the plan"),
                })?;
                let what = format!("weight `{name}`");
                let mem = DeviceMem::alloc(bytes.len() as u64, &what)?;
                if !bytes.is_empty() {
                    // SAFETY: `mem` holds `bytes.len()` bytes; the plan keeps `bytes` alive
                    // and unchanged until the caller synchronizes the stream.
                    unsafe { stream.upload(mem.addr(), bytes) }
                        .map_err(driver_err(format!("copying {what} to the GPU")))?;
                }
                let a = mem.addr();
                mems.push(mem);
                by_name.insert(name, a);
                a
            }
        };
        if let Some(slot) = addr.get_mut(i) {
            *slot = a;
        }
    }
    Ok((mems, addr))
}

/// Whether the CUDA driver can be loaded and initialized here (for tests and `dqc-run`).
pub(crate) fn driver_available() -> Result<(), RuntimeError> {
    std::panic::catch_unwind(driver::load_driver).unwrap_or_else(|p| {
        Err(RuntimeError::NoDriver {
            detail: first_panic_line(p.as_ref()),
        })
    })
}
