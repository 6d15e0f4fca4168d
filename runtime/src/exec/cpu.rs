//! The CPU executor: one 64-byte-aligned activation arena, weights resolved once, kernels
//! JIT-compiled by `dqc_codegen::cpu` per distinct symbol binding and cached.

use crate::align::{AlignedBuf, is_aligned};
use crate::error::RuntimeError;
use crate::plan::Plan;
use crate::sizes::root_of;
use dqc_codegen::cpu::{Bindings, CpuError, CpuProgram, WeightRelease};
use dqc_codegen::spec::{BufferKind, Program};
use dqc_ir::Tensor;
use dqc_ir::tensor::Storage;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

/// What the executor needs from a code generator: compile a program under fixed symbol
/// values, then run its kernels one by one. [`Cranelift`] is the real one; tests plug in
/// a small interpreter to check the executor's buffer plumbing.
pub(crate) trait Backend: Send + Sync {
    /// A compiled program (run by a worker of the thread pool).
    type Compiled: Send + Sync;
    /// Compile every kernel of `program` for `bindings`; `release` is the plan's
    /// [`Plan::weight_release`].
    fn compile(
        program: &Program,
        bindings: &Bindings,
        release: Option<WeightRelease>,
    ) -> Result<Self::Compiled, CpuError>;
    /// Number of kernels compiled.
    fn len(c: &Self::Compiled) -> usize;
    /// Run kernel `index`.
    ///
    /// # Safety
    /// As [`CpuProgram::run_kernel`].
    unsafe fn run_kernel(
        c: &Self::Compiled,
        index: usize,
        args: &[*mut u8],
    ) -> Result<(), CpuError>;
}

/// The Cranelift backend of `dqc_codegen::cpu`.
pub(crate) struct Cranelift;

impl Backend for Cranelift {
    type Compiled = CpuProgram;
    fn compile(
        program: &Program,
        bindings: &Bindings,
        release: Option<WeightRelease>,
    ) -> Result<CpuProgram, CpuError> {
        let mut cpu = CpuProgram::compile(program, bindings)?;
        // The executor binds weights to the plan's bytes, mapped read-only for the
        // session's lifetime: kernels may keep packed copies across runs, and then let the
        // mapped pages go.
        cpu.set_weights_constant(true);
        cpu.set_weight_release(release);
        Ok(cpu)
    }
    fn len(c: &CpuProgram) -> usize {
        c.len()
    }
    unsafe fn run_kernel(c: &CpuProgram, index: usize, args: &[*mut u8]) -> Result<(), CpuError> {
        // SAFETY: forwarded contract.
        unsafe { c.run_kernel(index, args) }
    }
}

/// A program compiled for one binding, with every buffer's size under it.
struct Compiled<C> {
    cpu: C,
    /// Bytes of every buffer.
    sizes: Vec<u64>,
}

/// Argument pointers handed to the pool worker that runs a forward.
struct SendPtrs(Vec<*mut u8>);

// SAFETY: the pointers address buffers that live until the run returns (the caller waits
// for the worker); the kernels' own contract governs concurrent access.
unsafe impl Send for SendPtrs {}
// SAFETY: as above; the worker only reads the vector.
unsafe impl Sync for SendPtrs {}

impl SendPtrs {
    fn get(&self) -> &[*mut u8] {
        &self.0
    }
}

/// Storage of one output during a run.
enum OutBuf {
    Empty,
    Map(memmap2::MmapMut),
}

/// Output buffers that came back from dropped output tensors, for the next runs: a fresh
/// mapping costs a page fault (or, populated, a page clear) per page and a `munmap` every
/// run — a fifth of the time of a single 3 MiB-output GEMM.
type Spare = Arc<SpareList>;
type SpareList = Mutex<Vec<memmap2::MmapMut>>;

/// At most this many spare output buffers are kept per session.
const SPARE_OUTPUTS: usize = 16;

/// An output tensor's bytes: returned to its session's spares when the last tensor holding
/// it is dropped (if the session still exists and has room).
struct PooledOutput {
    map: Option<memmap2::MmapMut>,
    spare: std::sync::Weak<SpareList>,
}

impl dqc_ir::SharedBytes for PooledOutput {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl Drop for PooledOutput {
    fn drop(&mut self) {
        if let (Some(map), Some(spare)) = (self.map.take(), self.spare.upgrade()) {
            let mut spare = spare.lock().unwrap_or_else(PoisonError::into_inner);
            if spare.len() < SPARE_OUTPUTS {
                spare.push(map);
            }
        }
    }
}

/// A zeroed, writable buffer of `len` bytes for an output: a spare of that length (cleared)
/// or a new anonymous mapping with its pages populated.
fn output_buffer(spare: &Spare, len: usize) -> std::io::Result<memmap2::MmapMut> {
    let reused = {
        let mut spare = spare.lock().unwrap_or_else(PoisonError::into_inner);
        spare
            .iter()
            .position(|m| m.len() == len)
            .map(|i| spare.swap_remove(i))
    };
    match reused {
        Some(mut m) => {
            m.fill(0);
            Ok(m)
        }
        None => memmap2::MmapOptions::new().len(len).populate().map_anon(),
    }
}

/// Weights up to this size are copied out of a memory-mapped plan when a session starts.
/// Kernels read them on every run (biases, norm scales), while large GEMM weights are read
/// once, packed and then released from the mapping ([`Plan::weight_release`]); with
/// both in the mapping, each small read would map the file's pages around it (a whole
/// large folio, often 2 MiB) back in, and with them most of the released weights.
const SMALL_WEIGHT: usize = 256 * 1024;

/// Runs a plan's program on the host CPU.
pub(crate) struct CpuExecutor<B: Backend = Cranelift> {
    /// Address of each weight buffer's bytes (0 for other buffers); they live in the plan,
    /// which the session keeps alive, or in `small_weights`.
    weight_addr: Vec<usize>,
    /// Copies of a mapped plan's small weights (see [`SMALL_WEIGHT`]), 64-byte aligned.
    #[allow(dead_code, reason = "owns the bytes `weight_addr` points into")]
    small_weights: AlignedBuf,
    arena: Mutex<AlignedBuf>,
    compiled: Mutex<HashMap<Bindings, Arc<Compiled<B::Compiled>>>>,
    /// Per-kernel accumulated run time and run count, when profiling is on.
    profile: Option<Mutex<Vec<(std::time::Duration, u64)>>>,
    /// Output buffers of earlier runs, free again (see [`PooledOutput`]).
    spare: Spare,
    backend: PhantomData<B>,
}

impl<B: Backend> CpuExecutor<B> {
    /// Allocate the arena and resolve the weights of `plan`.
    pub(crate) fn new(plan: &Plan) -> Result<CpuExecutor<B>, RuntimeError> {
        let program = plan.program();
        let mut weights: Vec<(usize, &str, &[u8])> = Vec::new();
        for (i, b) in program.buffers.iter().enumerate() {
            if let BufferKind::Weight { name } = &b.kind {
                let bytes = plan.weight_bytes(name).ok_or_else(|| RuntimeError::Size {
                    buffer: b.name.clone(),
                    problem: format!("weight `{name}` is not in the plan"),
                })?;
                weights.push((i, name, bytes));
            }
        }
        // Small weights of a mapped plan: one copy per name, each at a 64-byte offset.
        let mut small: HashMap<&str, (usize, &[u8])> = HashMap::new();
        let mut small_len = 0usize;
        if plan.is_mapped() {
            for &(_, name, bytes) in &weights {
                if bytes.len() <= SMALL_WEIGHT && !small.contains_key(name) {
                    small.insert(name, (small_len, bytes));
                    small_len += bytes.len().next_multiple_of(64);
                }
            }
        }
        let mut small_weights = AlignedBuf::zeroed(small_len as u64)
            .map_err(|e| RuntimeError::Alloc(format!("small weights: {e}")))?;
        for &(off, bytes) in small.values() {
            small_weights.as_mut_slice()[off..off + bytes.len()].copy_from_slice(bytes);
        }
        let base = small_weights.as_mut_ptr() as usize;
        let mut weight_addr = vec![0usize; program.buffers.len()];
        for &(i, name, bytes) in &weights {
            weight_addr[i] = match small.get(name) {
                Some(&(off, _)) => base + off,
                None => bytes.as_ptr() as usize,
            };
        }
        let arena = AlignedBuf::zeroed(program.arena_bytes)
            .map_err(|e| RuntimeError::Alloc(format!("activation arena: {e}")))?;
        Ok(CpuExecutor {
            weight_addr,
            small_weights,
            arena: Mutex::new(arena),
            compiled: Mutex::new(HashMap::new()),
            profile: None,
            spare: Spare::default(),
            backend: PhantomData,
        })
    }

    /// Record the time of every kernel from now on (see [`CpuExecutor::profile`]).
    pub(crate) fn enable_profiling(&mut self, kernels: usize) {
        self.profile = Some(Mutex::new(vec![Default::default(); kernels]));
    }

    /// Accumulated `(time, runs)` per kernel, if profiling is on.
    pub(crate) fn profile(&self) -> Option<Vec<(std::time::Duration, u64)>> {
        self.profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Number of bindings compiled so far.
    pub(crate) fn variants(&self) -> usize {
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn compiled(
        &self,
        plan: &Plan,
        bindings: &Bindings,
    ) -> Result<Arc<Compiled<B::Compiled>>, RuntimeError> {
        let mut cache = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.get(bindings) {
            return Ok(Arc::clone(c));
        }
        let program = plan.program();
        let sizes = super::device_layout::buffer_sizes(program, bindings)?;
        let cpu = B::compile(program, bindings, plan.weight_release())
            .map_err(|source| RuntimeError::Compile { source })?;
        if B::len(&cpu) != program.kernels.len() {
            return Err(RuntimeError::Size {
                buffer: String::new(),
                problem: format!(
                    "the CPU backend compiled {} kernels of {}",
                    B::len(&cpu),
                    program.kernels.len()
                ),
            });
        }
        let c = Arc::new(Compiled { cpu, sizes });
        cache.insert(bindings.clone(), Arc::clone(&c));
        Ok(c)
    }

    /// Run the program on `inputs` (signature order, already checked against the
    /// signature) under `bindings`; returns the outputs in signature order.
    pub(crate) fn run(
        &self,
        plan: &Plan,
        inputs: &[&Tensor],
        bindings: &Bindings,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let compiled = self.compiled(plan, bindings)?;
        let program = plan.program();
        let mut arena = self.arena.lock().unwrap_or_else(PoisonError::into_inner);
        let arena_ptr = arena.as_mut_ptr();
        // Aligned copies of unaligned inputs and the outputs, alive until the end of the run.
        let mut copies: Vec<AlignedBuf> = Vec::new();
        let mut outs: Vec<Option<OutBuf>> = (0..program.outputs.len()).map(|_| None).collect();
        let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); program.buffers.len()];
        for (i, b) in program.buffers.iter().enumerate() {
            let size = compiled.sizes.get(i).copied().unwrap_or(0);
            ptrs[i] = match &b.kind {
                BufferKind::Input { index } => {
                    let t = inputs
                        .get(*index as usize)
                        .ok_or_else(|| RuntimeError::Size {
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
                    if is_aligned(t.bytes().as_ptr()) {
                        // Kernels never write inputs (validated when the plan loaded).
                        t.bytes().as_ptr().cast_mut()
                    } else {
                        let mut c = AlignedBuf::copy_of(t.bytes())
                            .map_err(|e| RuntimeError::Alloc(e.to_string()))?;
                        let p = c.as_mut_ptr();
                        copies.push(c);
                        p
                    }
                }
                BufferKind::Output { index } => {
                    let slot = outs
                        .get_mut(*index as usize)
                        .ok_or_else(|| RuntimeError::Size {
                            buffer: b.name.clone(),
                            problem: format!("output {index} is not in the output list"),
                        })?;
                    if size == 0 {
                        *slot = Some(OutBuf::Empty);
                        std::ptr::NonNull::<u64>::dangling().as_ptr().cast()
                    } else {
                        let len = usize::try_from(size)
                            .map_err(|_| RuntimeError::Alloc(format!("{size} bytes")))?;
                        let mut m = output_buffer(&self.spare, len).map_err(|e| {
                            RuntimeError::Alloc(format!("output `{}`: {e}", b.name))
                        })?;
                        let p = m.as_mut_ptr();
                        *slot = Some(OutBuf::Map(m));
                        p
                    }
                }
                BufferKind::Weight { .. } => {
                    self.weight_addr.get(i).copied().unwrap_or(0) as *mut u8
                }
                BufferKind::Activation { offset } => {
                    // In range: offset + size at the maxima ≤ arena_bytes (validated), and
                    // sizes only shrink below the maxima.
                    let off = usize::try_from(*offset)
                        .map_err(|_| RuntimeError::Alloc(format!("{offset} bytes")))?;
                    arena_ptr.wrapping_add(off)
                }
                BufferKind::Alias { .. } => std::ptr::null_mut(),
            };
        }
        for (i, b) in program.buffers.iter().enumerate() {
            if let BufferKind::Alias { .. } = b.kind {
                let root = root_of(program, i as u32).ok_or_else(|| RuntimeError::Size {
                    buffer: b.name.clone(),
                    problem: "bad alias".into(),
                })?;
                ptrs[i] = ptrs
                    .get(root as usize)
                    .copied()
                    .unwrap_or(std::ptr::null_mut());
            }
        }
        // Run the whole forward on a worker of the thread pool, so the kernels' parallel
        // loops split work among the pool's threads with this one among them. Called from
        // outside the pool, each kernel would instead be injected into the pool while this
        // thread sleeps until it finishes: a wake-up per kernel each way, which costs up to
        // milliseconds on a virtual machine whose idle vCPUs the host deschedules.
        let shared = SendPtrs(ptrs);
        let run_all = || -> Result<(), RuntimeError> {
            let ptrs = shared.get();
            let mut args: Vec<*mut u8> = Vec::new();
            for (ki, k) in program.kernels.iter().enumerate() {
                args.clear();
                args.extend(k.args.iter().map(|&id| {
                    ptrs.get(id as usize)
                        .copied()
                        .unwrap_or(std::ptr::null_mut())
                }));
                // SAFETY: every argument points to a live buffer of at least the size its
                // dtype and shape need under `bindings` (inputs checked above, outputs
                // allocated above, activations inside the arena, weights in the plan), 64-byte
                // aligned (arena, copies, page-aligned outputs, aligned weights); the plan's
                // validation guarantees written arguments do not share storage with read ones
                // and that inputs and weights are never written.
                let t0 = self.profile.as_ref().map(|_| std::time::Instant::now());
                unsafe { B::run_kernel(&compiled.cpu, ki, &args) }.map_err(|source| {
                    RuntimeError::Kernel {
                        index: ki,
                        name: k.name.clone(),
                        source,
                    }
                })?;
                if let (Some(t0), Some(p)) = (t0, &self.profile) {
                    let mut p = p.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(slot) = p.get_mut(ki) {
                        slot.0 += t0.elapsed();
                        slot.1 += 1;
                    }
                }
            }
            Ok(())
        };
        if rayon::current_thread_index().is_some() {
            run_all()?;
        } else {
            rayon::scope(|_| run_all())?;
        }
        drop(arena);
        drop(copies);
        let mut result = Vec::with_capacity(outs.len());
        for ((pos, &id), out) in program.outputs.iter().enumerate().zip(outs) {
            result.push(super::output_tensor(plan, pos, id, bindings, |_| {
                Ok(match out {
                    None | Some(OutBuf::Empty) => Storage::Owned(Arc::from(Vec::new())),
                    Some(OutBuf::Map(m)) => Storage::Shared(Arc::new(PooledOutput {
                        map: Some(m),
                        spare: Arc::downgrade(&self.spare),
                    })),
                })
            })?);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
