//! A thin owning layer over the CUDA driver API (cudarc's `result`/`sys` levels): the
//! driver check, the device's primary context, device memory, PTX modules, a stream,
//! events and graphs. Every handle here is only used with its context current on the
//! calling thread (the executor binds it before each operation).
//!
//! cudarc loads `libcuda` at run time and resolves each entry point on first use, panicking
//! when the library or an entry point is missing. [`load_driver`] checks the library and
//! every entry point this file uses first, so that neither can panic later.

use crate::error::RuntimeError;
use crate::exec::arch::DeviceArch;
use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;
use std::ffi::{CString, c_void};

/// Every driver entry point this executor calls (through cudarc), checked by
/// [`load_driver`] before any is used.
pub(crate) const ENTRY_POINTS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemsetD8Async",
    "cuModuleLoadDataEx",
    "cuModuleUnload",
    "cuModuleGetFunction",
    "cuFuncSetAttribute",
    "cuLaunchKernel",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventElapsedTime",
    "cuEventDestroy_v2",
    "cuStreamBeginCapture_v2",
    "cuStreamEndCapture",
    "cuGraphInstantiateWithFlags",
    "cuGraphLaunch",
    "cuGraphExecDestroy",
    "cuGraphDestroy",
];

/// `NAME: description` of a driver error.
pub(crate) fn describe(e: DriverError) -> String {
    let name = e
        .error_name()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("CUresult {}", e.0 as u32));
    match e.error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// A [`RuntimeError::Driver`] for `call`.
pub(crate) fn driver_err(call: impl Into<String>) -> impl FnOnce(DriverError) -> RuntimeError {
    let call = call.into();
    move |e| RuntimeError::Driver {
        call,
        message: describe(e),
    }
}

/// Check that `libcuda` loads and has every entry point of [`ENTRY_POINTS`], then
/// initialize the driver. A machine without the NVIDIA driver gets
/// [`RuntimeError::NoDriver`], one without a GPU the driver's error from `cuInit`.
pub(crate) fn load_driver() -> Result<(), RuntimeError> {
    // SAFETY: loading the driver library runs its initializers, as any CUDA program does.
    if !unsafe { sys::is_culib_present() } {
        let mut names = cudarc::get_lib_name_candidates("cuda");
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        return Err(RuntimeError::NoDriver {
            detail: format!(
                "libcuda could not be loaded (searched {}); install the NVIDIA driver, or \
                 add its folder to LD_LIBRARY_PATH",
                names.join(", ")
            ),
        });
    }
    // SAFETY: `is_culib_present` just loaded one of the same candidates, so `culib` finds
    // it instead of panicking; `get` only looks the names up.
    let lib = unsafe { sys::culib() };
    let missing: Vec<&str> = ENTRY_POINTS
        .iter()
        .copied()
        .filter(|name| unsafe { lib.get::<unsafe extern "C" fn()>(name.as_bytes()) }.is_err())
        .collect();
    if !missing.is_empty() {
        return Err(RuntimeError::NoDriver {
            detail: format!(
                "the CUDA driver library lacks {} (the driver is too old: install one for \
                 CUDA 12 or newer)",
                missing.join(", ")
            ),
        });
    }
    result::init().map_err(driver_err("cuInit (initializing the CUDA driver)"))
}

/// The driver's CUDA version as `major.minor`.
pub(crate) fn driver_version() -> String {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: writes one int; the entry point was checked by `load_driver`.
    match unsafe { sys::cuDriverGetVersion(&mut v) }.result() {
        Ok(()) => format!("{}.{}", v / 1000, (v % 1000) / 10),
        Err(_) => "unknown".into(),
    }
}

/// A device's primary context, retained while this value lives.
pub(crate) struct Gpu {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    /// Compute capability and name.
    pub arch: DeviceArch,
    /// Largest dynamic shared memory a block may opt in to, in bytes.
    pub max_shared_optin: u32,
}

// SAFETY: a CUDA context may be used from any thread once made current there; every use
// goes through `bind`.
unsafe impl Send for Gpu {}
// SAFETY: as above; the handles are plain identifiers.
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Open device `ordinal` (after [`load_driver`]) and make its primary context current.
    pub(crate) fn open(ordinal: usize) -> Result<Gpu, RuntimeError> {
        let count = result::device::get_count().map_err(driver_err("cuDeviceGetCount"))?;
        if count <= 0 || ordinal >= count as usize {
            return Err(RuntimeError::Driver {
                call: format!("opening GPU {ordinal}"),
                message: format!("the driver reports {count} GPU(s)"),
            });
        }
        let dev = result::device::get(ordinal as i32).map_err(driver_err("cuDeviceGet"))?;
        let attr = |a: sys::CUdevice_attribute, what: &str| {
            // SAFETY: `dev` is a valid device handle.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(driver_err(format!("cuDeviceGetAttribute ({what})")))
        };
        use sys::CUdevice_attribute as A;
        let major = attr(
            A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            "capability",
        )?;
        let minor = attr(
            A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
            "capability",
        )?;
        let optin = attr(
            A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            "shared memory",
        )?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
        // SAFETY: `dev` is valid; released in `Drop`.
        let ctx = unsafe { result::primary_ctx::retain(dev) }
            .map_err(driver_err("cuDevicePrimaryCtxRetain"))?;
        let gpu = Gpu {
            dev,
            ctx,
            arch: DeviceArch {
                major: major.max(0) as u32,
                minor: minor.max(0) as u32,
                name,
            },
            max_shared_optin: optin.max(0) as u32,
        };
        gpu.bind()?;
        Ok(gpu)
    }

    /// Make the context current on this thread.
    pub(crate) fn bind(&self) -> Result<(), RuntimeError> {
        // SAFETY: the context is retained while `self` lives.
        unsafe { result::ctx::set_current(self.ctx) }.map_err(driver_err("cuCtxSetCurrent"))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: retained in `open`, released once here. Errors at teardown are ignored.
        let _ = unsafe { result::primary_ctx::release(self.dev) };
    }
}

/// Device memory, freed on drop (the context must be current then).
pub(crate) struct DeviceMem {
    ptr: sys::CUdeviceptr,
    len: usize,
}

// SAFETY: a device address is valid from any thread with the context current.
unsafe impl Send for DeviceMem {}
// SAFETY: as above.
unsafe impl Sync for DeviceMem {}

impl DeviceMem {
    /// Allocate `len` bytes (at least 256, so that empty buffers still have a distinct,
    /// aligned address). cuMemAlloc aligns to at least 256 bytes.
    pub(crate) fn alloc(len: u64, what: &str) -> Result<DeviceMem, RuntimeError> {
        let n = usize::try_from(len.max(256))
            .map_err(|_| RuntimeError::Alloc(format!("{what}: {len} bytes")))?;
        // SAFETY: plain allocation; the memory is uninitialized bytes, which is fine for u8.
        let ptr = unsafe { result::malloc_sync(n) }.map_err(|e| {
            RuntimeError::Alloc(format!("{what}: {n} bytes on the GPU: {}", describe(e)))
        })?;
        Ok(DeviceMem { ptr, len: n })
    }

    /// The device address.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr
    }

    /// Bytes allocated.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc`, freed once. Errors at teardown are ignored.
        let _ = unsafe { result::free_sync(self.ptr) };
    }
}

/// A loaded PTX module, unloaded on drop.
pub(crate) struct Module {
    module: sys::CUmodule,
}

// SAFETY: see `Gpu`.
unsafe impl Send for Module {}
// SAFETY: see `Gpu`.
unsafe impl Sync for Module {}

/// Bytes of each JIT log buffer.
const LOG_BYTES: usize = 16 * 1024;

impl Module {
    /// JIT-compile and load PTX `text`; on failure the error carries the JIT error log.
    pub(crate) fn load(name: &str, text: &str) -> Result<Module, RuntimeError> {
        let fail = |message: String, log: String| RuntimeError::PtxLoad {
            module: name.to_string(),
            message,
            log,
        };
        let image = CString::new(text)
            .map_err(|_| fail("the PTX text contains a NUL byte".into(), String::new()))?;
        let mut error_log = vec![0u8; LOG_BYTES];
        let mut options = [
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        // Option values are pointer-sized: a buffer address, a size passed as an integer.
        let mut values: [*mut c_void; 2] =
            [error_log.as_mut_ptr().cast(), LOG_BYTES as *mut c_void];
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `image` is a NUL-terminated PTX string; the option arrays have the length
        // passed and the log buffer LOG_BYTES bytes; all outlive the call.
        let r = unsafe {
            sys::cuModuleLoadDataEx(
                &mut module,
                image.as_ptr().cast(),
                options.len() as u32,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            )
        }
        .result();
        match r {
            Ok(()) => Ok(Module { module }),
            Err(e) => {
                let end = error_log.iter().position(|&b| b == 0).unwrap_or(LOG_BYTES);
                let log = String::from_utf8_lossy(error_log.get(..end).unwrap_or(&[]));
                let log = log.trim();
                let mut message = describe(e);
                if e.0 == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
                    message.push_str(&format!(
                        " (the driver supports CUDA {}; its JIT is older than the PTX ISA \
                         the plan uses: update the driver)",
                        driver_version()
                    ));
                }
                Err(fail(
                    message,
                    if log.is_empty() {
                        String::new()
                    } else {
                        format!("\nJIT log:\n{log}")
                    },
                ))
            }
        }
    }

    /// The entry `name`.
    pub(crate) fn function(&self, name: &str) -> Result<sys::CUfunction, DriverError> {
        let c =
            CString::new(name).map_err(|_| DriverError(sys::CUresult::CUDA_ERROR_INVALID_VALUE))?;
        // SAFETY: the module is loaded while `self` lives; the function handle is used only
        // while the executor (which owns the module) lives.
        unsafe { result::module::get_function(self.module, c) }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded in `load`, unloaded once.
        let _ = unsafe { result::module::unload(self.module) };
    }
}

/// Allow a function more than the default 48 KiB of dynamic shared memory.
pub(crate) fn set_max_dynamic_shared(f: sys::CUfunction, bytes: u32) -> Result<(), DriverError> {
    // SAFETY: `f` is a live function handle.
    unsafe {
        result::function::set_function_attribute(
            f,
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            i32::try_from(bytes).unwrap_or(i32::MAX),
        )
    }
}

/// Launch `f` on `stream` with 8-byte parameters `params`.
///
/// # Safety
/// `f` and `stream` are live; `params` match the entry's parameter list (count and 8-byte
/// sizes); every address among them stays valid until the kernel has finished.
pub(crate) unsafe fn launch(
    f: sys::CUfunction,
    grid: [u32; 3],
    block: [u32; 3],
    shared_bytes: u32,
    stream: &Stream,
    params: &mut [u64],
) -> Result<(), DriverError> {
    let mut ptrs: Vec<*mut c_void> = params
        .iter_mut()
        .map(|p| (p as *mut u64).cast::<c_void>())
        .collect();
    // SAFETY: forwarded contract; cuLaunchKernel copies the parameter values before it
    // returns, so `ptrs` and `params` may die afterwards.
    unsafe {
        result::launch_kernel(
            f,
            (grid[0], grid[1], grid[2]),
            (block[0], block[1], block[2]),
            shared_bytes,
            stream.raw,
            &mut ptrs,
        )
    }
}

/// A non-blocking stream, destroyed on drop.
pub(crate) struct Stream {
    raw: sys::CUstream,
}

// SAFETY: see `Gpu`.
unsafe impl Send for Stream {}
// SAFETY: see `Gpu`.
unsafe impl Sync for Stream {}

impl Stream {
    /// Create a stream that does not synchronize with the legacy default stream.
    pub(crate) fn new() -> Result<Stream, RuntimeError> {
        let raw = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(driver_err("cuStreamCreate"))?;
        Ok(Stream { raw })
    }

    /// Wait for everything queued so far.
    pub(crate) fn synchronize(&self) -> Result<(), DriverError> {
        // SAFETY: live stream.
        unsafe { result::stream::synchronize(self.raw) }
    }

    /// Queue setting `len` bytes at `addr` to `value`.
    pub(crate) fn memset(&self, addr: u64, value: u8, len: usize) -> Result<(), DriverError> {
        // SAFETY: callers pass an address range inside one allocation.
        unsafe { sys::cuMemsetD8Async(addr, value, len, self.raw) }.result()
    }

    /// Queue a copy of `src` to device address `dst`.
    ///
    /// # Safety
    /// `dst` has room for `src`; `src` stays alive and unchanged until the stream is
    /// synchronized.
    pub(crate) unsafe fn upload(&self, dst: u64, src: &[u8]) -> Result<(), DriverError> {
        // SAFETY: forwarded contract.
        unsafe { result::memcpy_htod_async(dst, src, self.raw) }
    }

    /// Queue a copy from device address `src` into `dst`.
    ///
    /// # Safety
    /// `src` holds `dst.len()` bytes; `dst` is not touched until the stream is
    /// synchronized.
    pub(crate) unsafe fn download(&self, dst: &mut [u8], src: u64) -> Result<(), DriverError> {
        // SAFETY: forwarded contract.
        unsafe { result::memcpy_dtoh_async(dst, src, self.raw) }
    }

    /// Start capturing the launches of this thread on this stream into a graph.
    pub(crate) fn begin_capture(&self) -> Result<(), DriverError> {
        // SAFETY: live stream.
        unsafe {
            result::stream::begin_capture(
                self.raw,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        }
    }

    /// Stop capturing and instantiate what was captured.
    pub(crate) fn end_capture(&self) -> Result<Graph, DriverError> {
        // SAFETY: live stream in capture mode.
        let graph = unsafe { result::stream::end_capture(self.raw) }?;
        // SAFETY: `graph` was just captured; destroyed after instantiation (the
        // executable graph does not need it).
        let exec = unsafe {
            let exec = result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0));
            let _ = result::graph::destroy(graph);
            exec
        }?;
        Ok(Graph { exec })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::stream::destroy(self.raw) };
    }
}

/// An executable CUDA graph.
pub(crate) struct Graph {
    exec: sys::CUgraphExec,
}

impl Graph {
    /// Queue the whole graph on `stream`.
    pub(crate) fn launch(&self, stream: &Stream) -> Result<(), DriverError> {
        // SAFETY: live graph and stream.
        unsafe { result::graph::launch(self.exec, stream.raw) }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: instantiated once, destroyed once.
        let _ = unsafe { result::graph::exec_destroy(self.exec) };
    }
}

/// A timing event.
pub(crate) struct Event {
    raw: sys::CUevent,
}

impl Event {
    /// A new event with timing.
    pub(crate) fn new() -> Result<Event, DriverError> {
        let raw = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)?;
        Ok(Event { raw })
    }

    /// Record on `stream`.
    pub(crate) fn record(&self, stream: &Stream) -> Result<(), DriverError> {
        // SAFETY: live event and stream.
        unsafe { result::event::record(self.raw, stream.raw) }
    }

    /// Milliseconds from `self` to `end` (both recorded and complete).
    pub(crate) fn elapsed_ms(&self, end: &Event) -> Result<f32, DriverError> {
        // SAFETY: live events; waits for `end` first.
        unsafe {
            result::event::synchronize(end.raw)?;
            result::event::elapsed(self.raw, end.raw)
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        let _ = unsafe { result::event::destroy(self.raw) };
    }
}
