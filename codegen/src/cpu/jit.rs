//! The Cranelift JIT module that holds a program's generated functions.

use super::helpers::{Helper, Ty};
use cranelift_codegen::ir::{AbiParam, Signature, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, ir};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use std::collections::HashMap;

/// A generated expression function:
/// `fn(args: *const *mut u8, start: i64, end: i64, err: *mut i64, aux: *mut u8) -> i64`.
/// Returns 0, or a fault code with details in `err[0]`, `err[1]` (see [`Fault`]).
pub(super) type ExprFn = unsafe extern "C" fn(*const *mut u8, i64, i64, *mut i64, *mut u8) -> i64;

/// Fault codes of generated code.
pub(super) const FAULT_GATHER: i64 = 1;
/// Integer division (or remainder) by zero.
pub(super) const FAULT_DIV_ZERO: i64 = 2;
/// Integer zero raised to a negative power.
pub(super) const FAULT_POW: i64 = 3;

/// A fault reported by generated code.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fault {
    /// One of the `FAULT_*` codes.
    pub code: i64,
    /// Detail (the bad index for a gather).
    pub a: i64,
    /// Detail (the extent of the gathered axis).
    pub b: i64,
}

/// Call `f` over `[start, end)`.
///
/// # Safety
/// `args` must hold the kernel's argument pointers, `aux` the driver's scratch as the
/// function expects it.
pub(super) unsafe fn call(
    f: ExprFn,
    args: *const *mut u8,
    start: i64,
    end: i64,
    aux: *mut u8,
) -> Result<(), Fault> {
    let mut err = [0i64; 2];
    // SAFETY: forwarded contract.
    let code = unsafe { f(args, start, end, err.as_mut_ptr(), aux) };
    if code == 0 {
        Ok(())
    } else {
        Err(Fault {
            code,
            a: err[0],
            b: err[1],
        })
    }
}

/// Builder state of a JIT module.
pub(super) struct Jit {
    pub module: JITModule,
    pub ctx: Context,
    pub fctx: FunctionBuilderContext,
    helpers: HashMap<Helper, FuncId>,
    count: usize,
}

fn ty(t: Ty) -> ir::Type {
    match t {
        Ty::F32 => types::F32,
        Ty::I32 => types::I32,
        Ty::I64 => types::I64,
    }
}

impl Jit {
    /// A module for the host CPU with every helper registered.
    pub fn new() -> Result<Jit, String> {
        let mut flags = settings::builder();
        for (k, v) in [
            ("opt_level", "speed"),
            ("use_colocated_libcalls", "false"),
            ("is_pic", "false"),
        ] {
            flags.set(k, v).map_err(|e| e.to_string())?;
        }
        let isa = cranelift_native::builder()
            .map_err(|e| e.to_string())?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        for h in Helper::ALL {
            let (name, _, _, ptr) = h.signature();
            builder.symbol(name, ptr);
        }
        let module = JITModule::new(builder);
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            helpers: HashMap::new(),
            count: 0,
        })
    }

    /// The signature of an [`ExprFn`].
    pub fn expr_signature(&self) -> Signature {
        let mut sig = self.module.make_signature();
        for _ in 0..5 {
            sig.params.push(AbiParam::new(types::I64));
        }
        sig.returns.push(AbiParam::new(types::I64));
        sig
    }

    /// Declare a fresh local function with the [`ExprFn`] signature.
    pub fn declare_expr_fn(&mut self) -> Result<FuncId, String> {
        self.count += 1;
        let sig = self.expr_signature();
        self.module
            .declare_function(&format!("k{}", self.count), Linkage::Local, &sig)
            .map_err(|e| e.to_string())
    }

    /// The module-level id of a helper (declared on first use).
    pub fn helper(
        module: &mut JITModule,
        helpers: &mut HashMap<Helper, FuncId>,
        h: Helper,
    ) -> Result<FuncId, String> {
        if let Some(id) = helpers.get(&h) {
            return Ok(*id);
        }
        let (name, params, ret, _) = h.signature();
        let mut sig = module.make_signature();
        for &p in params {
            sig.params.push(AbiParam::new(ty(p)));
        }
        if let Some(r) = ret {
            sig.returns.push(AbiParam::new(ty(r)));
        }
        let id = module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        helpers.insert(h, id);
        Ok(id)
    }

    /// Split borrows for code generation.
    pub fn parts(
        &mut self,
    ) -> (
        &mut JITModule,
        &mut Context,
        &mut FunctionBuilderContext,
        &mut HashMap<Helper, FuncId>,
    ) {
        (
            &mut self.module,
            &mut self.ctx,
            &mut self.fctx,
            &mut self.helpers,
        )
    }

    /// Compile the function in `ctx` as `id` and clear the context.
    pub fn define(&mut self, id: FuncId) -> Result<(), String> {
        let r = self
            .module
            .define_function(id, &mut self.ctx)
            .map_err(|e| format!("{e:?}"));
        self.module.clear_context(&mut self.ctx);
        r
    }

    /// Finish: make the code executable.
    pub fn finish(mut self) -> Result<JitCode, String> {
        self.module
            .finalize_definitions()
            .map_err(|e| e.to_string())?;
        Ok(JitCode {
            module: Some(self.module),
        })
    }
}

/// Executable code of a program; frees it when dropped.
pub(super) struct JitCode {
    module: Option<JITModule>,
}

impl JitCode {
    /// The address of a finished function.
    pub fn expr_fn(&self, id: FuncId) -> Option<ExprFn> {
        let m = self.module.as_ref()?;
        let p = m.get_finalized_function(id);
        if p.is_null() {
            return None;
        }
        // SAFETY: `id` was declared with the ExprFn signature (`declare_expr_fn`).
        Some(unsafe { std::mem::transmute::<*const u8, ExprFn>(p) })
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the functions of this module are reachable only through the
            // `CpuProgram` that owns this code, which is being dropped.
            unsafe { m.free_memory() };
        }
    }
}

// SAFETY: after `finalize_definitions` the module is only read (function addresses were
// taken before sharing); the code pages are immutable and callable from any thread.
unsafe impl Send for JitCode {}
// SAFETY: as above.
unsafe impl Sync for JitCode {}
